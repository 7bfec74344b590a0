"""Conditional writes in front of s3rver, so Tansu's s3:// engine keeps its offsets.

Tansu keeps each partition's high watermark in ``watermark.json`` and updates it with
S3 conditional PUTs (``If-None-Match: *`` to create, ``If-Match: <etag>`` to update): after a
restart its first PUT is a "create" that real S3 refuses (412), so it reads the stored
watermark and carries on. s3rver 3.7.1 ignores both headers, so the restarted broker
overwrote the watermark and re-used offset 0, silently replacing acknowledged records
(measured: 100 records produced, broker restarted, 100 more produced -> only the second
100 readable). This gate answers those preconditions itself and forwards everything else
unchanged (signatures stay valid: no header is altered).

    python3 -m riskstream.s3gate --listen 127.0.0.1:19095 --target 127.0.0.1:19094
"""

from __future__ import annotations

import argparse
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PRECONDITION_FAILED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
    b"<Message>At least one of the pre-conditions you specified did not hold</Message>"
    b"<Condition>If-Match</Condition></Error>"
)
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


def _etag(value: str | None) -> str:
    return (value or "").strip().removeprefix("W/").strip('"')


class _Gate(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    target: tuple[str, int] = ("127.0.0.1", 4568)
    write_lock = threading.Lock()  # check-then-put is atomic: one broker, one gate

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: s3rver logs requests itself when asked to

    def _upstream(
        self, method: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.target, timeout=60)
        try:
            conn.request(method, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes, head: bool) -> None:
        self.send_response(status)
        length = str(len(body))
        for k, v in headers:
            if head and k.lower() == "content-length":
                length = v  # HEAD: the object's size, which clients (object_store) rely on
            elif k.lower() not in _HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", length)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _handle(self) -> None:
        method = self.command
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        if length:
            headers["Content-Length"] = str(length)
        if method == "PUT" and (self.headers.get("If-None-Match") or self.headers.get("If-Match")):
            with self.write_lock:
                if not self._precondition_holds():
                    xml = [("Content-Type", "application/xml")]
                    self._reply(412, xml, PRECONDITION_FAILED, head=False)
                    return
                status, hdrs, data = self._upstream(method, body, headers)
        else:
            status, hdrs, data = self._upstream(method, body, headers)
        self._reply(status, hdrs, data, head=method == "HEAD")

    def _precondition_holds(self) -> bool:
        status, hdrs, _ = self._upstream("HEAD", None, {})
        exists = status == 200
        current = _etag(dict((k.lower(), v) for k, v in hdrs).get("etag"))
        none_match = self.headers.get("If-None-Match")
        if none_match is not None:
            if none_match.strip() == "*":
                if exists:
                    return False
            elif exists and _etag(none_match) == current:
                return False
        match = self.headers.get("If-Match")
        if match is not None:
            if not exists:
                return False
            if match.strip() != "*" and _etag(match) != current:
                return False
        return True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    handler = type("Gate", (_Gate,), {"target": target})
    server = ThreadingHTTPServer(listen, handler)
    server.daemon_threads = True
    server.serve_forever()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=_addr, required=True, help="host:port to serve")
    p.add_argument("--target", type=_addr, required=True, help="s3rver host:port")
    a = p.parse_args(argv)
    serve(a.listen, a.target)


if __name__ == "__main__":
    main()
