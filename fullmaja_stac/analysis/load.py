"""From a catalog (or a STAC search) to cloud-free reflectance in one call, on odc-stac.

Why not odc-stac alone: it ignores ``classification:bitfields``, does not apply
``raster:bands`` scale/offset, and fuses the items of one solar day by nodata, and masks
have none, so where two tiles overlap one item's mask would be applied to another item's
pixels. So odc-stac loads every item as its own time slice (``groupby="id"``) with its
bands (bilinear, or ``resampling=``) and its masks (nearest, on the grid of each band's own
resolution group: a 20 m band is masked by the 20 m masks), each slice is masked with the
bits its own item declares (:mod:`.conditions`) and scaled, and only then are the slices of
one solar day merged, the earliest clear pixel winning (what odc-stac's fuser does).
odc-stac was chosen over stackstac because it resamples bands and masks differently in one
call and loads several UTM zones onto one grid given ``crs=`` (bench_load.py measures it).
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta, timezone
from functools import reduce
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pystac
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension

from fullmaja_stac.analysis.conditions import (
    Condition, LoadError, bit_value, resolve, saturation_bitfield,
)
from fullmaja_stac.stac.constants import COLLECTION_ID

DEFAULT_BANDS = ("blue", "green", "red", "nir")
MASK_FAMILIES = ("edg", "clm", "mg2", "sat")


def load(source: Any, *, bbox: tuple[float, float, float, float] | None = None,
         bands: Iterable[str] | str = DEFAULT_BANDS, resolution: float = 10, crs: str | None = None,
         start: str | date | None = None, end: str | date | None = None,
         mask: str | Iterable[str] = "clear", min_clear: float = 0.0, groupby: str = "solar_day",
         chunks: dict | None = None, resampling: str = "bilinear", geobox: Any = None):
    """Cloud-masked surface reflectance of MAJA L2A items, as an ``xarray.Dataset``.

    ``source``: a catalog folder or its ``catalog.json``, a list of items (pystac or dicts), a
    pystac ItemCollection or a pystac-client search. ``bbox``: lon/lat (west, south, east,
    north). ``bands``: asset keys (``red``, ``nir08``, ``swir16``…, ``red-sre`` for SRE).
    ``crs``: needed when the items are in several UTM zones. ``start``/``end``: inclusive
    dates. ``mask``: ``"clear"`` (no data gap, CLM = 0, the band's own SAT bit = 0),
    ``"none"``, or a list of conditions among ``clouds``, ``cloud_shadows``, ``cirrus``,
    ``water``, ``snow``, ``topographic_shadow``, ``edge``, ``saturation``. ``min_clear``:
    drop dates whose ``clear_fraction`` is below it (this computes the masks of a lazy
    load). ``groupby``: ``"solar_day"`` merges the items of one day, ``"id"`` keeps one slice
    per item. ``chunks``: dask chunks (e.g. ``{"x": 2048, "y": 2048}``) for a lazy load.
    ``resampling``: for the reflectance bands (masks always use nearest). ``geobox``: an
    odc-geo GeoBox to load onto instead of ``bbox``/``crs``/``resolution``.

    Each band is a float32 variable (reflectance, NaN where masked or no data) on
    ``time, y, x``; ``clear_fraction`` (along ``time``) is the share of the loaded area where
    every asked band has a clear value; the ``item_ids`` and ``tile`` coordinates say which
    items made each date.
    """
    import odc.stac
    import xarray as xr

    if groupby not in ("solar_day", "id"):
        raise LoadError(f"groupby={groupby!r}: use 'solar_day' or 'id'")
    bands = [bands] if isinstance(bands, str) else list(bands)
    if not bands:
        raise LoadError("no band asked: give bands=, e.g. ['red', 'nir']")
    conditions = resolve(mask)
    area = _area_lonlat(bbox, geobox)
    items = _select(items_of(source), *_date_range(start, end), area)
    _check_bands(items, bands)
    if geobox is None:
        crs = _output_crs(items, crs, resolution)
    keys = {band: _mask_keys(items[0], band, conditions) for band in bands}
    for item in items[1:]:
        for band, by_family in keys.items():
            _check_same_keys(item, band, by_family)
    mask_keys = sorted({key for by_family in keys.values() for key in by_family.values()})
    options = dict(geobox=geobox) if geobox is not None else dict(crs=crs, resolution=resolution, bbox=bbox)
    raw = odc.stac.load(items, bands=[*bands, *mask_keys], groupby="id", chunks=chunks,
                        resampling={**{b: resampling for b in bands}, **{k: "nearest" for k in mask_keys}},
                        **options)
    out = xr.Dataset({band: _masked(raw, items, band, keys[band], conditions) for band in bands},
                     coords={"item_ids": ("time", [item.id for item in items]),
                             "tile": ("time", [_tile(item) for item in items])})
    if groupby == "solar_day":
        out = _merge_days(out, items)
    valid = reduce(lambda a, b: a & b, [out[band].notnull() for band in bands])
    # float64: an exact share, so min_clear= compares what the user computed (a float32 would not)
    out["clear_fraction"] = valid.mean(dim=[d for d in valid.dims if d != "time"])
    out["clear_fraction"].attrs["description"] = "share of the loaded area where every band has a clear value"
    if min_clear > 0:
        keep = np.flatnonzero(out["clear_fraction"].values >= min_clear)
        out = out.isel(time=keep)
    out.attrs["mask"] = mask if isinstance(mask, str) else ", ".join(mask)
    return out


# -- items ---------------------------------------------------------------------------------
def items_of(source: Any) -> list[pystac.Item]:
    """pystac Items from any of the sources :func:`load` accepts, each checked once: the
    fields computed with (bbox, raster:bands, eo:bands, classification:bitfields) are of their
    shape, or a LoadError names the item, the asset and the field."""
    from fullmaja_stac.trust.records import RecordError, check_item_fields

    items = _items_of(source)
    for item in items:
        try:
            check_item_fields(item.id, item.bbox, {key: asset.extra_fields for key, asset in item.assets.items()})
        except RecordError as exc:
            raise LoadError(f"{exc}; the item is damaged") from None
    return items


def _items_of(source: Any) -> list[pystac.Item]:
    if isinstance(source, (str, os.PathLike)):
        from fullmaja_stac.analysis.consume import odc_items

        path = Path(source)
        if not (path / "catalog.json").is_file() and not path.is_file():
            raise LoadError(f"{path}: no catalog.json here; give the catalog folder that `fullmaja-stac ingest` wrote")
        return odc_items(path, COLLECTION_ID)
    if isinstance(source, pystac.ItemCollection):
        return list(source)
    if hasattr(source, "items") and callable(source.items):  # a pystac-client ItemSearch
        return list(source.items())
    if isinstance(source, (pystac.Item, dict)):
        source = [source]
    return [item if isinstance(item, pystac.Item) else pystac.Item.from_dict(item) for item in source]


def _date_range(start, end) -> tuple[datetime | None, datetime | None]:
    """The first instant of ``start`` and the first after ``end``; an end before the start is
    a mistake said as such, not an empty answer."""
    first, last = _day_start(start), _day_end(end)
    if first is not None and last is not None and last <= first:
        raise LoadError(f"the end ({end}) is before the start ({start})")
    return first, last


def _day_start(value) -> datetime | None:
    if value is None:
        return None
    day = date.fromisoformat(value) if isinstance(value, str) else value
    if isinstance(day, datetime):
        return day if day.tzinfo else day.replace(tzinfo=timezone.utc)
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def _day_end(value) -> datetime | None:
    """The first instant after ``end``: a date includes its whole day."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _day_start(value) + timedelta(microseconds=1)
    return _day_start(value) + timedelta(days=1)


def _area_lonlat(bbox, geobox):
    from shapely.geometry import box, shape

    if geobox is not None:
        return shape(geobox.extent.to_crs("EPSG:4326").json)
    if bbox is not None:
        west, south, east, north = bbox
        if not (west < east and south < north):
            raise LoadError(f"bbox={tuple(bbox)}: give (west, south, east, north) in degrees, west < east, south < north")
        return box(*bbox)
    return None


def _select(items: list[pystac.Item], start, end, area) -> list[pystac.Item]:
    from shapely.geometry import shape

    chosen = [item for item in items
              if (start is None or item.datetime >= start) and (end is None or item.datetime < end)
              and (area is None or item.geometry is None or shape(item.geometry).intersects(area))]
    if not chosen:
        raise LoadError(f"no item of the {len(items)} given is in the dates and area asked")
    return sorted(chosen, key=lambda item: (_solar_day(item), item.datetime, item.id))


def _solar_day(item: pystac.Item) -> date:
    west, _, east, _ = item.bbox or (0, 0, 0, 0)
    return (item.datetime + timedelta(hours=(west + east) / 2 / 15)).date()


def _tile(item: pystac.Item) -> str:
    return str(item.properties.get("grid:code", "")).removeprefix("MGRS-")


def _check_bands(items: list[pystac.Item], bands: list[str]) -> None:
    first = items[0]
    reflectance = [key for key, asset in first.assets.items() if "reflectance" in (asset.roles or [])]
    for band in bands:
        for item in items:
            if band not in item.assets:
                raise LoadError(f"item {item.id} has no asset {band!r}; its reflectance bands are "
                                f"{', '.join(reflectance) or 'none'}")


def _output_crs(items: list[pystac.Item], crs: str | None, resolution: float) -> str:
    codes = sorted({ProjectionExtension.ext(item).crs_string or "" for item in items})
    if crs is None:
        if len(codes) > 1:
            raise LoadError(f"the items are in {len(codes)} projections ({', '.join(codes)}): give crs=, "
                            f"e.g. crs={codes[0]!r}")
        crs = codes[0]
    from pyproj import CRS

    if CRS.from_user_input(crs).is_geographic and resolution >= 1:
        raise LoadError(f"crs={crs} is in degrees: give resolution= in degrees too (e.g. 0.0001), not {resolution}")
    return crs


# -- masks ---------------------------------------------------------------------------------
def _same_grid(a: pystac.Asset, b: pystac.Asset) -> bool:
    return (a.extra_fields.get("proj:shape") == b.extra_fields.get("proj:shape")
            and a.extra_fields.get("proj:transform") == b.extra_fields.get("proj:transform"))


def _mask_keys(item: pystac.Item, band: str, conditions: list[Condition]) -> dict[str, str]:
    """For each mask family the conditions need, the asset key of that mask on ``band``'s grid."""
    families = {c.family for c in conditions}
    out = {}
    for family in (f for f in MASK_FAMILIES if f in families):
        found = [key for key, asset in item.assets.items()
                 if key.split("-")[0] == family and _same_grid(asset, item.assets[band])]
        if not found:
            raise LoadError(f"item {item.id} has no {family.upper()} mask on the grid of {band!r}; "
                            "mask='none' loads without masking")
        out[family] = found[0]
    return out


def _check_same_keys(item: pystac.Item, band: str, by_family: dict[str, str]) -> None:
    for family, key in by_family.items():
        if key not in item.assets or not _same_grid(item.assets[key], item.assets[band]):
            raise LoadError(f"item {item.id}: its {family.upper()} mask for {band!r} is not {key!r} as in the "
                            "other items; load them separately")


def _per_item(values: list, dtype) -> Any:
    import xarray as xr

    return xr.DataArray(np.asarray(values, dtype=dtype), dims=["time"])


def _masked(raw, items: list[pystac.Item], band: str, keys: dict[str, str], conditions: list[Condition]):
    """One band as float32 reflectance, NaN where its item's own masks say so."""
    data = raw[band]
    bad = data == data.attrs["nodata"] if data.attrs.get("nodata") is not None else None
    for family, key in keys.items():
        bits = []
        for item in items:
            value = 0
            for condition in (c for c in conditions if c.family == family):
                names = condition.bitfields or (saturation_bitfield(item, band),)
                value |= bit_value(item, key, names, required=condition.required)
            if value >= 1 << (8 * raw[key].dtype.itemsize):
                raise LoadError(f"item {item.id}: asset {key!r} declares bits {value:#x} that its "
                                f"{raw[key].dtype} values cannot hold; the item is damaged")
            bits.append(value)
        hit = (raw[key] & _per_item(bits, raw[key].dtype)) != 0
        bad = hit if bad is None else bad | hit
    scale, offset = zip(*(_scale_offset(item.assets[band]) for item in items))
    value = data.astype("float32") * _per_item(scale, "float32") + _per_item(offset, "float32")
    value = value if bad is None else value.where(~bad)
    value.attrs = {"long_name": f"{band} surface reflectance", "units": "1"}
    return value


def _scale_offset(asset: pystac.Asset) -> tuple[float, float]:
    try:
        first = (RasterExtension.ext(asset).bands or [None])[0]
    except pystac.ExtensionNotImplemented:
        first = None
    scale = first.scale if first is not None and first.scale is not None else 1.0
    offset = first.offset if first is not None and first.offset is not None else 0.0
    return scale, offset


def _merge_days(out, items: list[pystac.Item]):
    """Merge the slices of one solar day, the earliest item's clear pixel first."""
    days = [_solar_day(item) for item in items]
    if len(set(days)) == len(days):
        return out
    order = list(dict.fromkeys(days))
    first = {day: days.index(day) for day in order}
    label = np.array([order.index(day) for day in days])
    bands = {name: out[name].assign_coords(day=("time", label)).groupby("day").first(skipna=True)
             .rename(day="time") for name in out.data_vars}
    import xarray as xr

    merged = xr.Dataset(bands)
    members = [[i for i, d in enumerate(days) if d == day] for day in order]
    return merged.assign_coords(
        time=("time", out["time"].values[[first[day] for day in order]]),
        item_ids=("time", [",".join(items[i].id for i in group) for group in members]),
        tile=("time", [",".join(dict.fromkeys(_tile(items[i]) for i in group)) for group in members]))
