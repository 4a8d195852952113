"""The Sentinel-2 tiling grid: UTM zone and upper-left corner of every tile.

The table in ``data/s2_tiles.csv.gz`` comes from ESA's published grid (see
``scripts/build_tile_grid.py``); a tile is 109 800 m wide.
"""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from pyproj import Transformer

from fullmaja_stac.errors import FullMajaError

TILE_SIZE_M = 109_800
TILE_PATTERN = re.compile(r"^[0-6][0-9][A-Za-z]{1,3}$")  # the reference client's check


@dataclass(frozen=True)
class TileGrid:
    tile: str  # "31TCJ", no leading T
    epsg: int
    ulx: float
    uly: float

    @property
    def utm_zone(self) -> int:
        return int(self.tile[:2])

    @property
    def latitude_band(self) -> str:
        return self.tile[2]

    @property
    def grid_square(self) -> str:
        return self.tile[3:]

    def center_lonlat(self) -> tuple[float, float]:
        to_wgs84 = Transformer.from_crs(self.epsg, 4326, always_xy=True)
        return to_wgs84.transform(self.ulx + TILE_SIZE_M / 2, self.uly - TILE_SIZE_M / 2)


def normalize_tile(tile: str) -> str:
    """``T36TWQ`` / ``36twq`` → ``36TWQ``; raises a clear error for anything else."""
    text = tile.strip()
    if text[:1] in "Tt" and len(text) == 6:
        text = text[1:]
    if not TILE_PATTERN.match(text):
        raise FullMajaError(
            f"tile {tile!r} is not a Sentinel-2 tile id: expected something like 31TCJ or T31TCJ"
        )
    return text.upper()


@lru_cache(maxsize=1)
def _table() -> dict[str, TileGrid]:
    data = files("fullmaja_stac").joinpath("data", "s2_tiles.csv.gz").read_bytes()
    rows = csv.DictReader(gzip.decompress(data).decode("ascii").splitlines())
    return {
        r["tile"]: TileGrid(r["tile"], int(r["epsg"]), float(r["ulx"]), float(r["uly"]))
        for r in rows
    }


def tile_grid(tile: str) -> TileGrid:
    """The real grid of a tile; a clear error if the tile does not exist."""
    name = normalize_tile(tile)
    try:
        return _table()[name]
    except KeyError:
        raise FullMajaError(f"tile {name} is not part of the Sentinel-2 tiling grid") from None
