"""`serve --api`: a real STAC API on loopback, searched with pystac-client and compared with a
brute-force filter of the static items; search results load in stackstac and odc-stac."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import numpy as np
import sqlite3
import pytest
import rasterio
import requests
import shapely.geometry

from fullmaja_stac.publish.api.app import ApiServer, SearchError, build_index, query_to_cql2
from fullmaja_stac.analysis.consume import stackstac_items
from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_product

pystac_client = pytest.importorskip("pystac_client")
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def api_zips(tmp_path_factory, product_zips) -> list[Path]:
    """Three tile/orbit pairs: the session's 31TCJ/51 series, 31TCJ/8 and the demo's 36TWQ/64."""
    out = tmp_path_factory.mktemp("api-zips")
    zips = list(product_zips)
    for tile, orbit, seed in (("31TCJ", 8, 5), ("36TWQ", 64, 7)):
        specs = plan_series(tile, orbit, date(2019, 3, 1), date(2019, 3, 31), seed=seed, too_cloudy=set(), split=set())
        zips += [write_product(s, out, SynthOptions(size=60, seed=seed)) for s in specs]
    return zips


@pytest.fixture(scope="module")
def api_catalog(tmp_path_factory, catalog, api_zips, product_zips) -> Path:
    """The session's catalog, copied, plus the two other tile/orbit series."""
    import shutil

    root = tmp_path_factory.mktemp("api-cat") / "catalog"
    shutil.copytree(catalog, root)
    extra = [z for z in api_zips if z not in product_zips]
    report = ingest(extra, root, workers=2)
    assert report.ok and len(report.added) == len(extra)
    return root


@pytest.fixture(scope="module")
def index(api_catalog, tmp_path_factory):
    return build_index(api_catalog, tmp_path_factory.mktemp("api-index"))


@pytest.fixture(scope="module")
def server(index):
    with ApiServer(index, port=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def items(api_catalog) -> list[dict]:
    return stackstac_items(api_catalog)


def _when(item: dict) -> datetime:
    return datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))


def _same_instants(props: dict) -> dict:
    """Properties with their timestamps parsed: the index writes them back as
    ``+00:00``/milliseconds instead of ``Z``/microseconds, the same instants."""
    return {k: datetime.fromisoformat(v.replace("Z", "+00:00")) if k in ("datetime", "created", "updated") else v
            for k, v in props.items()}


def _ids(found) -> set[str]:
    return {i["id"] for i in found}


