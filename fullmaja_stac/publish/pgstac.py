"""Publish a catalog into pgstac (PostgreSQL + PostGIS), for a shared STAC API served by
stac-fastapi-pgstac. Loading is pypgstac's; this module only decides what it loads.

Idempotent and incremental: the database remembers, in a table of ours
(``fullmaja_stac.published``), the stamp of each tile-year it received. A run upserts the
collection, then the items of the tile-years whose stamp changed, and deletes the items of
those tile-years that the catalog no longer holds (an older processing version that was
replaced). The first run into a database, or ``full=True``, loads everything and deletes
every item of the collection the catalog does not have, so pgstac mirrors the catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fullmaja_stac.analysis.consume import href_under, read_item
from fullmaja_stac.errors import FullMajaError, mask_secrets
from fullmaja_stac.jsonio import read_json
from fullmaja_stac.stac.catalog import tile_years
from fullmaja_stac.stac.constants import COLLECTION_ID

INSTALL_HINT = "in the fullmaja-stac checkout, pip install -e '.[pgstac]' (the package is not on PyPI)"
# links pgstac's API rebuilds itself; anything else (license, via…) is kept
_STRUCTURAL_LINKS = {"root", "parent", "self", "collection", "child", "item", "items"}


STAMPS_DDL = (
    "CREATE SCHEMA IF NOT EXISTS fullmaja_stac",
    "CREATE TABLE IF NOT EXISTS fullmaja_stac.published ("
    " collection text NOT NULL, part text NOT NULL, stamp text NOT NULL, PRIMARY KEY (collection, part))",
)


@dataclass(frozen=True)
class PublishReport:
    collection: str
    items: int  # in the catalog
    loaded: int  # sent to pgstac by this run
    skipped_parts: int  # tile-years already published as they are
    removed: list[str]
    pgstac_version: str
    full: bool


def masked_dsn(dsn: str) -> str:
    """The DSN with its password hidden, for messages."""
    return mask_secrets(dsn)


def _one_line(exc: Exception) -> str:
    return " ".join(line.strip() for line in str(exc).strip().splitlines())


def _keep_links(doc: dict) -> dict:
    doc["links"] = [link for link in doc.get("links", []) if link.get("rel") not in _STRUCTURAL_LINKS]
    return doc


def _prepared(item: dict, catalog: Path, base_url: str | None) -> dict:
    """An item as pgstac wants it: absolute asset hrefs (local paths, or URLs under
    ``base_url`` where the catalog folder is published), no structural links."""
    if base_url is not None:
        for asset in item["assets"].values():
            asset["href"] = href_under(asset["href"], catalog, base_url)
    return _keep_links(item)


class _Stamps:
    """What each tile-year looked like when it was last published, kept in the database.

    On a connection of its own, as the user: pypgstac's connections switch to the
    ``pgstac_ingest`` role, which may not create schemas. Where the user may not either,
    there are no stamps and every run is a full load (said in the report)."""

    def __init__(self, psycopg, dsn: str, collection: str) -> None:
        self.collection = collection
        self.conn = psycopg.connect(dsn, autocommit=True)
        try:
            for statement in STAMPS_DDL:
                self.conn.execute(statement)
            self.available = True
        except psycopg.errors.InsufficientPrivilege:
            self.available = False

    def read(self) -> dict[str, str]:
        if not self.available:
            return {}
        rows = self.conn.execute("SELECT part, stamp FROM fullmaja_stac.published WHERE collection = %s",
                                 [self.collection])
        return dict(rows.fetchall())

    def write(self, stamps: dict[str, str]) -> None:
        if not self.available:
            return
        with self.conn.transaction():
            self.conn.execute("DELETE FROM fullmaja_stac.published WHERE collection = %s", [self.collection])
            for part, stamp in sorted(stamps.items()):
                self.conn.execute("INSERT INTO fullmaja_stac.published VALUES (%s, %s, %s)",
                                  [self.collection, part, stamp])

    def close(self) -> None:
        self.conn.close()


def _year_bounds(year: str) -> tuple[str, str]:
    return f"{year}-01-01T00:00:00Z", f"{int(year) + 1:04d}-01-01T00:00:00Z"


def publish_pgstac(catalog: Path, dsn: str, base_url: str | None = None, migrate: bool = True,
                   full: bool = False, progress: Callable[[int, int], None] | None = None) -> PublishReport:
    """Load ``catalog`` into the pgstac database at ``dsn`` (migrating its schema first).
    ``progress(done, total)`` counts the items read and handed to pypgstac."""
    try:
        import psycopg
        from pypgstac.db import PgstacDB
        from pypgstac.load import Loader, Methods
        from pypgstac.migrate import Migrate
    except ImportError as exc:
        raise FullMajaError(f"publish pgstac needs pypgstac and psycopg ({exc.name} is missing): {INSTALL_HINT}") from None

    catalog = Path(catalog).resolve()
    collection = read_json(catalog / COLLECTION_ID / "collection.json", None)
    if not (catalog / "catalog.json").exists() or collection is None:
        raise FullMajaError(f"{catalog}: no catalog with a {COLLECTION_ID} collection here; run `fullmaja-stac ingest` first")
    cid = collection["id"]
    parts = tile_years(catalog)
    # what the database should remember of each part: where it came from counts too
    stamps = {name: f"{part.stamp}:{catalog}:{base_url or ''}" for name, part in parts.items()}

    try:  # pypgstac's pool would retry for 30 s and log each failure: ask once, say why
        psycopg.connect(dsn, connect_timeout=10).close()
    except psycopg.Error as exc:
        raise FullMajaError(f"cannot connect to {masked_dsn(dsn)}: {_one_line(exc)}") from None

    db, memory = PgstacDB(dsn=dsn), None
    try:
        version = Migrate(db).run_migration() if migrate else db.version
        if not version:
            raise FullMajaError(f"{masked_dsn(dsn)} has no pgstac schema; run without --no-migrate")
        memory = _Stamps(psycopg, dsn, cid)
        published = memory.read()
        full = full or not published
        todo = [name for name in parts if full or published.get(name) != stamps[name]]
        gone = [name for name in published if name not in parts]

        loader = Loader(db)
        loader.load_collections(iter([_keep_links(collection)]), insert_mode=Methods.upsert)
        to_send = sum(len(parts[name].item_ids) for name in todo)

        def items():
            for done, path in enumerate((path for name in todo for path in parts[name].item_paths()), 1):
                yield _prepared(read_item(path), catalog, base_url)
                if progress:
                    progress(done, to_send)

        if todo:
            loader.load_items(items(), insert_mode=Methods.upsert)  # streamed: pypgstac loads in chunks

        if full:
            wanted = {item_id for part in parts.values() for item_id in part.item_ids}
            stale = [row[0] for row in db.query("SELECT id FROM items WHERE collection = %s", [cid]) if row[0] not in wanted]
        else:
            stale = []
            for name in [*todo, *gone]:
                tile, year = name.rsplit("-", 1)
                start, end = _year_bounds(year)
                keep = set(parts[name].item_ids) if name in parts else set()
                rows = db.query("SELECT id FROM items WHERE collection = %s AND content->'properties'->>'grid:code' = %s"
                                " AND datetime >= %s AND datetime < %s", [cid, f"MGRS-{tile}", start, end])
                stale += [row[0] for row in rows if row[0] not in keep]
        for item_id in stale:
            db.query_one("SELECT delete_item(%s, %s)", [item_id, cid])

        memory.write(stamps)  # last: after a failure the previous stamps stay, and the work is redone
    except psycopg.Error as exc:
        raise FullMajaError(f"pgstac at {masked_dsn(dsn)} refused the load: {_one_line(exc)}") from None
    finally:
        if memory is not None:
            memory.close()
        db.close()
    in_catalog = sum(len(part.item_ids) for part in parts.values())
    return PublishReport(cid, in_catalog, to_send, len(parts) - len(todo), sorted(stale), str(version), full)
