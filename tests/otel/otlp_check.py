"""End-to-end check of the OpenTelemetry export (a `parcours` built with `--features otel`).

Starts a local OTLP/HTTP sink, runs `parcours serve --examples` with
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT pointing at it, sends one event, and waits for an
export whose spans carry the engine's `activation` span with the journey's name.

    python tests/otel/otlp_check.py target/debug/parcours [--plugin-cache DIR]
"""

import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

received = []


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    binary = sys.argv[1]
    plugin_cache = sys.argv[sys.argv.index("--plugin-cache") + 1] if "--plugin-cache" in sys.argv else None
    sink = http.server.HTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = "http://127.0.0.1:%d/v1/traces" % sink.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        args = [binary, "serve", "--examples", "--listen", "127.0.0.1:0", "--db", os.path.join(tmp, "otel.db")]
        if plugin_cache:
            args += ["--plugin-cache", plugin_cache]
        env = dict(os.environ, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint)
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        try:
            base = None
            for line in proc.stderr:
                if "listening on http://" in line:
                    base = line.split("listening on ")[1].split()[0]
                    break
            if base is None:
                raise SystemExit("parcours exited before listening (exit code %s)" % proc.wait())
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            event = json.dumps({"type": "signup", "profile_id": "otel-ann", "data": {}}).encode()
            req = urllib.request.Request(base + "/v1/events", data=event, headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 202, r.status
            deadline = time.time() + 60
            while time.time() < deadline:
                if any(path == "/v1/traces" and b"activation" in body and b"welcome" in body for path, body in received):
                    print("OTLP export received: %d request(s), spans of the welcome journey's activation" % len(received))
                    return
                time.sleep(0.2)
            raise SystemExit("no OTLP export with the engine's spans within 60 s (%d requests)" % len(received))
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
