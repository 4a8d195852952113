"""Monthly cloud-free composites per tile, written back as COGs and STAC items.

Each pixel of a composite band is the median of that month's clear observations of the
pixel (nodata where there is none), a ``count`` band says how many there were. A date's
observation of a pixel is clear when every band asked is clear there (EDG = 0, CLM = 0, the
band's SAT bit = 0, a value), so the bands of one composite pixel come from the same dates.
The median is taken on the integer values the L2A COGs store (scale/offset undone exactly),
so a composite pixel is a stored value or the half-sum of two; halves round to even.

Work goes by blocks of rows of the tile's grid, as many rows as :data:`MEMORY_BUDGET` allows
for the month's number of dates (about :data:`BYTES_PER_SAMPLE` per pixel, date and band,
measured), so a full 10980 px tile of a busy month stays within the budget. Incremental like
ingest: a composite whose sources, bands and method have not changed is not made again.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pystac

from fullmaja_stac.analysis.conditions import LoadError
from fullmaja_stac.analysis.load import _date_range, _tile, items_of, load
from fullmaja_stac.jsonio import read_json, write_json
from fullmaja_stac.stac.catalog import CatalogStore
from fullmaja_stac.trust.paths import within
from fullmaja_stac.stac.composite import (
    CompositeRaster, CompositeSpec, composite_item, item_dir, write_composite_catalogs,
)

MEMORY_BUDGET = 1 << 30  # bytes a block may take (the loaded stack and its copies)
# Peak bytes per pixel, date and band in a block: odc-stac's reads, the float32 reflectance,
# the stack of stored integers and the median's copy (tracemalloc: 60 for 4 bands, 6 dates).
BYTES_PER_SAMPLE = 16
MIN_BLOCK_ROWS = 16
METHODS = ("median",)
PERIODS = ("month",)
NODATA = -10000
VISUAL_KEYS = ("red", "green", "blue")


@dataclass
class CompositeReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def composite(catalog: Path, *, period: str = "month", start=None, end=None,
              bands: Iterable[str] = ("blue", "green", "red", "nir"), method: str = "median",
              progress: Callable[[int, int], None] | None = None,
              now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> CompositeReport:
    """Write the composites of every tile and month of ``catalog``'s L2A items in the dates
    asked; returns which were written and which were already up to date."""
    if period not in PERIODS:
        raise LoadError(f"--period {period}: only 'month' is made so far")
    if method not in METHODS:
        raise LoadError(f"--method {method}: only 'median' is made so far (a weighted WASP-like synthesis is "
                        "described in docs/NOTES.md)")
    bands = list(dict.fromkeys(bands))
    root = Path(catalog)
    first, last = _date_range(start, end)
    groups: dict[tuple[str, str], list[pystac.Item]] = defaultdict(list)
    for item in items_of(root):
        if (first is None or item.datetime >= first) and (last is None or item.datetime < last):
            groups[_tile(item), f"{item.datetime:%Y-%m}"].append(item)
    if not groups:
        raise LoadError(f"{root}: no L2A item in the dates asked")
    report = CompositeReport()
    specs = [_spec(tile, month, sorted(group, key=lambda i: (i.datetime, i.id)), bands, method)
             for (tile, month), group in sorted(groups.items())]
    store = CatalogStore(root)
    with store.lock():
        todo = []
        for spec, group in specs:
            path = within(item_dir(root, spec.tile, spec.period, spec.item_id), f"{spec.item_id}.json")
            old = read_json(path, {}) or {}
            props = old.get("properties", {}) if isinstance(old, dict) else {}
            same = (props.get("fullmaja:sources") == [i for i, _ in spec.sources]
                    and props.get("fullmaja:bands") == bands and props.get("fullmaja:method") == method)
            (report.unchanged.append(spec.item_id) if same else todo.append((spec, group)))
        total = sum(-(-spec.shape[0] // block_rows(spec, len(group))) for spec, group in todo)
        done = 0
        for spec, group in todo:
            for _ in _write_composite(root, spec, group, now()):
                done += 1
                if progress:
                    progress(done, total)
            report.written.append(spec.item_id)
        write_composite_catalogs(root)
        store.ensure_root()
    return report


def _spec(tile: str, month: str, items: list[pystac.Item], bands: list[str], method: str):
    from shapely.geometry import mapping, shape
    from shapely.ops import unary_union

    first = items[0]
    missing = [band for band in bands if band not in first.assets]
    if missing:
        raise LoadError(f"item {first.id} has no asset {', '.join(map(repr, missing))}")
    grid = first.assets[bands[0]].extra_fields
    if not grid.get("proj:shape") or not grid.get("proj:transform"):
        raise LoadError(f"item {first.id}: asset {bands[0]!r} has no proj:shape/proj:transform to make a composite on")
    year, number = map(int, month.split("-"))
    begin = datetime(year, number, 1, tzinfo=timezone.utc)
    finish = (begin + timedelta(days=32)).replace(day=1) - timedelta(microseconds=1)
    footprint = unary_union([shape(i.geometry) for i in items if i.geometry])
    spec = CompositeSpec(
        tile=tile, period=month, start=begin, end=finish, method=method,
        epsg=int(first.properties.get("proj:epsg") or str(first.properties["proj:code"]).split(":")[1]),
        shape=tuple(grid["proj:shape"]), transform=tuple(grid["proj:transform"][:6]),
        geometry=mapping(footprint), bbox=list(footprint.bounds),
        sources=tuple((i.id, _self_path(i)) for i in items), bands=tuple(bands),
        gsd=float(grid.get("gsd") or abs(grid["proj:transform"][0])))
    return spec, items


def block_rows(spec: CompositeSpec, dates: int) -> int:
    """Rows per block so that a block of ``dates`` dates stays within MEMORY_BUDGET."""
    height, width = spec.shape
    per_row = width * max(dates, 1) * (len(spec.bands) * BYTES_PER_SAMPLE + 4)
    return max(MIN_BLOCK_ROWS, min(height, MEMORY_BUDGET // per_row))


def _self_path(item: pystac.Item) -> str:
    href = item.get_self_href() or ""
    return href.removeprefix("file://")


def _write_composite(root: Path, spec: CompositeSpec, items: list[pystac.Item], created: datetime):
    """Write one composite into a staging folder, then move it into place; yields per block."""
    import rasterio
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from fullmaja_stac.ingest.cog import convert, convert_visual

    final = item_dir(root, spec.tile, spec.period, spec.item_id)
    staging = final.parent / f".staging-{final.name}"  # path-ok: final's name was checked by within
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        height, width = spec.shape
        geobox = GeoBox((height, width), Affine(*spec.transform), f"EPSG:{spec.epsg}")
        profile = dict(driver="GTiff", width=width, height=height, count=1, crs=f"EPSG:{spec.epsg}",
                       transform=Affine(*spec.transform), tiled=True, blockxsize=512, blockysize=512)
        raw = {band: within(staging, f"{band}.raw.tif", what="a band name") for band in [*spec.bands, "count"]}
        named = {key: within(staging, f"{spec.item_id}_{key}.tif", what="a band name") for key in [*spec.bands, "count", "visual"]}
        scales = {band: _scale_offset(items[0].assets[band]) for band in spec.bands}
        with rasterio.Env(GDAL_NUM_THREADS="1"):
            outs = {band: rasterio.open(path, "w", dtype="uint16" if band == "count" else "int16",
                                        nodata=None if band == "count" else NODATA, **profile)
                    for band, path in raw.items()}
            try:
                rows = block_rows(spec, len(items))
                for row in range(0, height, rows):
                    block = _block(items, list(spec.bands), geobox[row:min(row + rows, height), :], scales)
                    window = ((row, row + block["count"].shape[0]), (0, width))
                    for band, values in block.items():
                        outs[band].write(values, 1, window=window)
                    yield row
            finally:
                for out in outs.values():
                    out.close()
        rasters = []
        for band in spec.bands:
            scale, offset = scales[band]
            cog = convert(str(raw[band]), str(named[band]), 1, NODATA, "average", True,
                          scale, offset, f"{band} {spec.method} of clear reflectances")
            source = items[0].assets[band]
            rasters.append(CompositeRaster(band, Path(cog.path).name, f"{band} ({spec.method} of clear observations)",
                                           ("data", "reflectance"), "int16", NODATA, scale, cog.size, cog.checksum,
                                           cog.statistics, tuple(source.extra_fields.get("eo:bands", ()))))
        cog = convert(str(raw["count"]), str(named["count"]), 1, None, "nearest", True,
                      description="number of clear observations")
        rasters.append(CompositeRaster("count", Path(cog.path).name, "Clear observations per pixel", ("data",),
                                       "uint16", None, None, cog.size, cog.checksum, cog.statistics))
        if all(key in spec.bands for key in VISUAL_KEYS):
            scale, offset = scales["red"]
            cog = convert_visual([str(raw[k]) for k in VISUAL_KEYS], str(named["visual"]),
                                 NODATA, 1 / scale, compress_threads=1)
            rasters.append(CompositeRaster("visual", Path(cog.path).name, "True colour (red, green, blue)", ("visual",),
                                           None, None, None, cog.size, cog.checksum))
        for path in raw.values():
            path.unlink()
        item_path = within(final, f"{spec.item_id}.json")
        write_json(within(staging, f"{spec.item_id}.json"), composite_item(spec, rasters, item_path, created))
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _scale_offset(asset: pystac.Asset) -> tuple[float, float]:
    bands = asset.extra_fields.get("raster:bands") or [{}]
    return float(bands[0].get("scale", 1.0)), float(bands[0].get("offset", 0.0))


def _block(items: list[pystac.Item], bands: list[str], geobox, scales) -> dict[str, np.ndarray]:
    """The composite values of one block of rows: int16 per band and the uint16 count."""
    import bottleneck

    from shapely.geometry import shape

    area = shape(geobox.extent.to_crs("EPSG:4326").json)
    inside = [i for i in items if i.geometry is None or shape(i.geometry).intersects(area)]
    height, width = geobox.shape
    if not inside:
        empty = np.full((height, width), NODATA, np.int16)
        return {**{band: empty for band in bands}, "count": np.zeros((height, width), np.uint16)}
    ds = load(inside, bands=bands, geobox=geobox, mask="clear", groupby="solar_day")
    # back to the stored integers (exact), NaN where masked
    stack = np.stack([np.rint((ds[band].values - scales[band][1]) / scales[band][0]) for band in bands])
    valid = ~np.isnan(stack).any(axis=0)
    count = valid.sum(axis=0)
    out = {}
    for i, band in enumerate(bands):
        values = np.where(valid, stack[i], np.nan)
        with np.errstate(invalid="ignore"):
            median = bottleneck.nanmedian(values, axis=0) if values.shape[0] else np.full((height, width), np.nan)
        out[band] = np.where(count > 0, np.rint(median), NODATA).astype(np.int16)
    out["count"] = count.astype(np.uint16)
    return out
