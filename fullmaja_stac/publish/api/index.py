"""The search index behind ``serve --api``: one SQLite file, kept up to date from the
catalog's own per-year indexes so that an ingest costs it only the tile-years that changed.

Why SQLite (docs/NOTES.md has the measurements): it is in the standard library, binds every
value as a parameter, lets the server open the file read-only with an authorizer that allows
nothing but reading (no ATTACH, no PRAGMA, no extension), and interrupts any statement that
runs past its time through a progress handler. Each property the items carry as a scalar
becomes a column (its SQL name is ours, ``p0``, ``p1``…, never the property's text), and an
R*Tree holds the footprints' boxes for spatial search.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson
from filelock import FileLock

from fullmaja_stac.publish.api.search import (
    BOOLEAN,
    GEOMETRY,
    INTEGER,
    NUMBER,
    STRING,
    TIMESTAMP,
    Queryable,
)
from fullmaja_stac.errors import FullMajaError, warn_line
from fullmaja_stac.lifeline import die_with_parent, worker_context
from fullmaja_stac.jsonio import read_json
from fullmaja_stac.stac.catalog import read_item_file, tile_years
from fullmaja_stac.stac.constants import COLLECTION_ID

INDEX_FORMAT = "sqlite-1"
INDEX_FILE = "index.sqlite"
PARALLEL_FROM_ITEMS = 1000  # fewer items to re-read are not worth starting processes for
INDEXED_PROPERTIES = ("grid:code", "sat:relative_orbit", "eo:cloud_cover", "platform")  # also `dt`, `id`

# STAC common metadata: filters may name these even when no item carries them (no match)
COMMON_METADATA = {"platform": STRING, "constellation": STRING, "mission": STRING, "gsd": NUMBER,
                   "created": TIMESTAMP, "updated": TIMESTAMP, "start_datetime": TIMESTAMP, "end_datetime": TIMESTAMP,
                   "eo:cloud_cover": NUMBER}

# The fixed columns; property columns are added as ``p<N>`` when a property first appears.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts (part TEXT PRIMARY KEY, stamp TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queryables (name TEXT PRIMARY KEY, col TEXT NOT NULL UNIQUE, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    part TEXT NOT NULL,
    collection TEXT NOT NULL,
    dt REAL,
    minx REAL, miny REAL, maxx REAL, maxy REAL,
    geometry BLOB,
    folder TEXT NOT NULL,
    item BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS items_part ON items (part);
CREATE INDEX IF NOT EXISTS items_dt ON items (dt, id);
CREATE VIRTUAL TABLE IF NOT EXISTS items_box USING rtree (n, minx, maxx, miny, maxy);
"""
FIXED = {"id": Queryable("id", "id", STRING), "collection": Queryable("collection", "collection", STRING),
         "datetime": Queryable("datetime", "dt", TIMESTAMP), "geometry": Queryable("geometry", "geometry", GEOMETRY)}


@dataclass(frozen=True)
class ApiIndex:
    """What the server searches: ``path``, an SQLite file built from the catalog."""

    catalog: Path
    path: Path
    rebuilt: list[str]  # the tile-years whose rows this build rewrote
    removed: list[str]

    @property
    def folder(self) -> Path:
        return self.path.parent


@dataclass(frozen=True)
class Row:
    """One item as the index stores it (built in worker processes for large updates)."""

    id: str
    collection: str
    dt: float | None
    bounds: tuple[float, float, float, float]
    geometry: bytes
    folder: str  # the item's folder, relative to the catalog (asset hrefs are relative to it)
    item: bytes  # compact JSON, zlib-compressed
    properties: dict[str, tuple[str, object]]  # name -> (kind, value as stored)


def _queryable_value(value: object) -> tuple[str, object] | None:
    """(kind, value as stored) of a scalar property; None for lists and objects. Timestamps
    are stored as seconds since 1970, so that they compare as numbers."""
    if isinstance(value, bool):
        return BOOLEAN, int(value)
    if isinstance(value, int):
        return INTEGER, value
    if isinstance(value, float):
        return NUMBER, value
    if isinstance(value, str):
        if len(value) >= 20 and value[4:5] == "-" and value[10:11] in ("T", "t"):
            epoch = _epoch(value)
            if epoch is not None:
                return TIMESTAMP, epoch
        return STRING, value
    return None


