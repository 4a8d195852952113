"""What our two HTTP servers (the PEPS/GEODES emulator and the catalog server) share: a
threaded server run in a daemon thread, bounded so that a folder served to a team over
``--host`` is not easy to exhaust, and HTTP Range parsing."""

from __future__ import annotations

import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")  # more digits than any file size: not a range we serve
IDLE_TIMEOUT = 30.0  # seconds a connection may sit without sending (then it is closed)
MAX_THREADS = 64  # connections served at once; more wait in the listen backlog
BACKLOG = 256


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``MAX_THREADS`` at once, a sensible listen backlog,
    and one quiet line (no traceback) for a connection that failed."""

    request_queue_size = BACKLOG
    daemon_threads = True

    def __init__(self, address, handler, max_threads: int = MAX_THREADS) -> None:
        self._slots = threading.BoundedSemaphore(max_threads)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        self._slots.acquire()  # the accept loop waits here while every slot is busy
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError, TimeoutError)):
            return  # a client that went away or timed out: nothing to report
        print(f"error while answering {client_address[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)


class LoopbackServer:
    """``with Server(...) as s: s.url`` or ``start()`` / ``stop()``; subclasses give the handler."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str, port: int, name: str,
                 idle_timeout: float = IDLE_TIMEOUT, max_threads: int = MAX_THREADS) -> None:
        # the handler's timeout is set on each connection's socket: an idle one is closed
        handler = type(handler.__name__, (handler,), {"timeout": idle_timeout})
        self.httpd = BoundedHTTPServer((host, port), handler, max_threads)
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
        """Serve until Ctrl-C: in this thread, or by waiting on the one :meth:`start` began."""
        if self._thread is None:
            self.httpd.serve_forever()
            return
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def parse_range(header: str | None, total: int) -> tuple[int, int] | None | bool:
    """(start, end) inclusive for a single ``bytes=`` range; None to send the whole file
    (no Range, or one that is not valid: RFC 9110 says to ignore it, e.g. ``bytes=5-3`` or a
    number longer than any file size); False when it cannot be satisfied (answer 416)."""
    m = _RANGE.fullmatch((header or "").strip())
    if not m or not (m.group(1) or m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        if m.group(2) and int(m.group(2)) < start:
            return None  # last-pos before first-pos: an invalid range, ignored
        end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
    else:  # suffix range: the last N bytes
        if int(m.group(2)) == 0:
            return False
        start, end = max(0, total - int(m.group(2))), total - 1
    if start >= total:
        return False
    return start, end
