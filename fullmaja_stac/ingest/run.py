"""Orchestration: find products → read → COGs (in parallel) → item → catalog.

Raster conversions of all products share one process pool (or one dask cluster), so a single
full-size product already keeps every core busy. The catalog itself is written only by this
process, under a lock, one complete item at a time.
"""

from __future__ import annotations

import errno
import shutil
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Protocol

from fullmaja_stac.ingest.assets import MASK, AssetPlan, plan_assets
from fullmaja_stac.ingest.cog import VISUAL_MAX_REFLECTANCE, CogResult, convert, convert_visual, multihash_sha256
from fullmaja_stac.errors import FullMajaError, ProductError, printable_path, warn_line
from fullmaja_stac.ingest.footprint import EmptyProductError, edge_mask, valid_footprint
from fullmaja_stac.lifeline import die_with_parent, ingest_workers, worker_context
from fullmaja_stac.maja.product import (
    MTD_SUFFIX,
    MajaProduct,
    ProductIdentity,
    read_identity,
    read_member,
    read_product,
)
from fullmaja_stac.trust.paths import within
from fullmaja_stac.stac.catalog import CatalogStore, Placement, placement, split_version
from fullmaja_stac.stac.item import CogAsset, Provenance, build_item

REPORT_GLOB = "fullmaja-download-*.json"  # written by providers.job_files.download_job


class IngestObserver(Protocol):
    """What a progress display needs to know. All methods are optional no-ops by default."""

    def started(self, total_products: int) -> None: ...
    def product_started(self, product_id: str, total_rasters: int) -> None: ...
    def raster_done(self, product_id: str) -> None: ...
    def product_done(self, product_id: str, outcome: str) -> None: ...


class _Silent:
    def started(self, total_products: int) -> None:
        pass

    def product_started(self, product_id: str, total_rasters: int) -> None:
        pass

    def raster_done(self, product_id: str) -> None:
        pass

    def product_done(self, product_id: str, outcome: str) -> None:
        pass


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)  # (new id, old id)
    unchanged: list[str] = field(default_factory=list)
    superseded: list[tuple[str, str]] = field(default_factory=list)  # (given id, newer id in catalog)
    empty: list[tuple[str, str]] = field(default_factory=list)  # (source, why): no valid pixel, nothing to catalog
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    @property
    def ok(self) -> bool:
        return not self.failed


def find_products(inputs: Iterable[Path], problems: list[tuple[str, str]] | None = None) -> list[Path]:
    """Zips and product folders given directly or found one level inside given folders.

    What cannot be a product (a pipe named ``*.zip``, a folder ``*.zip`` without a product)
    is added to ``problems`` as (path, reason) instead of stopping the others; when nothing
    at all is found, a FullMajaError says so."""
    problems = problems if problems is not None else []
    found: list[Path] = []
    given = [Path(p) for p in inputs]
    for path in given:
        if not path.exists():
            raise FullMajaError(f"{printable_path(path)}: no such file or folder")
        if path.is_file():
            found.append(path.parent if path.name.endswith(MTD_SUFFIX) else path)
        elif not path.is_dir():
            problems.append((printable_path(path), "not a regular file or folder (a pipe, a socket or a device?)"))
        elif any(path.glob(f"*{MTD_SUFFIX}")):
            found.append(path)
        else:
            for child in sorted(path.iterdir()):
                if child.name.startswith("."):
                    continue
                looks_zip = child.suffix.lower() == ".zip"
                if child.is_file() and looks_zip:
                    found.append(child)
                elif child.is_dir() and any(child.glob(f"*{MTD_SUFFIX}")):
                    found.append(child)
                elif looks_zip:
                    kind = "a folder without a MAJA product" if child.is_dir() else "not a regular file"
                    problems.append((printable_path(child), f"named .zip but {kind}"))
    if not found and not problems:
        names = ", ".join(printable_path(p) for p in given[:3]) + (" …" if len(given) > 3 else "")
        raise FullMajaError(f"no MAJA product found in {names}: give product zips, product folders, "
                            "or folders that hold them")
    return list(dict.fromkeys(found))


