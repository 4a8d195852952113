"""Trust boundary: the network. Credentials reach only their own origin, whatever the
redirects; every read has a deadline, a stall limit and a size cap; paging ends; remote
documents of the wrong shape are one line that says where (issue 24, 2-4 and 12-14).

Real HTTP servers on loopback (tests/hostile_server.py) answer as a hostile or broken
service would and record every header they receive."""

from __future__ import annotations

import io
import json
import resource
import time
import zipfile
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fullmaja_stac import config
from fullmaja_stac.config import NetLimits
from fullmaja_stac.providers.geodes import GeodesClient, GeodesError, GeodesProvider, record_fetch
from fullmaja_stac.providers.jobs import JobStore
from fullmaja_stac.providers.job_files import download_job
from fullmaja_stac.providers.peps.auth import Credentials
from fullmaja_stac.providers.peps.client import make_session
from fullmaja_stac.providers.download import DownloadError, download
from fullmaja_stac.providers.peps.wps import PepsError, parse_status_json
from fullmaja_stac.providers.base import PepsProvider
from fullmaja_stac.trust.remote import RemoteLimitError, fetch

from hostile_server import HostileServer, document, gzip_bomb, redirect, send, slow_drip

KEY = "secret-geodes-key"
CREDS = Credentials("me@example.org", "pw-not-to-leak")


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("SENTINEL2A_20200101-000000-000_L2A_T31TCJ_C_V1-0/x.txt", "hello")
    return buffer.getvalue()


ZIP = _zip_bytes()


@pytest.fixture()
def a():
    with HostileServer("127.0.0.1") as server:
        yield server


@pytest.fixture()
def b():
    with HostileServer("127.0.0.2") as server:  # another origin: another host on loopback
        yield server


def _page(features: list, matched: int | None = None) -> bytes:
    doc: dict = {"type": "FeatureCollection", "features": features}
    if matched is not None:
        doc["context"] = {"matched": matched}
    return json.dumps(doc).encode()


def _feature(name: str, href: str) -> dict:
    return {"id": f"URN:{name}", "properties": {"identifier": name, "start_datetime": "2020-01-01T00:00:00Z",
                                               "grid:code": "T31TCJ", "eo:cloud_cover": 3},
            "assets": {f"{name}.zip": {"href": href, "type": "application/zip", "roles": ["data"]}}}


# ----------------------------------------------------------------------------- credentials


def test_the_geodes_key_never_reaches_another_host(a, b, tmp_path):
    """It used to go to the host of any zip href, and across a redirect to another host
    (requests strips Authorization only)."""
    a.routes["/api/stac/search"] = document(_page([_feature("P1", f"{b.url}/direct.zip"),
                                                   _feature("P2", f"{a.url}/hop.zip")], matched=2))
    a.routes["/hop.zip"] = redirect(f"{b.url}/stored.zip")
    b.routes["/direct.zip"] = b.routes["/stored.zip"] = document(ZIP, content_type="application/zip")
    client = GeodesClient(a.url, KEY)
    products = client.search("31TCJ", None, date(2020, 1, 1), date(2020, 12, 31))
    job = record_fetch(JobStore(tmp_path / "state"), client, products, {})
    report = download_job(JobStore(tmp_path / "state"), GeodesProvider(a.url, KEY), job, tmp_path / "out")
    assert report.count("downloaded") == 2, report.dates
    assert len(b.requests) == 2 and b.headers_seen("X-API-Key") == [None, None]
    assert a.headers_seen("X-API-Key") == [KEY, KEY]  # the search and the hop: its own origin


def test_peps_credentials_never_reach_a_result_url_on_another_host(a, b, tmp_path):
    b.routes["/elsewhere/P.zip"] = document(ZIP, content_type="application/zip")
    a.routes["/here/Q.zip"] = document(ZIP, content_type="application/zip")
    store = JobStore(tmp_path / "state")
    job = store.add_job("peps", a.url, "123", f"{a.url}/s.xml", {}, "ACCEPTED")
    job = store.record_status(job.id, "FINISHED", 100.0, "", [], [f"{b.url}/elsewhere/P.zip", f"{a.url}/here/Q.zip"], 0)
    report = download_job(store, PepsProvider(CREDS, a.url), job, tmp_path / "out")
    assert report.count("downloaded") == 2, report.dates
    assert b.headers_seen("Authorization") == [None]
    assert a.headers_seen("Authorization")[0].startswith("Basic ")


