"""A stand-in for the service this plugin calls, to try it locally:
    python3 test/receiver.py [PORT]      (default 8808)

Prints every request it receives as one JSON line (method, path, headers, body) and
answers `{"ok": true}` to a POST and `{"key": ..., "tier": "gold"}` to a GET under
/records/. Built on Python's http.server, which reads a body by its Content-Length.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class Receiver(BaseHTTPRequestHandler):
    def _answer(self, status, value):
        body = json.dumps(value).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _show(self, body: bytes):
        try:
            shown = json.loads(body) if body else None
        except ValueError:
            shown = body.decode("utf-8", errors="replace")
        line = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": shown,
        }
        print(json.dumps(line), flush=True)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        self._show(self.rfile.read(length))
        self._answer(200, {"ok": True})

    def do_GET(self):
        self._show(b"")
        if self.path.startswith("/records/"):
            self._answer(200, {"key": unquote(self.path[len("/records/"):]), "tier": "gold"})
        else:
            self._answer(404, {"error": "not found"})

    def log_message(self, format, *args):
        pass  # one JSON line per request on stdout is the whole output


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8808
    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    print(f"listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.serve_forever()
