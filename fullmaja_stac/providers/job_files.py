"""A finished job's files into a folder: each fetched, resumed and verified by
:mod:`fullmaja_stac.providers.download`, a file already complete skipped (by size and
checksum, whichever job fetched it), and a per-date report written beside them.

Below both providers (``orders`` for PEPS, ``geodes``) so that neither imports the other.
"""

from __future__ import annotations

import errno
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from fullmaja_stac.config import DOWNLOAD_CONCURRENCY
from fullmaja_stac.errors import FullMajaError, writable_folder
from fullmaja_stac.providers.base import Provider, RemoteFile
from fullmaja_stac.providers.download import DiskFullError, DownloadError, download, file_digests
from fullmaja_stac.providers.jobs import FileRecord, Job, JobStore, utcnow
from fullmaja_stac.providers.peps.wps import FINISHED
from fullmaja_stac.trust.paths import UnsafeNameError, shown, within

REPORT_PREFIX = "fullmaja-download-"
DATE_IN_NAME = re.compile(r"_(\d{8})-\d{6}")



class DownloadObserver(Protocol):
    def file_started(self, name: str, total: int | None) -> None: ...
    def file_progress(self, name: str, nbytes: int, total: int | None) -> None: ...
    def file_done(self, name: str, outcome: str) -> None: ...


class _Quiet:
    def file_started(self, name: str, total: int | None) -> None:
        pass

    def file_progress(self, name: str, nbytes: int, total: int | None) -> None:
        pass

    def file_done(self, name: str, outcome: str) -> None:
        pass


@dataclass
class DateReport:
    date: str | None
    name: str
    status: str  # downloaded, already there, too cloudy, offline, failed
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    error: str | None = None


@dataclass
class DownloadReport:
    job: int
    remote_id: str | None
    request: dict
    unprocessed: int
    dates: list[DateReport] = field(default_factory=list)
    report_path: Path | None = None
    disk_full: str | None = None  # the one line to show when the disk filled up

    @property
    def ok(self) -> bool:
        return all(d.status != "failed" for d in self.dates) and self.disk_full is None

    def count(self, status: str) -> int:
        return sum(1 for d in self.dates if d.status == status)


def _date_of(name: str) -> str | None:
    m = DATE_IN_NAME.search(name)
    return f"{m.group(1)[:4]}-{m.group(1)[4:6]}-{m.group(1)[6:]}" if m else None


def _still_complete(record: FileRecord, target: Path) -> bool:
    """Skip a file only if it is on disk with the size and checksum we recorded."""
    if not target.exists() or target.stat().st_size != record.size:
        return False
    sha256, md5 = file_digests(target)
    return (record.sha256 is not None and sha256 == record.sha256) or (record.md5 is not None and md5 == record.md5)


def download_job(store: JobStore, provider: Provider, job: Job, out: Path,
                 observer: DownloadObserver | None = None, concurrency: int = DOWNLOAD_CONCURRENCY) -> DownloadReport:
    """Fetch every file of a finished job into ``out``; write the per-date report there."""
    observer = observer or _Quiet()
    if job.state != FINISHED:
        raise FullMajaError(f"job {job.id} is {job.state}, not FINISHED; `fullmaja-stac status {job.id}` tells more")
    writable_folder(out, "the download folder")
    known = store.files(job.id)
    report = DownloadReport(job.id, job.remote_id, job.request, job.unprocessed)
    todo: list[tuple[RemoteFile, Path]] = []
    seen: set[str] = set()
    for remote in provider.files(job):
        try:  # the name comes from the service's answer: it becomes a path only if it is safe
            target = within(out, remote.name, what=f"the file name given for {shown(remote.url)}")
        except UnsafeNameError as exc:
            report.dates.append(DateReport(None, shown(remote.name), "failed", error=str(exc)))
            continue
        if remote.name in seen:  # listed twice: fetched once (two threads would share one .part)
            continue
        seen.add(remote.name)
        if remote.too_cloudy:
            report.dates.append(DateReport(_date_of(remote.name), remote.name, "too cloudy"))
            continue
        if not remote.online:
            report.dates.append(DateReport(_date_of(remote.name), remote.name, "offline",
                                           error="the provider keeps it offline (on tape); ask again later"))
            continue
        # a file complete on disk is not fetched again, whichever job of this store fetched it
        # (a demo run again, a job resubmitted): by size and checksum, not by name
        record = known.get(remote.name) or store.files_at(str(target.resolve())) or store.files_at(str(target))
        if record and (remote.size is None or remote.size == record.size) \
                and (remote.md5 is None or record.md5 in (None, remote.md5)) and _still_complete(record, target):
            if record.job_id != job.id:
                store.add_file(FileRecord(job.id, remote.name, remote.url, record.path, record.size, record.sha256,
                                          record.md5, utcnow()))
            report.dates.append(DateReport(_date_of(remote.name), remote.name, "already there", record.size,
                                           record.sha256, record.md5))
            observer.file_done(remote.name, "already there")
            continue
        todo.append((remote, target))

    def fetch(remote: RemoteFile, target: Path) -> DateReport:
        started = False

        def on_bytes(n: int, total: int | None) -> None:
            nonlocal started
            if not started:
                observer.file_started(remote.name, total)
                started = True
            observer.file_progress(remote.name, n, total)

        try:
            got = download(provider.session(), remote.url, target, expected_md5=remote.md5,
                           expected_size=remote.size, on_bytes=on_bytes)
        except DownloadError as exc:
            observer.file_done(remote.name, "failed")
            if isinstance(exc, DiskFullError):
                report.disk_full = report.disk_full or str(exc)
            return DateReport(_date_of(remote.name), remote.name, "failed", error=str(exc))
        store.add_file(FileRecord(job.id, remote.name, remote.url, str(got.path.resolve()), got.size, got.sha256, got.md5,
                                  utcnow()))
        observer.file_done(remote.name, "downloaded")
        return DateReport(_date_of(remote.name), remote.name, "downloaded", got.size, got.sha256, got.md5)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in as_completed([pool.submit(fetch, remote, target) for remote, target in todo]):
            report.dates.append(future.result())
    report.dates.sort(key=lambda d: (d.date or "", d.name))
    try:
        report.report_path = _write_report(out, job, report, provider.files(job))
    except OSError as exc:  # the report is small, but the disk may be full to the last byte
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise FullMajaError(f"cannot write the download report in {out} ({exc.strerror or exc})") from None
        report.disk_full = report.disk_full or f"no space left to write the report in {out} ({exc.strerror or exc})"
    if report.disk_full:
        complete = report.count("downloaded") + report.count("already there")
        report.disk_full = f"{report.disk_full}; {complete} products complete, free some space and run the same command again"
    return report


def _write_report(out: Path, job: Job, report: DownloadReport, files: list[RemoteFile]) -> Path:
    from fullmaja_stac.jsonio import write_json

    doc = {
        "provider": job.provider,
        "job_id": job.remote_id,
        "local_job": job.id,
        "request": job.request,
        "unprocessed": report.unprocessed,
        "dates": [asdict(d) for d in report.dates],
        "files": [{"name": f.name, "url": f.url, "remote_id": f.remote_id} for f in files if not f.too_cloudy],
    }
    remote_id = job.remote_id or str(job.id)
    stem = remote_id if remote_id.startswith(f"{job.provider}-") else f"{job.provider}-{remote_id}"
    path = within(out, f"{REPORT_PREFIX}{stem}.json", what="a job id")
    write_json(path, doc)
    return path
