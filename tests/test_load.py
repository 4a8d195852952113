"""The analysis-ready loader (issue 25) on products painted with known masks (known_scenes):
every expectation is a numpy count on the rasters written, read back by nobody but numpy."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from fullmaja_stac import load
from fullmaja_stac.analysis.conditions import LoadError
from fullmaja_stac.analysis.consume import stackstac_items
from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_product
from fullmaja_stac.tiles import tile_grid

from known_scenes import NODATA, Painted, paint

SIZE = 60
SCALE = 0.0001


def _write(specs, out: Path, seed: int, edge_of=lambda i: None, cloud_of=lambda i: (5, 5)) -> list[Painted]:
    painted = []
    for i, spec in enumerate(specs):
        folder = write_product(spec, out, SynthOptions(size=SIZE, seed=seed, zipped=False))
        painted.append(paint(folder, seed * 100 + i, SIZE, edge_of(i), cloud_of(i)))
    return painted


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Four dates of 31TCJ: clouds move, the 2nd has its right third outside the swath."""
    specs = plan_series("31TCJ", 51, date(2019, 3, 1), date(2019, 3, 24), seed=3, too_cloudy=set(), split=set())[:4]
    out = tmp_path_factory.mktemp("known")
    painted = _write(specs, out / "products", 7, edge_of=lambda i: slice(40, None) if i == 1 else None,
                     cloud_of=lambda i: (5 + 8 * i, 5 + 6 * i))
    report = ingest([p.folder for p in painted], out / "catalog", workers=2)
    assert report.ok and len(report.added) == 4, report
    return out / "catalog", painted


def test_clear_fraction_is_numpys_count_of_clear_pixels(series):
    catalog, painted = series
    ds = load(catalog, bands=["blue", "red"])
    expected = [(p.clear("B2") & p.clear("B4")).mean() for p in painted]
    assert ds.sizes["time"] == 4 and 0 < min(expected) < max(expected) < 1
    np.testing.assert_array_equal(ds["clear_fraction"].values, expected)
    # each band NaN exactly where numpy says it is not clear, its values the scaled source
    for p, t in zip(painted, range(4)):
        for band, code in (("blue", "B2"), ("red", "B4")):
            got = ds[band].isel(time=t).values
            np.testing.assert_array_equal(np.isnan(got), ~p.clear(code))
            np.testing.assert_allclose(got[p.clear(code)], p.fre[code][p.clear(code)] * SCALE, rtol=1e-6)


def test_clear_sky_mean_per_band_is_numpys(series):
    catalog, painted = series
    ds = load(catalog, bands=["green", "swir16"], resolution=20, resampling="nearest")
    green = np.concatenate([p.fre["B3"][p.clear("B3")] for p in painted])
    # at 20 m the 10 m green is read from its overview-free COG with nearest: compare at 10 m instead
    ds10 = load(catalog, bands=["green"])
    assert float(np.nanmean(ds10["green"].values)) == pytest.approx(green.mean() * SCALE, rel=1e-6)
    swir = np.concatenate([p.fre["B11"][p.clear("B11")] for p in painted])
    assert float(np.nanmean(ds["swir16"].values)) == pytest.approx(swir.mean() * SCALE, rel=1e-6)
    assert np.count_nonzero(~np.isnan(ds["swir16"].values)) == swir.size


def test_a_20m_band_on_the_10m_grid_is_masked_by_its_own_20m_masks(series):
    catalog, painted = series
    ds = load(catalog, bands=["swir16"], resampling="nearest")
    for t, p in enumerate(painted):
        clear = np.repeat(np.repeat(p.clear("B11"), 2, axis=0), 2, axis=1)
        values = np.repeat(np.repeat(p.fre["B11"], 2, axis=0), 2, axis=1) * SCALE
        got = ds["swir16"].isel(time=t).values
        np.testing.assert_array_equal(np.isnan(got), ~clear)
        np.testing.assert_allclose(got[clear], values[clear], rtol=1e-6)


