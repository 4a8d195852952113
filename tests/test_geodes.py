"""GEODES provider against the emulator's STAC search and downloads (a real loopback server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from fullmaja_stac.providers.geodes import GeodesClient, GeodesError, GeodesProvider, record_fetch
from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.providers.jobs import JobStore
from fullmaja_stac.providers.job_files import download_job
from fullmaja_stac.providers.download import DownloadError, download
from fullmaja_stac.emulator.server import GEODES_KEY

START, END = date(2020, 1, 1), date(2020, 12, 31)


@pytest.fixture(scope="module")
def emu(emulator):
    with emulator(size=24) as server:  # the archive is large: small products
        yield server


def _expected(emu, tile, orbit=None, max_cloud=None, start=START, end=END):
    out = []
    for e in emu.geodes_archive():
        day = e["spec"].acquired.date()
        if e["tile"] == tile and (orbit is None or e["orbit"] == orbit) and start <= day <= end \
                and (max_cloud is None or e["cloud"] <= max_cloud):
            out.append(e["name"])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("tile, orbit, max_cloud, start, end", [
    ("31TCJ", None, None, START, END),          # both orbits: more than one page of 80
    ("31TCJ", 51, None, START, END),
    ("T31TCJ", 8, 20, START, END),
    ("31TCH", 51, None, date(2020, 3, 1), date(2020, 4, 30)),
])
def test_search_filters_across_pages(emu, tile, orbit, max_cloud, start, end):
    client = GeodesClient(emu.url)
    before = len(emu.requests)
    found = client.search(tile, orbit, start, end, max_cloud)
    searches = [b for m, p, b in emu.requests[before:] if p == "/api/stac/search"]
    expected = _expected(emu, tile.removeprefix("T"), orbit, max_cloud, start, end)
    assert [p.name for p in found] == expected and expected
    if orbit is None:
        assert len(found) > 80 and len(searches) == 2
    product = found[0]
    assert product.md5 and product.size and product.urn.startswith("URN:") and product.href.endswith(product.md5)


@pytest.mark.slow
def test_fetch_verifies_md5_reports_offline_and_provenance_reaches_items(emu, tmp_path):
    client = GeodesClient(emu.url, GEODES_KEY)
    products = client.search("31TCH", 51, date(2020, 1, 1), date(2020, 12, 31))
    offline = [p for p in products if not p.online]
    assert offline, "the emulated archive keeps some products on tape"
    products = offline[:1] + [p for p in products if p.online][:3]
    store = JobStore(tmp_path / "state")
    job = record_fetch(store, client, products, {"tile": "31TCH", "orbit": 51})
    report = download_job(store, GeodesProvider(emu.url, GEODES_KEY), job, tmp_path / "out")
    assert report.count("downloaded") == 3 and report.count("offline") == 1 and report.ok
    assert not (tmp_path / "out" / offline[0].file_name).exists()
    result = ingest([tmp_path / "out"], tmp_path / "catalog", workers=1)
    assert len(result.added) == 3
    item = json.loads(next((tmp_path / "catalog").glob("maja-s2-l2a/*/*/*/*.json")).read_text())
    assert item["properties"]["fullmaja:provider"] == "geodes"
    assert item["properties"]["fullmaja:remote_id"].startswith("URN:FEATURE:DATA:gdh:")
    assert "GEODES" in item["properties"]["processing:facility"]


def test_corrupted_body_is_refused_by_md5(tmp_path, emulator):
    with emulator(faults={"corrupt"}, size=24) as emu:
        product = GeodesClient(emu.url).search("31TCJ", 51, date(2020, 6, 1), date(2020, 6, 30))[0]
        session = GeodesProvider(emu.url, GEODES_KEY).session()
        with pytest.raises(DownloadError, match="MD5"):
            download(session, product.href, tmp_path / product.file_name, expected_md5=product.md5, attempts=2, wait_max=0.1)
        assert not (tmp_path / product.file_name).exists()
        got = download(session, product.href, tmp_path / product.file_name, expected_md5=product.md5)
        assert got.md5 == product.md5


@pytest.mark.parametrize("key, words", [(None, "no GEODES API key"), ("wrong-key", "redirect loop")])
def test_missing_or_wrong_key_gives_one_clear_line(emu, tmp_path, key, words):
    env = {k: v for k, v in os.environ.items() if k != "GEODES_API_KEY"}
    env.update(FULLMAJA_STAC_STATE_DIR=str(tmp_path / "state"), HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    if key:
        env["GEODES_API_KEY"] = key
    run = subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", "fetch", "--tile", "31TCJ", "--orbit", "51",
                          "--start", "2020-06-01", "--end", "2020-06-30", "--geodes-url", emu.url,
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert words in run.stderr and run.stderr.strip().count("\n") == 0
    assert "wrong-key" not in run.stdout + run.stderr


def test_renamed_collection_is_a_clear_error(emu):
    client = GeodesClient(emu.url, collection="MUSCATE_SENTINEL2_SENTINEL2_L2A")
    with pytest.raises(GeodesError, match="HTTP 400"):
        client.search("31TCJ", 51, START, END)


@pytest.mark.slow
def test_pystac_client_pages_geodes_wrongly_so_we_page_by_number(emu):
    """pystac-client finds the search endpoint and sends `query`, but follows `next` links,
    which GEODES points at the collection's item list without the search's filters (as in a
    recorded answer): past the first page it returns other tiles. Our client pages by number."""
    from pystac_client import Client

    client = Client.open(f"{emu.url}/api/stac")
    search = client.search(collections=["THEIA_REFLECTANCE_SENTINEL2_L2A"], limit=80, method="POST",
                           query={"grid:code": {"eq": "T31TCJ"}})
    tiles = {i.properties["grid:code"] for i in search.items()}
    assert len(_expected(emu, "31TCJ")) > 80 and tiles != {"T31TCJ"}
    ours = GeodesClient(emu.url).search("31TCJ", None, START, END)
    assert [p.name for p in ours] == _expected(emu, "31TCJ") and {p.tile for p in ours} == {"31TCJ"}


def test_sensing_date_not_publication_date(emu):
    """GEODES's `datetime` is the publication time; the acquisition is `start_datetime`."""
    client = GeodesClient(emu.url)
    body = json.loads(client._post(f"{emu.url}/api/stac/search", {"collections": [client.collection], "limit": 5, "page": 1,
                                                         "query": {"grid:code": {"eq": "T31TCJ"}}}))
    feature = body["features"][0]
    assert feature["properties"]["datetime"] > feature["properties"]["start_datetime"]  # the emulator's real shape
    assert feature["properties"]["platform"] in ("S2A", "S2B") and body["context"]["matched"] > 5
    by_name = {e["name"]: e["spec"].acquired for e in emu.geodes_archive()}
    for product in client.search("31TCJ", 51, date(2020, 6, 1), date(2020, 6, 30)):
        assert product.acquired == by_name[product.name].replace(microsecond=by_name[product.name].microsecond // 1000 * 1000)


ZIP = {"href": "https://x/api/download/urn/files/abc", "description": "File size: 12 bytes\n\nIs online: true"}


@pytest.mark.parametrize("assets, picked", [
    ({"a.zip": {**ZIP, "type": "application/zip", "roles": ["data"]}}, "a.zip"),
    ({"p.zip": {**ZIP, "roles": ["data"], "title": "p.zip"}}, "p.zip"),                      # no type
    ({"meta": {**ZIP, "href": "https://x/m.xml", "type": "application/xml", "roles": ["data"]},
      "raw": {**ZIP, "href": "https://x/raw", "type": "application/octet-stream", "roles": ["data"]}}, "raw"),  # eodag's rule
    ({"ql": {**ZIP, "href": "https://x/q.jpg", "type": "image/jpeg", "roles": ["overview"]},
      "product": {**ZIP, "title": "SENTINEL2A_X.zip", "roles": []}}, "product"),            # pyGeodes's rule
])
def test_zip_asset_is_found_as_tolerantly_as_peers(assets, picked):
    from fullmaja_stac.providers.geodes import parse_item

    product = parse_item({"id": "URN:1", "properties": {"identifier": "SENTINEL2A_X"}, "assets": assets})
    assert product.href == assets[picked]["href"] and product.problem is None


def test_no_zip_asset_says_what_was_seen():
    from fullmaja_stac.providers.geodes import parse_item

    product = parse_item({"id": "URN:1", "properties": {"identifier": "N"}, "assets": {
        "ql": {"href": "https://x/q.jpg", "type": "image/jpeg", "roles": ["overview"]}}})
    assert product.href is None and "ql (image/jpeg, roles overview)" in product.problem


def test_search_shows_the_whole_name_on_80_columns_and_as_json(emu, tmp_path):
    env = {**os.environ, "FULLMAJA_STAC_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "80"}
    args = [sys.executable, "-m", "fullmaja_stac.cli", "search", "--tile", "31TCJ", "--orbit", "51",
            "--start", "2020-06-01", "--end", "2020-06-30", "--geodes-url", emu.url]
    table = subprocess.run(args, capture_output=True, text=True, env=env)
    expected = _expected(emu, "31TCJ", 51, start=date(2020, 6, 1), end=date(2020, 6, 30))
    assert table.returncode == 0 and expected
    assert all(name in table.stdout for name in expected), table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    listed = subprocess.run([*args, "--json"], capture_output=True, text=True, env=env)
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == expected
    assert all(r["acquired"][:10] == r["name"].split("_")[1][:8][:4] + "-" + r["name"].split("_")[1][4:6] + "-"
               + r["name"].split("_")[1][6:8] for r in rows)


def test_status_lists_a_geodes_fetch_without_peps_credentials(emu, tmp_path):
    client = GeodesClient(emu.url, GEODES_KEY)
    products = client.search("31TCJ", 51, date(2020, 6, 1), date(2020, 6, 30))
    record_fetch(JobStore(tmp_path / "state"), client, products, {"tile": "31TCJ", "orbit": 51})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPS_")}
    env.update(FULLMAJA_STAC_STATE_DIR=str(tmp_path / "state"), HOME=str(tmp_path))
    run = subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", "status"], capture_output=True, text=True,
                         env={**env, "COLUMNS": "120"})
    assert run.returncode == 0, run.stderr
    assert "finished" in run.stdout and f"{len(products)} ready" in run.stdout


def test_search_and_fetch_as_library_functions(emu, tmp_path, monkeypatch):
    """What `search` and `fetch` do, called from Python: names filter, one error for a name
    not found, the key checked once, the fetch recorded as a job and downloaded."""
    from fullmaja_stac.providers.geodes import fetch, search_existing

    client, products = search_existing(emu.url, "31TCJ", 51, date(2020, 6, 1), date(2020, 6, 30))
    names = [p.name for p in products if p.online][:2]
    _, picked = search_existing(emu.url, "31TCJ", 51, date(2020, 6, 1), date(2020, 6, 30), names=names)
    assert [p.name for p in picked] == names
    with pytest.raises(GeodesError, match="not found on GEODES"):
        search_existing(emu.url, "31TCJ", 51, date(2020, 6, 1), date(2020, 6, 30), names=["SENTINEL2X_nothing"])
    monkeypatch.setenv("GEODES_API_KEY", GEODES_KEY)
    store = JobStore(tmp_path / "state")
    report = fetch(store, client, picked, {"tile": "31TCJ"}, tmp_path / "out")
    assert report.ok and report.count("downloaded") == 2
    assert store.all()[0].provider == "geodes"
