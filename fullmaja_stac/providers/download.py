"""Resumable, verified downloads.

Each file streams to ``NAME.part``; an interrupted transfer resumes with ``Range``; 429/5xx
and connection errors are retried with backoff (urllib3 for the response status, tenacity
for bodies cut mid-way); the result must have the announced length, look like a zip (an HTML
or JSON error page never lands), and match the provider's MD5 when it publishes one, or else
pass the zip's own CRC check; only then is it renamed to its final name.
"""

from __future__ import annotations

import errno

import hashlib
import os
import queue
import re
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from fullmaja_stac.config import DOWNLOAD_LIMITS, NetLimits
from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.trust.remote import RemoteLimitError, iter_capped, watched

CHUNK = 1 << 20  # for reading files back
STREAM_CHUNK = 1 << 16  # for the network: on loopback this is as fast as curl
ZIP_MAGIC = b"PK\x03\x04"


class TransientDownloadError(Exception):
    """Worth another try: connection cut, short body, error page. ``restart``: the .part is
    useless, start from zero."""

    def __init__(self, message: str, restart: bool = False) -> None:
        super().__init__(message)
        self.restart = restart


class DownloadError(FullMajaError):
    """The file could not be fetched intact; says which and why."""


class DiskFullError(DownloadError):
    """No space left where the file is written: not worth a retry. The .part of that file is
    removed, so that what did complete can still be recorded; the next run fetches it again."""


def _write_failure(exc: OSError, part: Path) -> DownloadError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"no space left on the device of {part.parent} while writing {part.name.removesuffix('.part')}")
    return DownloadError(f"cannot write {part} ({exc.strerror or exc})")


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str | None  # computed when the provider publishes no MD5
    md5: str | None  # computed when it does
    resumed_from: int


class _StreamHasher:
    """Digests of what is written, each computed in its own thread beside the transfer
    (hashlib releases the GIL), so verifying costs no second pass over the file."""

    def __init__(self, existing: Path | None = None, algorithms: tuple[str, ...] = ("sha256", "md5")) -> None:
        self.hashes = {name: hashlib.new(name) for name in algorithms}
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._queues: list[queue.Queue] = []
        self._threads: list[threading.Thread] = []
        for h in self.hashes.values():
            q: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
            thread = threading.Thread(target=self._run, args=(h, q), daemon=True)
            thread.start()
            self._queues.append(q)
            self._threads.append(thread)
        if existing is not None and existing.exists():
            with open(existing, "rb") as fh:
                for chunk in iter(lambda: fh.read(CHUNK), b""):
                    self.feed(chunk)

    @staticmethod
    def _run(h, q: queue.Queue) -> None:
        while (chunk := q.get()) is not None:
            h.update(chunk)

    def feed(self, chunk: bytes) -> None:
        """Batch small network chunks into ~4 MiB blocks: fewer thread hand-offs."""
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= 4 * CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            block = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
            for q in self._queues:
                q.put(block)

    def digests(self) -> dict[str, str]:
        self._flush()
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join()
        return {name: h.hexdigest() for name, h in self.hashes.items()}