def load_provenance(products: list[Path]) -> dict[str, Provenance]:
    """Provenance recorded by our downloader next to the files it fetched (by file name)."""
    from fullmaja_stac.stac.catalog import read_derived

    out: dict[str, Provenance] = {}
    for report_path in sorted({f for p in products for f in p.parent.glob(REPORT_GLOB)}):
        report = read_derived(report_path, _valid_report, {})
        if report is None:  # damaged or edited: the products still land, without this provenance
            warn_line(f"{printable_path(report_path)} is not a download report we can read; its products are ingested "
                      "without their job's provenance")
            continue
        for entry in report.get("files", []):
            out[entry["name"]] = Provenance(
                provider=report.get("provider", "peps"), job_id=report.get("job_id"),
                request=report.get("request", {}), remote_id=entry.get("remote_id"), url=entry.get("url"),
                local_job=report.get("local_job") if isinstance(report.get("local_job"), int) else None,
            )
    return out


def _valid_report(doc) -> bool:
    """A download report of the shape job_files.download_job writes (its text lands in items)."""
    def text(value) -> bool:
        return value is None or isinstance(value, str)

    return isinstance(doc, dict) and isinstance(doc.get("files", []), list) and isinstance(doc.get("request") or {}, dict) \
        and text(doc.get("provider")) and text(doc.get("job_id")) \
        and all(isinstance(e, dict) and isinstance(e.get("name"), str) and text(e.get("url")) and text(e.get("remote_id"))
                for e in doc.get("files", []))


@dataclass
class _Work:
    product: MajaProduct
    where: Placement
    plans: list[AssetPlan]
    staging: Path
    replaces: list[str]
    visual: bool  # whether to make the true-colour COG (from the product's red, green and blue rasters)
    results: dict[str, CogResult] = field(default_factory=dict)
    footprint: tuple[dict, list[float]] | None = None  # (GeoJSON geometry, bbox), computed by a worker
    finished: set[str] = field(default_factory=set)  # keys of the tasks done, well or not
    error: str | None = None
    empty: bool = False  # the footprint found no valid pixel: skipped, not failed

    @property
    def pending(self) -> int:
        """Tasks not finished yet: one per plan, the footprint, and the true-colour COG."""
        return len(self.plans) + 1 + (1 if self.visual else 0) - len(self.finished)

    def tasks(self) -> list[AssetPlan | str]:
        """Every task, costliest first, so that no long one is left to run alone at the end: the
        true-colour COG (it reads three 10 m bands: longer than any band's COG), then the
        rasters by size; the footprint, which reads the coarsest EDG mask, goes with the rasters
        of that size."""
        edg = edge_mask(self.product)
        tasks: list[tuple[int, int, AssetPlan | str]] = [(-_grid_pixels(self.product, edg and edg.group), 0, FOOTPRINT)]
        tasks += [(-_grid_pixels(self.product, p.raster.group), 1, p) for p in self.plans]
        return ([VISUAL] if self.visual else []) + [task for *_, task in sorted(tasks, key=lambda t: t[:2])]


def ingest(
    inputs: Iterable[Path],
    catalog: Path,
    workers: int | None = None,
    observer: IngestObserver | None = None,
    provenance: dict[str, Provenance] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    scheduler: str | None = None,
) -> IngestReport:
    """Ingest MAJA products into the static catalog at ``catalog``; returns what happened.

    A product that fails is reported and does not stop the others. Re-ingesting a product
    already in the catalog does no raster work and writes nothing. ``scheduler``: None for a
    local process pool of ``workers``, ``"local"`` for a dask ``LocalCluster`` of ``workers``,
    or a dask scheduler address (``tcp://host:8786``) whose workers see the same files; the
    catalog is written by this process either way.
    """
    observer = observer or _Silent()
    workers = ingest_workers(workers)
    if scheduler:  # checked before the catalog is touched: a missing dask leaves nothing behind
        try:
            import distributed  # noqa: F401 - used by _executor
        except ImportError:
            raise FullMajaError("--scheduler needs dask's distributed: in the fullmaja-stac checkout, "
                                "pip install -e '.[dask]'") from None
    report = IngestReport()
    products = find_products(inputs, report.failed)
    provenance = {**load_provenance(products), **(provenance or {})}
    store = CatalogStore(catalog)
    observer.started(len(products))
    try:
        with store.lock():
            store.clean_staging()
            store.ensure_root()
            try:
                _ingest_locked(products, store, report, observer, workers, scheduler, provenance, now)
            finally:
                store.flush()  # tile catalogs and collection, once per run, even after a failure
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise FullMajaError(f"no space left on the device of {printable_path(catalog)} while writing the catalog; "
                            f"{len(report.added) + len(report.replaced)} products were added before; free some space "
                            "and run the same command again (every file on disk is still whole)") from None
    return report


