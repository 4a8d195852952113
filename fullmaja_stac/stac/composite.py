"""Composites → STAC: items, tile catalogs and the collection of ``composite``'s output.

Layout, beside the L2A collection of the same catalog::

    maja-s2-l2a-composite/collection.json
    maja-s2-l2a-composite/<tile>/catalog.json
    maja-s2-l2a-composite/<tile>/<period>/<id>/<id>.json   COGs beside it

There are a dozen composites per tile and year, so the tile catalogs and the collection are
rebuilt from the item files at each run instead of being kept incrementally like the L2A side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pystac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.grid import GridExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics

from fullmaja_stac import __version__
from fullmaja_stac.jsonio import read_json, write_json
from fullmaja_stac.stac.constants import (
    COG_MEDIA_TYPE, COLLECTION_ID, COMPOSITE_COLLECTION_ID, COMPOSITE_TITLE, LICENSE, LICENSE_URL, PROCESSING_V1_2,
    PROJECTION_V1_2, PROVIDERS, ROOT_TITLE,
)
from fullmaja_stac.tiles import TILE_NAME
from fullmaja_stac.trust.paths import within

JSON_TYPE = "application/json"
PERIOD_FOLDER = r"\d{4}-\d{2}"


@dataclass(frozen=True)
class CompositeRaster:
    """One written COG of a composite, as the item describes it."""

    key: str  # "red", "count", "visual"
    filename: str
    title: str
    roles: tuple[str, ...]
    data_type: str | None  # None for the visual
    nodata: float | None
    scale: float | None
    size: int
    checksum: str
    statistics: dict[str, float] | None = None
    eo_bands: tuple[dict, ...] = ()  # the source assets' eo:bands


@dataclass(frozen=True)
class CompositeSpec:
    """What a composite is: its tile and period, its grid, the method and its sources."""

    tile: str
    period: str  # "2019-05"
    start: datetime
    end: datetime
    method: str
    epsg: int
    shape: tuple[int, int]
    transform: tuple[float, ...]
    geometry: dict
    bbox: list[float]
    sources: tuple[tuple[str, str], ...]  # (item id, absolute path of its JSON)
    bands: tuple[str, ...]
    gsd: float
    extra: dict = field(default_factory=dict)

    @property
    def item_id(self) -> str:
        return f"{self.tile}_{self.period}_{self.method}"


def composite_item(spec: CompositeSpec, rasters: list[CompositeRaster], item_path: Path, created: datetime) -> dict:
    """The item of one composite, its links relative to ``item_path``."""
    item = pystac.Item(spec.item_id, spec.geometry, spec.bbox, None, {}, start_datetime=spec.start,
                       end_datetime=spec.end, collection=COMPOSITE_COLLECTION_ID)
    props = item.properties
    props["title"] = f"{spec.period} {spec.tile} {spec.method} of {len(spec.sources)} dates"
    props["constellation"] = "sentinel-2"
    props["instruments"] = ["msi"]
    props["gsd"] = spec.gsd
    props["created"] = props["updated"] = created.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    GridExtension.ext(item, add_if_missing=True).code = f"MGRS-{spec.tile}"
    item.stac_extensions += [PROJECTION_V1_2, PROCESSING_V1_2]
    props.update({"proj:epsg": spec.epsg, "proj:code": f"EPSG:{spec.epsg}", "proj:shape": list(spec.shape),
                  "proj:transform": list(spec.transform)})
    props["processing:level"] = "L3"
    props["processing:software"] = {"fullmaja-stac": __version__}
    props["processing:lineage"] = (f"Per-pixel {spec.method} of the clear observations (EDG = 0, CLM = 0, no "
                                   f"saturation) of {len(spec.sources)} MAJA L2A items of {spec.period}")
    props["fullmaja:method"] = spec.method
    props["fullmaja:sources"] = [item_id for item_id, _ in spec.sources]
    props["fullmaja:bands"] = list(spec.bands)
    props.update(spec.extra)
    RasterExtension.add_to(item)
    FileExtension.add_to(item)
    EOExtension.add_to(item)
    for raster in rasters:
        asset = pystac.Asset(f"./{raster.filename}", raster.title, media_type=COG_MEDIA_TYPE, roles=list(raster.roles))
        item.add_asset(raster.key, asset)
        FileExtension.ext(asset).size = raster.size
        FileExtension.ext(asset).checksum = raster.checksum
        asset.extra_fields.update({"proj:shape": list(spec.shape), "proj:transform": list(spec.transform), "gsd": spec.gsd})
        if raster.eo_bands:
            EOExtension.ext(asset).bands = [Band(dict(band)) for band in raster.eo_bands]
        if raster.data_type:
            RasterExtension.ext(asset).bands = [RasterBand.create(
                data_type=DataType(raster.data_type), nodata=raster.nodata, scale=raster.scale,
                offset=0.0 if raster.scale is not None else None, spatial_resolution=spec.gsd,
                statistics=Statistics.create(**raster.statistics) if raster.statistics else None)]
    root, here = item_path.parents[4].resolve(), item_path.parent.resolve()
    item.links = [pystac.Link("root", "../../../../catalog.json", JSON_TYPE, ROOT_TITLE),
                  pystac.Link("parent", "../../catalog.json", JSON_TYPE, f"Tile {spec.tile}"),
                  pystac.Link("collection", "../../../collection.json", JSON_TYPE, COMPOSITE_TITLE)]
    for item_id, source in spec.sources:
        rel = os.path.relpath(source, here) if source and Path(source).is_relative_to(root) else source
        item.add_link(pystac.Link("derived_from", rel, "application/geo+json", item_id))
    item.stac_extensions = sorted(set(item.stac_extensions))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def item_dir(root: Path, tile: str, period: str, item_id: str) -> Path:
    return within(Path(root) / COMPOSITE_COLLECTION_ID, tile, period, item_id, what="a composite's tile or period")


def write_composite_catalogs(root: Path) -> int:
    """Rebuild the tile catalogs and the collection from the composite items on disk, and
    link the collection from the root catalog; returns the number of items."""
    import re

    folder = Path(root) / COMPOSITE_COLLECTION_ID
    items: dict[str, list[tuple[str, dict]]] = {}
    for tile_dir in sorted(p for p in folder.iterdir() if p.is_dir() and TILE_NAME.fullmatch(p.name)):
        for path in sorted(tile_dir.glob("*/*/*.json")):
            if re.fullmatch(PERIOD_FOLDER, path.parent.parent.name) and path.stem == path.parent.name:
                doc = read_json(path)
                if isinstance(doc, dict) and doc.get("type") == "Feature":
                    items.setdefault(tile_dir.name, []).append((path.relative_to(tile_dir).as_posix(), doc))
    boxes, starts, ends = [], [], []
    for tile, entries in items.items():
        cat = pystac.Catalog(f"{COMPOSITE_COLLECTION_ID}-{tile}", f"Composites of Sentinel-2 tile {tile}", title=f"Tile {tile}")
        cat.add_link(pystac.Link("root", "../../catalog.json", JSON_TYPE, ROOT_TITLE))
        cat.add_link(pystac.Link("parent", "../collection.json", JSON_TYPE, COMPOSITE_TITLE))
        for rel, doc in entries:
            cat.add_link(pystac.Link("item", f"./{rel}", "application/geo+json", doc["properties"].get("title")))
            boxes.append(doc["bbox"])
            starts.append(doc["properties"]["start_datetime"])
            ends.append(doc["properties"]["end_datetime"])
        write_json(tile_dir_path(folder, tile) / "catalog.json", cat.to_dict(include_self_link=False, transform_hrefs=False))
    if boxes:
        bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
        interval = [[datetime.fromisoformat(min(starts).replace("Z", "+00:00")),
                     datetime.fromisoformat(max(ends).replace("Z", "+00:00"))]]
    else:
        bbox, interval = [-180.0, -90.0, 180.0, 90.0], [[None, None]]
    coll = pystac.Collection(
        COMPOSITE_COLLECTION_ID, "Per-pixel composites of the clear observations of the MAJA L2A items of this "
        "catalog, one per tile and period, written by `fullmaja-stac composite`.",
        pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent(interval)), title=COMPOSITE_TITLE,
        license=LICENSE, providers=PROVIDERS, keywords=["sentinel-2", "maja", "composite", "cloud-free", "cog"])
    coll.add_link(pystac.Link("root", "../catalog.json", JSON_TYPE, ROOT_TITLE))
    coll.add_link(pystac.Link("parent", "../catalog.json", JSON_TYPE, ROOT_TITLE))
    coll.add_link(pystac.Link("license", LICENSE_URL, "text/html", "Licence Ouverte / Open Licence 2.0 (Etalab)"))
    coll.add_link(pystac.Link("derived_from", f"../{COLLECTION_ID}/collection.json", JSON_TYPE, "The L2A items"))
    for tile in items:
        coll.add_link(pystac.Link("child", f"./{tile}/catalog.json", JSON_TYPE, f"Tile {tile}"))
    write_json(folder / "collection.json", coll.to_dict(include_self_link=False, transform_hrefs=False))
    return sum(len(entries) for entries in items.values())


def tile_dir_path(folder: Path, tile: str) -> Path:
    return within(folder, tile, what="a tile")
