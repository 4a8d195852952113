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
TILE_NAME = re.compile(r"\d{2}[A-Z]{3}")  # a tile as it names a product's and a catalog's folders: 31TCJ


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
def _table_text() -> str:
    """The table as text, each line after a newline. A product's reader looks up one tile:
    finding its line takes a millisecond, where parsing all 56 687 rows took a quarter of a
    second, on the path of every command that reads a product (before an ingest's first task)."""
    data = files("fullmaja_stac").joinpath("data", "s2_tiles.csv.gz").read_bytes()
    return "\n" + gzip.decompress(data).decode("ascii")


def _lookup(name: str) -> TileGrid | None:
    text = _table_text()
    header_end = text.index("\n", 1)
    start = text.find(f"\n{name},", header_end)
    if start < 0:
        return None
    end = text.find("\n", start + 1)
    header = next(csv.reader([text[1:header_end]]))
    row = dict(zip(header, next(csv.reader([text[start + 1:end if end >= 0 else None]]))))
    return TileGrid(row["tile"], int(row["epsg"]), float(row["ulx"]), float(row["uly"]))


def tile_ids() -> list[str]:
    """Every tile of the grid (``31TCJ``…), in the table's order."""
    return [line.split(",", 1)[0] for line in _table_text().split("\n")[2:] if line]


def tile_grid(tile: str) -> TileGrid:
    """The real grid of a tile; a clear error if the tile does not exist."""
    name = normalize_tile(tile)
    grid = _lookup(name)
    if grid is None:
        raise FullMajaError(f"tile {name} is not part of the Sentinel-2 tiling grid")
    return grid
