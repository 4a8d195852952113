"""A scriptable HTTP server on loopback for the trust tests: each path answers what the test
says (a document, a redirect, a slow drip, a gzip bomb), and every request's headers are
recorded, so a test can prove which credential reached which origin."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Route = Callable[[BaseHTTPRequestHandler], None]


class HostileServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                path = self.path.split("?")[0]
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                server.requests.append((self.command, path, dict(self.headers.items())))
                route = server.routes.get(path) or server.routes.get("*")
                if route is None:
                    send(self, 404, b"{}", "application/json")
                else:
                    try:
                        route(self)
                    except (BrokenPipeError, ConnectionResetError, OSError):
                        pass

            do_GET = do_POST = do_HEAD = _any

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a client that cuts the connection is what these tests do on purpose

        self.httpd = Server((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HostileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def headers_seen(self, name: str) -> list[str | None]:
        """The value of header ``name`` in each request received (None where absent)."""
        return [{k.lower(): v for k, v in h.items()}.get(name.lower()) for _, _, h in self.requests]


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def document(body: bytes, status: int = 200, content_type: str = "application/json") -> Route:
    return lambda h: send(h, status, body, content_type)


def redirect(location: str, status: int = 302) -> Route:
    return lambda h: send(h, status, b"", "text/plain", {"Location": location})


def slow_drip(total: bytes, interval: float = 0.2, headers_too: bool = False) -> Route:
    """Send ``total`` one byte at a time, ``interval`` apart: the status line and headers too
    when ``headers_too`` (a server that never finishes its headers)."""
    def route(h: BaseHTTPRequestHandler) -> None:
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: {len(total)}\r\n\r\n").encode()
        if not headers_too:
            h.wfile.write(head)
            h.wfile.flush()
            head = b""
        for byte in head + total:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(interval)
    return route


def gzip_bomb(decompressed: int) -> Route:
    """A small gzip body that inflates to ``decompressed`` bytes of zeros."""
    body = gzip.compress(b"\0" * decompressed, compresslevel=9)
    return lambda h: send(h, 200, body, "application/json", {"Content-Encoding": "gzip"})
