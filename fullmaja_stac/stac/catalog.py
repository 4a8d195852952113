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

import pystac
from filelock import FileLock, Timeout

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.jsonio import read_json, write_json
from fullmaja_stac.stac.constants import (
    COLLECTION_DESCRIPTION,
    COLLECTION_ID,
    COLLECTION_TITLE,
    KEYWORDS,
    LICENSE,
    LICENSE_URL,
    PROVIDERS,
    ROOT_DESCRIPTION,
    ROOT_ID,
    ROOT_TITLE,
)

STAGING_PREFIX = ".staging-"
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
        return [self.folder / item_id / f"{item_id}.json" for item_id in self.item_ids]


def tile_years(root: Path) -> dict[str, TileYear]:
    """The non-empty tile-years of a catalog, by name. The stamp is the size and mtime of the
    year's ``_items.json``, which every change of the year rewrites (and nothing else does)."""
    out = {}
    for index_file in sorted((Path(root) / COLLECTION_ID).glob("*/*/_items.json")):
        ids = tuple(read_json(index_file, {"items": {}})["items"])
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
        self._dirty_years: dict[Path, Placement] = {}  # year folders whose files are behind
        self._year_flush_seconds = year_flush_seconds
        self._last_year_flush = time.monotonic()

    # -- paths ---------------------------------------------------------------------------
    def year_dir(self, p: Placement) -> Path:
        return self.collection_dir / p.tile / p.year

    def item_dir(self, p: Placement) -> Path:
        return self.year_dir(p) / p.item_id

    def item_path(self, p: Placement) -> Path:
        return self.item_dir(p) / f"{p.item_id}.json"

    def staging_dir(self, p: Placement) -> Path:
        return self.year_dir(p) / f"{STAGING_PREFIX}{p.item_id}"

    # -- locking and recovery -------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".fullmaja-stac.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise FullMajaError(f"another fullmaja-stac process is writing {self.root}; wait for it to finish") from None
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
        folder = self.year_dir(p)
        if folder not in self._years:
            self._years[folder] = read_json(folder / "_items.json", {"items": {}})
        return self._years[folder]

    def has_item(self, p: Placement) -> bool:
        return self.item_path(p).exists()

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
        """Create the root catalog and an empty collection if they are missing."""
        if not (self.root / "catalog.json").exists():
            root = pystac.Catalog(ROOT_ID, ROOT_DESCRIPTION, title=ROOT_TITLE)
            root.add_link(pystac.Link("root", "./catalog.json", JSON_TYPE, ROOT_TITLE))
            root.add_link(pystac.Link("child", f"./{COLLECTION_ID}/collection.json", JSON_TYPE, COLLECTION_TITLE))
            write_json(self.root / "catalog.json", root.to_dict(include_self_link=False, transform_hrefs=False))
        if not (self.collection_dir / "collection.json").exists():
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
        write_json(staging / f"{p.item_id}.json", doc)
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
        tile_dir = self.collection_dir / tile
        years = sorted(d.name for d in tile_dir.iterdir() if (d / "_summary.json").exists() and read_json(d / "_summary.json")["count"])
        cat = pystac.Catalog(tile, f"MAJA L2A products of Sentinel-2 tile {tile}", title=f"Tile {tile}")
        cat.add_link(pystac.Link("root", "../../catalog.json", JSON_TYPE, ROOT_TITLE))
        cat.add_link(pystac.Link("parent", "../collection.json", JSON_TYPE, COLLECTION_TITLE))
        for year in years:
            cat.add_link(pystac.Link("child", f"./{year}/catalog.json", JSON_TYPE, f"{tile} {year}"))
        write_json(tile_dir / "catalog.json", cat.to_dict(include_self_link=False, transform_hrefs=False))

    def _write_collection(self, item_assets: dict) -> None:
        path = self.collection_dir / "collection.json"
        previous = read_json(path, {})
        merged_assets = dict(previous.get("item_assets", {}))
        for key, value in item_assets.items():
            merged_assets.setdefault(key, value)
        summaries = [read_json(p) for p in sorted(self.collection_dir.glob("*/*/_summary.json"))]
        total = _merge_summaries([s for s in summaries if s and s["count"]])
        tiles = sorted({t for s in summaries if s and s["count"] for t in s["grid:code"]})

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
