"""Publish a catalog into pgstac (PostgreSQL + PostGIS), for a shared STAC API served by
stac-fastapi-pgstac. Loading is pypgstac's; this module only prepares what it loads.

Idempotent: the collection and items are upserted, and items of the collection that the
catalog no longer holds (an older processing version that was replaced) are deleted, so
pgstac mirrors the catalog after every run, however often it is repeated.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fullmaja_stac.consume import href_under, item_files, read_item
from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.stac.catalog import read_json
from fullmaja_stac.stac.constants import COLLECTION_ID

INSTALL_HINT = "pip install 'fullmaja-stac[pgstac]'"
# links pgstac's API rebuilds itself; anything else (license, via…) is kept
_STRUCTURAL_LINKS = {"root", "parent", "self", "collection", "child", "item", "items"}


@dataclass(frozen=True)
class PublishReport:
    collection: str
    items: int
    removed: list[str]
    pgstac_version: str


def masked_dsn(dsn: str) -> str:
    """The DSN with its password hidden, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)


def _one_line(exc: Exception) -> str:
    return " ".join(line.strip() for line in str(exc).strip().splitlines())


def _keep_links(doc: dict) -> dict:
    doc["links"] = [link for link in doc.get("links", []) if link.get("rel") not in _STRUCTURAL_LINKS]
    return doc


def publishable_items(catalog: Path, base_url: str | None = None, seen: set[str] | None = None) -> Iterator[dict]:
    """The catalog's items, one at a time, as pgstac wants them: absolute asset hrefs (local
    paths, or URLs under ``base_url`` where the catalog folder is published), no structural
    links. Their ids are added to ``seen`` as they go."""
    for path in item_files(Path(catalog)):
        item = read_item(path)
        if base_url is not None:
            for asset in item["assets"].values():
                asset["href"] = href_under(asset["href"], catalog, base_url)
        if seen is not None:
            seen.add(item["id"])
        yield _keep_links(item)


def publish_pgstac(catalog: Path, dsn: str, base_url: str | None = None, migrate: bool = True) -> PublishReport:
    """Load ``catalog`` into the pgstac database at ``dsn`` (migrating its schema first)."""
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
    wanted: set[str] = set()
    items = publishable_items(catalog, base_url, wanted)  # streamed: pypgstac loads in chunks
    first = next(items, None)

    try:  # pypgstac's pool would retry for 30 s and log each failure: ask once, say why
        psycopg.connect(dsn, connect_timeout=10).close()
    except psycopg.Error as exc:
        raise FullMajaError(f"cannot connect to {masked_dsn(dsn)}: {_one_line(exc)}") from None

    db = PgstacDB(dsn=dsn)
    try:
        version = Migrate(db).run_migration() if migrate else db.version
        if not version:
            raise FullMajaError(f"{masked_dsn(dsn)} has no pgstac schema; run without --no-migrate")
        loader = Loader(db)
        loader.load_collections(iter([_keep_links(collection)]), insert_mode=Methods.upsert)
        if first is not None:
            loader.load_items(itertools.chain([first], items), insert_mode=Methods.upsert)
        stale = [row[0] for row in db.query("SELECT id FROM items WHERE collection = %s", [collection["id"]])
                 if row[0] not in wanted]
        for item_id in stale:
            db.query_one("SELECT delete_item(%s, %s)", [item_id, collection["id"]])
    except psycopg.Error as exc:
        raise FullMajaError(f"pgstac at {masked_dsn(dsn)} refused the load: {_one_line(exc)}") from None
    finally:
        db.close()
    return PublishReport(collection["id"], len(wanted), sorted(stale), str(version))
