"""Every network read, bounded in one place: credentials bound to their origin, a total
deadline, a stall limit and a size cap.

Why a watchdog: requests' ``timeout`` bounds each socket read, not the whole answer, so a
server that sends one byte a second (headers or body) is never timed out, and a gzip body
decompresses without limit. Here every request runs under a :class:`Watch`: one monitor
thread shuts the connection's socket down when the total deadline passes or when no chunk
has arrived for the stall limit, and the reader stops at the size cap (bytes as decoded).
The limits live in :mod:`fullmaja_stac.config` (:data:`~fullmaja_stac.config.DOCUMENT_LIMITS`,
:data:`~fullmaja_stac.config.DOWNLOAD_LIMITS`).

Why an origin-bound session: requests drops ``Authorization`` on a redirect to another host
but keeps any other header (GEODES's ``X-API-Key``), and sends ``session.auth`` to whatever
URL it is given (a status document may name any host). :class:`OriginBoundSession` sends the
credentials and the secret headers only to the one scheme://host:port they were given for.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from fullmaja_stac import config
from fullmaja_stac.config import NetLimits
from fullmaja_stac.errors import FullMajaError

SECRET_HEADERS = ("Authorization", "X-API-Key", "Cookie", "Proxy-Authorization")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RemoteLimitError(FullMajaError):
    """A remote answer ran past its deadline, stalled, or was larger than its cap."""


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = -1  # not a port: matches no origin
    return scheme, (parts.hostname or "").lower(), port


def same_origin(url: str, bound: tuple[str, str, int] | None) -> bool:
    """Whether ``url`` is the bound origin, or its https upgrade on the default ports (the
    one change requests itself keeps credentials for)."""
    if bound is None:
        return False
    here = origin(url)
    return here == bound or (bound[0] == "http" and bound[2] == 80 and here == ("https", bound[1], 443))


# ----------------------------------------------------------------------------- the watchdog


class Watch:
    """One request's limits, and the connections it used (so that they can be cut)."""

    def __init__(self, limits: NetLimits, until: float | None = None) -> None:
        self.limits = limits
        now = time.monotonic()
        self.until = min(until, now + limits.total_s) if until is not None else now + limits.total_s
        self.last_progress = now
        self.reason: str | None = None
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()

    def attach(self, connection: HTTPConnection) -> None:
        with self._lock:
            if self.reason is not None:
                raise RemoteLimitError(self.reason)
            self._connections.append(connection)

    def progress(self) -> None:
        self.last_progress = time.monotonic()

    def check(self, now: float) -> None:
        """Called by the monitor: cut the connections once a limit is passed."""
        if self.reason is None:
            if now > self.until:
                self.reason = f"no complete answer within {self.limits.total_s:g} s"
            elif now - self.last_progress > self.limits.stall_s:
                self.reason = f"nothing received for {self.limits.stall_s:g} s"
            else:
                return
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Monitor:
    """The one thread that checks every active watch, twice a second."""

    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
        with self._lock:
            self._watches.add(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fullmaja-remote-watch", daemon=True)
                self._thread.start()

    def remove(self, watch: Watch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            with self._lock:
                watches = list(self._watches)
            now = time.monotonic()
            for watch in watches:
                watch.check(now)


_MONITOR = _Monitor()
_current = threading.local()  # the watch of the request this thread is making


class _WatchedMixin:
    def connect(self):  # type: ignore[no-untyped-def]
        _attach(self)
        return super().connect()  # type: ignore[misc]

    def request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _attach(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]


def _attach(connection) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.attach(connection)


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections can be cut by the watch of the request using them."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        """Through an HTTP(S) proxy too (``HTTPS_PROXY``), the connections are watched."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        return manager


# ----------------------------------------------------------------------------- the session


class OriginBoundSession(requests.Session):
    """A session whose credentials (``auth`` and :data:`SECRET_HEADERS`) go only to
    ``credential_origin``: dropped from a request to any other origin, and from a redirect
    that leaves it (a storage host gets the request, without the key)."""

    credential_origin: tuple[str, str, int] | None = None

    def bind_credentials(self, url: str) -> None:
        self.credential_origin = origin(url)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        prepared = super().prepare_request(request)
        if not same_origin(prepared.url or "", self.credential_origin):
            _strip(prepared)
        return prepared

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if not same_origin(prepared_request.url or "", self.credential_origin):
            _strip(prepared_request)


def _strip(prepared: requests.PreparedRequest) -> None:
    for name in SECRET_HEADERS:
        prepared.headers.pop(name, None)


# ----------------------------------------------------------------------------- reading


@contextmanager
def watched(limits: NetLimits | None = None, until: float | None = None) -> Iterator[Watch]:
    """Run the requests made in this block (this thread) under one watch (``limits``: the
    settings' :data:`~fullmaja_stac.config.DOCUMENT_LIMITS` by default); a read cut by it
    comes out as a :class:`RemoteLimitError` that says which limit."""
    watch = Watch(limits or config.DOCUMENT_LIMITS, until)
    previous = getattr(_current, "watch", None)
    _current.watch = watch
    _MONITOR.add(watch)
    try:
        yield watch
    except (requests.RequestException, OSError) as exc:
        if watch.reason is not None:
            raise RemoteLimitError(watch.reason) from None
        raise exc
    finally:
        _MONITOR.remove(watch)
        _current.watch = previous
    if watch.reason is not None:  # a cut during the headers can read as an empty answer: never trust it
        raise RemoteLimitError(watch.reason)


def iter_capped(response: requests.Response, watch: Watch, chunk_size: int, max_bytes: int | None = None,
                what: str = "the answer") -> Iterator[bytes]:
    """The body in chunks (decoded, as the caller will use it), each one counted as
    progress; a :class:`RemoteLimitError` once it passes ``max_bytes``."""
    cap = max_bytes if max_bytes is not None else watch.limits.max_bytes
    length = response.headers.get("Content-Length")
    if cap is not None and length and length.isdigit() and "Content-Encoding" not in response.headers and int(length) > cap:
        raise RemoteLimitError(f"{what} is {int(length)} bytes, more than the {cap} accepted")
    received = 0
    for chunk in response.iter_content(chunk_size):
        received += len(chunk)
        if cap is not None and received > cap:
            raise RemoteLimitError(f"{what} is larger than the {cap} bytes accepted (decompressed)")
        watch.progress()
        yield chunk


@dataclass(frozen=True)
class Answer:
    """A whole remote document: status, headers, body (within the caps)."""

    status_code: int
    headers: requests.structures.CaseInsensitiveDict
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def fetch(session: requests.Session, method: str, url: str, limits: NetLimits | None = None,
          what: str | None = None, **kwargs) -> Answer:
    """One request, its whole body read under ``limits`` (the settings' document limits by
    default): the way every document (search page, status, XML, JSON) is read. Network
    errors are the caller's to word."""
    limits = limits or config.DOCUMENT_LIMITS
    with watched(limits) as watch:
        with session.request(method, url, stream=True, timeout=(limits.connect_s, limits.stall_s), **kwargs) as response:
            body = b"".join(iter_capped(response, watch, 1 << 16, what=what or f"the answer from {urlsplit(url).netloc}"))
            return Answer(response.status_code, response.headers, body, response.url)


def watched_session(session_class: type[OriginBoundSession] = OriginBoundSession, **adapter_kwargs) -> OriginBoundSession:
    """A session of ``session_class`` whose http and https adapters are watched."""
    session = session_class()
    adapter = WatchedAdapter(**adapter_kwargs)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