def _epoch(text: str) -> float | None:
    """Seconds since 1970 of an RFC 3339 timestamp; one without a zone is taken as UTC."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


DAMAGED = None  # read_rows' mark for an item file that could not be read
BUILD_LOCK_SECONDS = 600


def read_rows(paths: list[Path], catalog: Path) -> list[Row | None]:
    """Item JSON files → index rows (runs in a worker process for large updates)."""
    import shapely
    import shapely.errors
    import shapely.geometry

    rows = []
    for path in paths:
        item = read_item_file(path, path.parent.name)  # a damaged item is named (one line) and left out
        if item is None:
            rows.append(DAMAGED)
            continue
        try:
            geom = shapely.geometry.shape(item["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.ShapelyError):
            warn_line(f"{path}: its geometry cannot be read; left out of the index")
            rows.append(DAMAGED)
            continue
        props = {}
        for name, value in item.get("properties", {}).items():
            queryable = _queryable_value(value)
            if queryable is not None and name != "datetime":
                props[name] = queryable
        when = item["properties"].get("datetime") or item["properties"].get("start_datetime")
        rows.append(Row(item["id"], item.get("collection", COLLECTION_ID), _epoch(when) if when else None,
                        tuple(geom.bounds), shapely.to_wkb(geom), path.parent.relative_to(catalog).as_posix(),
                        zlib.compress(orjson.dumps(item), 6), props))
    return rows


def index_path(catalog: Path, cache: Path) -> Path:
    return Path(cache).resolve() / hashlib.sha1(str(Path(catalog).resolve()).encode()).hexdigest()[:16] / INDEX_FILE


def build_index(catalog: Path, cache: Path, progress: Callable[[int, int], None] | None = None,
                workers: int | None = None) -> ApiIndex:
    """Bring the search index of ``catalog`` in ``cache`` up to date: re-read the items of
    each tile-year whose ``_items.json`` changed since, drop the tile-years gone. Each
    tile-year is replaced in one transaction, so an interrupted build leaves a consistent
    index that the next build completes. ``progress(done, total)`` counts items re-read."""
    catalog = Path(catalog).resolve()
    if not (catalog / "catalog.json").exists():
        raise FullMajaError(f"{catalog}: no catalog.json here; run `fullmaja-stac ingest` or `fullmaja-stac demo` first")
    collection = read_json(catalog / COLLECTION_ID / "collection.json", None)
    if collection is None:
        raise FullMajaError(f"{catalog}: no {COLLECTION_ID}/collection.json; the catalog is incomplete, re-run ingest")
    current = tile_years(catalog)
    if not current:
        raise FullMajaError(f"{catalog}: the catalog has no item to serve")
    path = index_path(catalog, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock", timeout=BUILD_LOCK_SECONDS):  # two servers starting at once build it in turn
        return _build_locked(catalog, collection, current, path, progress, workers)


def _build_locked(catalog, collection, current, path, progress, workers) -> ApiIndex:
    db = _open_for_update(path)
    try:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('collection', ?)", (orjson.dumps(collection).decode(),))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('catalog', ?)", (str(catalog),))
        db.commit()
        stamps = dict(db.execute("SELECT part, stamp FROM parts"))
        todo = [part for part, ty in current.items() if stamps.get(part) != ty.stamp]
        total = sum(len(current[part].item_ids) for part in todo)
        workers = 1 if total < PARALLEL_FROM_ITEMS else (workers or os.cpu_count() or 1)
        done = 0
        for part, rows in _rows_by_part(todo, current, catalog, workers):
            whole = [row for row in rows if row is not DAMAGED]
            # a tile-year with a damaged item is read again next time (its repair may not change _items.json)
            _replace_part(db, part, whole, current[part].stamp if len(whole) == len(rows) else "damaged")
            done += len(rows)
            if progress:
                progress(done, total)
        removed = sorted(set(stamps) - set(current))
        for part in removed:
            _replace_part(db, part, [], None)
        _ensure_indexes(db)
        db.execute("PRAGMA optimize")
    finally:
        db.close()
    return ApiIndex(catalog, path, sorted(todo), removed)


def _open_for_update(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    try:
        fmt = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.DatabaseError:
        fmt = None
    if fmt is None or fmt[0] != INDEX_FORMAT:  # another layout (or a damaged file): start over
        db.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        db = sqlite3.connect(path)
        db.executescript(SCHEMA)
        db.execute("INSERT INTO meta VALUES ('format', ?)", (INDEX_FORMAT,))
        known = queryables(db)
        for name, kind in COMMON_METADATA.items():  # queryable even where no item has them
            _ensure_column(db, known, name, kind)
        db.commit()
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _rows_by_part(todo: list[str], current: dict, catalog: Path, workers: int) -> Iterable[tuple[str, list[Row]]]:
    if workers <= 1:
        for part in todo:
            yield part, read_rows(current[part].item_paths(), catalog)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(), initializer=die_with_parent) as pool:
        futures = {part: pool.submit(read_rows, current[part].item_paths(), catalog) for part in todo}
        for part in todo:
            yield part, futures[part].result()


def queryables(db: sqlite3.Connection) -> dict[str, Queryable]:
    found = dict(FIXED)
    for name, col, kind in db.execute("SELECT name, col, kind FROM queryables"):
        found[name] = Queryable(name, col, kind)
    return found


def _replace_part(db: sqlite3.Connection, part: str, rows: list[Row], stamp: str | None) -> None:
    """Swap one tile-year's rows (and its stamp) in a single transaction."""
    known = queryables(db)
    with db:
        for row in rows:
            for name, (kind, _) in row.properties.items():
                _ensure_column(db, known, name, kind)
        old = [n for (n,) in db.execute("SELECT n FROM items WHERE part = ?", (part,))]
        db.executemany("DELETE FROM items_box WHERE n = ?", ((n,) for n in old))
        db.execute("DELETE FROM items WHERE part = ?", (part,))
        ids = [row.id for row in rows]
        for start in range(0, len(ids), 500):  # an item that moved from another tile-year
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            moved = [n for (n,) in db.execute(f"SELECT n FROM items WHERE id IN ({marks})", chunk)]
            db.executemany("DELETE FROM items_box WHERE n = ?", ((n,) for n in moved))
            db.executemany("DELETE FROM items WHERE n = ?", ((n,) for n in moved))
        for row in rows:
            cols = [known[name] for name in row.properties]
            names = ", ".join(["id", "part", "collection", "dt", "minx", "miny", "maxx", "maxy", "geometry", "folder",
                               "item", *(q.column for q in cols)])
            values = [row.id, part, row.collection, row.dt, *row.bounds, row.geometry, row.folder, row.item,
                      *(_cast(known[name].kind, value) for name, (_, value) in row.properties.items())]
            cursor = db.execute(f"INSERT INTO items ({names}) VALUES ({','.join('?' * len(values))})", values)
            minx, miny, maxx, maxy = row.bounds
            db.execute("INSERT INTO items_box VALUES (?, ?, ?, ?, ?)", (cursor.lastrowid, minx, maxx, miny, maxy))
        if stamp is None:
            db.execute("DELETE FROM parts WHERE part = ?", (part,))
        else:
            db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?)", (part, stamp))


