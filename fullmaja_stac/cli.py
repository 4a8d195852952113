"""The ``fullmaja-stac`` command line: parses arguments, calls library functions, prints.

No pipeline logic lives here; every command is a thin wrapper over a function that is usable
from Python too.
"""

from __future__ import annotations

import json

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape as esc  # text from files and servers is never read as Rich markup

from fullmaja_stac.errors import FullMajaError

console = Console()
err_console = Console(stderr=True)
DATE_FORMATS = ["%Y-%m-%d"]


class _App(typer.Typer):
    """Typer app that turns user-facing errors into one red line and exit code 1."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except FullMajaError as exc:
            err_console.print(f"[bold red]error:[/] {esc(str(exc))}", highlight=False, soft_wrap=True)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise SystemExit(130) from None


app = _App(
    help="Order MAJA Sentinel-2 L2A time series (PEPS FULL_MAJA or its local emulator), "
    "download them, and turn them into Cloud-Optimized GeoTIFFs in a static STAC catalog.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help is plain text: "[api]" stays as written, flags show no <bool>
)


@app.command()
def synth(
    tile: str = typer.Option("31TCJ", help="Sentinel-2 tile, e.g. 31TCJ or T31TCJ."),
    orbit: int = typer.Option(51, min=1, max=143, help="Relative orbit (1–143)."),
    start: datetime = typer.Option(..., formats=DATE_FORMATS, help="First day (YYYY-MM-DD)."),
    end: datetime = typer.Option(..., formats=DATE_FORMATS, help="Last day (YYYY-MM-DD)."),
    out: Path = typer.Option(Path("products"), help="Folder to write the products into."),
    size: int = typer.Option(120, help="R1 pixels (10 m) per side, a multiple of 6; 10980 covers the whole tile."),
    folders: bool = typer.Option(False, "--folders", help="Write folders instead of zips."),
    seed: int = typer.Option(0, help="Random seed: the same seed writes the same bytes."),
) -> None:
    """Write synthetic MAJA L2A products (MUSCATE format) for a tile, orbit and period.

    The products sit on the real grid of the tile, with realistic pixels, masks and metadata;
    about one date in seven is too cloudy (L2NOTV) and one in ten is a split product.
    """
    from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_series
    from fullmaja_stac.progress import make_progress

    if end < start:
        raise FullMajaError(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}")
    options = SynthOptions(size=size, zipped=not folders, seed=seed)
    specs = plan_series(tile, orbit, start.date(), end.date(), seed=seed)
    if not specs:
        raise FullMajaError(f"no Sentinel-2 pass on orbit {orbit} between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
    with make_progress(console) as progress:
        task = progress.add_task(f"writing {len(specs)} products", total=len(specs))
        paths = write_series(specs, out, options, progress=lambda: progress.advance(task))
    for path in paths:
        console.print(f"  {path}", highlight=False)
    console.print(f"[green]{len(paths)} products written to {out}[/]")


@app.command()
def info(product: Path = typer.Argument(..., help="A MAJA product: zip, folder or its MTD_ALL.xml.")) -> None:
    """Read one MAJA product and print what fullmaja-stac understands of it."""
    from fullmaja_stac.maja import read_product

    p = read_product(product)
    say = lambda text: console.print(text, soft_wrap=True)  # noqa: E731 - piped to a file, lines are not cut at 80
    say(f"[bold]{esc(p.id)}[/]")
    say(f"  platform {esc(p.platform)}, tile {esc(p.tile)}, orbit {p.relative_orbit} (absolute {p.absolute_orbit})")
    say(f"  acquired {p.acquired.isoformat()}, MAJA version {p.maja_version or 'not recorded'}, valid {p.valid}")
    say(f"  cloud {p.cloud_percent} %, snow {p.snow_percent} %, EPSG:{p.epsg}")
    for group, grid in p.grids.items():
        say(f"  {group}: {grid.ncols}x{grid.nrows} px of {grid.resolution:g} m from ({grid.ulx:.10g}, {grid.uly:.10g})")
    kinds: dict[str, int] = {}
    for r in p.rasters:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    say("  rasters: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))


@app.command()
def ingest(
    inputs: list[Path] = typer.Argument(..., help="MAJA products (zips or folders) or folders holding them."),
    catalog: Path = typer.Option(Path("catalog"), "--catalog", "-c", help="Catalog folder to create or update."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Parallel processes (default: all cores)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Run the COG work on dask: 'local' for a "
                                            "LocalCluster, or a scheduler address tcp://HOST:8786 (workers must see "
                                            "the same paths)."),
) -> None:
    """Convert MAJA products to COGs and add them to a static STAC catalog.

    Products already in the catalog are skipped without raster work; a newer version of a
    product replaces the older one. A product that fails is reported at the end and the
    exit code is 1; the others still land.
    """
    if not _ingest_with_progress(inputs, catalog, workers, scheduler).ok:
        raise typer.Exit(1)


def _ingest_with_progress(inputs: list[Path], catalog: Path, workers: Optional[int] = None,
                          scheduler: Optional[str] = None):
    """Ingest with the progress display and the final report (ingest, download/fetch --ingest, demo)."""
    _start_workers_early(workers, scheduler)
    from fullmaja_stac.ingest.run import ingest as run_ingest
    from fullmaja_stac.progress import RichIngestObserver, make_progress

    with make_progress(console) as progress:
        report = run_ingest(inputs, catalog, workers=workers, observer=RichIngestObserver(progress), scheduler=scheduler)
    _print_ingest_report(report, catalog)
    return report


def _start_workers_early(workers: Optional[int], scheduler: Optional[str] = None) -> None:
    """Start the ingest's forkserver before this process imports the ingest: the server's own
    import of rasterio and rio-cogeo (0.4 s) then runs beside ours instead of before the
    first task (a 1098 px product on 2 cores: 2.67 s instead of 2.82 s, medians of five
    runs). Its workers find this module loaded: each imports the ``fullmaja-stac`` script,
    which imports it. Nothing when the ingest will run inline (one worker) or on dask."""
    from fullmaja_stac.lifeline import ingest_workers, worker_context

    if scheduler is None and ingest_workers(workers) > 1:
        worker_context(also_preload=(__name__,))


def _print_ingest_report(report, catalog: Path) -> None:
    console.print(
        f"[bold]{catalog}[/]: {len(report.added)} added, {len(report.replaced)} replaced, "
        f"{len(report.unchanged)} already there, {len(report.superseded)} older than the catalog's, "
        + (f"{len(report.empty)} with no valid pixel, " if report.empty else "")
        + f"{len(report.failed)} failed"
    )
    for source, reason in report.empty:
        console.print(f"  [yellow]skipped[/] {esc(source)}: {esc(reason)}", highlight=False, soft_wrap=True)
    for new, old in report.replaced:
        console.print(f"  replaced {esc(old)} by {esc(new)}", highlight=False)
    for given, newer in report.superseded:
        console.print(f"  [yellow]skipped[/] {esc(given)}: {esc(newer)} is newer", highlight=False)
    for source, reason in report.failed:
        err_console.print(f"  [red]failed[/] {esc(source)}: {esc(reason)}", highlight=False, soft_wrap=True)


@app.command()
def export(
    catalog: Path = typer.Argument(Path("catalog"), help="Catalog folder."),
    target: Path = typer.Argument(Path("items.parquet"), help="stac-geoparquet file to write."),
) -> None:
    """Export every item to stac-geoparquet (DuckDB, GeoPandas, stac-geoparquet, rustac read it)."""
    from fullmaja_stac.publish.export import export_geoparquet

    count = export_geoparquet(catalog, target)
    console.print(f"{count} items written to {target}")


publish_app = typer.Typer(help="Publish the catalog into a shared STAC backend.", no_args_is_help=True)
app.add_typer(publish_app, name="publish")


@publish_app.command("pgstac")
def publish_pgstac_command(
    catalog: Path = typer.Argument(Path("catalog"), help="Catalog folder."),
    dsn: str = typer.Option(..., envvar="FULLMAJA_STAC_PGSTAC_DSN",
                            help="PostgreSQL connection string, e.g. postgresql://user:pass@host:5432/db."),
    base_url: Optional[str] = typer.Option(None, help="URL where the catalog folder is published (web server, "
                                           "bucket); asset hrefs become URLs under it instead of local paths."),
    migrate: bool = typer.Option(True, "--migrate/--no-migrate", help="Create or upgrade the pgstac schema first."),
    full: bool = typer.Option(False, "--full", help="Reload every item and delete whatever else the collection holds, "
                              "instead of only the tile-years changed since the last publish."),
) -> None:
    """Load the collection and its items into pgstac (idempotent: re-running mirrors the catalog).

    Only the tile-years changed since the last publish into that database are sent. Serve the
    database with stac-fastapi-pgstac for a multi-user STAC API.
    """
    from fullmaja_stac.publish.pgstac import masked_dsn, publish_pgstac

    from fullmaja_stac.progress import Counter

    with Counter(console, f"items to {masked_dsn(dsn)}") as progress:
        report = publish_pgstac(catalog, dsn, base_url=base_url, migrate=migrate, full=full, progress=progress)
    parts = f"{report.skipped_parts} tile-year{'s' if report.skipped_parts > 1 else ''}"
    how = "full load" if report.full else f"{parts} already up to date"
    console.print(f"[green]{report.items} items[/] of {report.collection} in pgstac {report.pgstac_version} at "
                  f"{masked_dsn(dsn)}: {report.loaded} sent ({how})", highlight=False, soft_wrap=True)
    if report.removed:
        console.print(f"removed {len(report.removed)} items no longer in the catalog: {', '.join(report.removed)}")


@app.command()
def validate(
    catalog: Path = typer.Argument(Path("catalog"), help="Catalog folder or its catalog.json."),
    online: bool = typer.Option(False, "--online", help="Fetch schemas from the web instead of the bundled mirror."),
    schema_map: Optional[Path] = typer.Option(None, help="A schema-map.json (URL → local file) to use instead."),
) -> None:
    """Validate every STAC object of a catalog (recursively) against its JSON schemas."""
    from fullmaja_stac.stac.validate import BUNDLED_SCHEMA_MAP, validate_catalog

    result = validate_catalog(catalog, schema_map or BUNDLED_SCHEMA_MAP, online=online)
    counts = ", ".join(f"{n} {kind.lower()}s" for kind, n in sorted(result.by_type.items()))
    if result.ok:
        console.print(f"[green]valid[/]: {result.checked} objects ({counts})")
        return
    for path, error in result.invalid:
        err_console.print(f"[red]invalid[/] {esc(path)}: {esc(error)}", highlight=False, soft_wrap=True)
    err_console.print(f"{len(result.invalid)} of {result.checked} objects invalid")
    raise typer.Exit(1)


@app.command()
def repair(catalog: Path = typer.Argument(Path("catalog"), help="Catalog folder.")) -> None:
    """Rebuild every file of a catalog that is not an item or a COG (indexes, summaries, year
    and tile catalogs, the collection, the root) from the item files; name damaged items."""
    from fullmaja_stac.stac.catalog import repair_catalog

    damaged = repair_catalog(catalog)
    for path in damaged:
        err_console.print(f"[yellow]damaged item[/] {esc(path)}: left out; ingest its product again", highlight=False,
                          soft_wrap=True)
    console.print(f"repaired {esc(str(catalog))}" + (f"; {len(damaged)} damaged items left out" if damaged else ""))


# ----------------------------------------------------------------------------- PEPS jobs

StateDir = typer.Option(None, "--state-dir", envvar="FULLMAJA_STAC_STATE_DIR",
                        help="Where the job store lives (default: the user state folder).")
ServeStateDir = typer.Option(None, "--state-dir", envvar="FULLMAJA_STAC_STATE_DIR",
                             help="Where the STAC Browser build and the search index live (default: the user state folder).")
PepsUrl = typer.Option(None, "--peps-url", envvar="FULLMAJA_STAC_PEPS_URL",
                       help="PEPS base URL (default https://peps.cnes.fr; the emulator prints its own).")
AuthFile = typer.Option(None, "--auth", "-a", envvar="FULLMAJA_STAC_PEPS_AUTH",
                        help="Password file: 'email password' on its first line, as full_maja_process.py -a.")
Insecure = typer.Option(False, "--insecure", help="Do not check the TLS certificate of this PEPS endpoint (only "
                        "that host; a warning says so). For a server whose certificate is known to be broken.")


def _store(state_dir: Optional[Path]):
    from fullmaja_stac.config import state_dir as resolve
    from fullmaja_stac.providers.jobs import JobStore

    return JobStore(resolve(state_dir))


def _client(base_url: str, auth: Optional[Path], insecure: bool = False):
    from fullmaja_stac.config import allow_insecure
    from fullmaja_stac.providers.peps.auth import require_credentials
    from fullmaja_stac.providers.peps.client import PepsClient

    if insecure:
        allow_insecure(base_url)
    return PepsClient(base_url, require_credentials(base_url, auth))


@app.command()
def request(
    tile: str = typer.Option(..., help="Sentinel-2 tile, e.g. 36TWQ (a leading T is accepted)."),
    orbit: Optional[int] = typer.Option(None, help="Relative orbit 1–143 (recommended: one orbit per job)."),
    start: datetime = typer.Option(..., formats=DATE_FORMATS, help="First day, after 2016-04-01."),
    end: datetime = typer.Option(..., formats=DATE_FORMATS, help="Last day: 2 to 12 months after --start."),
    log: Optional[Path] = typer.Option(None, "--log", help="Also save PEPS's answer verbatim, like the reference -g/-l."),
    peps_url: Optional[str] = PepsUrl,
    auth: Optional[Path] = AuthFile,
    insecure: bool = Insecure,
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Order a FULL_MAJA time series on PEPS and remember the job."""
    from fullmaja_stac.config import peps_url as resolve_url
    from fullmaja_stac.providers.orders import submit
    from fullmaja_stac.providers.peps.wps import make_request

    maja_request = make_request(tile, orbit, start.date(), end.date())
    job = submit(_store(state_dir), _client(resolve_url(peps_url), auth, insecure), maja_request, log)
    console.print(f"job [bold]{job.id}[/] submitted (PEPS id {job.remote_id}); follow it with `fullmaja-stac status {job.id}`")


