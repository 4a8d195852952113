"""What our two HTTP servers (the PEPS/GEODES emulator and the catalog server) share: a
threaded server run in a daemon thread, bounded so that a folder served to a team over
``--host`` is not easy to exhaust, and HTTP Range parsing."""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")  # more digits than any file size: not a range we serve
IDLE_TIMEOUT = 30.0  # seconds a socket read may wait (a sending client that stops mid-body)
HEAD_TIMEOUT = 10.0  # seconds from a connection's start (or its last answer) to a complete request line and headers
MAX_THREADS = 64  # connections served at once; more wait in the listen backlog
BACKLOG = 256


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``MAX_THREADS`` at once, a sensible listen backlog,
    and one quiet line (no traceback) for a connection that failed.

    Idle clients cannot deny service: a connection that has not sent a complete request head
    within ``HEAD_TIMEOUT`` (an idle one, or one sending a byte a second) is closed by a
    reaper thread, and when every slot is taken the connection that has waited longest for
    a request is closed at once to make room; connections busy with a request are never
    closed for room."""

    request_queue_size = BACKLOG
    daemon_threads = True

    def __init__(self, address, handler, max_threads: int = MAX_THREADS, head_timeout: float = HEAD_TIMEOUT) -> None:
        self._slots = threading.BoundedSemaphore(max_threads)
        self.head_timeout = head_timeout
        self._waiting: dict[object, float] = {}  # connection -> since when it waits for a request head
        self._waiting_lock = threading.Lock()
        super().__init__(address, handler)
        threading.Thread(target=self._reap, name="http-head-reaper", daemon=True).start()

    # -- connections waiting for a request (the handler says when) --------------------------
    def waiting(self, connection) -> None:
        with self._waiting_lock:
            self._waiting[connection] = time.monotonic()

    def busy(self, connection) -> None:
        with self._waiting_lock:
            self._waiting.pop(connection, None)

    def _close(self, connection) -> None:
        try:
            connection.shutdown(socket.SHUT_RDWR)  # its thread's read returns at once and ends it
        except OSError:
            pass

    def _reap(self) -> None:
        while True:
            time.sleep(min(1.0, self.head_timeout / 4))
            limit = time.monotonic() - self.head_timeout
            with self._waiting_lock:
                late = [c for c, since in self._waiting.items() if since < limit]
                for connection in late:
                    del self._waiting[connection]
            for connection in late:
                self._close(connection)

    def _make_room(self) -> bool:
        with self._waiting_lock:
            if not self._waiting:
                return False
            oldest = min(self._waiting, key=self._waiting.__getitem__)
            del self._waiting[oldest]
        self._close(oldest)
        return True

    def process_request(self, request, client_address) -> None:
        while not self._slots.acquire(timeout=0.05):  # every slot taken: close an idle one, else wait
            self._make_room()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.busy(request)
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError, TimeoutError)):
            return  # a client that went away or timed out: nothing to report
        print(f"error while answering {client_address[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)


class GuardedHandler(BaseHTTPRequestHandler):
    """Tells the server when its connection waits for a request head and when it is busy
    with one (:class:`BoundedHTTPServer` closes the ones that wait too long)."""

    def handle_one_request(self) -> None:
        self.server.waiting(self.connection)
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            self.server.busy(self.connection)
        return ok


class LoopbackServer:
    """``with Server(...) as s: s.url`` or ``start()`` / ``stop()``; subclasses give the handler."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str, port: int, name: str,
                 idle_timeout: float = IDLE_TIMEOUT, max_threads: int = MAX_THREADS) -> None:
        # the handler's timeout is set on each connection's socket: an idle one is closed
        handler = type(handler.__name__, (GuardedHandler, handler), {"timeout": idle_timeout})
        self.httpd = BoundedHTTPServer((host, port), handler, max_threads, min(HEAD_TIMEOUT, idle_timeout))
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
