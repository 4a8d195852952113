"""The demo, against the embedded PEPS emulator: request → status → download with the same
library functions as the public commands (only the server is local and its clock runs
fast), then ingest and validation as ``ingest`` and ``validate`` do. The CLI only prints.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Callable

from fullmaja_stac.providers.jobs import Job, JobStore
from fullmaja_stac.providers.job_files import DownloadObserver, DownloadReport, download_job
from fullmaja_stac.providers.orders import refresh, submit
from fullmaja_stac.providers.peps.auth import Credentials
from fullmaja_stac.providers.peps.client import PepsClient
from fullmaja_stac.emulator.server import DEMO_USER, PepsEmulator
from fullmaja_stac.providers.peps.wps import TERMINAL, make_request
from fullmaja_stac.providers.base import PepsProvider

DEMO_SPEED = 20_000.0  # emulated seconds per real second: a 3-month job takes ~2 s


def order_and_download(
    tile: str, orbit: int, start: date, end: date, size: int, products: Path, state_dir: Path,
    on_status: Callable[[JobStore, Job], None] = lambda store, job: None,
    download_observer: DownloadObserver | None = None,
    poll_s: float = 0.5,
) -> tuple[Job, DownloadReport, dict[str, float]]:
    """Request → follow → download, against an emulator started (and stopped) here."""
    request = make_request(tile, orbit, start, end)
    store = JobStore(state_dir)
    credentials = Credentials(*DEMO_USER, source="emulator demo user")
    timings: dict[str, float] = {}
    with PepsEmulator(speed=DEMO_SPEED, size=size) as emu:
        client = PepsClient(emu.url, credentials)
        t0 = time.perf_counter()
        job = submit(store, client, request)
        while True:
            job = refresh(store, client, job)
            on_status(store, job)
            if job.state in TERMINAL:
                break
            time.sleep(poll_s)
        timings["processing"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        downloaded = download_job(store, PepsProvider(credentials, job.base_url), job, products, download_observer)
        timings["download"] = time.perf_counter() - t0
    return job, downloaded, timings


def ingest_and_validate(products: Path, catalog: Path, workers: int | None = None, observer=None):
    """The demo's second half: ingest what was downloaded, validate the catalog; returns the
    ingest report, the validation result and the timings."""
    from fullmaja_stac.ingest.run import ingest
    from fullmaja_stac.stac.validate import validate_catalog

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    report = ingest([products], catalog, workers=workers, observer=observer)
    timings["ingest"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    validation = validate_catalog(catalog)
    timings["validate"] = time.perf_counter() - t0
    return report, validation, timings

