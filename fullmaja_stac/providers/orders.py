"""Jobs end to end: submit, adopt old log files, refresh, judge health, resubmit, download.

Library functions used by the CLI and the demo alike; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

from fullmaja_stac.config import FIRST_PRODUCT_S, PER_DATE_S
from fullmaja_stac.errors import FullMajaError, without_userinfo
from fullmaja_stac.maja.orbits import passes
from fullmaja_stac.providers.base import is_too_cloudy
from fullmaja_stac.providers.jobs import Job, JobStore, utcnow
from fullmaja_stac.providers.peps.client import PepsClient
from fullmaja_stac.providers.peps.wps import (
    ACCEPTED, CANCELED, ERROR, FINISHED, PENDING, TERMINAL, MajaRequest, PepsError, parse_execute_response,
)
from fullmaja_stac.tiles import tile_grid

PROVIDER = "peps"
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


def provider_for(job: Job, password_file: Path | None = None):
    """The provider that serves a job's files, with its credentials (PEPS credentials or the
    GEODES API key, found as the commands find them)."""
    if job.provider == "geodes":
        from fullmaja_stac.providers.geodes import GeodesProvider, require_api_key

        return GeodesProvider(job.base_url, require_api_key(job.base_url))
    from fullmaja_stac.providers.peps.auth import require_credentials
    from fullmaja_stac.providers.base import PepsProvider

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