def test_min_clear_keeps_exactly_the_dates_at_or_above_it(series):
    catalog, painted = series
    fractions = [(p.clear("B4")).mean() for p in painted]
    threshold = sorted(fractions)[1]  # a date exactly at the threshold stays
    ds = load(catalog, bands=["red"], min_clear=threshold)
    kept = [i for i, f in enumerate(fractions) if f >= threshold]
    assert 0 < len(kept) < 4
    assert list(ds["item_ids"].values) == [p.folder.name for i, p in enumerate(painted) if i in kept]


def test_named_conditions_mask_exactly_their_bits(series):
    catalog, painted = series
    water = load(catalog, bands=["nir"], mask=["water", "edge"])
    snow_topo = load(catalog, bands=["nir"], mask=["snow", "topographic_shadow"])
    shadows = load(catalog, bands=["nir"], mask="cloud_shadows")
    none = load(catalog, bands=["nir"], mask="none")
    for t, p in enumerate(painted):
        mg2, clm, edg = p.masks["MG2", "R1"], p.masks["CLM", "R1"], p.masks["EDG", "R1"]
        nodata = p.fre["B8"] == NODATA
        np.testing.assert_array_equal(np.isnan(water["nir"].isel(time=t).values), (mg2 & 1 != 0) | (edg == 1) | nodata)
        np.testing.assert_array_equal(np.isnan(snow_topo["nir"].isel(time=t).values), (mg2 & 0b110100 != 0) | nodata)
        np.testing.assert_array_equal(np.isnan(shadows["nir"].isel(time=t).values), (clm & 0b1100000 != 0) | nodata)
        np.testing.assert_array_equal(np.isnan(none["nir"].isel(time=t).values), nodata)
    masks = [(p.masks["MG2", "R1"], p.masks["CLM", "R1"]) for p in painted]
    assert all((mg2 & 1).any() and (clm & 0b1100000).any() for mg2, clm in masks)
    assert sum(bool((mg2 & 0b110100).any()) for mg2, _ in masks) == 3  # the 2nd date has them under its edge


def test_clear_masks_a_cloud_summary_bit_set_alone_and_named_conditions_do_not(series):
    """Real CLMs hold pixels with only the summary bit 0 set. "clear" (CLM = 0) masks them; the
    named cloud conditions, which are the detail bits, leave them, as they say."""
    catalog, painted = series
    clear = load(catalog, bands=["red"], mask="clear")
    named = load(catalog, bands=["red"], mask=["clouds", "cloud_shadows", "cirrus", "edge", "saturation"])
    checked = 0
    for t, p in enumerate(painted):
        alone = (p.masks["CLM", "R1"] == 1) & (p.fre["B4"] != NODATA)
        checked += int(alone.sum())
        assert np.isnan(clear["red"].isel(time=t).values[alone]).all()
        assert not np.isnan(named["red"].isel(time=t).values[alone]).any()
    assert checked > 0


def test_clear_plus_a_condition_is_clear_and_that_condition(series):
    catalog, painted = series
    ds = load(catalog, bands=["red"], mask=["clear", "snow"])
    for t, p in enumerate(painted):
        snow = (p.masks["MG2", "R1"] & 0b100) != 0
        np.testing.assert_array_equal(np.isnan(ds["red"].isel(time=t).values), ~p.clear("B4") | snow)
    assert any(((p.masks["MG2", "R1"] & 0b100) != 0)[p.clear("B4")].any() for p in painted)  # snow adds pixels


def test_bits_come_from_each_items_own_bitfields(series):
    """An item whose MG2 declares water on bit 2 (and snow on bit 0) is masked by bit 2."""
    catalog, painted = series
    items = stackstac_items(catalog)
    for field in items[0]["assets"]["mg2-r1"]["classification:bitfields"]:
        field["offset"] = {0: 2, 2: 0}.get(field["offset"], field["offset"])
    ds = load(items, bands=["nir"], mask=["water"], groupby="id")
    mg2 = painted[0].masks["MG2", "R1"]
    np.testing.assert_array_equal(np.isnan(ds["nir"].isel(time=0).values), (mg2 & 0b100 != 0) | (painted[0].fre["B8"] == NODATA))
    mg2 = painted[1].masks["MG2", "R1"]
    np.testing.assert_array_equal(np.isnan(ds["nir"].isel(time=1).values), (mg2 & 0b1 != 0) | (painted[1].fre["B8"] == NODATA))