@app.command("import-log")
def import_log(
    files: list[Path] = typer.Argument(..., help="Log files saved by full_maja_process.py (-g/-l)."),
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Adopt jobs started with the old full_maja_process.py script, from its log files."""
    from fullmaja_stac.providers.orders import import_log as adopt

    store = _store(state_dir)
    for path in files:
        job = adopt(store, path)
        console.print(f"{path}: job [bold]{job.id}[/] (PEPS id {job.remote_id})")


def _status_table(store, jobs):
    from rich import box
    from rich.table import Table

    from fullmaja_stac.providers.jobs import utcnow
    from fullmaja_stac.providers.orders import health, human_duration, too_cloudy_count

    table = Table(title="jobs (PEPS FULL_MAJA orders, GEODES fetches)", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for column in ("job / provider id", "request", "state", "timing", "products"):
        table.add_column(column, overflow="fold")
    notes = []
    now = utcnow()
    for job in jobs:
        h = health(job, now)
        colour = {"finished": "green", "failed": "red", "stalled": "bold red", "waiting-long": "yellow"}.get(h.flag, "")
        state = f"[{colour}]{h.flag}[/]" if colour else h.flag
        if job.progress is not None and h.flag != "finished":
            state += f"\n{job.progress:g} %"
        timing = [f"age {human_duration(now - job.submitted_at)}"]
        if h.flag in ("running", "stalled"):
            if h.since_progress:
                timing.append(f"no move {human_duration(h.since_progress)}")
            if h.expected_end:
                timing.append(f"end ~{h.expected_end:%m-%d %H:%M}")
        products = ""
        if job.results or job.unprocessed:
            cloudy = too_cloudy_count(job)
            products = f"{len(job.results) - cloudy} ready\n{cloudy} too cloudy\n{job.unprocessed} unprocessed"
        table.add_row(
            f"{job.id}" + (f" (after {job.resubmitted_from})" if job.resubmitted_from else "")
            + f"\n{job.provider} {job.remote_id or ''}",
            f"{job.tile or '?'} orbit {job.orbit or '?'}\n{job.start_date or '?'} → {job.end_date or '?'}",
            state, "\n".join(timing), products,
        )
        if h.advice and h.flag != "finished":
            notes.append(f"job {job.id}: {h.advice}")
    return table, notes


@app.command()
def status(
    jobs: Optional[list[str]] = typer.Argument(None, help="Job numbers or PEPS ids (default: all)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Keep refreshing until every job is done."),
    interval: float = typer.Option(60.0, help="Seconds between refreshes with --watch."),
    auth: Optional[Path] = AuthFile,
    insecure: bool = Insecure,
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Refresh jobs from PEPS and show them: state, progress, age, stalls, products."""
    import time

    from fullmaja_stac.providers.orders import refresh_jobs
    from fullmaja_stac.providers.peps.wps import TERMINAL

    store = _store(state_dir)
    selected = [store.get(ref) for ref in jobs] if jobs else store.all()
    if not selected:
        console.print("no jobs yet: `fullmaja-stac request --help` orders one")
        return
    clients: dict = {}

    def client_for(base_url: str):
        return clients.get(base_url) or clients.setdefault(base_url, _client(base_url, auth, insecure))

    while True:
        selected, errors = refresh_jobs(store, selected, client_for)
        table, notes = _status_table(store, selected)
        console.print(table)
        for note in notes:
            console.print(f"  {esc(note)}", highlight=False, soft_wrap=True)
        for error in errors:
            err_console.print(f"  [red]{esc(error)}[/]", highlight=False, soft_wrap=True)
        if not watch or all(j.state in TERMINAL for j in selected):
            break
        time.sleep(interval)
    if errors:
        raise typer.Exit(1)  # a job could not be refreshed (a wrong password, PEPS down): not a success


@app.command()
def resubmit(
    job: str = typer.Argument(..., help="Job number or PEPS id."),
    auth: Optional[Path] = AuthFile,
    insecure: bool = Insecure,
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Send a job's request again (for a stalled or failed job) and link the two."""
    from fullmaja_stac.providers.orders import resubmit as again

    store = _store(state_dir)
    old = store.get(job)
    new = again(store, _client(old.base_url, auth, insecure), old)
    console.print(f"job {old.id} resubmitted as job [bold]{new.id}[/] (PEPS id {new.remote_id})")


@app.command()
def forget(
    job: str = typer.Argument(..., help="Job number or PEPS id."),
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Drop a job from the local store (nothing is sent to PEPS)."""
    store = _store(state_dir)
    old = store.get(job)
    store.forget(old.id)
    console.print(f"job {old.id} forgotten")


@app.command()
def download(
    jobs: Optional[list[str]] = typer.Argument(None, help="Job numbers or PEPS ids (default: every finished job)."),
    out: Path = typer.Option(Path("products"), "--out", "-o", help="Folder for the products and the report."),
    then_ingest: bool = typer.Option(False, "--ingest", help="Ingest what arrived into --catalog."),
    catalog: Path = typer.Option(Path("catalog"), "--catalog", "-c", help="Catalog for --ingest."),
    auth: Optional[Path] = AuthFile,
    insecure: bool = Insecure,
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Download the products of finished jobs: resumable, verified, a few at a time.

    Writes a per-date report (downloaded, too cloudy, unprocessed) as JSON next to the products.
    """
    from fullmaja_stac.providers.job_files import download_job
    from fullmaja_stac.providers.orders import jobs_to_download, provider_for, refresh
    from fullmaja_stac.providers.peps.wps import FINISHED
    from fullmaja_stac.progress import RichDownloadObserver, make_progress

    store = _store(state_dir)
    selected = jobs_to_download(store, jobs)
    failed = False
    for job in selected:
        if job.provider == "peps" and insecure:
            from fullmaja_stac.config import allow_insecure

            allow_insecure(job.base_url)
        if job.state != FINISHED and job.provider == "peps":
            job = refresh(store, _client(job.base_url, auth), job)
        with make_progress(console, bytes_=True) as progress:
            report = download_job(store, provider_for(job, auth), job, out, RichDownloadObserver(progress))
        _print_download_report(report)
        failed = failed or not report.ok
    if then_ingest and not _ingest_with_progress([out], catalog).ok:
        failed = True
    if failed:
        raise typer.Exit(1)


def _print_download_report(report) -> None:
    console.print(f"job {report.job} ({report.remote_id}): {report.count('downloaded')} downloaded, "
                  f"{report.count('already there')} already there, {report.count('too cloudy')} too cloudy (NOVALD), "
                  f"{report.count('offline')} offline, {report.unprocessed} L1C not processed (e.g. split products; PEPS gives their number, not their dates), "
                  f"{report.count('failed')} failed")
    for d in report.dates:
        colour = {"downloaded": "green", "already there": "dim", "too cloudy": "yellow", "offline": "yellow",
                  "failed": "red"}[d.status]
        console.print(f"  {d.date}  [{colour}]{d.status:>13}[/]  {esc(d.name)}" + (f"  {esc(d.error)}" if d.error else ""),
                      highlight=False, soft_wrap=True)
    if report.report_path:
        console.print(f"  report: {report.report_path}")
    if report.disk_full:
        err_console.print(esc(report.disk_full), highlight=False, soft_wrap=True)


@app.command()
def emulator(
    port: int = typer.Option(8642, help="Port on 127.0.0.1 (0 picks a free one)."),
    speed: float = typer.Option(3600.0, help="Emulated seconds per real second (3600: an hour a second)."),
    size: int = typer.Option(120, help="R1 pixels of the products it serves."),
    fault: Optional[list[str]] = typer.Option(None, help="Fault mode to switch on (repeat): "
                                              "stuck, error, canceled, auth, submit500, drop, truncate, 429, 500, slow, html."),
) -> None:
    """Run a local PEPS (FULL_MAJA protocol, synthetic products) until Ctrl-C."""
    import time

    from fullmaja_stac.emulator.server import DEMO_USER, GEODES_KEY, PepsEmulator

    emu = PepsEmulator(port=port, speed=speed, size=size, faults=set(fault or ()))
    with emu:
        console.print(f"PEPS emulator on [bold]{emu.url}[/] (user {DEMO_USER[0]}, password {DEMO_USER[1]})")
        console.print(f"  export FULLMAJA_STAC_PEPS_URL={emu.url} PEPS_EMAIL={DEMO_USER[0]} PEPS_PASSWORD={DEMO_USER[1]}")
        console.print(f"GEODES emulator on the same server (API key {GEODES_KEY}), for `search` and `fetch`:")
        console.print(f"  export FULLMAJA_STAC_GEODES_URL={emu.url} GEODES_API_KEY={GEODES_KEY}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopped")


# ----------------------------------------------------------------------------- GEODES

GeodesUrl = typer.Option(None, "--geodes-url", envvar="FULLMAJA_STAC_GEODES_URL",
                         help="GEODES base URL (default https://geodes-portal.cnes.fr).")
SearchTile = typer.Option(..., "--tile", help="Sentinel-2 tile, e.g. 31TCJ.")
SearchStart = typer.Option(..., "--start", formats=DATE_FORMATS, help="First day.")
SearchEnd = typer.Option(..., "--end", formats=DATE_FORMATS, help="Last day.")
SearchOrbit = typer.Option(None, "--orbit", min=1, max=143, help="Relative orbit.")
MaxCloud = typer.Option(None, "--max-cloud", min=0, max=100, help="Keep products with at most this cloud cover (0-100 %).")
Provider = typer.Option("geodes", "--provider", help="Where to look: geodes (PEPS products are ordered with `request`).")


def _geodes_search(provider: str, tile: str, orbit: Optional[int], start: datetime, end: datetime,
                   max_cloud: Optional[float], geodes_url: Optional[str], names: Optional[list[str]] = None):
    from fullmaja_stac.providers.geodes import geodes_url as resolve
    from fullmaja_stac.providers.geodes import search_existing

    from fullmaja_stac.tiles import tile_grid

    if provider != "geodes":
        raise FullMajaError(f"--provider {provider}: only 'geodes' serves existing products; PEPS products are "
                            "ordered with `fullmaja-stac request`")
    if end < start:
        raise FullMajaError(f"--end {end:%Y-%m-%d} is before --start {start:%Y-%m-%d}; give the first day, then the last")
    tile_grid(tile)  # the tile table ships with the package: an unknown tile is said before any request
    return search_existing(resolve(geodes_url), tile, orbit, start.date(), end.date(), max_cloud, names)


@app.command()
def search(
    tile: str = SearchTile,
    start: datetime = SearchStart,
    end: datetime = SearchEnd,
    orbit: Optional[int] = SearchOrbit,
    max_cloud: Optional[float] = MaxCloud,
    provider: str = Provider,
    geodes_url: Optional[str] = GeodesUrl,
    as_json: bool = typer.Option(False, "--json", help="Print the products as JSON (one object each) instead of a table."),
) -> None:
    """List MAJA L2A products that already exist on GEODES (no key needed to search).

    The product name comes first and is never cut; its date is the acquisition (sensing) date.
    """
    from rich import box
    from rich.table import Table

    _, products = _geodes_search(provider, tile, orbit, start, end, max_cloud, geodes_url)
    if as_json:
        rows = [{"name": p.name, "acquired": p.acquired.isoformat() if p.acquired else None, "cloud_cover": p.cloud_cover,
                 "relative_orbit": p.relative_orbit, "tile": p.tile, "version": p.version, "size": p.size,
                 "online": p.online, "md5": p.md5, "urn": p.urn, "href": p.href, "problem": p.problem} for p in products]
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"GEODES: {len(products)} MAJA L2A products", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    table.add_column("product", no_wrap=True, min_width=max((len(p.name) for p in products), default=7))
    for column in ("cloud", "orbit", "MB", "online"):
        table.add_column(column, justify="right" if column != "online" else "left")
    for p in products:
        table.add_row(esc(p.name), f"{p.cloud_cover:g}%" if p.cloud_cover is not None else "", str(p.relative_orbit or ""),
                      f"{(p.size or 0) / 1e6:.1f}", "yes" if p.online else "[yellow]no[/]" if p.href else "[red]no zip[/]")
    console.print(table)
    for p in products:
        if p.problem:
            console.print(f"[yellow]{esc(p.name)}: {esc(p.problem)}[/]")


@app.command()
def fetch(
    tile: str = SearchTile,
    start: datetime = SearchStart,
    end: datetime = SearchEnd,
    orbit: Optional[int] = SearchOrbit,
    max_cloud: Optional[float] = MaxCloud,
    name: Optional[list[str]] = typer.Option(None, "--name", help="Only these product names (repeat)."),
    out: Path = typer.Option(Path("products"), "--out", "-o", help="Folder for the zips and the report."),
    then_ingest: bool = typer.Option(False, "--ingest", help="Ingest what arrived into --catalog."),
    catalog: Path = typer.Option(Path("catalog"), "--catalog", "-c", help="Catalog for --ingest."),
    provider: str = Provider,
    geodes_url: Optional[str] = GeodesUrl,
    state_dir: Optional[Path] = StateDir,
) -> None:
    """Download existing MAJA L2A products from GEODES: resumable, MD5-verified, recorded as a job.

    The API key comes from GEODES_API_KEY, the file <config>/fullmaja-stac/geodes-api-key or
    ~/.netrc; it is never printed.
    """
    from fullmaja_stac.providers.geodes import fetch as fetch_products
    from fullmaja_stac.progress import RichDownloadObserver, make_progress

    client, products = _geodes_search(provider, tile, orbit, start, end, max_cloud, geodes_url, name)
    for p in products:
        if p.problem:
            console.print(f"[yellow]{esc(p.name)}: {esc(p.problem)}; skipped[/]")
    request = {"tile": tile, "orbit": orbit, "start": f"{start:%Y-%m-%d}", "end": f"{end:%Y-%m-%d}"}
    with make_progress(console, bytes_=True) as progress:
        report = fetch_products(_store(state_dir), client, products, request, out, RichDownloadObserver(progress))
    _print_download_report(report)
    ingested_ok = _ingest_with_progress([out], catalog).ok if then_ingest else True
    if not (report.ok and ingested_ok):
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- analysis


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _mask_option(text: str):
    return text if text in ("clear", "none") else _names(text)


MaskOption = typer.Option("clear", "--mask", help="'clear' (no data gap, CLM = 0, the band's SAT bit = 0), 'none', "
                          "or a comma list of clouds, cloud_shadows, cirrus, water, snow, topographic_shadow, edge, "
                          "saturation, and clear itself (clear,snow: clear and no snow).")


@app.command()
def timeseries(
    catalog: Path = typer.Argument(Path("catalog"), help="Catalog folder."),
    lon: float = typer.Option(..., "--lon", help="Longitude of the place, degrees."),
    lat: float = typer.Option(..., "--lat", help="Latitude of the place, degrees."),
    bands: str = typer.Option("red,nir", "--bands", help="Comma list of band assets (red, nir, swir16, red-sre...)."),
    index: Optional[str] = typer.Option(None, "--index", help="Add an index: ndvi, ndwi, ndmi or nbr."),
    buffer: float = typer.Option(0.0, "--buffer", help="Average the clear pixels within this many metres, up to 2000 (0: the one pixel)."),
    start: Optional[datetime] = typer.Option(None, formats=DATE_FORMATS, help="First day."),
    end: Optional[datetime] = typer.Option(None, formats=DATE_FORMATS, help="Last day."),
    mask: str = MaskOption,
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the table here (one row per date, NaN where masked)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Write a plot here (clear observations, masked dates marked)."),
) -> None:
    """The cloud-masked values of one place over time, from MAJA's own masks.

    One row per date: the items, the share of clear pixels, each band's clear reflectance
    and the index; NaN where the place was masked. Needs the [analysis] extra.
    """
    from fullmaja_stac.analysis.timeseries import point_series, require_analysis_extra, write_csv, write_png

    require_analysis_extra()
    table = point_series(catalog, lon, lat, bands=_names(bands), index=index, buffer=buffer,
                         start=start.date() if start else None, end=end.date() if end else None, mask=_mask_option(mask))
    columns = [index] if index else _names(bands)
    if csv:
        write_csv(table, csv)
    if png:
        write_png(table, png, columns)
    if not csv:
        console.print(table.to_string(index=False, na_rep="NaN", float_format=lambda v: f"{v:.4f}"), soft_wrap=True)
    clear = int(table[columns].notna().all(axis=1).sum())
    console.print(f"{len(table)} dates, {clear} clear, {len(table) - clear} masked ({table.attrs['pixels']} pixel"
                  f"{'s' if table.attrs['pixels'] > 1 else ''} at lon {lon}, lat {lat})"
                  + "".join(f"; wrote {path}" for path in (csv, png) if path), highlight=False, soft_wrap=True)


@app.command()
def composite(
    catalog: Path = typer.Argument(Path("catalog"), help="Catalog folder (the composites are added to it)."),
    period: str = typer.Option("month", "--period", help="Compositing period: month."),
    start: Optional[datetime] = typer.Option(None, formats=DATE_FORMATS, help="First day."),
    end: Optional[datetime] = typer.Option(None, formats=DATE_FORMATS, help="Last day."),
    bands: str = typer.Option("blue,green,red,nir", "--bands", help="Comma list of band assets."),
    method: str = typer.Option("median", "--method", help="Per-pixel statistic of the clear observations: median."),
) -> None:
    """Cloud-free composites per tile and month, added to the catalog as COGs and STAC items.

    Each pixel is the median of the month's clear observations (EDG = 0, CLM = 0, no
    saturation), nodata where there is none; a count band says how many there were. Written
    into the catalog's maja-s2-l2a-composite collection; a composite whose sources have not
    changed is not made again. Needs the [analysis] extra.
    """
    from fullmaja_stac.analysis.composite import composite as make_composites
    from fullmaja_stac.analysis.timeseries import require_analysis_extra
    from fullmaja_stac.progress import Counter

    require_analysis_extra()
    with Counter(console, "compositing (blocks of rows)") as progress:
        report = make_composites(catalog, period=period, start=start.date() if start else None,
                                 end=end.date() if end else None, bands=_names(bands), method=method, progress=progress)
    console.print(f"{len(report.written)} composites written, {len(report.unchanged)} already up to date, in "
                  f"{catalog / 'maja-s2-l2a-composite'}", highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------- serve


@app.command()
def serve(
    catalog: Path = typer.Argument(Path("catalog"), help="Catalog folder to serve."),
    port: int = typer.Option(8000, help="Port on 127.0.0.1 (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    browser: bool = typer.Option(False, "--browser", help="Also serve STAC Browser at /browser/ (built once with npm)."),
    basemap: Optional[str] = typer.Option(None, "--basemap", envvar="FULLMAJA_STAC_BASEMAP_URL",
                                          help="XYZ tile URL of a basemap for STAC Browser's map, e.g. "
                                          "https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: none, works offline)."),
    api: bool = typer.Option(False, "--api", help="Serve a STAC API (item search with bbox, datetime, query, "
                             "filter, sort) instead of the static files; needs the [api] extra."),
    state_dir: Optional[Path] = ServeStateDir,
) -> None:
    """Serve a catalog over HTTP (CORS, Range for COGs), optionally with STAC Browser.

    With --api the catalog is indexed into an SQLite file in the state folder (at each
    start, only the tile-years changed since are re-read) and served as a STAC API with
    item search, filter (CQL2), query, sort and fields; the COGs are served under /catalog/
    and search results point there.
    """
    from fullmaja_stac.publish.browser import build_browser, built_browser
    from fullmaja_stac.config import state_dir as resolve_state
    from fullmaja_stac.progress import Counter
    from fullmaja_stac.publish.serve import open_server

    folder = resolve_state(state_dir)
    dist = None
    if browser:
        dist = built_browser(folder) or build_browser(folder, log=lambda m: console.print(f"STAC Browser: {m}"))
    with Counter(console, "indexing items for search") as progress:
        server, description = open_server(catalog, host=host, port=port, browser=dist, api=api, state_dir=folder,
                                          progress=progress, basemap=basemap)
    console.print(description)
    if dist:
        console.print(f"STAC Browser: [bold]{server.browser_url}[/]")
    console.print("Ctrl-C stops the server")
    _stop_on_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM (`kill`, `docker stop`, systemd) stop the server cleanly,
    also when it was started with SIGINT ignored, as a script's background job is: Python
    then never turns SIGINT into KeyboardInterrupt, and the server outlived every Ctrl-C."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, stop)


@app.command("build-browser")
def build_browser_command(state_dir: Optional[Path] = ServeStateDir) -> None:
    """Build (or rebuild) STAC Browser 4.0.1 into the state folder; needs Node.js and npm."""
    from fullmaja_stac.publish.browser import build_browser
    from fullmaja_stac.config import state_dir as resolve_state

    dist = build_browser(resolve_state(state_dir), log=lambda m: console.print(f"STAC Browser: {m}"))
    console.print(f"built into {dist}")


# ----------------------------------------------------------------------------- demo


@app.command()
def demo(
    tile: str = typer.Option("36TWQ", help="Sentinel-2 tile."),
    orbit: int = typer.Option(64, help="Relative orbit."),
    start: datetime = typer.Option("2019-03-01", formats=DATE_FORMATS, help="First day."),
    end: datetime = typer.Option("2019-06-01", formats=DATE_FORMATS, help="Last day (2 to 12 months later)."),
    size: int = typer.Option(240, help="R1 pixels of each product (10980 = full size; slow)."),
    catalog: Path = typer.Option(Path("catalog"), "--catalog", "-c", help="Catalog folder to write."),
    out: Path = typer.Option(Path("products"), "--out", "-o", help="Where the downloaded zips go."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Ingest processes (default: all cores)."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Job store for the demo (default: <state>/demo)."),
) -> None:
    """Run the whole tool against the embedded PEPS emulator: no account, no network.

    Requests a FULL_MAJA time series, follows it, downloads it, ingests it into a STAC
    catalog, validates the catalog and says how to browse it.
    """
    from fullmaja_stac.config import state_dir as resolve_state

    _start_workers_early(workers)  # up long before the ingest that follows the download
    from fullmaja_stac.emulator.demo import DEMO_SPEED, ingest_and_validate, order_and_download
    from fullmaja_stac.progress import RichDownloadObserver, RichIngestObserver, make_progress

    folder = state_dir or resolve_state(None) / "demo"
    console.rule("[bold]fullmaja-stac demo")
    console.print(f"A local PEPS emulator (its clock runs {DEMO_SPEED:,.0f}x faster) takes a FULL_MAJA request for "
                  f"tile {tile}, orbit {orbit}, {start:%Y-%m-%d} → {end:%Y-%m-%d}.")
    last = {"state": None, "progress": None}

    def on_status(store, job) -> None:
        if (job.state, job.progress) != (last["state"], last["progress"]):
            table, notes = _status_table(store, [job])
            console.print(table)
            last.update(state=job.state, progress=job.progress)

    with make_progress(console, bytes_=True) as progress:
        job, downloaded, timings = order_and_download(tile, orbit, start.date(), end.date(), size, out, folder,
                                                      on_status=on_status,
                                                      download_observer=RichDownloadObserver(progress))
    _print_download_report(downloaded)
    with make_progress(console) as progress:
        ingested, v, more = ingest_and_validate(out, catalog, workers, RichIngestObserver(progress))
    _print_ingest_report(ingested, catalog)
    _print_demo_summary(job, downloaded, ingested, v, catalog, {**timings, **more})
    if not (v.ok and ingested.ok and downloaded.ok):
        raise typer.Exit(1)


def _print_demo_summary(job, downloaded, ingested, validation, catalog: Path, timings: dict[str, float]) -> None:
    console.rule("[bold]summary")
    cloudy = [d.date for d in downloaded.dates if d.status == "too cloudy"]
    console.print(f"job {job.id} (PEPS id {job.remote_id}): {job.state}")
    console.print(f"dates produced: {downloaded.count('downloaded') + downloaded.count('already there')}, "
                  f"too cloudy: {len(cloudy)} ({', '.join(c or '?' for c in cloudy)}), "
                  f"unprocessed L1C: {downloaded.unprocessed} (PEPS gives their number, not their dates)")
    console.print(f"catalog: {catalog.resolve()} - {len(ingested.added) + len(ingested.unchanged)} items, "
                  f"{'[green]valid[/]' if validation.ok else '[red]INVALID[/]'} ({validation.checked} objects)")
    console.print("timings: " + ", ".join(f"{k} {t:.1f} s" for k, t in timings.items()))
    console.print(f"browse it: [bold]fullmaja-stac serve {catalog} --browser[/]")


if __name__ == "__main__":  # pragma: no cover
    app()
