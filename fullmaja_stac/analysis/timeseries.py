"""The cloud-masked values of one place over time: a CSV row per date and a plot.

The place is the 10 m pixel that holds the point, or the pixels within ``buffer`` metres of
it (their clear values averaged), on the native grid of the tile that holds it: no
resampling of a 10 m band.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from fullmaja_stac.analysis.conditions import LoadError
from fullmaja_stac.analysis.load import items_of, load
from fullmaja_stac.jsonio import write_atomic

MAX_BUFFER_M = 2000.0  # 401 x 401 pixels at 10 m: a place; an area is load()'s work

# normalized differences (a - b) / (a + b) of two bands, by the catalog's asset names
INDICES: dict[str, tuple[str, str]] = {
    "ndvi": ("nir", "red"),
    "ndwi": ("green", "nir"),
    "ndmi": ("nir08", "swir16"),
    "nbr": ("nir08", "swir22"),
}


def require_analysis_extra() -> None:
    """One line naming the install command when odc-stac, xarray or matplotlib is missing."""
    import importlib

    missing = []
    for name in ("odc.stac", "xarray", "matplotlib"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise LoadError(f"this needs {', '.join(missing)}: in the fullmaja-stac checkout, "
                        "pip install -e '.[analysis]' (the package is not on PyPI)")


def point_series(source, lon: float, lat: float, *, bands: Iterable[str] = ("red", "nir"), index: str | None = None,
                 buffer: float = 0.0, start=None, end=None, mask="clear", resolution: float = 10):
    """A pandas DataFrame, one row per date: ``time``, ``item_ids``, ``tile``,
    ``clear_fraction`` (of the pixels asked), each band's mean clear reflectance and the
    index (NaN where no pixel was clear)."""
    from odc.geo.geobox import GeoBox
    from pyproj import Transformer
    from shapely.geometry import Point, shape

    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise LoadError(f"--lon {lon} --lat {lat} is not a place on Earth: give degrees (lon -180..180, lat -90..90)")
    if not 0 <= buffer <= MAX_BUFFER_M:
        raise LoadError(f"--buffer {buffer}: give a distance in metres from 0 to {MAX_BUFFER_M:g} (a place, not an "
                        "area: fullmaja_stac.load(..., bbox=...) loads areas)")
    bands = list(dict.fromkeys(bands))
    if index is not None:
        if index not in INDICES:
            raise LoadError(f"--index {index}: use one of {', '.join(INDICES)}")
        bands += [b for b in INDICES[index] if b not in bands]
    items = [item for item in items_of(source)
             if item.geometry is not None and shape(item.geometry).intersects(Point(lon, lat))]
    if not items:
        raise LoadError(f"no item of {source if isinstance(source, (str, Path)) else 'the source'} covers "
                        f"lon {lon}, lat {lat}")
    crs = items[0].properties.get("proj:code") or f"EPSG:{items[0].properties['proj:epsg']}"
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    x0, x1 = math.floor((x - buffer) / resolution) * resolution, math.floor((x + buffer) / resolution + 1) * resolution
    y0, y1 = math.floor((y - buffer) / resolution) * resolution, math.floor((y + buffer) / resolution + 1) * resolution
    geobox = GeoBox.from_bbox((x0, y0, x1, y1), crs=crs, resolution=resolution)
    ds = load(items, bands=bands, geobox=geobox, start=start, end=end, mask=mask)
    import pandas as pd

    table = pd.DataFrame({"time": ds["time"].values, "item_ids": ds["item_ids"].values, "tile": ds["tile"].values,
                          "clear_fraction": ds["clear_fraction"].values})
    spatial = [d for d in ds[bands[0]].dims if d != "time"]
    for band in bands:
        table[band] = ds[band].mean(dim=spatial, skipna=True).values.astype("float64")
    if index is not None:
        a, b = (ds[name] for name in INDICES[index])
        table[index] = ((a - b) / (a + b)).mean(dim=spatial, skipna=True).values.astype("float64")
    table.attrs.update(lon=lon, lat=lat, buffer=buffer, pixels=int(np.prod([ds.sizes[d] for d in spatial])))
    return table


def write_csv(table, target: Path) -> None:
    """The table as CSV (NaN where masked), written whole or not at all."""
    text = table.to_csv(index=False, na_rep="NaN", float_format="%.6g", date_format="%Y-%m-%dT%H:%M:%S")
    write_atomic(Path(target), text.encode("utf-8"))


def write_png(table, target: Path, columns: list[str]) -> None:
    """A plot of ``columns`` over time: clear observations as dots joined by a line, dates
    with no clear pixel as grey ticks along the bottom."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    for column in columns:
        clear = table[column].notna()
        ax.plot(table["time"][clear], table[column][clear], marker="o", markersize=4, linewidth=1, label=column)
    masked = table[columns].isna().all(axis=1)
    if masked.any():
        ax.plot(table["time"][masked], np.zeros(int(masked.sum())), linestyle="none", marker="|", markersize=12,
                color="grey", transform=ax.get_xaxis_transform(), label=f"masked ({int(masked.sum())} dates)")
    where = f"lon {table.attrs.get('lon'):.5f}, lat {table.attrs.get('lat'):.5f}"
    if table.attrs.get("buffer"):
        where += f", {table.attrs['buffer']:g} m around"
    tiles = ", ".join(sorted({t for value in table["tile"] for t in str(value).split(",") if t}))
    ax.set_title(f"{where} (tile {tiles}), clear observations only", fontsize=10)
    ax.set_ylabel(" / ".join(columns))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    write_atomic(Path(target), buffer.getvalue())