def test_search_matches_brute_force(server, items):
    client = pystac_client.Client.open(server.url)
    clouds = sorted(i["properties"]["eo:cloud_cover"] for i in items)
    threshold = clouds[len(clouds) // 2]
    twq = shapely.geometry.box(32.9, 45.0, 33.3, 45.3)
    start, end = datetime.fromisoformat("2019-03-05T00:00:00+00:00"), datetime.fromisoformat("2019-03-20T00:00:00+00:00")

    def in_window(i: dict) -> bool:
        return shapely.geometry.shape(i["geometry"]).intersects(twq) and start <= _when(i) <= end

    window_clouds = sorted(i["properties"]["eo:cloud_cover"] for i in items if in_window(i))
    assert len(window_clouds) >= 2, "the combined case needs items in its window"
    window_threshold = window_clouds[(len(window_clouds) - 1) // 2]  # keeps some of the window, not all of it
    cases = {
        "bbox": (dict(bbox=list(twq.bounds)), lambda i: shapely.geometry.shape(i["geometry"]).intersects(twq)),
        "datetime": (dict(datetime="2019-03-05T00:00:00Z/2019-03-20T00:00:00Z"), lambda i: start <= _when(i) <= end),
        "cloud": (dict(query={"eo:cloud_cover": {"lt": threshold}}), lambda i: i["properties"]["eo:cloud_cover"] < threshold),
        "orbit": (dict(query={"sat:relative_orbit": {"eq": 8}}), lambda i: i["properties"]["sat:relative_orbit"] == 8),
        "tile": (dict(query={"grid:code": {"eq": "MGRS-31TCJ"}}), lambda i: i["properties"]["grid:code"] == "MGRS-31TCJ"),
        "filter": (dict(filter={"op": "and", "args": [
                        {"op": "=", "args": [{"property": "sat:relative_orbit"}, 51]},
                        {"op": "<=", "args": [{"property": "eo:cloud_cover"}, threshold]}]}),
                   lambda i: i["properties"]["sat:relative_orbit"] == 51 and i["properties"]["eo:cloud_cover"] <= threshold),
        "all at once": (dict(bbox=list(twq.bounds), datetime="2019-03-05T00:00:00Z/2019-03-20T00:00:00Z",
                             query={"eo:cloud_cover": {"lte": window_threshold}}),
                        lambda i: in_window(i) and i["properties"]["eo:cloud_cover"] <= window_threshold),
    }
    for name, (params, keep) in cases.items():
        expected = {i["id"] for i in items if keep(i)}
        assert 0 < len(expected) < len(items), f"{name}: a search that selects nothing (or everything) tells nothing"
        found = list(client.search(limit=3, **params).items_as_dicts())  # limit=3: pages are followed
        assert len(found) == len(_ids(found)), f"{name}: an item came twice across pages"
        assert _ids(found) == expected, name


def test_items_come_back_whole_with_served_hrefs(server, items, api_catalog):
    by_id = {i["id"]: i for i in items}
    found = list(pystac_client.Client.open(server.url).search(max_items=100).items_as_dicts())
    assert _ids(found) == set(by_id)
    for item in found:
        original = by_id[item["id"]]
        assert _same_instants(item["properties"]) == _same_instants(original["properties"])
        assert item["bbox"] == original["bbox"]
        assert set(item["assets"]) == set(original["assets"])
        for key, asset in item["assets"].items():
            local = Path(original["assets"][key]["href"])
            assert asset["href"] == f"{server.url}/catalog/{local.relative_to(api_catalog).as_posix()}"
            assert {k: v for k, v in asset.items() if k != "href"} == \
                {k: v for k, v in original["assets"][key].items() if k != "href"}
    href = found[0]["assets"]["red"]["href"]
    part = requests.get(href, headers={"Range": "bytes=0-99", "Accept-Encoding": "gzip, br"}, timeout=10)
    assert part.status_code == 206 and len(part.content) == 100 and "content-encoding" not in part.headers


def test_get_search_query_and_bad_requests(server, items):
    r = requests.get(f"{server.url}/search", params={"query": json.dumps({"sat:relative_orbit": {"eq": 64}}),
                                                      "limit": 100}, timeout=10)
    assert r.status_code == 200
    assert _ids(r.json()["features"]) == {i["id"] for i in items if i["properties"]["sat:relative_orbit"] == 64}
    bad = requests.post(f"{server.url}/search", json={"query": {"eo:cloud_cover": {"below": 3}}}, timeout=10)
    assert bad.status_code == 400 and "unknown operator 'below'" in bad.text
    both = requests.post(f"{server.url}/search", json={"query": {"eo:cloud_cover": {"lt": 3}},
                                                        "filter": {"op": "=", "args": [{"property": "id"}, "x"]}}, timeout=10)
    assert both.status_code == 400
    conformance = requests.get(f"{server.url}/conformance", timeout=10).json()["conformsTo"]
    assert any(c.endswith("item-search#query") for c in conformance)
    assert any(c.endswith("item-search#filter") for c in conformance)


def test_browser_is_pointed_at_the_api(index, tmp_path):
    """The runtime config.js that STAC Browser reads names the API root (the build itself
    is tested in test_browser.py; a stand-in dist folder is enough for the wiring)."""
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<html>stand-in STAC Browser</html>")
    with ApiServer(index, port=0, browser=dist) as srv:
        config = requests.get(f"{srv.browser_url}config.js", timeout=10).text
        assert config.startswith("window.STAC_BROWSER_CONFIG = ")
        assert json.loads(config.split("=", 1)[1].rstrip().rstrip(";"))["catalogUrl"] == f"{srv.url}/"
        assert "stand-in" in requests.get(srv.browser_url, timeout=10).text
        assert requests.get(f"{srv.url}/", timeout=10).json()["type"] == "Catalog"


def test_query_translation():
    assert query_to_cql2({"eo:cloud_cover": {"lt": 20}}) == {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}
    both = query_to_cql2({"eo:cloud_cover": {"gte": 5, "lte": 20}, "grid:code": {"in": ["MGRS-31TCJ"]}})
    assert both["op"] == "and" and len(both["args"]) == 3
    assert query_to_cql2({"id": {"startsWith": "S2_"}}) == {"op": "like", "args": [{"property": "id"}, "S2\\_%"]}
    for bad in ({}, {"x": 3}, {"x": {"in": 3}}, {"x": {"nope": 1}}, {"x": {"eq": None}}):
        with pytest.raises(SearchError):
            query_to_cql2(bad)


def _year_rows(index) -> dict[str, set[str]]:
    """The ids in the index, by year (the index is one SQLite file)."""
    with sqlite3.connect(index.path) as db:
        rows = db.execute("SELECT id, part FROM items").fetchall()
    out: dict[str, set[str]] = {}
    for item_id, part in rows:
        out.setdefault(part.rsplit("-", 1)[1], set()).add(item_id)
    return out


@pytest.mark.slow
def test_index_rewrites_only_the_tile_years_that_changed(api_catalog, api_zips, tmp_path, series_specs):
    first = build_index(api_catalog, tmp_path)
    assert first.rebuilt == ["31TCJ-2019", "36TWQ-2019"] and not first.removed
    assert not build_index(api_catalog, tmp_path).rebuilt

    copy = tmp_path / "copy"
    twq = [z for z in api_zips if "T36TWQ" in z.name]
    tcj = [z for z in api_zips if "T31TCJ" in z.name]
    assert ingest(tcj[:2] + twq, copy, workers=2).ok
    assert build_index(copy, tmp_path).rebuilt == ["31TCJ-2019", "36TWQ-2019"]
    assert ingest(tcj[:2], copy, workers=1).unchanged
    assert not build_index(copy, tmp_path).rebuilt  # a no-op ingest keeps the index

    assert ingest(tcj[2:4], copy, workers=2).added  # two more dates of a tile-year already there
    update = build_index(copy, tmp_path)
    assert update.rebuilt == ["31TCJ-2019"]  # 36TWQ's part is not re-read
    assert _year_rows(update) == {"2019": {i["id"] for i in stackstac_items(copy)}}

    next_year = replace(series_specs[0], acquired=series_specs[0].acquired.replace(year=2020))
    assert ingest([write_product(next_year, tmp_path / "2020", SynthOptions(size=60, seed=3))], copy, workers=1).added
    again = build_index(copy, tmp_path)
    assert again.rebuilt == ["31TCJ-2020"]  # 2019 untouched
    items = stackstac_items(copy)
    assert _year_rows(again) == {year: {i["id"] for i in items if i["properties"]["datetime"].startswith(year)}
                                 for year in ("2019", "2020")}


def test_index_rows_read_by_worker_processes_are_the_same(api_catalog, tmp_path, monkeypatch):
    import fullmaja_stac.publish.api.index as api_index

    inline = build_index(api_catalog, tmp_path / "inline", workers=1)
    monkeypatch.setattr(api_index, "PARALLEL_FROM_ITEMS", 0)  # a process pool even for these few items
    seen: list[tuple[int, int]] = []
    pooled = build_index(api_catalog, tmp_path / "pooled", workers=2, progress=lambda d, t: seen.append((d, t)))
    query = "SELECT id, part, dt, minx, miny, maxx, maxy, geometry, folder, item FROM items ORDER BY id"
    with sqlite3.connect(inline.path) as a, sqlite3.connect(pooled.path) as b:
        rows = a.execute(query).fetchall()
        assert rows == b.execute(query).fetchall()
    assert pooled.rebuilt == inline.rebuilt and seen[-1] == (len(rows), len(rows))


@pytest.mark.slow
def test_index_follows_a_replaced_version_and_many_updates(tmp_path, series_specs):
    """A replaced item leaves the index; repeated updates of one tile-year stay correct and
    leave the other tiles' rows alone."""

    root = tmp_path / "catalog"
    old = write_product(series_specs[0], tmp_path / "v1", SynthOptions(size=60, seed=3, version="4-0"))
    assert ingest([old], root, workers=1).ok and build_index(root, tmp_path / "idx")
    new = write_product(series_specs[0], tmp_path / "v2", SynthOptions(size=60, seed=3, version="4-1"))
    assert ingest([new], root, workers=1).replaced
    index = build_index(root, tmp_path / "idx")
    assert _year_rows(index) == {"2019": {new.stem}}
    twq = plan_series("36TWQ", 64, date(2019, 3, 1), date(2019, 3, 15), seed=7, too_cloudy=set(), split=set())[0]
    assert ingest([write_product(twq, tmp_path / "more", SynthOptions(size=60, seed=7))], root, workers=1).added
    assert build_index(root, tmp_path / "idx").rebuilt == ["36TWQ-2019"]
    more = plan_series("31TCJ", 51, date(2019, 4, 1), date(2019, 7, 31), seed=3, too_cloudy=set(), split=set())
    assert len(more) > 10
    for spec in more:  # one ingest and one index update per date: 36TWQ's rows are kept each time
        assert ingest([write_product(spec, tmp_path / "more", SynthOptions(size=60, seed=3))], root, workers=1).added
        index = build_index(root, tmp_path / "idx")
        assert index.rebuilt == ["31TCJ-2019"]
    assert _year_rows(index) == {"2019": {i["id"] for i in stackstac_items(root)}}


def _snippet(name: str) -> str:
    m = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert m, f"README has no {name} snippet"
    return m.group(1)


@pytest.mark.slow
def test_readme_api_snippet_loads_source_pixels(server, items):
    code = _snippet("api").replace("http://127.0.0.1:8000", server.url)
    scope: dict = {}
    exec(compile(code, "README:api", "exec"), scope)
    cube, ds, search = scope["cube"], scope["ds"], scope["search"]
    found = sorted(search.items_as_dicts(), key=lambda i: i["properties"]["datetime"])
    assert found and all(i["properties"]["grid:code"] == "MGRS-36TWQ" for i in found)
    assert cube.sizes["time"] == ds.sizes["time"] == len(found)
    for t, item in enumerate(found):
        local = next(i for i in items if i["id"] == item["id"])["assets"]["red"]["href"]
        with rasterio.open(local) as src:
            raw = src.read(1)
        np.testing.assert_array_equal(ds["red"].isel(time=t).values, raw, err_msg=item["id"])
        got = cube.isel(time=t).sel(band="red").values
        np.testing.assert_allclose(got, np.where(raw == -10000, np.nan, raw * 0.0001), rtol=0, atol=1e-9)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize("stop, started", [
    (signal.SIGINT, None),
    # a script's background job (`fullmaja-stac serve --api &`) starts with SIGINT ignored;
    # Python then raises no KeyboardInterrupt, and the server outlived Ctrl-C (seen in CI)
    (signal.SIGINT, _ignore_sigint),
    (signal.SIGTERM, None),  # kill, docker stop, systemd
], ids=["ctrl-c", "ctrl-c-started-ignoring-it", "sigterm"])
def test_cli_serve_api_answers_then_stops_cleanly_on_ctrl_c(catalog, tmp_path, stop, started):
    """`fullmaja-stac serve --api` as a user runs it: the URL it prints answers a search, and
    Ctrl-C (SIGINT) or SIGTERM ends it with no traceback."""
    env = {**os.environ, "FULLMAJA_STAC_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "fullmaja_stac.cli", "serve", str(catalog), "--api", "--port", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=started)
    try:
        line, deadline = "", time.monotonic() + 120
        while "STAC API:" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve --api did not start: {line}{proc.stdout.read() if proc.poll() is not None else ''}")
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        found = requests.post(f"{url}/search", json={"query": {"sat:relative_orbit": {"eq": 51}}}, timeout=10).json()
        assert len(found["features"]) == 5
    finally:
        proc.send_signal(stop)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130), out
    assert "Traceback" not in out and "ERROR" not in out, out
