"""Jobs end to end: submit, adopt old log files, refresh, judge health, resubmit, download.

Library functions used by the CLI and the demo alike; nothing here prints.
"""

from __future__ import annotations

import errno
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from fullmaja_stac.config import DOWNLOAD_CONCURRENCY, FIRST_PRODUCT_S, PER_DATE_S
from fullmaja_stac.errors import FullMajaError, without_userinfo, writable_folder
from fullmaja_stac.jobs import FileRecord, Job, JobStore, utcnow
from fullmaja_stac.maja.orbits import passes
from fullmaja_stac.peps.client import PepsClient
from fullmaja_stac.peps.download import DiskFullError, DownloadError, download, file_digests
from fullmaja_stac.peps.wps import (
    ACCEPTED, CANCELED, ERROR, FINISHED, PENDING, TERMINAL, MajaRequest, PepsError, parse_execute_response,
)
from fullmaja_stac.providers import Provider, RemoteFile, is_too_cloudy
from fullmaja_stac.safepaths import UnsafeNameError, shown, within
from fullmaja_stac.tiles import tile_grid

PROVIDER = "peps"
REPORT_PREFIX = "fullmaja-download-"
DATE_IN_NAME = re.compile(r"_(\d{8})-\d{6}")
STALL_FACTOR = 3  # no progress for 3 dates' worth of time: stalled
LATE_MARGIN = timedelta(hours=6)
LONG_QUEUE = timedelta(days=2)


# -------------------------------------------------------------------------------- submit


def submit(store: JobStore, client: PepsClient, request: MajaRequest, log_file: Path | None = None,
           resubmitted_from: int | None = None) -> Job:
    answer, raw = client.submit(request)
    if log_file is not None:
        log_file.write_bytes(raw)  # verbatim, as full_maja_process.py -g/-l writes it
    return store.add_job(PROVIDER, without_userinfo(client.base_url), answer.job_id, answer.status_location, request.as_dict(), ACCEPTED,
                         resubmitted_from=resubmitted_from, log_file=str(log_file) if log_file else None)


