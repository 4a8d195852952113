"""GEODES provider against the emulator's STAC search and downloads (a real loopback server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from fullmaja_stac.geodes import GeodesClient, GeodesError, GeodesProvider, record_fetch
from fullmaja_stac.ingest import ingest
from fullmaja_stac.jobs import JobStore
from fullmaja_stac.orders import download_job
from fullmaja_stac.peps.download import DownloadError, download
from fullmaja_stac.peps.emulator import GEODES_KEY, PepsEmulator

START, END = date(2020, 1, 1), date(2020, 12, 31)


@pytest.fixture(scope="module")
def emu():
    with PepsEmulator(speed=0, size=24) as server:
        yield server


def _expected(emu, tile, orbit=None, max_cloud=None, start=START, end=END):
    out = []
    for e in emu.geodes_archive():
        day = e["spec"].acquired.date()
        if e["tile"] == tile and (orbit is None or e["orbit"] == orbit) and start <= day <= end \
                and (max_cloud is None or e["cloud"] <= max_cloud):
            out.append(e["name"])
    return out


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
    assert client.availability([p.urn for p in products]) == {p.urn: p.online for p in products}
    result = ingest([tmp_path / "out"], tmp_path / "catalog", workers=1)
    assert len(result.added) == 3
    item = json.loads(next((tmp_path / "catalog").glob("maja-s2-l2a/*/*/*/*.json")).read_text())
    assert item["properties"]["fullmaja:provider"] == "geodes"
    assert item["properties"]["fullmaja:remote_id"].startswith("URN:FEATURE:DATA:gdh:")
    assert "GEODES" in item["properties"]["processing:facility"]


def test_corrupted_body_is_refused_by_md5(tmp_path):
    with PepsEmulator(speed=0, size=24, faults={"corrupt"}) as emu:
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


def test_pystac_client_searches_where_geodes_is_standard(emu):
    """pystac-client finds the search endpoint and sends `query`; it pages by `next` links,
    which GEODES does not give (it pages by number): one page only, as docs/NOTES.md says."""
    from pystac_client import Client

    client = Client.open(f"{emu.url}/api/stac")
    search = client.search(collections=["THEIA_REFLECTANCE_SENTINEL2_L2A"], limit=80, method="POST",
                           query={"grid:code": {"eq": "T31TCJ"}, "sat:relative_orbit": {"eq": 51}})
    names = [i.properties["identifier"] for i in search.items()]
    expected = _expected(emu, "31TCJ", 51)
    assert names == expected and len(expected) < 80  # one page holds them all
    both = client.search(collections=["THEIA_REFLECTANCE_SENTINEL2_L2A"], limit=80, method="POST",
                         query={"grid:code": {"eq": "T31TCJ"}})
    assert len(list(both.items())) == 80 < len(_expected(emu, "31TCJ"))  # no next link: first page only


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
