"""The static catalog on disk: incremental, atomic, one writer at a time.

Layout (relative links only, so the folder can be copied anywhere)::

    catalog.json                              root catalog
    maja-s2-l2a/collection.json               collection (extent, summaries, item_assets)
    maja-s2-l2a/<tile>/catalog.json           one sub-catalog per tile
    maja-s2-l2a/<tile>/<year>/catalog.json    one per year, linking its items
    maja-s2-l2a/<tile>/<year>/<id>/<id>.json  item, COGs beside it
    maja-s2-l2a/<tile>/<year>/_items.json     our index of that year (not STAC)
    maja-s2-l2a/<tile>/<year>/_summary.json   aggregate of that year (not STAC)

Adding an item writes its own JSON and, at most every few seconds and at the end of the
ingest, its year folder's files; the tile catalogs and the collection are brought up to date
once per ingest (:meth:`CatalogStore.flush`), the collection from the per-year summaries,
never from the items. Every file is
written to a temporary name and renamed, and a JSON file whose content would not change is
not rewritten, so a no-op ingest changes no byte.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import orjson
import pystac
from filelock import FileLock, Timeout

from fullmaja_stac.errors import FullMajaError, printable_path, warn_line, writable_folder
from fullmaja_stac.jsonio import read_json, write_json
from fullmaja_stac.tiles import TILE_NAME
from fullmaja_stac.trust.paths import name_problem, safe_name, within
from fullmaja_stac.stac.constants import (
    COLLECTION_DESCRIPTION,
    COLLECTION_ID,
    COLLECTION_TITLE,
    COMPOSITE_COLLECTION_ID,
    COMPOSITE_TITLE,
    KEYWORDS,
    LICENSE,
    LICENSE_URL,
    PROVIDERS,
    ROOT_DESCRIPTION,
    ROOT_ID,
    ROOT_TITLE,
)

STAGING_PREFIX = ".staging-"
LOCK_NAME = ".fullmaja-stac.lock"
YEAR_FOLDER = re.compile(r"\d{4}")
VERSION_SUFFIX = re.compile(r"_V(\d+)-(\d+)$")
ITEM_ASSET_DROP = ("href", "file:size", "file:checksum", "proj:shape", "proj:transform", "gsd")
JSON_TYPE = "application/json"
YEAR_FLUSH_SECONDS = 5.0  # how stale a year catalog may get during a long ingest


def split_version(item_id: str) -> tuple[str, tuple[int, ...]]:
    """``…_C_V2-2`` → (``…_C``, (2, 2)); ids without a version get ()."""
    m = VERSION_SUFFIX.search(item_id)
    if not m:
        return item_id, ()
    return item_id[: m.start()], (int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class Placement:
    tile: str
    year: str
    item_id: str


def placement(item_id: str, tile: str, when: datetime) -> Placement:
    return Placement(tile, f"{when.year:04d}", item_id)


@dataclass(frozen=True)
class TileYear:
    """One year folder of one tile, as the catalog's readers that work incrementally see it."""

    tile: str
    year: str
    folder: Path
    stamp: str  # changes whenever an item of the folder is added, replaced or removed
    item_ids: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.tile}-{self.year}"

    def item_paths(self) -> list[Path]:
        """The item files the year's index names (ids checked: the index is a file anyone may edit)."""
        return [within(self.folder, item_id, f"{item_id}.json", what="an id in _items.json") for item_id in self.item_ids]


def tile_years(root: Path) -> dict[str, TileYear]:
    """The non-empty tile-years of a catalog, by name. The stamp is the size and mtime of the
    year's ``_items.json``, which every change of the year rewrites (and nothing else does)."""
    out = {}
    for index_file in sorted((Path(root) / COLLECTION_ID).glob("*/*/_items.json")):
        index = read_derived(index_file, _valid_index)
        if index is None:
            raise FullMajaError(f"{printable_path(index_file)} is damaged; `fullmaja-stac repair "
                                f"{printable_path(root)}` rebuilds it from the item files")
        ids = tuple(i for i in index["items"] if name_problem(i) is None)
        if ids:
            stat = index_file.stat()
            entry = TileYear(index_file.parent.parent.name, index_file.parent.name, index_file.parent,
                             f"{stat.st_size}:{stat.st_mtime_ns}", ids)
            out[entry.name] = entry
    return out