HOPS = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([301, 302, 303, 307, 308])), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=HOPS)
def test_no_redirect_chain_carries_a_credential_off_its_origin(a, b, chain):
    """Property: for any chain of redirects between the service's origin (a) and another
    (b), every request that reaches b carries neither the key nor Basic auth."""
    a.requests.clear()
    b.requests.clear()
    servers = {"a": a, "b": b}
    for i, (where, status) in enumerate(chain):
        nxt = chain[i + 1][0] if i + 1 < len(chain) else None
        route = redirect(f"{servers[nxt].url}/hop{i + 1}", status) if nxt else document(b"{}")
        servers[where].routes[f"/hop{i}"] = route
    first = servers[chain[0][0]]
    for session in (make_session(CREDS, a.url), GeodesProvider(a.url, KEY).session()):
        session.get(f"{first.url}/hop0", timeout=5)
    assert all(v is None for v in b.headers_seen("Authorization") + b.headers_seen("X-API-Key"))


# ----------------------------------------------------------------------------- deadlines and caps


@pytest.mark.parametrize("headers_too", [False, True])
def test_a_one_byte_a_second_answer_is_cut_at_the_deadline(a, headers_too):
    """A body (or headers) sent at 5 bytes/s never timed out: each read got its byte in time."""
    a.routes["/drip"] = slow_drip(b"x" * 1000, interval=0.2, headers_too=headers_too)
    limits = NetLimits(total_s=2.0, stall_s=30.0, max_bytes=10_000)
    started = time.monotonic()
    with pytest.raises(RemoteLimitError, match="within 2 s"):
        fetch(make_session(None), "GET", f"{a.url}/drip", limits=limits)
    assert time.monotonic() - started < 5


def test_a_stalled_download_resumes_then_gives_up_by_its_deadline(a, tmp_path):
    a.routes["/p.zip"] = slow_drip(ZIP, interval=0.5)
    limits = NetLimits(total_s=3.0, stall_s=1.0, max_bytes=None)
    started = time.monotonic()
    with pytest.raises(DownloadError):
        download(make_session(None), f"{a.url}/p.zip", tmp_path / "p.zip", limits=limits, attempts=50, wait_max=0.1)
    assert time.monotonic() - started < 8 and not (tmp_path / "p.zip").exists()


