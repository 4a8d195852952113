"""What our two HTTP servers (the PEPS/GEODES emulator and the catalog server) share: a
threaded server on a loopback port run in a daemon thread, and HTTP Range parsing."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class LoopbackServer:
    """``with Server(...) as s: s.url`` or ``start()`` / ``stop()``; subclasses give the handler."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str, port: int, name: str) -> None:
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=self._name, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def parse_range(header: str | None, total: int) -> tuple[int, int] | None | bool:
    """(start, end) inclusive for a single ``bytes=`` range; None without one (whole file);
    False when it cannot be satisfied (answer 416)."""
    m = _RANGE.fullmatch((header or "").strip())
    if not m or not (m.group(1) or m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
    else:  # suffix range: the last N bytes
        start, end = max(0, total - int(m.group(2))), total - 1
    if start >= total or start > end:
        return False
    return start, end