class CatalogStore:
    """Reads and writes one catalog folder. Hold :meth:`lock` while writing."""

    def __init__(self, root: Path, year_flush_seconds: float = YEAR_FLUSH_SECONDS) -> None:
        self.root = Path(root)
        self.collection_dir = self.root / COLLECTION_ID
        self._touched_tiles: set[str] = set()
        self._new_item_assets: dict = {}
        self._years: dict[Path, dict] = {}  # year folder -> its index, read once per run
        self._year_dirs: dict[tuple[str, str], Path] = {}  # (tile, year) -> its folder, checked once
        self._dirty_years: dict[Path, Placement] = {}  # year folders whose files are behind
        self._year_flush_seconds = year_flush_seconds
        self._last_year_flush = time.monotonic()

    # -- paths ---------------------------------------------------------------------------
    # Every path below the collection is made here, from names checked by trust.paths.within.
    def year_dir(self, p: Placement) -> Path:
        key = (p.tile, p.year)
        if key not in self._year_dirs:
            self._year_dirs[key] = within(self.collection_dir, p.tile, p.year, what="a tile or year")
        return self._year_dirs[key]

    def item_dir(self, p: Placement) -> Path:
        return within(self.year_dir(p), p.item_id, what="an item id")

    def item_path(self, p: Placement) -> Path:
        return within(self.year_dir(p), p.item_id, f"{p.item_id}.json", what="an item id")

    def staging_dir(self, p: Placement) -> Path:
        name = f"{STAGING_PREFIX}{safe_name(p.item_id, 'an item id')}"
        return self.year_dir(p) / name  # path-ok: a checked id behind our own prefix

    # -- locking and recovery -------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        writable_folder(self.root, "the catalog")
        lock_path = self.root / LOCK_NAME
        if lock_path.exists() and not lock_path.is_file():
            raise FullMajaError(f"{printable_path(lock_path)} should be our lock file but is a folder or something "
                                "else; remove it and run the same command again")
        lock = FileLock(str(lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise FullMajaError(f"another fullmaja-stac process is writing {self.root}; wait for it to finish") from None
        except OSError as exc:
            raise FullMajaError(f"cannot take the lock {printable_path(lock_path)} ({exc.strerror or exc})") from None
        try:
            yield
        finally:
            lock.release()

    def clean_staging(self) -> int:
        """Remove what a killed ingest left half-written (never linked from the catalog)."""
        leftovers = list(self.collection_dir.glob(f"*/*/{STAGING_PREFIX}*")) if self.collection_dir.exists() else []
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        return len(leftovers)

    # -- state ---------------------------------------------------------------------------
    def year_index(self, p: Placement) -> dict:
        """The year's index of items; one that is damaged (truncated, edited, of the wrong
        shape) is rebuilt from the item files, which are the truth it is derived from."""
        folder = self.year_dir(p)
        if folder not in self._years:
            index = read_derived(folder / "_items.json", _valid_index, {"items": {}})
            if index is None:
                index = self._rebuild_index(folder)
                self._dirty_years[folder] = p
                self._touched_tiles.add(p.tile)
                warn_line(f"{printable_path(folder / '_items.json')} was damaged: rebuilt from the item files")
            self._years[folder] = index
        return self._years[folder]

    def _rebuild_index(self, folder: Path) -> dict:
        """A year's index from the item files in its folder (see :func:`_year_items`)."""
        return {"items": {item_id: _index_entry(item) for item_id, item in _year_items(folder)[0].items()}}

    def has_item(self, p: Placement) -> bool:
        """Whether the item is in place and whole: a damaged item file is named, and its
        product is converted again."""
        path = self.item_path(p)
        return path.exists() and read_item_file(path, p.item_id) is not None

    def versions_of(self, p: Placement) -> dict[str, tuple[int, ...]]:
        """Other versions of the same product already in the catalog: id → version."""
        base, _ = split_version(p.item_id)
        out = {}
        for item_id in self.year_index(p)["items"]:
            other_base, version = split_version(item_id)
            if other_base == base and item_id != p.item_id:
                out[item_id] = version
        return out

    # -- writing -------------------------------------------------------------------------
    def ensure_root(self) -> None:
        """Create the root catalog (linking every collection the folder holds) and an empty
        collection if they are missing."""
        children = [(COLLECTION_ID, COLLECTION_TITLE)] + [
            (cid, title) for cid, title in ((COMPOSITE_COLLECTION_ID, COMPOSITE_TITLE),)
            if (self.root / cid / "collection.json").is_file()]
        current = read_derived(self.root / "catalog.json", _valid_stac("Catalog"), {})
        linked = {link.get("href") for link in (current or {}).get("links", []) if link.get("rel") == "child"}
        if not current or any(f"./{cid}/collection.json" not in linked for cid, _ in children):
            root = pystac.Catalog(ROOT_ID, ROOT_DESCRIPTION, title=ROOT_TITLE)
            root.add_link(pystac.Link("root", "./catalog.json", JSON_TYPE, ROOT_TITLE))
            for cid, title in children:
                root.add_link(pystac.Link("child", f"./{cid}/collection.json", JSON_TYPE, title))
            write_json(self.root / "catalog.json", root.to_dict(include_self_link=False, transform_hrefs=False))
        collection = read_derived(self.collection_dir / "collection.json", _valid_stac("Collection"), {})
        if collection is None:  # damaged: its item_assets are rebuilt from every item
            warn_line(f"{printable_path(self.collection_dir / 'collection.json')} was damaged: rebuilt")
            self.repair()
        elif not collection:
            self._write_collection(item_assets={})

    def commit(self, p: Placement, item: pystac.Item, staging: Path) -> None:
        """Move a complete staged item folder into place, then link it."""
        final = self.item_dir(p)
        item.set_self_href(None)
        item.links = [
            pystac.Link("root", "../../../../catalog.json", JSON_TYPE, ROOT_TITLE),
            pystac.Link("parent", "../catalog.json", JSON_TYPE),
            pystac.Link("collection", "../../../collection.json", JSON_TYPE, COLLECTION_TITLE),
        ]
        doc = item.to_dict(include_self_link=False, transform_hrefs=False)
        write_json(within(staging, f"{p.item_id}.json", what="an item id"), doc)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        self.link(p, doc)

    def link(self, p: Placement, item: dict) -> None:
        """Record an item (already in its folder) in its year's index; the year's files are
        written every few seconds and at :meth:`flush`, with the tile and the collection."""
        self.year_index(p)["items"][p.item_id] = _index_entry(item)
        self._year_changed(p, item.get("assets", {}))

    def relink_existing(self, p: Placement) -> bool:
        """Link an item whose folder is complete but not yet linked (a killed ingest)."""
        self._touched_tiles.add(p.tile)  # its tile catalog may not have been written either
        if p.item_id in self.year_index(p)["items"]:
            return False
        self.link(p, read_json(self.item_path(p)))
        return True

    def remove(self, p: Placement) -> None:
        """Unlink and delete one item (replaced by a newer version): the year's files are
        rewritten at once, so that no catalog on disk links a deleted folder."""
        self.year_index(p)["items"].pop(p.item_id, None)
        self._year_changed(p, {})
        self._flush_years()
        shutil.rmtree(self.item_dir(p), ignore_errors=True)

    def _year_changed(self, p: Placement, assets: dict) -> None:
        self._dirty_years[self.year_dir(p)] = p
        self._touched_tiles.add(p.tile)
        for key, value in _item_assets(assets).items():
            self._new_item_assets.setdefault(key, value)
        if time.monotonic() - self._last_year_flush >= self._year_flush_seconds:
            self._flush_years()  # long ingests show their items as they go

    def _flush_years(self) -> None:
        for year_dir, p in sorted(self._dirty_years.items()):
            self._write_year(p, self._years[year_dir])
        self._dirty_years.clear()
        self._last_year_flush = time.monotonic()

    def _write_year(self, p: Placement, index: dict) -> None:
        year_dir = self.year_dir(p)
        items = dict(sorted(index["items"].items()))
        index = {"items": items}
        cat = pystac.Catalog(f"{p.tile}-{p.year}", f"MAJA L2A products of tile {p.tile} acquired in {p.year}",
                             title=f"{p.tile} {p.year}")
        cat.add_link(pystac.Link("root", "../../../catalog.json", JSON_TYPE, ROOT_TITLE))
        cat.add_link(pystac.Link("parent", "../catalog.json", JSON_TYPE, f"Tile {p.tile}"))
        for item_id, entry in items.items():
            cat.add_link(pystac.Link("item", f"./{item_id}/{item_id}.json", "application/geo+json", entry.get("title")))
        write_json(year_dir / "_items.json", index)
        write_json(year_dir / "_summary.json", _summarize(items.values()))
        write_json(year_dir / "catalog.json", cat.to_dict(include_self_link=False, transform_hrefs=False))

    def flush(self) -> None:
        """Write the year files still behind, then the catalogs of the tiles this run touched
        and the collection, once.

        A run killed before its flush leaves a valid catalog (items whose year files were not
        written yet are invisible, their folders complete); the next run that is given those
        products links them without converting anything again.
        """
        self._flush_years()
        for tile in sorted(self._touched_tiles):
            self._write_tile(tile)
        self._write_collection(item_assets=self._new_item_assets)
        self._touched_tiles.clear()
        self._new_item_assets = {}

    def _write_tile(self, tile: str) -> None:
        tile_dir = within(self.collection_dir, tile, what="a tile")
        years = sorted(year for year, summary in self._summaries(tile_dir) if summary and summary["count"])
        cat = pystac.Catalog(tile, f"MAJA L2A products of Sentinel-2 tile {tile}", title=f"Tile {tile}")
        cat.add_link(pystac.Link("root", "../../catalog.json", JSON_TYPE, ROOT_TITLE))
        cat.add_link(pystac.Link("parent", "../collection.json", JSON_TYPE, COLLECTION_TITLE))
        for year in years:
            cat.add_link(pystac.Link("child", f"./{year}/catalog.json", JSON_TYPE, f"{tile} {year}"))
        write_json(tile_dir / "catalog.json", cat.to_dict(include_self_link=False, transform_hrefs=False))

    def _summaries(self, tile_dir: Path) -> list[tuple[str, dict]]:
        """(year, summary) of a tile's year folders; a damaged ``_summary.json`` is rebuilt
        from the year's index (itself rebuilt from the items if it is damaged too)."""
        out = []
        for year_dir in sorted(tile_dir.iterdir()):
            path = year_dir / "_summary.json"
            if not YEAR_FOLDER.fullmatch(year_dir.name) or not path.exists():
                continue
            summary = read_derived(path, _valid_summary)
            if summary is None:
                p = Placement(tile_dir.name, year_dir.name, "")
                warn_line(f"{printable_path(path)} was damaged: rebuilt from the year's items")
                self._write_year(p, self.year_index(p))
                summary = read_derived(path, _valid_summary)
            out.append((year_dir.name, summary))
        return out

    def repair(self) -> list[str]:
        """Rebuild every file that is not an item or a COG (year indexes, summaries, year and
        tile catalogs, the collection and its item_assets, the root) from the item files.
        Returns the damaged item files it found (they are left out; ingest their products
        again)."""
        damaged: list[str] = []
        item_assets: dict = {}
        self._years.clear()
        for tile_dir in sorted(self.collection_dir.iterdir()) if self.collection_dir.is_dir() else []:
            if not tile_dir.is_dir() or not TILE_NAME.fullmatch(tile_dir.name):
                continue
            for year_dir in sorted(tile_dir.iterdir()):
                if not year_dir.is_dir() or not YEAR_FOLDER.fullmatch(year_dir.name):
                    continue
                p = Placement(tile_dir.name, year_dir.name, "")
                items, bad = _year_items(year_dir)
                damaged += bad
                for item in items.values():
                    for key, value in _item_assets(item["assets"]).items():
                        item_assets.setdefault(key, value)
                index = {"items": {item_id: _index_entry(item) for item_id, item in items.items()}}
                self._years[year_dir] = index
                self._write_year(p, index)
            self._write_tile(tile_dir.name)
        (self.collection_dir / "collection.json").unlink(missing_ok=True)  # its item_assets start afresh
        (self.root / "catalog.json").unlink(missing_ok=True)
        self.ensure_root()
        self._write_collection(item_assets=item_assets)
        return damaged

    def _write_collection(self, item_assets: dict) -> None:
        path = self.collection_dir / "collection.json"
        previous = read_derived(path, _valid_stac("Collection"), {}) or {}
        merged_assets = dict(previous.get("item_assets", {}))
        for key, value in item_assets.items():
            merged_assets.setdefault(key, value)
        tile_dirs = sorted(self.collection_dir.iterdir()) if self.collection_dir.is_dir() else []
        summaries = [summary for tile_dir in tile_dirs
                     if tile_dir.is_dir() and TILE_NAME.fullmatch(tile_dir.name)
                     for _, summary in self._summaries(tile_dir) if summary is not None]
        total = _merge_summaries([s for s in summaries if s["count"]])
        tiles = sorted({t for s in summaries if s["count"] for t in s["grid:code"]})

        if total["count"]:
            bbox = total["bbox"]
            interval = [[_parse(total["start"]), _parse(total["end"])]]
        else:  # an empty collection still needs a valid extent
            bbox = [-180.0, -90.0, 180.0, 90.0]
            interval = [[None, None]]
        extent = pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent(interval))
        coll = pystac.Collection(
            COLLECTION_ID, COLLECTION_DESCRIPTION, extent, title=COLLECTION_TITLE, license=LICENSE,
            keywords=KEYWORDS, providers=PROVIDERS,
            summaries=pystac.Summaries(_summaries_dict(total)) if total["count"] else None,
        )
        coll.stac_extensions = sorted({
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
        })
        coll.add_link(pystac.Link("root", "../catalog.json", JSON_TYPE, ROOT_TITLE))
        coll.add_link(pystac.Link("parent", "../catalog.json", JSON_TYPE, ROOT_TITLE))
        coll.add_link(pystac.Link("license", LICENSE_URL, "text/html", "Licence Ouverte / Open Licence 2.0 (Etalab)"))
        for code in tiles:
            tile = code.removeprefix("MGRS-")
            coll.add_link(pystac.Link("child", f"./{tile}/catalog.json", JSON_TYPE, f"Tile {tile}"))
        data = coll.to_dict(include_self_link=False, transform_hrefs=False)
        if merged_assets:
            data["item_assets"] = dict(sorted(merged_assets.items()))
        write_json(path, data)


def repair_catalog(root: Path) -> list[str]:
    """:meth:`CatalogStore.repair` under the catalog's lock; the damaged item files found."""
    root = Path(root)
    if not (root / "catalog.json").exists() and not (root / COLLECTION_ID).is_dir():
        raise FullMajaError(f"{printable_path(root)}: no catalog here (no catalog.json, no {COLLECTION_ID}/)")
    store = CatalogStore(root)
    with store.lock():
        store.clean_staging()
        return store.repair()


def _year_items(folder: Path) -> tuple[dict[str, dict], list[str]]:
    """The whole items of a year folder, by id, each file read once, and the damaged item
    files found there (named, left out: ingesting their products again replaces them)."""
    items, damaged = {}, []
    for item_dir in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not item_dir.is_dir() or name_problem(item_dir.name) is not None:
            continue  # staging folders (hidden), anything that is not an item's folder
        path = within(item_dir, f"{item_dir.name}.json", what="an item folder")
        item = read_item_file(path, item_dir.name)
        if item is None:
            damaged.append(printable_path(path))
        else:
            items[item_dir.name] = item
    return items, damaged


def read_derived(path: Path, valid, default=None):
    """A bookkeeping or catalog JSON file we wrote, or ``default`` if it is missing; None if
    it is damaged (not JSON, or not of the shape ``valid`` checks)."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return default
    except (orjson.JSONDecodeError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None
    try:
        return data if valid(data) else None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None


def read_item_file(path: Path, item_id: str) -> dict | None:
    """An item file as a dict if it is whole (JSON, a Feature with this id, properties with
    a datetime, assets); None, with one line naming it, if it is damaged."""
    item = read_derived(path, lambda d: isinstance(d, dict) and d.get("type") == "Feature" and d.get("id") == item_id
                        and isinstance(d.get("properties"), dict) and isinstance(d["properties"].get("datetime"), str)
                        and isinstance(d.get("assets"), dict) and isinstance(d.get("bbox"), list))
    if item is None and path.exists():
        warn_line(f"{printable_path(path)} is damaged (not a whole STAC item): its product will be converted again "
                  "when it is ingested")
    return item


def _valid_index(d) -> bool:
    return isinstance(d, dict) and isinstance(d.get("items"), dict) and all(
        isinstance(e, dict) and isinstance(e.get("datetime"), str) and isinstance(e.get("bbox"), list) and len(e["bbox"]) == 4
        for e in d["items"].values())


def _valid_summary(d) -> bool:
    if not (isinstance(d, dict) and isinstance(d.get("count"), int)):
        return False
    if not d["count"]:
        return True
    return (len(d["bbox"]) == 4 and all(isinstance(v, (int, float)) for v in d["bbox"]) and isinstance(d["start"], str)
            and isinstance(d["end"], str) and all(isinstance(d[k], list) for k in
                                                  ("platform", "grid:code", "sat:relative_orbit", "gsd", "eo:cloud_cover")))


def _valid_stac(kind: str):
    return lambda d: isinstance(d, dict) and d.get("type") == kind and isinstance(d.get("links"), list)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _index_entry(item: dict) -> dict:
    props = item["properties"]
    return {
        "title": props.get("title"),
        "datetime": props["datetime"],
        "bbox": item["bbox"],
        "platform": props.get("platform"),
        "grid:code": props.get("grid:code"),
        "sat:relative_orbit": props.get("sat:relative_orbit"),
        "eo:cloud_cover": props.get("eo:cloud_cover"),
        "eo:snow_cover": props.get("eo:snow_cover"),
        "gsd": props.get("gsd"),
    }


def _summarize(entries) -> dict:
    """Aggregate of a year's index entries: each entry is a summary of one item."""
    return _merge_summaries([
        {"count": 1, "bbox": e["bbox"], "start": e["datetime"], "end": e["datetime"],
         **{k: [e[k]] if e.get(k) is not None else [] for k in ("platform", "grid:code", "sat:relative_orbit", "gsd")},
         **{k: [e[k], e[k]] if e.get(k) is not None else [] for k in ("eo:cloud_cover", "eo:snow_cover")}}
        for e in entries
    ])


def _merge_summaries(summaries: list[dict]) -> dict:
    out: dict = {"count": sum(s["count"] for s in summaries)}
    if not out["count"]:
        return out
    out["bbox"] = [min(s["bbox"][0] for s in summaries), min(s["bbox"][1] for s in summaries),
                   max(s["bbox"][2] for s in summaries), max(s["bbox"][3] for s in summaries)]
    out["start"] = min(s["start"] for s in summaries)
    out["end"] = max(s["end"] for s in summaries)
    for key in ("platform", "grid:code", "sat:relative_orbit", "gsd"):
        out[key] = sorted({v for s in summaries for v in s.get(key, [])})
    for key in ("eo:cloud_cover", "eo:snow_cover"):
        ranges = [s[key] for s in summaries if s.get(key)]
        out[key] = [min(r[0] for r in ranges), max(r[1] for r in ranges)] if ranges else []
    return out


def _summaries_dict(total: dict) -> dict:
    out = {
        "constellation": ["sentinel-2"],
        "instruments": ["msi"],
        "platform": total["platform"],
        "grid:code": total["grid:code"],
        "sat:relative_orbit": total["sat:relative_orbit"],
        "gsd": total["gsd"],
    }
    for key in ("eo:cloud_cover", "eo:snow_cover"):
        if total.get(key):
            out[key] = {"minimum": total[key][0], "maximum": total[key][1]}
    return out


def _item_assets(assets: dict) -> dict:
    """Per-collection description of each asset key: everything but per-item values."""
    return {key: {k: v for k, v in asset.items() if k not in ITEM_ASSET_DROP} for key, asset in assets.items()}