def test_dates_bbox_and_coordinates(series):
    catalog, painted = series
    all_dates = load(catalog, bands=["red"])
    days = [str(t)[:10] for t in all_dates["time"].values]
    ds = load(catalog, bands=["red"], start=days[1], end=days[2])
    assert [str(t)[:10] for t in ds["time"].values] == days[1:3]
    assert list(ds["tile"].values) == ["31TCJ", "31TCJ"]
    grid = tile_grid("31TCJ")
    to_lonlat = Transformer.from_crs(grid.epsg, 4326, always_xy=True)
    west, north = to_lonlat.transform(grid.ulx + 100, grid.uly - 100)
    east, south = to_lonlat.transform(grid.ulx + 300, grid.uly - 300)
    small = load(catalog, bands=["red"], bbox=(west, south, east, north))
    assert 15 <= small.sizes["x"] <= 25 and 15 <= small.sizes["y"] <= 25
    with pytest.raises(LoadError, match="no item"):
        load(catalog, bands=["red"], bbox=(west + 5, south, east + 5, north))


@pytest.mark.parametrize("kwargs, message", [
    (dict(bands=["ndvi"]), "no asset 'ndvi'; its reflectance bands are blue, green"),
    (dict(mask=["clouds", "fog"]), "unknown mask condition 'fog'"),
    (dict(mask="cloudy"), "unknown mask condition 'cloudy'"),
    (dict(bbox=(3, 44, 2, 43)), "west < east"),
    (dict(groupby="week"), "groupby='week'"),
    (dict(crs="EPSG:4326"), "resolution= in degrees"),
    (dict(start="2030-01-01"), "no item of the 4 given"),
    (dict(start="2019-03-20", end="2019-03-19"), "is before the start"),
])
def test_a_wrong_argument_is_one_clear_error(series, kwargs, message):
    catalog, _ = series
    with pytest.raises(LoadError, match=message.replace("(", r"\(")):
        load(catalog, **{"bands": ["red"], **kwargs})


def test_not_a_catalog_is_named(tmp_path):
    with pytest.raises(LoadError, match="no catalog.json"):
        load(tmp_path / "nowhere")


# -- two items of one solar day, and two UTM zones -------------------------------------------
@pytest.fixture(scope="module")
def one_day_two_items(tmp_path_factory):
    """A split acquisition: two items of 31TCJ 20 s apart, the first with data on columns
    0-39, the second on 20-59; the first is clouded on 25-35, where the second is clear."""
    spec = plan_series("31TCJ", 51, date(2019, 3, 1), date(2019, 3, 10), seed=3, too_cloudy=set(), split=set())[0]
    specs = [spec, replace(spec, acquired=spec.acquired + timedelta(seconds=20))]
    out = tmp_path_factory.mktemp("split")
    painted = _write(specs, out / "products", 11, edge_of=lambda i: slice(40, None) if i == 0 else slice(0, 20),
                     cloud_of=lambda i: (5, 25) if i == 0 else (5, 45))
    assert ingest([p.folder for p in painted], out / "catalog", workers=2).ok
    return out / "catalog", painted


