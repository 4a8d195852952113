import csv
import gzip
from datetime import date
from importlib.resources import files

import pytest

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.maja.orbits import passes, relative_orbit
from fullmaja_stac.tiles import normalize_tile, tile_grid, tile_ids


@pytest.mark.parametrize(
    "platform, absolute, relative",
    [
        ("SENTINEL2A", 8342, 51), ("SENTINEL2A", 41859, 106),
        ("SENTINEL2B", 3080, 51), ("SENTINEL2B", 30802, 31), ("SENTINEL2B", 34041, 124),
        ("SENTINEL2C", 10031, 51), ("SENTINEL2C", 9674, 123), ("SENTINEL2C", 8614, 64),
    ],
)
def test_relative_orbit_matches_real_products(platform, absolute, relative):
    assert relative_orbit(platform, absolute) == relative


def test_unknown_platform_has_no_relative_orbit():
    assert relative_orbit("SENTINEL2D", 1000) is None


def test_passes_alternate_every_five_days_on_the_requested_orbit():
    found = passes(51, date(2019, 3, 1), date(2019, 4, 30))
    days = [p.day for p in found]
    assert all((b - a).days == 5 for a, b in zip(days, days[1:]))
    assert {p.platform for p in found} == {"SENTINEL2A", "SENTINEL2B"}
    assert all(relative_orbit(p.platform, p.absolute_orbit) == 51 for p in found)


def test_s2b_anchor_product_is_found_on_its_day():
    found = passes(51, date(2017, 10, 8), date(2017, 10, 8))
    assert [(p.platform, p.absolute_orbit) for p in found] == [("SENTINEL2B", 3080)]


def test_s2c_replaces_s2a_in_2025():
    found = passes(64, date(2026, 4, 25), date(2026, 5, 5))
    assert {p.platform for p in found} == {"SENTINEL2B", "SENTINEL2C"}
    assert ("SENTINEL2C", 8614) in [(p.platform, p.absolute_orbit) for p in found]


@pytest.mark.parametrize(
    "tile, epsg, ulx, uly",
    [("31TCJ", 32631, 300000, 4900020), ("T31TFJ", 32631, 600000, 4900020),
     ("31TCH", 32631, 300000, 4800000), ("36TWQ", 32636, 499980, 5000040), ("55HBU", 32755, 199980, 5900020)],
)
def test_real_tile_corners(tile, epsg, ulx, uly):
    grid = tile_grid(tile)
    assert (grid.epsg, grid.ulx, grid.uly) == (epsg, ulx, uly)


@pytest.mark.parametrize("bad", ["", "XX", "T", "99ZZZ9", "3TWQ!"])
def test_bad_tile_ids_are_refused(bad):
    with pytest.raises(FullMajaError):
        normalize_tile(bad)


def test_tile_not_in_grid():
    with pytest.raises(FullMajaError, match="not part of the Sentinel-2 tiling grid"):
        tile_grid("31AAA")


def test_every_tile_of_the_table_is_found_as_written():
    """The lookup finds one line in the table's text; read here row by row with csv, the
    first, the last and every 997th row come back the same, and a prefix of a tile is no tile."""
    data = files("fullmaja_stac").joinpath("data", "s2_tiles.csv.gz").read_bytes()
    rows = list(csv.DictReader(gzip.decompress(data).decode("ascii").splitlines()))
    for row in [rows[0], rows[-1], *rows[::997]]:
        grid = tile_grid(row["tile"])
        assert (grid.tile, grid.epsg, grid.ulx, grid.uly) == (row["tile"], int(row["epsg"]), float(row["ulx"]),
                                                               float(row["uly"]))
    with pytest.raises(FullMajaError, match="not part of"):
        tile_grid(rows[-1]["tile"][:4])  # "60XW": three letters, a valid id, in no row
    assert tile_ids() == [row["tile"] for row in rows]