def test_a_gzip_bomb_is_stopped_at_the_cap_without_inflating(a):
    """A 200 KB gzip body that inflates to 200 MB: stopped at the cap, memory not spent."""
    a.routes["/bomb"] = gzip_bomb(200 * 1024 * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(RemoteLimitError, match="larger than the 1048576 bytes"):
        fetch(make_session(None), "GET", f"{a.url}/bomb", limits=NetLimits(10, 10, 1024 * 1024))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: under 100 MB more


def test_a_download_larger_than_announced_is_refused(a, tmp_path):
    a.routes["/big.zip"] = document(ZIP + b"\0" * 5000, content_type="application/zip")
    with pytest.raises(DownloadError, match="more than the"):
        download(make_session(None), f"{a.url}/big.zip", tmp_path / "big.zip", expected_size=len(ZIP), attempts=1)


def test_paging_that_never_ends_stops(a, monkeypatch):
    """Every page full, `matched` missing: 6 609 pages in 60 s before; now a bounded number."""
    monkeypatch.setattr(config, "MAX_SEARCH_PAGES", 5)
    counter = iter(range(10**6))

    def endless(h):
        n = next(counter)
        send(h, 200, _page([_feature(f"P{n}_{i}", f"{a.url}/x.zip") for i in range(80)]))

    a.routes["/api/stac/search"] = endless
    with pytest.raises(GeodesError, match="stopped after 5 pages"):
        GeodesClient(a.url).search("31TCJ", None, date(2020, 1, 1), date(2020, 12, 31))
    assert len(a.requests) == 5


def test_a_page_that_repeats_ends_the_search(a):
    a.routes["/api/stac/search"] = document(_page([_feature(f"P{i}", f"{a.url}/x.zip") for i in range(80)]))
    found = GeodesClient(a.url).search("31TCJ", None, date(2020, 1, 1), date(2020, 12, 31))
    assert len(found) == 80 and len(a.requests) == 2


# ----------------------------------------------------------------------------- typed records

GOOD = _feature("P", "https://x/p.zip")
WRONG_PAGES = {
    "features a dict": ({"features": {"a": 1}}, "$.features"),
    "a feature a string": ({"features": ["x"]}, "$.features[0]"),
    "cloud cover 'ten'": ({"features": [{**GOOD, "properties": {**GOOD["properties"], "eo:cloud_cover": "ten"}}]},
                          "$.features[0].properties.eo:cloud_cover"),
    "grid:code an int": ({"features": [{**GOOD, "properties": {**GOOD["properties"], "grid:code": 31}}]},
                         "$.features[0].properties.grid:code"),
    "matched 'many'": ({"features": [GOOD], "context": {"matched": "many"}}, "$.context.matched"),
    "assets a list": ({"features": [{**GOOD, "assets": [1, 2]}]}, "$.features[0].assets"),
    "roles a string": ({"features": [{**GOOD, "assets": {"z": {"href": "https://x/z", "roles": "data"}}}]},
                       "$.features[0].assets[...].roles"),
    "not JSON": (b"<html>", "not JSON"),
    "a list": ([], "Expected `object`"),
}


@pytest.mark.parametrize("case", list(WRONG_PAGES))
def test_a_search_page_of_the_wrong_shape_is_one_line_that_says_where(a, case):
    doc, where = WRONG_PAGES[case]
    a.routes["/api/stac/search"] = document(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
    with pytest.raises(GeodesError) as info:
        GeodesClient(a.url).search("31TCJ", None, date(2020, 1, 1), date(2020, 12, 31))
    assert where in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("identifier", ["../../x", "/abs/x", "a/b", "..", "x\ny"])
def test_a_hostile_geodes_identifier_is_never_written(a, tmp_path, identifier):
    """`out / (identifier + ".zip")` used to write outside --out."""
    a.routes["/api/stac/search"] = document(_page([_feature(identifier, f"{a.url}/z.zip"),
                                                   _feature("GOOD", f"{a.url}/g.zip")], matched=2))
    a.routes["/z.zip"] = a.routes["/g.zip"] = document(ZIP, content_type="application/zip")
    client = GeodesClient(a.url, KEY)
    products = client.search("31TCJ", None, date(2020, 1, 1), date(2020, 12, 31))
    bad = next(p for p in products if p.name == identifier)
    assert bad.href is None and "cannot be a file name" in bad.problem
    store = JobStore(tmp_path / "state")
    report = download_job(store, GeodesProvider(a.url, KEY), record_fetch(store, client, products, {}), tmp_path / "out")
    assert [d.name for d in report.dates if d.status == "downloaded"] == ["GOOD.zip"]
    assert sorted(p.name for p in tmp_path.rglob("*.zip")) == ["GOOD.zip"]
    assert not any("z.zip" in p for _, p, _ in a.requests)


STATUS = {"job_status": "FINISHED", "process": "100%", "results": ["https://h/a.zip"], "unprocessed": 0, "logs": []}


@pytest.mark.parametrize("change, words", [
    ({"results": "https://h/a.zip"}, "$.USER_INFO.results"),
    ({"unprocessed": "three"}, "unprocessed 'three' is not a count"),
    ({"results": ["file:///etc/passwd"]}, "is not an http(s) URL"),
    ({"results": [17]}, "$.USER_INFO.results[0]"),
    ({"job_status": None}, "$.USER_INFO.job_status"),
    ({"logs": {"a": 1}}, "$.USER_INFO.logs"),
])
def test_a_status_document_of_the_wrong_shape_is_one_line(change, words):
    with pytest.raises(PepsError) as info:
        parse_status_json(json.dumps({"USER_INFO": {**STATUS, **change}}).encode(), "status")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_result_urls_listed_many_times_are_one_download_and_dot_is_refused(a, tmp_path):
    """The same name 5 000 times made threads share one .part; `…/.` wrote `<out>.part`."""
    a.routes["/r/P.zip"] = document(ZIP, content_type="application/zip")
    doc = {"USER_INFO": {**STATUS, "results": [f"{a.url}/r/P.zip"] * 5000 + [f"{a.url}/r/."]}}
    status = parse_status_json(json.dumps(doc).encode(), "status")
    store = JobStore(tmp_path / "state")
    job = store.add_job("peps", a.url, "1", f"{a.url}/s.xml", {}, "ACCEPTED")
    job = store.record_status(job.id, "FINISHED", 100.0, "", [], status.results, 0)
    out = tmp_path / "out"
    report = download_job(store, PepsProvider(CREDS, a.url), job, out)
    assert report.count("downloaded") == 1 and [d.status for d in report.dates].count("failed") == 1
    assert len([r for r in a.requests if r[1] == "/r/P.zip"]) == 1
    assert not (tmp_path / "out.part").exists() and sorted(p.name for p in out.iterdir() if p.suffix == ".zip") == ["P.zip"]


def test_a_slow_answer_through_a_proxy_is_cut_too(a):
    """The watchdog cuts connections made through HTTP_PROXY as well (a proxy manager builds
    its own connection pools)."""
    a.routes["*"] = slow_drip(b"x" * 1000, interval=0.2)
    session = make_session(None)
    session.proxies = {"http": a.url}
    started = time.monotonic()
    with pytest.raises(RemoteLimitError, match="within 2 s"):
        fetch(session, "GET", "http://service.invalid/drip", limits=NetLimits(total_s=2.0, stall_s=30.0, max_bytes=10_000))
    assert time.monotonic() - started < 5 and a.requests and a.requests[0][1].startswith("http://service.invalid/")