def _ingest_locked(products, store, report, observer, workers, scheduler, provenance, now) -> None:
    wanted = [(path, *placed) for path, identity in _newest_of_each(products, report, observer)
              if (placed := _place(identity, store, report, observer)) is not None]
    if not wanted:
        return  # a no-op re-ingest opens no raster and starts no worker
    one_process = workers == 1 and scheduler is None  # as asked: the true-colour COG on one thread too
    with _executor(workers, scheduler) as (submit, window):  # workers start while the products are read
        todo = [work for args in wanted if (work := _prepare(*args, store, report, observer)) is not None]
        _run(todo, store, report, observer, submit, window, provenance, now, 1 if one_process else None)


def _newest_of_each(products: list[Path], report: IngestReport, observer: IngestObserver):
    """(path, identity) of the products to consider, in the order given: of two versions of
    one acquisition given in the same run (``…_C_V1-0`` and ``…_C_V1-1``) only the newer, the
    other reported superseded, as it would be if the two came in separate runs; a product
    given twice is considered once. Only MTDs are read here."""
    chosen: dict[str, tuple[Path, ProductIdentity]] = {}  # product without version → newest
    for path in products:
        try:
            identity = read_identity(path)
        except ProductError as exc:
            _unreadable(path, exc, report, observer)
            continue
        base, version = split_version(identity.id)
        kept = chosen.get(base)
        if kept is None:
            chosen[base] = (path, identity)
            continue
        kept_version = split_version(kept[1].id)[1]
        if version == kept_version:  # the same product given twice
            report.unchanged.append(identity.id)
            observer.product_done(identity.id, "unchanged")
            continue
        if version > kept_version:
            older, newer = kept[1], identity
            chosen[base] = (path, identity)
        else:
            older, newer = identity, kept[1]
        report.superseded.append((older.id, newer.id))
        observer.product_done(older.id, "superseded")
    return list(chosen.values())


def _unreadable(path: Path, exc: ProductError, report: IngestReport, observer: IngestObserver) -> None:
    report.failed.append((printable_path(path), exc.reason_within(path)))
    observer.product_done(printable_path(path.name), "failed")


@contextmanager
def _executor(workers: int, scheduler: str | None):
    """A ``submit(fn, *args) -> future`` for the raster tasks (inline, process pool or dask),
    and how many tasks to keep handed to it at once: enough to keep every worker busy, few
    enough that the tasks of a product that fails are skipped rather than run, and that an
    interrupted ingest has little work to cancel."""
    if scheduler:
        from distributed import Client, LocalCluster  # ingest() checked it is installed, before the catalog

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None) if scheduler == "local" else None
        try:
            client = Client(cluster or scheduler, timeout=30)
        except OSError as exc:
            raise FullMajaError(f"cannot reach the dask scheduler {scheduler} ({exc})") from None
        try:
            threads = sum(client.nthreads().values()) or workers
            yield (lambda fn, *args: client.submit(fn, *args, pure=False)), 2 * threads
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    elif workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(), initializer=die_with_parent) as pool:
            yield pool.submit, 2 * workers
    else:
        yield _run_inline, 1


def _run_inline(fn, *args) -> Future:
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:  # noqa: BLE001 - recorded against its product
        future.set_exception(exc)
    return future


def _wait_first(futures: set) -> tuple[set, set]:
    """``wait(FIRST_COMPLETED)`` for concurrent.futures and dask futures alike."""
    if futures and not isinstance(next(iter(futures)), Future):
        from distributed import wait as dask_wait

        done, pending = dask_wait(futures, return_when="FIRST_COMPLETED")
        return set(done), set(pending)
    return wait(futures, return_when=FIRST_COMPLETED)


def _place(identity: ProductIdentity, store: CatalogStore, report: IngestReport,
           observer: IngestObserver) -> tuple[Placement, list[str]] | None:
    """Where the product goes and the older versions it replaces, or None (reported) when the
    catalog already has it or a newer version: decided from the MTD alone, so that a no-op
    re-ingest opens no raster."""
    where = placement(identity.id, identity.tile, identity.acquired)
    if store.has_item(where):
        store.relink_existing(where)
        report.unchanged.append(identity.id)
        observer.product_done(identity.id, "unchanged")
        return None
    _, version = split_version(identity.id)
    others = store.versions_of(where)
    newer = [i for i, v in others.items() if v > version]
    if newer:
        report.superseded.append((identity.id, newer[0]))
        observer.product_done(identity.id, "superseded")
        return None
    return where, sorted(others)