def import_log(store: JobStore, path: Path) -> Job:
    """Adopt a job started with full_maja_process.py from the log file it saved."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FullMajaError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        answer = parse_execute_response(data, str(path))
    except PepsError as exc:
        raise FullMajaError(f"{path}: not a FULL_MAJA log file ({exc})") from None
    if not answer.status_location or not answer.job_id:
        raise FullMajaError(f"{path}: no statusLocation with a pywps-<id>.xml job id in this log file")
    parts = urlparse(answer.status_location)
    base_url = without_userinfo(f"{parts.scheme}://{parts.netloc}")
    return store.add_job(PROVIDER, base_url, answer.job_id, answer.status_location, None, ACCEPTED, log_file=str(path))


def resubmit(store: JobStore, client: PepsClient, job: Job) -> Job:
    if not (job.tile and job.start_date and job.end_date):
        raise FullMajaError(f"job {job.id} was imported from a log file without its parameters; use `fullmaja-stac request`")
    request = MajaRequest(job.tile, job.orbit, date.fromisoformat(job.start_date), date.fromisoformat(job.end_date))
    return submit(store, client, request, resubmitted_from=job.id)


# -------------------------------------------------------------------------------- status


def refresh(store: JobStore, client: PepsClient, job: Job) -> Job:
    if job.state in TERMINAL and job.checked_at:
        return job  # finished, failed or canceled: nothing will change on the server
    if not job.status_url or not job.remote_id:
        raise FullMajaError(f"job {job.id} has no status URL")
    status, json_url = client.refresh(job.status_url, job.remote_id, job.json_url)
    return store.record_status(job.id, status.state, status.progress, status.message, status.logs, status.results,
                               status.unprocessed, json_url)


def expected_dates(job: Job) -> int | None:
    if not (job.tile and job.orbit and job.start_date and job.end_date):
        return None
    latitude = tile_grid(job.tile).center_lonlat()[1]
    return len(passes(job.orbit, date.fromisoformat(job.start_date), date.fromisoformat(job.end_date), latitude))


@dataclass
class Health:
    flag: str  # queued, waiting-long, running, stalled, finished, failed, submitted
    expected_end: datetime | None
    since_progress: timedelta | None
    advice: str = ""


def health(job: Job, now: datetime | None = None) -> Health:
    """Is the job alive? Judged against PEPS's timing: ≈ 1 h, then ≈ 25 min per date."""
    now = now or utcnow()
    dates = expected_dates(job)
    duration = timedelta(seconds=FIRST_PRODUCT_S + PER_DATE_S * max(0, (dates or 1) - 1))
    expected_end = (job.started_at + duration) if job.started_at else None
    since = now - job.progress_changed_at if job.progress_changed_at else None
    if job.state == FINISHED:
        return Health("finished", expected_end, since, f"`fullmaja-stac download {job.id} --out DIR` fetches the products")
    if job.state in (ERROR, CANCELED):
        logs = f"; server log: {job.logs[0]}" if job.logs else ""
        return Health("failed", expected_end, since, f"{job.state}: {job.message or 'no message'}{logs}")
    if job.state in (PENDING, ACCEPTED):
        age = now - job.submitted_at
        if age > LONG_QUEUE:
            return Health("waiting-long", None, since, f"queued for {human_duration(age)}: PEPS runs at most 10 FULL_MAJA jobs "
                          f"for all users; keep waiting, or `fullmaja-stac resubmit {job.id}` if it never starts")
        return Health("queued" if job.state == PENDING else "submitted", None, since)
    stall_limit = timedelta(seconds=STALL_FACTOR * PER_DATE_S)
    if since is not None and since > stall_limit:
        return Health("stalled", expected_end, since,
                      f"progress has not moved for {human_duration(since)} (a date takes ~25 min): the job is probably dead; "
                      f"`fullmaja-stac resubmit {job.id}` sends it again, `fullmaja-stac forget {job.id}` drops it")
    if expected_end is not None and now > expected_end + max(LATE_MARGIN, duration):
        return Health("stalled", expected_end, since,
                      f"running {human_duration(now - expected_end)} past its expected end: "
                      f"`fullmaja-stac resubmit {job.id}` sends it again")
    return Health("running", expected_end, since)


def human_duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d}"
    return f"{hours // 24} days"


# ------------------------------------------------------------------------------ download


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


def provider_for(job: Job, password_file: Path | None = None):
    """The provider that serves a job's files, with its credentials (PEPS credentials or the
    GEODES API key, found as the commands find them)."""
    if job.provider == "geodes":
        from fullmaja_stac.geodes import GeodesProvider, require_api_key

        return GeodesProvider(job.base_url, require_api_key(job.base_url))
    from fullmaja_stac.peps.auth import require_credentials
    from fullmaja_stac.providers import PepsProvider

    return PepsProvider(require_credentials(job.base_url, password_file), job.base_url)


def jobs_to_download(store: JobStore, refs: list[str] | None) -> list[Job]:
    """The jobs named (numbers or provider ids), or every finished one."""
    selected = [store.get(ref) for ref in refs] if refs else [j for j in store.all() if j.state == FINISHED]
    if not selected:
        raise FullMajaError("no finished job to download; `fullmaja-stac status` shows where they are")
    return selected


def refresh_jobs(store: JobStore, jobs: list[Job], client_for) -> tuple[list[Job], list[str]]:
    """One refresh of every PEPS job still running (GEODES fetches are finished when
    recorded, ended jobs do not change): the jobs as they are now, and one error line per
    job that could not be refreshed. ``client_for(base_url)`` gives the PEPS client."""
    current, errors = list(jobs), []
    for i, job in enumerate(current):
        if job.provider != PROVIDER or job.state in TERMINAL:
            continue
        try:
            current[i] = refresh(store, client_for(job.base_url), job)
        except PepsError as exc:
            errors.append(f"job {job.id}: {exc}")
    return current, errors


def too_cloudy_count(job: Job) -> int:
    """Dates PEPS did not produce, too cloudy (a result named ``…NOVALD…``)."""
    return sum(1 for url in job.results if is_too_cloudy(url))