def _ensure_column(db: sqlite3.Connection, known: dict[str, Queryable], name: str, kind: str) -> None:
    """A column for a property (added when it first appears), its kind widened if needed."""
    q = known.get(name)
    if q is None:
        col = f"p{db.execute('SELECT COUNT(*) FROM queryables').fetchone()[0]}"
        db.execute(f"ALTER TABLE items ADD COLUMN {col}")  # the name is ours: p<N>
        db.execute("INSERT INTO queryables VALUES (?, ?, ?)", (name, col, kind))
        known[name] = Queryable(name, col, kind)
    elif q.kind != kind:
        wider = NUMBER if {q.kind, kind} <= {NUMBER, INTEGER} else STRING
        if wider != q.kind:
            db.execute("UPDATE queryables SET kind = ? WHERE name = ?", (wider, name))
            known[name] = Queryable(name, q.column, wider)


def _cast(kind: str, value: object) -> object:
    return str(value) if kind == STRING and not isinstance(value, str) else value


def _ensure_indexes(db: sqlite3.Connection) -> None:
    known = queryables(db)
    with db:
        for name in INDEXED_PROPERTIES:
            if name in known:
                column = known[name].column
                db.execute(f"CREATE INDEX IF NOT EXISTS items_{column} ON items ({column}, dt)")
