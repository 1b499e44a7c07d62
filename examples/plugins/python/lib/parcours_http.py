"""Blocking HTTP for Parcours plugins written in Python, over `wasi:http`.

The host sends a request only to the hosts the plugin's manifest allows
(`capabilities.allowed_hosts`); any other host fails with `HttpError`
before a connection is made.
"""

from dataclasses import dataclass
from typing import Dict, Optional
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world.imports import outgoing_handler
from wit_world.imports import wasi_http_types as http

_METHODS = {
    "GET": http.Method_Get(),
    "POST": http.Method_Post(),
    "PUT": http.Method_Put(),
    "PATCH": http.Method_Patch(),
    "DELETE": http.Method_Delete(),
}

# `wasi:io` streams move at most 4 KiB per blocking write.
_CHUNK = 4096


class HttpError(Exception):
    """The request could not be made (denied host, refused connection, bad URL)."""


@dataclass
class Response:
    status: int
    headers: Dict[str, str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def request(
    method: str,
    url: str,
    headers: Optional[Dict[str, str]] = None,
    body: Optional[bytes] = None,
    max_body_bytes: int = 1 << 20,
) -> Response:
    """Sends one request and reads the whole response (up to `max_body_bytes`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError(f"{url!r} is not an http(s) URL")
    if method.upper() not in _METHODS:
        raise HttpError(f"unsupported method {method!r}")
    pairs = [(k.lower(), v.encode("utf-8")) for k, v in (headers or {}).items()]
    # The body is in memory: send its length, as ordinary clients do, not chunked
    # (receivers such as Python's http.server read a chunked body as empty).
    if body is not None and not any(k == "content-length" for k, _ in pairs):
        pairs.append(("content-length", str(len(body)).encode("ascii")))
    fields = http.Fields.from_list(pairs)
    req = http.OutgoingRequest(fields)
    req.set_method(_METHODS[method.upper()])
    req.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    req.set_authority(parts.netloc)
    req.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    outgoing = req.body()
    try:
        future = outgoing_handler.handle(req, None)
    except Err as e:
        raise HttpError(_describe(e.value)) from None
    with outgoing.write() as stream:
        data = body or b""
        for start in range(0, len(data), _CHUNK):
            stream.blocking_write_and_flush(data[start : start + _CHUNK])
    http.OutgoingBody.finish(outgoing, None)

    with future:
        with future.subscribe() as ready:
            ready.block()
        answer = future.get()
    if answer is None:
        raise HttpError("no response")
    if isinstance(answer, Err):
        raise HttpError("the response was already taken")
    inner = answer.value
    if isinstance(inner, Err):
        raise HttpError(_describe(inner.value))
    with inner.value as response:
        status = response.status()
        with response.headers() as fields:
            names = {k: v.decode("utf-8", errors="replace") for k, v in fields.entries()}
        chunks = []
        size = 0
        with response.consume() as incoming:
            with incoming.stream() as stream:
                while True:
                    try:
                        chunk = stream.blocking_read(65536)
                    except Err:
                        break  # the stream is closed: the body is complete
                    size += len(chunk)
                    if size > max_body_bytes:
                        raise HttpError(
                            f"the response body is larger than {max_body_bytes} bytes"
                        )
                    chunks.append(chunk)
    return Response(status, names, b"".join(chunks))


def _describe(code) -> str:
    name = type(code).__name__.removeprefix("ErrorCode_")
    if name == "HttpRequestDenied":
        return "the host refused the request (not in capabilities.allowed_hosts)"
    return f"HTTP request failed: {name}"
