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


def edge_mask(product: MajaProduct) -> RasterFile | None:
    """The EDG mask the footprint is read from: the coarsest is enough for a footprint
    simplified to its pixel size."""
    edges = [r for r in product.rasters if r.kind == "EDG" and r.group in product.grids]
    return max(edges, key=lambda r: product.grids[r.group].resolution, default=None)


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
        if polygons:
            footprint = unary_union(polygons).simplify(resolution, preserve_topology=True)
    if footprint is None or footprint.is_empty:
        footprint = box(*grid.bounds)
    geometry = transform_geom(f"EPSG:{product.epsg}", "EPSG:4326", mapping(footprint), precision=7)
    bounds = shape(geometry).bounds
    return geometry, [round(v, 7) for v in bounds]
