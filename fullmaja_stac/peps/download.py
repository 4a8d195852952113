"""Resumable, verified downloads.

Each file streams to ``NAME.part``; an interrupted transfer resumes with ``Range``; 429/5xx
and connection errors are retried with backoff (urllib3 for the response status, tenacity
for bodies cut mid-way); the result must have the announced length, look like a zip (an HTML
or JSON error page never lands), pass the zip's CRC check and, when known, the provider's
MD5; only then is it renamed to its final name.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from fullmaja_stac.errors import FullMajaError

CHUNK = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"


class TransientDownloadError(Exception):
    """Worth another try: connection cut, short body, error page."""


class DownloadError(FullMajaError):
    """The file could not be fetched intact; says which and why."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    md5: str
    resumed_from: int


def file_digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - md5 is what providers publish
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def _check_zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
        return f"corrupt member {bad}" if bad else None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        return f"not a valid zip ({exc})"


def _attempt(session: requests.Session, url: str, part: Path, headers: dict, on_bytes: Callable[[int, int | None], None]) -> int:
    """One GET; appends to ``part``. Returns the expected total size."""
    offset = part.stat().st_size if part.exists() else 0
    request_headers = dict(headers)
    if offset:
        request_headers["Range"] = f"bytes={offset}-"
    try:
        with session.get(url, headers=request_headers, stream=True, timeout=(10, 60)) as response:
            if response.status_code == 416 and offset:
                total = int(response.headers.get("Content-Range", "*/0").rsplit("/", 1)[-1] or 0)
                if total == offset:
                    return total
                part.unlink()
                raise TransientDownloadError("the server refused our resume offset; starting again")
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
                offset = 0  # the server ignored Range: start over
                part.write_bytes(b"")
            if response.status_code == 206:
                total = int(response.headers["Content-Range"].rsplit("/", 1)[-1])
            else:
                length = response.headers.get("Content-Length")
                total = int(length) if length is not None else None
            mode = "ab" if offset else "wb"
            first = offset == 0
            with open(part, mode) as fh:
                for chunk in response.iter_content(CHUNK):
                    if first:
                        if not chunk.startswith(ZIP_MAGIC[: len(chunk)]):
                            fh.truncate(0)
                            raise TransientDownloadError("the body is not a zip (an error page?)")
                        first = False
                    fh.write(chunk)
                    on_bytes(len(chunk), total)
    except requests.TooManyRedirects:
        raise DownloadError(f"{url}: redirect loop; the credentials or API key are probably wrong") from None
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientDownloadError(f"connection lost ({type(exc).__name__})") from None
    size = part.stat().st_size
    if total is None:
        return size
    if size < total:
        raise TransientDownloadError(f"short body: {size} of {total} bytes")
    if size > total:
        part.unlink()
        raise TransientDownloadError(f"{size} bytes for a {total}-byte file; starting again")
    return total


def download(session: requests.Session, url: str, target: Path, *, headers: dict | None = None,
             expected_md5: str | None = None, expected_size: int | None = None, attempts: int = 6,
             on_bytes: Callable[[int, int | None], None] = lambda n, total: None,
             wait_max: float = 30.0) -> Downloaded:
    """Fetch ``url`` to ``target`` (via ``target.part``), resuming and retrying; verify; rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    resumed_from = part.stat().st_size if part.exists() else 0
    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=0.2, max=wait_max),
                        retry=retry_if_exception_type(TransientDownloadError), reraise=True)
    try:
        for attempt in retrying:
            with attempt:
                _attempt(session, url, part, headers or {}, on_bytes)
                sha256, md5 = file_digests(part)
                if expected_md5 and md5 != expected_md5.lower():
                    part.unlink()
                    raise TransientDownloadError(f"MD5 {md5} differs from the published {expected_md5}")
                problem = _check_zip(part)
                if problem:
                    part.unlink()
                    raise TransientDownloadError(problem)
                size = part.stat().st_size
                if expected_size is not None and size != expected_size:
                    part.unlink()
                    raise TransientDownloadError(f"{size} bytes, the provider announced {expected_size}")
    except TransientDownloadError as exc:
        raise DownloadError(f"{url}: gave up after {attempts} attempts: {exc}") from None
    os.replace(part, target)
    return Downloaded(target, size, sha256, md5, resumed_from)
