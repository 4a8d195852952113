"""Behaviour that had no test (issue 28, 5 and 13): the stall limits at their edges, the
split footprint's exact share, the GEODES collection setting, a GEODES key from ~/.netrc."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import rasterio
from pyproj import Geod
from shapely.geometry import shape

from fullmaja_stac.config import FIRST_PRODUCT_S, PER_DATE_S
from fullmaja_stac.maja import read_product
from fullmaja_stac.providers.geodes import ENV_COLLECTION, GeodesClient, find_api_key
from fullmaja_stac.providers.jobs import Job
from fullmaja_stac.providers.orders import LATE_MARGIN, STALL_FACTOR, expected_dates, health

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _job(**changes) -> Job:
    base = Job(id=1, provider="peps", base_url="https://peps.cnes.fr", remote_id="1", status_url=None, json_url=None,
               tile="36TWQ", orbit=64, start_date="2019-03-01", end_date="2019-06-01", submitted_at=NOW - timedelta(days=1),
               state="STALLED", progress=40.0, progress_changed_at=NOW, started_at=NOW, checked_at=NOW, message="",
               logs=[], results=[], result_info={}, unprocessed=0, resubmitted_from=None, log_file=None)
    return replace(base, **changes)


def test_no_progress_is_stalled_exactly_past_three_dates_worth():
    limit = timedelta(seconds=STALL_FACTOR * PER_DATE_S)  # 75 min
    assert limit == timedelta(minutes=75)
    assert health(_job(progress_changed_at=NOW - limit), NOW).flag == "running"
    assert health(_job(progress_changed_at=NOW - limit - timedelta(seconds=1)), NOW).flag == "stalled"


def test_running_past_the_expected_end_is_stalled_exactly_after_the_margin():
    job = _job(progress_changed_at=None)
    dates = expected_dates(job)
    duration = timedelta(seconds=FIRST_PRODUCT_S + PER_DATE_S * (dates - 1))  # 1 h + 25 min per further date
    assert dates and duration == timedelta(hours=1) + timedelta(minutes=25) * (dates - 1)
    edge = NOW + duration + max(LATE_MARGIN, duration)
    assert health(job, edge).flag == "running"
    assert health(job, edge + timedelta(seconds=1)).flag == "stalled"


def test_the_split_footprint_is_the_share_of_valid_pixels(catalog, product_zips):
    """Was `0.3 < ratio < 0.7`: the footprint's area must be the valid pixels' area (EDG = 0),
    to the simplification's one pixel along the edge."""
    geod = Geod(ellps="WGS84")
    for zip_path in (product_zips[0], product_zips[4]):
        product = read_product(zip_path)
        item = json.loads(next(catalog.glob(f"maja-s2-l2a/*/*/{product.id}/{product.id}.json")).read_text())
        area = abs(geod.geometry_area_perimeter(shape(item["geometry"]))[0])
        edg = next(r for r in product.rasters if r.kind == "EDG" and r.group == "R1")
        with rasterio.open(product.gdal_path(edg.path)) as ds:
            valid = int((ds.read(1) == 0).sum())
            pixel = abs(ds.res[0] * ds.res[1])
            edge_pixels = ds.width + ds.height
        expected = valid * pixel
        assert abs(area - expected) <= edge_pixels * pixel, (product.id, area, expected)
    assert valid < 0.75 * ds.width * ds.height, "the last one is the split product"


def test_the_geodes_collection_setting_is_sent(monkeypatch):
    monkeypatch.setenv(ENV_COLLECTION, "SOME_RENAMED_COLLECTION")
    assert GeodesClient("https://example.invalid").collection == "SOME_RENAMED_COLLECTION"
    monkeypatch.delenv(ENV_COLLECTION)
    assert GeodesClient("https://example.invalid").collection == "THEIA_REFLECTANCE_SENTINEL2_L2A"


def test_a_geodes_key_from_netrc_for_its_host_only(tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine geodes-portal.cnes.fr login me password key-from-netrc\n"
                     "machine other.example password not-this-one\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.delenv("GEODES_API_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_api_key("https://geodes-portal.cnes.fr") == "key-from-netrc"
    assert find_api_key("https://elsewhere.example") is None


def test_stac_browser_runtime_config_names_the_catalog_s_utm_zones_and_the_basemap(catalog, tmp_path):
    """Issue 28, 13: the runtime config had no test of its own (the browser test needs Chromium)."""
    from pyproj import CRS

    from fullmaja_stac.publish.browser import browser_config

    text = browser_config(catalog, "http://127.0.0.1:9/catalog.json", "https://tiles.example/{z}/{x}/{y}.png").decode()
    config = json.loads(text.removeprefix("window.STAC_BROWSER_CONFIG = ").rstrip().removesuffix(";"))
    assert config["catalogUrl"] == "http://127.0.0.1:9/catalog.json" and config["historyMode"] == "hash"
    assert list(config["crs"]) == ["EPSG:32631"] and CRS.from_wkt(config["crs"]["EPSG:32631"]).to_epsg() == 32631
    assert config["basemapUrl"] == "https://tiles.example/{z}/{x}/{y}.png"
    assert json.loads(browser_config(catalog, "x").decode().split("= ", 1)[1].rstrip().rstrip(";"))["basemapUrl"] is None


def test_a_stac_browser_built_another_way_is_rebuilt(tmp_path):
    from fullmaja_stac.publish.browser import BUILD_ID, BUILD_STAMP, built_browser

    dist = tmp_path / "stac-browser"
    dist.mkdir()
    (dist / "index.html").write_text("<html></html>")
    assert built_browser(tmp_path) is None  # no stamp: an older build
    (dist / BUILD_STAMP).write_text("STAC Browser 3.x, another ol-stac")
    assert built_browser(tmp_path) is None
    (dist / BUILD_STAMP).write_text(BUILD_ID)
    assert built_browser(tmp_path) == dist