def test_items_of_one_solar_day_are_each_masked_by_their_own_masks(one_day_two_items):
    catalog, (first, second) = one_day_two_items
    ds = load(catalog, bands=["red"])
    assert ds.sizes["time"] == 1
    assert ds["item_ids"].values[0] == f"{first.folder.name},{second.folder.name}"
    got = ds["red"].isel(time=0).values
    a, b = first.clear("B4"), second.clear("B4")
    expected = np.where(a, first.fre["B4"] * SCALE, np.where(b, second.fre["B4"] * SCALE, np.nan))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.isnan(got[5:15, 45:55]).all()  # the second's cloud, where the first has no data
    assert (a & b).sum() > 400 and (~a & b)[5:15, 25:35].all()  # both clear / the first clouded
    assert float(ds["clear_fraction"].values[0]) == (a | b).mean()
    # what odc-stac's own fusing does with the same masks: the first item's EDG covers the right half
    import odc.stac
    from fullmaja_stac.analysis.consume import odc_items

    fused = odc.stac.load(odc_items(catalog), bands=["red", "edg-r1", "clm-r1"], groupby="solar_day")
    assert (fused["edg-r1"].values[0][:, 40:] == 1).all()  # columns 40-59 would be lost
    # and with groupby="id" the two items stay apart
    apart = load(catalog, bands=["red"], groupby="id")
    assert apart.sizes["time"] == 2


@pytest.fixture(scope="module")
def two_zones(tmp_path_factory):
    """31TGF (zone 31) and 32TKL (zone 32), whose corners are 3.5 km apart, on one date."""
    spec = plan_series("31TGF", 8, date(2019, 6, 1), date(2019, 6, 12), seed=3, too_cloudy=set(), split=set())[0]
    specs = [spec, replace(spec, grid=tile_grid("32TKL"))]
    out = tmp_path_factory.mktemp("zones")
    painted = _write(specs, out / "products", 13)
    assert ingest([p.folder for p in painted], out / "catalog", workers=2).ok
    return out / "catalog", painted