def file_digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - md5 is what providers publish
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def _check_zip_structure(path: Path) -> str | None:
    """The central directory reads and lists at least one member (no decompression)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return None if zf.infolist() else "an empty zip"
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"not a valid zip ({exc})"


def _check_zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
        return f"corrupt member {bad}" if bad else None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        return f"not a valid zip ({exc})"


def _attempt(session: requests.Session, url: str, part: Path, headers: dict,
             on_bytes: Callable[[int, int | None], None], hasher: _StreamHasher, limits: NetLimits,
             until: float, expected_size: int | None) -> int:
    """One GET, watched (:mod:`fullmaja_stac.trust.remote`: the download's deadline ``until``, its
    stall limit, at most the announced size); appends to ``part`` and feeds ``hasher`` (which
    already holds ``part``'s bytes). Returns the expected total size."""
    offset = part.stat().st_size if part.exists() else 0
    request_headers = {"Accept-Encoding": "identity", **headers}  # bytes as stored: ranges and digests agree
    if offset:
        request_headers["Range"] = f"bytes={offset}-"
    cap = max(0, (expected_size if expected_size is not None else limits.max_bytes or 0) - offset) or None
    try:
        with watched(limits, until) as watch, \
                session.get(url, headers=request_headers, stream=True, timeout=(limits.connect_s, limits.stall_s)) as response:
            if response.status_code == 416 and offset:
                total = int(response.headers.get("Content-Range", "*/0").rsplit("/", 1)[-1] or 0)
                if total == offset:
                    return total
                raise TransientDownloadError("the server refused our resume offset; starting again", restart=True)
            if response.status_code in (401, 403):
                raise DownloadError(f"{url}: access refused (HTTP {response.status_code}); check the credentials or key")
            if response.status_code == 404:
                raise DownloadError(f"{url}: not found (HTTP 404)")
            if response.status_code == 409:
                raise DownloadError(f"{url}: the product is offline (HTTP 409); ask for it again later")
            if response.status_code >= 400:
                raise TransientDownloadError(f"HTTP {response.status_code}")
            content_type = response.headers.get("Content-Type", "").lower()
            if content_type.startswith(("text/html", "application/json", "text/plain", "application/xml", "text/xml")):
                raise TransientDownloadError(f"the server sent {content_type.split(';')[0]} instead of a zip")
            if response.status_code == 200 and offset:
                raise TransientDownloadError("the server ignored our Range request; starting again", restart=True)
            if response.status_code == 206:
                m = re.fullmatch(r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", "").strip())
                if not m or int(m.group(1)) != offset:  # not the part we asked for: appending would corrupt
                    raise TransientDownloadError("the server resumed at another offset; starting again", restart=True)
                total = int(m.group(2))
            else:
                length = response.headers.get("Content-Length")
                total = int(length) if length is not None else None
            mode = "ab" if offset else "wb"
            first = offset == 0
            try:
                with open(part, mode) as fh:
                    for chunk in iter_capped(response, watch, STREAM_CHUNK, cap, what=f"{url}"):
                        if first:
                            if not chunk.startswith(ZIP_MAGIC[: len(chunk)]):
                                raise TransientDownloadError("the body is not a zip (an error page?)", restart=True)
                            first = False
                        fh.write(chunk)
                        hasher.feed(chunk)
                        on_bytes(len(chunk), total)
            except OSError as exc:  # a local write failed (full disk, quota, permissions): not transient
                if isinstance(exc, (requests.RequestException,)):
                    raise
                raise _write_failure(exc, part) from None
    except requests.TooManyRedirects:
        raise DownloadError(f"{url}: redirect loop; the credentials or API key are probably wrong") from None
    except RemoteLimitError as exc:
        if time.monotonic() < until and "nothing received" in str(exc):
            raise TransientDownloadError(str(exc)) from None  # stalled: another attempt resumes
        raise DownloadError(f"{url}: {exc}") from None
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientDownloadError(f"connection lost ({type(exc).__name__})") from None
    size = part.stat().st_size
    if total is None:
        return size
    if size < total:
        raise TransientDownloadError(f"short body: {size} of {total} bytes")
    if size > total:
        raise TransientDownloadError(f"{size} bytes for a {total}-byte file; starting again", restart=True)
    return total


def download(session: requests.Session, url: str, target: Path, *, headers: dict | None = None,
             expected_md5: str | None = None, expected_size: int | None = None, attempts: int = 6,
             on_bytes: Callable[[int, int | None], None] = lambda n, total: None,
             wait_max: float = 30.0, check_zip: bool | None = None, limits: NetLimits = DOWNLOAD_LIMITS) -> Downloaded:
    """Fetch ``url`` to ``target`` (via ``target.part``), resuming and retrying; verify; rename.

    Verification: the provider's MD5 when it publishes one, else the zip's own CRCs (every
    member decompressed: the only content check a PEPS download has); always the length.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    resumed_from = part.stat().st_size if part.exists() else 0
    check_zip = (expected_md5 is None) if check_zip is None else check_zip
    until = time.monotonic() + limits.total_s  # one deadline for every attempt
    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=0.2, max=wait_max),
                        retry=retry_if_exception_type(TransientDownloadError), reraise=True)
    try:
        for attempt in retrying:
            with attempt:
                # One digest is enough: the provider's MD5 when it publishes one, else sha256.
                hasher = _StreamHasher(part, ("md5",) if expected_md5 else ("sha256",))
                try:
                    _attempt(session, url, part, headers or {}, on_bytes, hasher, limits, until, expected_size)
                except TransientDownloadError as exc:
                    hasher.digests()
                    if exc.restart:
                        part.unlink(missing_ok=True)
                    raise
                except BaseException:
                    hasher.digests()
                    raise
                digests = hasher.digests()
                sha256, md5 = digests.get("sha256"), digests.get("md5")
                if expected_md5 and md5 != expected_md5.lower():
                    part.unlink()
                    raise TransientDownloadError(f"MD5 {md5} differs from the published {expected_md5}")
                problem = _check_zip(part) if check_zip else _check_zip_structure(part)
                if problem:
                    part.unlink()
                    raise TransientDownloadError(problem)
                size = part.stat().st_size
                if expected_size is not None and size != expected_size:
                    part.unlink()
                    raise TransientDownloadError(f"{size} bytes, the provider announced {expected_size}")
    except TransientDownloadError as exc:
        raise DownloadError(f"{url}: gave up after {attempts} attempts: {exc}") from None
    except DiskFullError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return Downloaded(target, size, sha256, md5, resumed_from)
