"""The search index behind ``serve --api``: the catalog's items as stac-geoparquet, kept up
to date from the catalog's own per-year indexes so that an ingest costs it only what changed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.stac.catalog import dump_json, read_json, tile_years, write_atomic
from fullmaja_stac.stac.constants import COLLECTION_ID


@dataclass(frozen=True)
class ApiIndex:
    """What the server searches: the catalog's items as stac-geoparquet, one file per year.

    Each year's file is made of one part per tile and year, written from the item JSON. An
    ingest costs the index the JSON of the tile-years it changed and the swap of their rows in
    their year's file; searching a handful of files stays fast (each file's footer describes ~800
    columns, so hundreds of small files would make every search slow)."""

    catalog: Path
    folder: Path  # the per-year files
    rebuilt: list[str]  # the tile-years whose part this build rewrote
    removed: list[str]

    @property
    def pattern(self) -> str:
        return str(self.folder / "*.parquet")


PARALLEL_FROM_ITEMS = 1000  # fewer items to re-read are not worth starting processes for


def _write_part(paths: list[Path], collection: dict, target: Path) -> int:
    """Convert one tile-year's items to a stac-geoparquet part (runs in a worker process)."""
    from fullmaja_stac.consume import read_item
    from fullmaja_stac.export import write_geoparquet

    write_geoparquet([read_item(path) for path in paths], collection, target)
    return len(paths)


def build_index(catalog: Path, cache: Path, progress: Callable[[int, int], None] | None = None,
                workers: int | None = None) -> ApiIndex:
    """Bring the stac-geoparquet index of ``catalog`` in ``cache`` up to date: rewrite the
    part of each tile-year whose ``_items.json`` changed since, drop the parts of years gone,
    and re-merge the per-year files whose parts changed. ``progress(done, total)`` counts the
    items re-read from JSON, the slow part (~7 ms each, so parts are written by ``workers``
    processes, all cores by default, when there are many)."""
    from fullmaja_stac.export import merge_geoparquet

    catalog = Path(catalog).resolve()
    if not (catalog / "catalog.json").exists():
        raise FullMajaError(f"{catalog}: no catalog.json here; run `fullmaja-stac ingest` or `fullmaja-stac demo` first")
    collection = read_json(catalog / COLLECTION_ID / "collection.json", None)
    if collection is None:
        raise FullMajaError(f"{catalog}: no {COLLECTION_ID}/collection.json; the catalog is incomplete, re-run ingest")
    top = Path(cache).resolve() / hashlib.sha1(str(catalog).encode()).hexdigest()[:16]
    folder, years = top / "parts", top / "years"
    folder.mkdir(parents=True, exist_ok=True)
    years.mkdir(exist_ok=True)
    stamps_file = folder / "stamps.json"
    stamps: dict[str, str] = read_json(stamps_file, {}) or {}

    current = tile_years(catalog)
    if not current:
        raise FullMajaError(f"{catalog}: the catalog has no item to serve")

    todo = [part for part, tile_year in current.items()
            if stamps.get(part) != tile_year.stamp or not (folder / f"{part}.parquet").exists()]
    total, done = sum(len(current[part].item_ids) for part in todo), 0
    workers = 1 if total < PARALLEL_FROM_ITEMS else (workers or os.cpu_count() or 1)
    rebuilt, removed = [], []
    with _pool(workers) as submit:  # the stamps file is written last: an interrupted build is redone
        futures = {submit(_write_part, current[part].item_paths(), collection, folder / f"{part}.parquet"): part
                   for part in todo}
        for future in as_completed(futures):
            part = futures[future]
            done += future.result()
            stamps[part] = current[part].stamp
            rebuilt.append(part)
            if progress:
                progress(done, total)
    rebuilt.sort()
    for part in sorted(set(stamps) - set(current)) + [p.stem for p in folder.glob("*.parquet") if p.stem not in current]:
        (folder / f"{part}.parquet").unlink(missing_ok=True)
        stamps.pop(part, None)
        removed.append(part)
    by_year: dict[str, list[str]] = {}
    for part in current:
        by_year.setdefault(_year_of(part), []).append(part)
    changed: dict[str, set[str]] = {}
    for part in [*rebuilt, *removed]:
        changed.setdefault(_year_of(part), set()).add(part)
    for year, parts in sorted(by_year.items()):
        target = years / f"{year}.parquet"
        if target.exists() and year in changed:
            _update_year(target, changed[year], folder, collection)
        elif not target.exists():
            merge_geoparquet([folder / f"{part}.parquet" for part in parts], collection, target)
    for stale in years.glob("*.parquet"):
        if stale.stem not in by_year:
            stale.unlink()
    write_atomic(stamps_file, dump_json(dict(sorted(stamps.items()))))
    return ApiIndex(catalog, years, rebuilt, sorted(set(removed)))


def _year_of(part: str) -> str:
    return part.rsplit("-", 1)[1]


def _update_year(target: Path, parts: set[str], folder: Path, collection: dict) -> None:
    """Replace the rows of some tiles in a year file by their parts' current rows.

    Rows are matched by tile (``grid:code``), not by id, so that a year file left behind by
    an interrupted build is still corrected."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from fullmaja_stac.export import write_table

    old = pq.read_table(target)
    tiles = pa.array(sorted(f"MGRS-{part.rsplit('-', 1)[0]}" for part in parts))
    kept = old.filter(pc.invert(pc.is_in(old.column("grid:code"), value_set=tiles)))
    fresh = [pq.read_table(folder / f"{part}.parquet") for part in sorted(parts) if (folder / f"{part}.parquet").exists()]
    write_table(pa.concat_tables([kept, *fresh], promote_options="permissive"), collection, target)


@contextmanager
def _pool(workers: int):
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("forkserver")) as pool:
            yield pool.submit
    else:
        def inline(fn, *args) -> Future:
            future: Future = Future()
            future.set_result(fn(*args))
            return future

        yield inline