def test_two_utm_zones_load_with_crs_and_say_so_without(two_zones):
    catalog, painted = two_zones
    with pytest.raises(LoadError, match=r"2 projections \(EPSG:32631, EPSG:32632\): give crs="):
        load(catalog, bands=["red"])
    ds = load(catalog, bands=["red"], crs="EPSG:32631", resampling="nearest", groupby="id")
    assert ds.sizes["time"] == 2
    # a clear pixel of the output, taken back to its source tile, is the source pixel's value
    grid = tile_grid("32TKL")
    to_32 = Transformer.from_crs(32631, 32632, always_xy=True)
    got = ds["red"].isel(time=[i for i, t in enumerate(ds["tile"].values) if t == "32TKL"][0])
    ys, xs = np.nonzero(~np.isnan(got.values))
    assert len(ys) > 1000
    for k in np.random.default_rng(0).choice(len(ys), 50, replace=False):
        x, y = to_32.transform(float(got["x"][xs[k]]), float(got["y"][ys[k]]))
        col, row = int((x - grid.ulx) // 10), int((grid.uly - y) // 10)
        assert got.values[ys[k], xs[k]] == pytest.approx(painted[1].fre["B4"][row, col] * SCALE, rel=1e-6)


def test_a_pystac_client_search_is_a_source(series):
    """Items as a STAC API returns them (read over HTTP by pystac-client from serve --api)."""
    pytest.importorskip("fastapi")
    from pystac_client import Client

    from fullmaja_stac.publish.api.app import ApiServer, build_index

    catalog, painted = series
    index = build_index(catalog, catalog.parent / "index")
    with ApiServer(index, port=0) as server, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = Client.open(server.url).search(collections=["maja-s2-l2a"], max_items=10)
        ds = load(search, bands=["red"])
    expected = [(p.clear("B4")).mean() for p in painted]
    np.testing.assert_array_equal(ds["clear_fraction"].values, expected)


def test_masks_written_follow_majas_consistency_rules(series):
    """The fixtures themselves: a mask pair that breaks MAJA's own rules would test nothing real."""
    _, painted = series
    for p in painted:
        for group in ("R1", "R2"):
            clm, mg2 = p.masks["CLM", group], p.masks["MG2", group]
            components = ((clm >> 1) | (clm >> 5) | (clm >> 6)) & 1
            assert np.all((clm & 1) >= components)  # bit 0 wherever 1, 5 or 6; alone in a few pixels
            assert np.array_equal((mg2 >> 1) & 1, (clm >> 1) & 1)
            assert np.array_equal((mg2 >> 3) & 1, ((clm >> 5) | (clm >> 6)) & 1)
    assert sum(np.count_nonzero(p.masks["CLM", "R1"] == 1) for p in painted) > 0  # the summary bit alone


# -- timeseries ------------------------------------------------------------------------------
def _lonlat_of_pixel(tile: str, row: int, col: int) -> tuple[float, float]:
    grid = tile_grid(tile)
    return Transformer.from_crs(grid.epsg, 4326, always_xy=True).transform(grid.ulx + (col + 0.5) * 10,
                                                                          grid.uly - (row + 0.5) * 10)


def test_timeseries_csv_has_a_row_per_date_with_nan_where_masked(series, tmp_path):
    import csv

    from typer.testing import CliRunner

    from fullmaja_stac.cli import app

    catalog, painted = series
    row, col = 8, 8  # under the first date's cloud, clear on the others
    lon, lat = _lonlat_of_pixel("31TCJ", row, col)
    result = CliRunner().invoke(app, ["timeseries", str(catalog), "--lon", str(lon), "--lat", str(lat),
                                      "--index", "ndvi", "--csv", str(tmp_path / "t.csv"), "--png", str(tmp_path / "t.png")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [r["item_ids"] for r in rows] == [p.folder.name for p in painted]
    clear = [bool(p.clear("B4")[row, col] and p.clear("B8")[row, col]) for p in painted]
    assert clear == [False, True, True, True]
    for r, p, ok in zip(rows, painted, clear):
        if not ok:
            assert r["red"] == r["nir"] == r["ndvi"] == "NaN" and r["clear_fraction"] == "0"
            continue
        red, nir = p.fre["B4"][row, col] * SCALE, p.fre["B8"][row, col] * SCALE
        assert float(r["red"]) == pytest.approx(red, rel=1e-5) and float(r["nir"]) == pytest.approx(nir, rel=1e-5)
        assert float(r["ndvi"]) == pytest.approx((nir - red) / (nir + red), rel=1e-4)
    with rasterio.open(tmp_path / "t.png") as png:
        assert png.width > 400 and png.height > 200
    assert "4 dates, 3 clear, 1 masked" in " ".join(result.output.split())


def test_timeseries_buffer_averages_the_clear_pixels_around(series):
    from fullmaja_stac.analysis.timeseries import point_series

    catalog, painted = series
    lon, lat = _lonlat_of_pixel("31TCJ", 10, 10)
    table = point_series(catalog, lon, lat, bands=["red"], buffer=20)  # pixels 8..12 on both axes
    for value, p in zip(table["red"], painted):
        window, clear = p.fre["B4"][8:13, 8:13], p.clear("B4")[8:13, 8:13]
        expected = window[clear].mean() * SCALE if clear.any() else np.nan
        assert value == pytest.approx(expected, rel=1e-5, nan_ok=True)
    assert table.attrs["pixels"] == 25


@pytest.mark.parametrize("args, message", [
    (["--lon", "2", "--lat", "95"], "not a place on Earth"),
    (["--lon", "100", "--lat", "10"], "no item of"),
    (["--lon", "0.4998", "--lat", "44.2233", "--index", "evi"], "use one of ndvi"),
    (["--lon", "0.4998", "--lat", "44.2233", "--buffer", "-5"], "from 0 to 2000"),
    (["--lon", "0.4998", "--lat", "44.2233", "--buffer", "50000"], "from 0 to 2000"),
    (["--lon", "0.4998", "--lat", "44.2233", "--start", "2019-03-20", "--end", "2019-03-01"], "is before the start"),
    (["--lon", "0.4998", "--lat", "44.2233", "--mask", "clouds,haze"], "unknown mask condition 'haze'"),
])
def test_timeseries_mistakes_are_one_line(series, args, message):
    import subprocess
    import sys

    catalog, _ = series
    result = subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", "timeseries", str(catalog), *args],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 1 and message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- composite -------------------------------------------------------------------------------
@pytest.fixture()
def composited(series, tmp_path):
    import shutil

    from fullmaja_stac.analysis.composite import composite

    catalog, painted = series
    copy = tmp_path / "catalog"
    shutil.copytree(catalog, copy)
    report = composite(copy)
    return copy, painted, report


def test_composite_pixel_is_the_median_of_the_clear_observations(composited):
    catalog, painted, report = composited
    assert report.written == ["31TCJ_2019-03_median"] and not report.unchanged
    folder = catalog / "maja-s2-l2a-composite" / "31TCJ" / "2019-03" / "31TCJ_2019-03_median"
    codes = {"blue": "B2", "green": "B3", "red": "B4", "nir": "B8"}
    valid = np.stack([np.logical_and.reduce([p.clear(code) for code in codes.values()]) for p in painted])
    with rasterio.open(folder / "31TCJ_2019-03_median_count.tif") as src:
        count = src.read(1)
    np.testing.assert_array_equal(count, valid.sum(axis=0))
    assert (count == 0).any() and (count == 4).any()  # the saturated rows of red: no clear observation
    for band, code in codes.items():
        stack = np.stack([np.where(ok, p.fre[code], np.nan) for ok, p in zip(valid, painted)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.where(count > 0, np.rint(np.nanmedian(stack, axis=0)), NODATA)
        with rasterio.open(folder / f"31TCJ_2019-03_median_{band}.tif") as src:
            assert src.nodata == NODATA and src.scales[0] == SCALE and src.dtypes[0] == "int16"
            np.testing.assert_array_equal(src.read(1), expected)
    halves = np.isin(count, (2, 4))
    assert halves.any()  # even counts: the median is a half-sum, rounded to even


def test_composite_by_blocks_of_rows_equals_the_whole(composited, series, tmp_path, monkeypatch):
    """A budget that allows 16 rows makes 4 blocks of the 60-row grid (16, 16, 16, 12): every
    COG equals the one-block composite's, pixel for pixel, seams included."""
    import shutil

    import fullmaja_stac.analysis.composite as composite_module

    whole, _, _ = composited
    catalog, _ = series
    copy = tmp_path / "blocks"
    shutil.copytree(catalog, copy)
    monkeypatch.setattr(composite_module, "MEMORY_BUDGET", 1)
    calls = []
    composite_module.composite(copy, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    rel = Path("maja-s2-l2a-composite/31TCJ/2019-03/31TCJ_2019-03_median")
    for key in ("blue", "green", "red", "nir", "count", "visual"):
        with rasterio.open(whole / rel / f"31TCJ_2019-03_median_{key}.tif") as a, \
                rasterio.open(copy / rel / f"31TCJ_2019-03_median_{key}.tif") as b:
            np.testing.assert_array_equal(a.read(), b.read())


def test_composite_items_are_valid_stac_linked_to_their_sources(composited):
    from fullmaja_stac.stac.validate import BUNDLED_SCHEMA_MAP, validate_catalog

    catalog, painted, _ = composited
    result = validate_catalog(catalog, BUNDLED_SCHEMA_MAP)
    assert result.ok, result.invalid
    assert result.by_type == {"CATALOG": 4, "COLLECTION": 2, "ITEM": 5}
    root = json.loads((catalog / "catalog.json").read_text())
    assert "./maja-s2-l2a-composite/collection.json" in [link["href"] for link in root["links"]]
    path = catalog / "maja-s2-l2a-composite/31TCJ/2019-03/31TCJ_2019-03_median/31TCJ_2019-03_median.json"
    item = json.loads(path.read_text())
    assert sorted(item["assets"]) == ["blue", "count", "green", "nir", "red", "visual"]
    assert item["properties"]["start_datetime"].startswith("2019-03-01T00:00:00")
    assert item["properties"]["end_datetime"].startswith("2019-03-31T23:59:59")
    sources = [link for link in item["links"] if link["rel"] == "derived_from"]
    assert [s["title"] for s in sources] == [p.folder.name for p in painted]
    for link in sources:
        assert json.loads((path.parent / link["href"]).read_text())["id"] == link["title"]
    # the L2A readers still see the L2A items only
    assert len(stackstac_items(catalog)) == 4 and load(catalog, bands=["red"]).sizes["time"] == 4


def test_composite_is_incremental_and_survives_repair(composited, tmp_path):
    from fullmaja_stac.analysis.composite import composite
    from fullmaja_stac.stac.catalog import repair_catalog

    catalog, _, _ = composited
    files = {p: p.stat().st_mtime_ns for p in catalog.rglob("*") if p.is_file() and "composite" in str(p)}
    again = composite(catalog)
    assert again.unchanged == ["31TCJ_2019-03_median"] and not again.written
    assert {p: p.stat().st_mtime_ns for p in files} == files
    repair_catalog(catalog)
    root = json.loads((catalog / "catalog.json").read_text())
    assert "./maja-s2-l2a-composite/collection.json" in [link["href"] for link in root["links"]]
    changed = composite(catalog, bands=["red", "nir"])  # other bands: made again
    assert changed.written == ["31TCJ_2019-03_median"]


def test_l2a_readers_neither_read_nor_need_the_composites(composited):
    """A composite folder deleted by hand (its root link left dangling) must not stop the L2A
    readers, nor a new composite: they walk only the L2A collection."""
    import shutil

    from fullmaja_stac.analysis import odc_items, stackstac_items
    from fullmaja_stac.analysis.composite import composite

    catalog, painted, _ = composited
    shutil.rmtree(catalog / "maja-s2-l2a-composite")
    assert len(odc_items(catalog)) == len(stackstac_items(catalog)) == len(painted)
    assert len(load(catalog, bands=["red"]).time) == len(painted)
    assert composite(catalog).written == ["31TCJ_2019-03_median"]
    assert len(stackstac_items(catalog, "maja-s2-l2a-composite")) == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(period="week"), "only 'month'"),
    (dict(method="mean"), "only 'median'"),
    (dict(bands=["red", "ndvi"]), "no asset 'ndvi'"),
    (dict(start="2030-01-01"), "no L2A item"),
    (dict(start="2019-03-20", end="2019-03-01"), "is before the start"),
])
def test_composite_mistakes_are_named_and_write_nothing(series, tmp_path, kwargs, message):
    import shutil

    from fullmaja_stac.analysis.composite import composite

    catalog, _ = series
    copy = tmp_path / "catalog"
    shutil.copytree(catalog, copy)
    with pytest.raises(LoadError, match=message):
        composite(copy, **kwargs)
    assert not (copy / "maja-s2-l2a-composite").exists()


def test_a_hostile_tile_code_in_an_item_cannot_place_a_composite_outside(series, tmp_path):
    import shutil

    from fullmaja_stac.analysis.composite import composite
    from fullmaja_stac.errors import FullMajaError

    catalog, _ = series
    copy = tmp_path / "catalog"
    shutil.copytree(catalog, copy)
    for path in (copy / "maja-s2-l2a").glob("*/*/*/*.json"):
        doc = json.loads(path.read_text())
        doc["properties"]["grid:code"] = "MGRS-../../../../escaped"
        path.write_text(json.dumps(doc))
    with pytest.raises(FullMajaError, match="cannot name"):
        composite(copy)
    assert not list(tmp_path.rglob("escaped*")) and not (copy / "maja-s2-l2a-composite").exists()


def _set_bitfield(doc, **change):
    for field in doc["assets"]["clm-r1"]["classification:bitfields"]:
        if field["name"] == "all_clouds":
            field.update(change)


@pytest.mark.parametrize("damage, message", [
    (lambda d: _set_bitfield(d, offset=9), "bits 0x2fd that its uint8 values cannot hold"),
    (lambda d: _set_bitfield(d, offset=-1), r"Expected `int` >= 0 - at `\$.classification:bitfields\[1\].offset`"),
    (lambda d: _set_bitfield(d, offset=100, length=64), "<= 31"),
    (lambda d: _set_bitfield(d, offset=30, length=4), "ends at bit 34"),
    (lambda d: _set_bitfield(d, offset=True), "got `bool`"),
    (lambda d: _set_bitfield(d, length="1"), "got `str`"),
    (lambda d: d["assets"]["clm-r1"]["classification:bitfields"][1].pop("offset"), "missing required field `offset`"),
    (lambda d: d["assets"]["clm-r1"].update({"classification:bitfields": {"a": 1}}), "got `object`"),
    (lambda d: d["assets"]["red"]["raster:bands"][0].update(scale="0.0001"), r"raster:bands\[0\].scale"),
    (lambda d: d["assets"]["red"].update({"eo:bands": "B4"}), r"at `\$.eo:bands`"),
    (lambda d: d["assets"]["red"].update({"eo:bands": [{"name": 4}]}), r"eo:bands\[0\].name"),
    (lambda d: d.update(bbox=["w", "s", "e", "n"]), "bbox is not 4 or 6 numbers"),
])
def test_an_item_with_damaged_fields_is_one_error_naming_it(series, tmp_path, damage, message):
    """Items come from anywhere (a copied catalog, a STAC API): the fields load computes with
    are checked once, and a wrong one is a LoadError naming the item and where, not a
    traceback from numpy or a mask applied on the wrong bits."""
    import shutil

    catalog, painted = series
    copy = tmp_path / "catalog"
    shutil.copytree(catalog, copy)
    path = sorted((copy / "maja-s2-l2a").glob("*/*/*/*.json"))[0]
    doc = json.loads(path.read_text())
    damage(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(LoadError, match=message) as raised:
        load(copy, bands=["red"])
    assert doc["id"] in str(raised.value) and "damaged" in str(raised.value)


def test_a_damaged_item_is_one_line_from_the_cli(series, tmp_path):
    import shutil
    import subprocess
    import sys

    catalog, painted = series
    copy = tmp_path / "catalog"
    shutil.copytree(catalog, copy)
    path = sorted((copy / "maja-s2-l2a").glob("*/*/*/*.json"))[0]
    doc = json.loads(path.read_text())
    _set_bitfield(doc, offset=-1)
    path.write_text(json.dumps(doc))
    lon, lat = _lonlat_of_pixel("31TCJ", 30, 30)
    done = subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", "timeseries", str(copy), "--lon", str(lon),
                           "--lat", str(lat)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert doc["id"] in done.stderr + done.stdout


def test_readme_load_snippet_runs_on_a_catalog(catalog, monkeypatch):
    """The README's `load` example, run as written against the shared test catalog."""
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"<!-- snippet: load -->\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(catalog.parent)
    scope: dict = {}
    exec(compile(code, "README:load", "exec"), scope)
    ds = scope["ds"]
    assert 0 < ds.sizes["time"] < 5 and (ds["clear_fraction"] >= 0.5).all()
    every = load(catalog, bands=["red", "nir"])
    assert ds.sizes["time"] == int((every["clear_fraction"] >= 0.5).sum())


def test_a_lazy_load_gives_the_same_as_an_eager_one(one_day_two_items):
    """chunks= goes through dask end to end (the per-item masks, the solar-day merge)."""
    catalog, _ = one_day_two_items
    eager = load(catalog, bands=["red", "swir16"])
    lazy = load(catalog, bands=["red", "swir16"], chunks={"x": 32, "y": 32})
    assert lazy["red"].chunks is not None
    np.testing.assert_array_equal(lazy["red"].values, eager["red"].values)
    np.testing.assert_array_equal(lazy["swir16"].values, eager["swir16"].values)
    np.testing.assert_array_equal(lazy["clear_fraction"].values, eager["clear_fraction"].values)