def _prepare(path: Path, where: Placement, replaces: list[str], store: CatalogStore, report: IngestReport,
             observer: IngestObserver) -> _Work | None:
    """The product read (MTD and raster headers) and its work planned, or None (reported)."""
    try:
        product = read_product(path)
    except ProductError as exc:
        _unreadable(path, exc, report, observer)
        return None
    plans = plan_assets(product)
    staging = store.staging_dir(where)
    staging.mkdir(parents=True, exist_ok=True)
    work = _Work(product, where, plans, staging, replaces, has_visual(plans))
    observer.product_started(product.id, work.pending)
    return work


VISUAL_KEYS = ("red", "green", "blue")  # B4, B3, B2 flat reflectance at 10 m
VISUAL, FOOTPRINT = "visual", "footprint"  # the tasks of a product that are not a band's COG
VISUAL_FILE_SUFFIX = "_TCI.tif"
VISUAL_TITLE = f"True colour (B4, B3, B2; reflectance 0-{VISUAL_MAX_REFLECTANCE:g} stretched to 1-255, 0 = no data)"


def has_visual(plans: list[AssetPlan]) -> bool:
    """Whether the product has the B4, B3, B2 rasters the true-colour COG is made of."""
    keys = {p.key for p in plans}
    return all(k in keys for k in VISUAL_KEYS)


def _run(todo, store, report, observer, submit, window, provenance, now, visual_threads: int | None) -> None:
    """Convert every raster and compute every footprint, costliest first within a product,
    with at most ``window`` tasks handed to the executor; a product that has failed has its
    remaining tasks skipped."""
    waiting: deque[tuple[_Work, AssetPlan | str]] = deque((work, task) for work in todo for task in work.tasks())
    futures: dict = {}

    def settle(work: _Work, key: str) -> None:
        work.finished.add(key)
        observer.raster_done(work.product.id)
        if work.pending == 0:  # only the settle that finishes the last task gets here
            _finish(work, store, report, observer, provenance, now)

    try:
        while waiting or futures:
            while waiting and len(futures) < window:
                work, task = waiting.popleft()
                if work.error is not None:
                    settle(work, _key(task))
                    continue
                futures[submit(*_task(work, task, visual_threads))] = (work, task)
            if not futures:
                continue
            done, _ = _wait_first(set(futures))
            for future in done:
                work, task = futures.pop(future)
                key = _key(task)
                try:
                    if key == FOOTPRINT:
                        work.footprint = future.result()
                    else:
                        work.results[key] = future.result()
                except EmptyProductError as exc:  # nothing to catalog: its other tasks are skipped
                    work.error, work.empty = work.error or exc.problem, True
                except Exception as exc:  # noqa: BLE001 - the product fails, the others go on
                    work.error = work.error or _reason(exc, work, task)
                settle(work, key)
    finally:
        for future in futures:
            future.cancel()
        for work in todo:
            if work.staging.exists():
                shutil.rmtree(work.staging, ignore_errors=True)


def _key(task: AssetPlan | str) -> str:
    return task if isinstance(task, str) else task.key


def _task(work: _Work, task: AssetPlan | str, visual_threads: int | None) -> tuple:
    """(function, *arguments) of one task: a band's COG, the true-colour COG or the footprint."""
    if task == VISUAL:
        return visual_task(work.product, work.plans, work.staging, visual_threads)
    if task == FOOTPRINT:
        return (valid_footprint, work.product, work.staging)
    return cog_task(work.product, task, work.staging)


def cog_task(product: MajaProduct, plan: AssetPlan, folder: Path) -> tuple:
    """(function, *arguments) writing ``plan``'s COG into ``folder``, as a worker runs it
    (also what bench_ingest times). The function is one the forkserver has loaded
    (:data:`~fullmaja_stac.lifeline.PRELOAD`), so that a worker imports nothing before it starts."""
    return (convert, product.raster_source(plan.raster), str(within(folder, plan.filename, what="a COG name")), plan.band_index,
            plan.nodata, plan.resampling, plan.kind != MASK, plan.scale, 0.0 if plan.scale is not None else None,
            f"{plan.title}{f' ({plan.unit})' if plan.unit else ''}")


