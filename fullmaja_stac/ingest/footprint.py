"""Valid-data footprint of a product from its EDG mask, in WGS84.

A split product covers half its tile; its footprint must say so, or searches and mosaics
pick empty pixels.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
from rasterio.errors import RasterioError
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape
from shapely.ops import unary_union

from fullmaja_stac.errors import ProductError
from fullmaja_stac.maja.product import MajaProduct, RasterFile, local_raster


class EmptyProductError(ProductError):
    """Every pixel of the product is no data (EDG = 1 everywhere, as at a tile edge in the
    swath gap): a clear-looking item with the whole grid as footprint would mislead every
    cloud filter, so the product is skipped and said so."""


def edge_mask(product: MajaProduct) -> RasterFile | None:
    """The EDG mask the footprint is read from: the finest (MAJA's 20 m EDG marks a pixel no
    data if any of its 10 m pixels is, so it misses the last valid 10 m row and column)."""
    edges = [r for r in product.rasters if r.kind == "EDG" and r.group in product.grids]
    return min(edges, key=lambda r: product.grids[r.group].resolution, default=None)


def valid_footprint(product: MajaProduct, scratch: Path | None = None) -> tuple[dict, list[float]]:
    """(GeoJSON geometry, bbox) of the pixels EDG marks valid; the grid extent without EDG.
    ``scratch``: a folder for the EDG mask inflated from a zip (a temporary one if None)."""
    grid = product.grids.get("R1") or next(iter(product.grids.values()))
    footprint = None
    edg = edge_mask(product)
    if edg is not None:
        try:
            with tempfile.TemporaryDirectory(dir=scratch, prefix=".edg-") as folder, \
                    local_raster(product.raster_source(edg), Path(folder) / "edg.tif") as path, rasterio.open(path) as ds:
                valid = ds.read(1) == 0
                transform, resolution = ds.transform, abs(ds.transform.a)
        except RasterioError as exc:
            raise ProductError(product.gdal_path(edg.path), f"cannot read the EDG mask ({exc})") from None
        polygons = [shape(geom) for geom, value in rasterio.features.shapes(valid.astype(np.uint8), mask=valid, transform=transform) if value == 1]
        if not polygons:
            raise EmptyProductError(product.source, "every pixel is no data (its EDG mask is 1 everywhere): "
                                                    "nothing to catalog, skipped")
        footprint = unary_union(polygons).simplify(resolution, preserve_topology=True)
    if footprint is None or footprint.is_empty:  # no EDG mask: the grid is all we know
        footprint = box(*grid.bounds)
    geometry = transform_geom(f"EPSG:{product.epsg}", "EPSG:4326", mapping(footprint), precision=7)
    bounds = shape(geometry).bounds
    return geometry, [round(v, 7) for v in bounds]