def visual_task(product: MajaProduct, plans: list[AssetPlan], folder: Path,
                compress_threads: int | None = None) -> tuple:
    """(function, *arguments) writing the true-colour COG into ``folder`` from the product's
    red, green and blue rasters (``plans`` has them: :func:`has_visual`), as a worker runs it;
    ``compress_threads``: see :func:`~fullmaja_stac.ingest.cog.convert_visual`."""
    by_key = {plan.key: plan for plan in plans}
    rgb = [by_key[key] for key in VISUAL_KEYS]
    return (convert_visual, [product.raster_source(plan.raster) for plan in rgb],
            str(within(folder, f"{product.id}{VISUAL_FILE_SUFFIX}", what="a COG name")), product.reflectance_nodata,
            product.reflectance_quantification, tuple(plan.band_index for plan in rgb), compress_threads)


def _reason(exc: Exception, work: _Work, task: AssetPlan | str) -> str:
    """One line for a failed task; a full disk is said as such, with where."""
    if isinstance(exc, ProductError):
        return exc.reason_within(work.product.source)
    if isinstance(task, AssetPlan):
        writing, source = task.filename, task.raster.path
    else:
        writing = source = f"{work.product.id}{VISUAL_FILE_SUFFIX}" if task == VISUAL else "the footprint"
    if _disk_full(work.staging, exc):
        return _no_space(work.staging.parent, f" while writing {writing}")
    return f"{source}: {type(exc).__name__}: {exc}"


def _no_space(folder: Path, doing: str = "") -> str:
    return f"no space left on the device of {printable_path(folder)}{doing}; free some space and run the same command again"


def _disk_full(folder: Path, exc: Exception) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "No space left" in str(exc):
        return True
    try:  # GDAL often says only "Unknown GDAL Error" or "TIFFWriteDirectoryTagData": look at the disk
        return shutil.disk_usage(folder if folder.exists() else folder.parent).free < 1 << 20
    except OSError:
        return False


def _grid_pixels(product: MajaProduct, group: str | None) -> int:
    grid = product.grids.get(group or "")
    return grid.nrows * grid.ncols if grid else 0


def _finish(work: _Work, store: CatalogStore, report: IngestReport, observer, provenance, now) -> None:
    product = work.product
    if work.error is None:
        try:
            extra = _copy_sidecars(product, work.staging)
            geometry, bbox = work.footprint
            source_name = Path(product.source).name
            item = build_item(product, _cog_assets(work), geometry, bbox, extra, now(),
                              provenance.get(source_name) or provenance.get(product.id))
            store.commit(work.where, item, work.staging)
        except ProductError as exc:
            work.error = exc.problem
        except OSError as exc:
            work.error = _no_space(work.staging.parent) if _disk_full(work.staging, exc) else f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - one product's failure must not stop the others
            work.error = f"{type(exc).__name__}: {exc}"
    if work.error is not None:
        shutil.rmtree(work.staging, ignore_errors=True)
        if work.empty:
            report.empty.append((product.source, work.error))
            observer.product_done(product.id, "empty")
            return
        report.failed.append((product.source, work.error))
        observer.product_done(product.id, "failed")
        return
    for old in work.replaces:
        store.remove(Placement(work.where.tile, work.where.year, old))
        report.replaced.append((product.id, old))
    if not work.replaces:
        report.added.append(product.id)
    observer.product_done(product.id, "replaced" if work.replaces else "added")


def _cog_assets(work: _Work) -> list[CogAsset]:
    """What the item builder needs to know of each converted COG, in plan order."""
    out = []
    for plan in work.plans:
        result = work.results.get(plan.key)
        if result is not None:
            out.append(CogAsset(plan.key, plan.filename, plan.title, plan.family, plan.raster, plan.nodata, plan.scale,
                                plan.unit, result.size, result.checksum, result.statistics))
    visual = work.results.get(VISUAL)
    if visual is not None:
        out.append(CogAsset("visual", Path(visual.path).name, VISUAL_TITLE, "visual", None, 0, None, None,
                            visual.size, visual.checksum))
    return out


def _copy_sidecars(product: MajaProduct, staging: Path) -> dict[str, tuple[str, int, str]]:
    """Copy the quicklook and the MTD beside the item (read from the zip in place)."""
    out: dict[str, tuple[str, int, str]] = {}
    for key, rel in (("thumbnail", product.quicklook), ("metadata", product.mtd)):
        if not rel:
            continue
        target = within(staging, rel.rsplit("/", 1)[-1], what="a file the MTD lists")
        target.write_bytes(read_member(product, rel))
        out[key] = (target.name, target.stat().st_size, multihash_sha256(target))
    return out
