"""`serve --api` under hostile and malformed requests: injection through every parameter,
nulls, wrong types, huge and negative numbers, deep nesting, bad geometry. Each must get a
4xx with a one-line JSON reason and no internal text, and the server must keep answering.
Also: the community conformance suite (stac-api-validator) run offline, and the searches
pystac-client users write (intersects, CQL2-text, sortby, fields, numberMatched) against a
brute-force filter of the static items."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
import requests
import shapely.geometry

from fullmaja_stac.publish.api.app import ApiServer, SearchEngine, build_index
from fullmaja_stac.analysis.consume import stackstac_items

pystac_client = pytest.importorskip("pystac_client")

# What only our side could put in an answer (inputs are echoed, shortened, in some messages):
# stack traces, database errors, our SQL's table, function and column names, our paths.
INTERNAL = re.compile(r"Traceback|OperationalError|DatabaseError|sqlite3|items_box|fm_spatial|\bp\d+\b|"
                      r"index\.sqlite|site-packages|fullmaja_stac|File \"")


@pytest.fixture(scope="module")
def index(catalog, tmp_path_factory):
    return build_index(catalog, tmp_path_factory.mktemp("hostile-index"))


@pytest.fixture(scope="module")
def server(index):
    with ApiServer(index, port=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def items(catalog) -> list[dict]:
    return stackstac_items(catalog)


def _alive(url: str) -> None:
    r = requests.get(f"{url}/", timeout=10)
    assert r.status_code == 200 and r.json()["type"] == "Catalog"


def _refused(r: requests.Response, case: str) -> str:
    assert 400 <= r.status_code < 500, f"{case}: {r.status_code} {r.text[:300]}"
    body = r.json()
    assert set(body) == {"code", "description"}, case
    text = body["description"]
    assert "\n" not in text and len(text) < 1200, f"{case}: {text!r}"
    assert not INTERNAL.search(r.text), f"{case}: internal text in {r.text[:300]}"
    return text


DEEP_JSON = {"op": "not", "args": [{"op": "=", "args": [{"property": "id"}, "x"]}]}
for _ in range(200):
    DEEP_JSON = {"op": "not", "args": [DEEP_JSON]}

GET_CASES = {
    "sortby injection": {"sortby": 'id" ; SELECT content AS id FROM read_text(\'/etc/passwd\') --'},
    "sortby copy": {"sortby": "id\"; COPY (SELECT 42) TO '/tmp/x.csv' --"},
    "sortby unknown": {"sortby": "nope"},
    "sortby geometry": {"sortby": "geometry"},
    "fields not json": {"fields": "{nope"},
    "offset negative": {"offset": "-5"},
    "token forged": {"token": "next:-5"},
    "token sql": {"token": "1; DROP TABLE items"},
    "limit negative": {"limit": "-1"},
    "limit zero": {"limit": "0"},
    "limit huge": {"limit": "9" * 5000},
    "limit text": {"limit": "ten"},
    "bbox nan": {"bbox": "nan,1,2,3"},
    "bbox inf": {"bbox": "inf,1,2,3"},
    "bbox three": {"bbox": "1,2,3"},
    "bbox south>north": {"bbox": "0,50,1,40"},
    "bbox out of range": {"bbox": "0,0,500,1"},
    "datetime garbage": {"datetime": "yesterday"},
    "datetime date only": {"datetime": "2019-03-01"},
    "datetime inverted": {"datetime": "2019-06-01T00:00:00Z/2019-03-01T00:00:00Z"},
    "datetime open both": {"datetime": "../.."},
    "intersects not geojson": {"intersects": "{\"type\": \"Polygon\"}"},
    "intersects bad json": {"intersects": "{"},
    "filter unbalanced": {"filter": "(eo:cloud_cover < 10", "filter-lang": "cql2-text"},
    "filter deep text": {"filter": "(" * 5000 + "id = 'x'" + ")" * 5000},
    "filter function": {"filter": "current_setting('x') = 'y'", "filter-lang": "cql2-text"},
    "filter unknown property": {"filter": "nope = 3"},
    "filter injection in property": {"filter": json.dumps({"op": "=", "args": [{"property": "id\" OR 1=1 --"}, "x"]}),
                                     "filter-lang": "cql2-json"},
    "filter string vs number": {"filter": "eo:cloud_cover = 'cloudy'"},
    "filter null compare": {"filter": json.dumps({"op": "=", "args": [{"property": "eo:cloud_cover"}, None]}),
                            "filter-lang": "cql2-json"},
    "filter deep json": {"filter": json.dumps(DEEP_JSON), "filter-lang": "cql2-json"},
    "filter lang unknown": {"filter": "id = 'x'", "filter-lang": "sql"},
    "filter crs other": {"filter": "id = 'x'", "filter-crs": "EPSG:2154"},
    "query null": {"query": json.dumps({"eo:cloud_cover": {"eq": None}})},
    "query not json": {"query": "{"},
    "query unknown op": {"query": json.dumps({"eo:cloud_cover": {"like": 3}})},
    "query unknown property": {"query": json.dumps({"../../etc": {"eq": 3}})},
    "query and filter": {"query": json.dumps({"eo:cloud_cover": {"lt": 3}}), "filter": "id = 'x'"},
    "parameter twice": [("limit", "1"), ("limit", "2")],
    "unknown parameter": {"select": "*"},
    "nul byte": {"ids": "a\x00b", "sortby": "\x00"},
}

POST_CASES = {
    "sortby injection": {"sortby": [{"field": 'id" ; SELECT 1 --', "direction": "asc"}]},
    "sortby direction": {"sortby": [{"field": "id", "direction": "sideways; DROP"}]},
    "sortby not a list": {"sortby": {"field": "id"}},
    "fields null": {"fields": None},
    "fields wrong type": {"fields": {"include": "id"}},
    "op function": {"filter": {"op": "current_setting", "args": ["memory_limit"]}},
    "op read_text": {"filter": {"op": "read_text", "args": ["/etc/passwd"]}},
    "op not a string": {"filter": {"op": ["="], "args": [{"property": "id"}, "x"]}},
    "op arity": {"filter": {"op": "=", "args": [{"property": "id"}]}},
    "property not a string": {"filter": {"op": "=", "args": [{"property": {"x": 1}}, "x"]}},
    "compare with null": {"filter": {"op": "=", "args": [{"property": "eo:cloud_cover"}, None]}},
    "query eq null": {"query": {"eo:cloud_cover": {"eq": None}}},
    "bool for number": {"filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, True]}},
    "huge number": {"filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 1e400]}},
    "in not list": {"filter": {"op": "in", "args": [{"property": "id"}, "x"]}},
    "in huge list": {"filter": {"op": "in", "args": [{"property": "id"}, ["x"] * 5000]}},
    "like number": {"filter": {"op": "like", "args": [{"property": "eo:cloud_cover"}, "1%"]}},
    "spatial bad geometry": {"filter": {"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Polygon",
                                                                                            "coordinates": "x"}]}},
    "spatial on id": {"filter": {"op": "s_intersects", "args": [{"property": "id"}, {"type": "Point", "coordinates": [0, 0]}]}},
    "temporal bad": {"filter": {"op": "t_intersects", "args": [{"property": "datetime"}, {"interval": ["x", "y"]}]}},
    "deep filter": {"filter": DEEP_JSON},
    "bbox string in POST": {"bbox": "0,40,5,50"},
    "bbox and intersects": {"bbox": [0, 40, 5, 50], "intersects": {"type": "Point", "coordinates": [1, 44]}},
    "intersects out of range": {"intersects": {"type": "Point", "coordinates": [1000, 44]}},
    "intersects nan": {"intersects": {"type": "Point", "coordinates": [float("nan"), 44]}},
    "limit string": {"limit": "lots"},
    "limit float": {"limit": 2.5},
    "collections not strings": {"collections": [1, 2]},
    "ids huge": {"ids": ["x"] * 5000},
    "unknown key": {"where": "1=1"},
    "body list": [1, 2, 3],
}


def test_hostile_get_requests_get_a_clear_400(server):
    for case, params in GET_CASES.items():
        _refused(requests.get(f"{server.url}/search", params=params, timeout=30), f"GET {case}")
    _alive(server.url)


def test_hostile_post_requests_get_a_clear_400(server):
    for case, body in POST_CASES.items():
        data = json.dumps(body, allow_nan=True)
        _refused(requests.post(f"{server.url}/search", data=data, timeout=30,
                               headers={"Content-Type": "application/json"}), f"POST {case}")
    for case, raw in {"not json": b"{", "nested 100000": b"[" * 100_000 + b"]" * 100_000,
                      "huge body": b" " * 2_000_000 + b"{}", "binary": bytes(range(256))}.items():
        _refused(requests.post(f"{server.url}/search", data=raw, timeout=30), f"POST {case}")
    _alive(server.url)


def test_messages_name_the_field_and_what_exists(server):
    text = _refused(requests.get(f"{server.url}/search", params={"sortby": "nope"}, timeout=10), "sortby")
    assert "'nope'" in text and "eo:cloud_cover" in text and "datetime" in text
    text = _refused(requests.post(f"{server.url}/search", json={"filter": {"op": "=", "args": [{"property": "x:y"}, 1]}},
                                  timeout=10), "filter")
    assert "'x:y'" in text and "sat:relative_orbit" in text
    text = _refused(requests.post(f"{server.url}/search", json={"query": {"eo:cloud_cover": {"eq": None}}},
                                  timeout=10), "query")
    assert "null" in text


def test_nothing_reaches_the_file_system_or_the_settings(server, tmp_path):
    target = tmp_path / "x.csv"
    requests.get(f"{server.url}/search", params={"sortby": f"id\"; COPY (SELECT 42) TO '{target}' --"}, timeout=10)
    assert not target.exists()
    for body in ({"filter": {"op": "read_text", "args": ["/etc/passwd"]}},
                 {"sortby": [{"field": "id) UNION SELECT sql, sql FROM sqlite_master --", "direction": "asc"}]}):
        r = requests.post(f"{server.url}/search", json=body, timeout=10)
        assert r.status_code == 400 and "root:" not in r.text and "CREATE" not in r.text


# Statements that succeed on the index when no defence is on, with the layers that each
# refuse them alone (measured: every layer named here, switched on by itself, refuses it).
SANDBOX_PAYLOADS = {
    "ATTACH DATABASE ':memory:' AS other": {"no_attach", "authorizer"},
    "PRAGMA query_only = OFF": {"authorizer"},
    "PRAGMA journal_mode = DELETE": {"read_only_file", "authorizer"},
    "CREATE TABLE x (a)": {"read_only_file", "query_only", "authorizer"},
    "DELETE FROM items": {"read_only_file", "query_only", "authorizer"},
    "UPDATE meta SET value = 'x' WHERE key = 'catalog'": {"read_only_file", "query_only", "authorizer"},
    "INSERT INTO parts VALUES ('a', 'b')": {"read_only_file", "query_only", "authorizer"},
}


@pytest.mark.parametrize("sql", list(SANDBOX_PAYLOADS))
def test_each_sandbox_layer_refuses_on_its_own_what_would_succeed(index, tmp_path, sql):
    """Issue 28, 3: the old payloads mostly failed with no defence at all. Each of these
    succeeds on a connection with every layer off, and each layer named for it refuses it
    alone; with all layers on (the server's connection) it is refused."""
    from fullmaja_stac.publish.api.app import SANDBOX_LAYERS, sandbox_connection

    def run(without: frozenset[str], name: str) -> bool:
        copy = tmp_path / name / index.path.name
        copy.parent.mkdir()
        shutil.copy(index.path, copy)
        db = sandbox_connection(copy, without)
        try:
            db.execute(sql).fetchall()
            db.commit()
            return True
        except sqlite3.DatabaseError:
            return False
        finally:
            db.close()

    everything = frozenset(SANDBOX_LAYERS)
    assert run(everything, "none"), "the payload must work with no defence, or it proves nothing"
    for layer in SANDBOX_PAYLOADS[sql]:
        assert not run(everything - {layer}, f"only-{layer}"), f"{layer} alone let it through"
    assert not run(frozenset(), "all")


def test_sandbox_refuses_everything_but_reading(index):
    """Defence in depth: even SQL of our own that tried to write, attach or change settings
    would be refused by the read-only connection's authorizer."""
    engine = SearchEngine(index.path)
    assert engine._run("SELECT COUNT(*) FROM items", [])[0][0] == 5
    for sql in ("ATTACH DATABASE '/tmp/other.db' AS other", "PRAGMA query_only = OFF", "DELETE FROM items",
                "UPDATE items SET id = 'x'", "CREATE TABLE x (a)", "SELECT load_extension('x')",
                "SELECT readfile('/etc/passwd')", "INSERT INTO meta VALUES ('a', 'b')"):
        with pytest.raises(sqlite3.DatabaseError):
            engine._run(sql, [])
    engine.close()


def test_a_search_past_its_time_limit_gets_503_and_the_server_keeps_answering(index):
    with ApiServer(index, port=0, time_limit=0.0) as srv:
        heavy = {"op": "in", "args": [{"property": "id"}, [f"id-{n}" for n in range(1000)]]}  # > one check's work
        r = requests.post(f"{srv.url}/search", json={"filter": heavy}, timeout=10)
        assert r.status_code == 503 and "narrow it" in r.json()["description"]
        _alive(srv.url)
        assert requests.get(f"{srv.url}/conformance", timeout=10).status_code == 200


def _brute(items, keep) -> set[str]:
    return {i["id"] for i in items if keep(i)}


def test_pystac_client_searches_match_brute_force(server, items):
    client = pystac_client.Client.open(server.url)
    clouds = sorted(i["properties"]["eo:cloud_cover"] for i in items)
    mid = clouds[len(clouds) // 2]
    footprint = shapely.geometry.shape(items[0]["geometry"])
    point = footprint.representative_point()
    cases = {
        "intersects": (dict(intersects=shapely.geometry.mapping(point)),
                       lambda i: shapely.geometry.shape(i["geometry"]).intersects(point)),
        "cql2-text": (dict(filter=f"eo:cloud_cover <= {mid} AND platform = 'sentinel-2a'", filter_lang="cql2-text"),
                      lambda i: i["properties"]["eo:cloud_cover"] <= mid and i["properties"]["platform"] == "sentinel-2a"),
        "cql2-json between": (dict(filter={"op": "between", "args": [{"property": "eo:cloud_cover"}, 0, mid]}),
                              lambda i: 0 <= i["properties"]["eo:cloud_cover"] <= mid),
        "like": (dict(filter={"op": "like", "args": [{"property": "id"}, "SENTINEL2A%"]}),
                 lambda i: i["id"].startswith("SENTINEL2A")),
        "t_intersects": (dict(filter={"op": "t_intersects", "args": [{"property": "datetime"},
                                                                      {"interval": ["2019-03-05T00:00:00Z", ".."]}]}),
                         lambda i: i["properties"]["datetime"] >= "2019-03-05"),
        "in": (dict(filter={"op": "in", "args": [{"property": "platform"}, ["sentinel-2b"]]}),
               lambda i: i["properties"]["platform"] == "sentinel-2b"),
        "not": (dict(filter={"op": "not", "args": [{"op": "<", "args": [{"property": "eo:cloud_cover"}, mid]}]}),
                lambda i: not i["properties"]["eo:cloud_cover"] < mid),
        "query startsWith": (dict(query={"platform": {"startsWith": "sentinel-2b"}}),
                             lambda i: i["properties"]["platform"].startswith("sentinel-2b")),
    }
    for name, (params, keep) in cases.items():
        expected = _brute(items, keep)
        assert 0 < len(expected) < len(items), f"{name}: a search that selects nothing (or everything) tells nothing"
        search = client.search(limit=2, **params)
        found = list(search.items_as_dicts())
        assert {i["id"] for i in found} == expected and len(found) == len(expected), name
        assert search.matched() == len(expected), name


def test_sortby_fields_and_paging(server, items):
    client = pystac_client.Client.open(server.url)
    by_cloud = sorted(items, key=lambda i: (i["properties"]["eo:cloud_cover"], i["id"]))
    for sortby in ("eo:cloud_cover", "properties.eo:cloud_cover", "+properties.eo:cloud_cover"):
        found = list(client.search(limit=2, sortby=sortby).items_as_dicts())
        assert [i["properties"]["eo:cloud_cover"] for i in found] == [i["properties"]["eo:cloud_cover"] for i in by_cloud]
    for sortby in ("-properties.datetime", "-datetime"):
        found = list(client.search(limit=3, sortby=sortby).items_as_dicts())
        assert [i["id"] for i in found] == [i["id"] for i in sorted(items, key=lambda i: i["properties"]["datetime"],
                                                                        reverse=True)]
    post = requests.post(f"{server.url}/search", json={"sortby": [{"field": "properties.datetime", "direction": "desc"}],
                                                        "limit": 100}, timeout=10).json()
    assert [f["properties"]["datetime"] for f in post["features"]] == \
        sorted((i["properties"]["datetime"] for i in items), reverse=True)
    picked = requests.post(f"{server.url}/search", json={"fields": {"include": ["properties.eo:cloud_cover"],
                                                                     "exclude": ["links"]}}, timeout=10).json()
    assert picked["numberMatched"] == len(items)
    for feature in picked["features"]:
        assert set(feature) == {"type", "stac_version", "id", "properties"}
        assert set(feature["properties"]) == {"eo:cloud_cover"}
    light = requests.get(f"{server.url}/search", params={"fields": "-assets,-geometry"}, timeout=10).json()
    assert all("assets" not in f and "geometry" not in f and "eo:cloud_cover" in f["properties"]
               for f in light["features"])


def _offline_validator_script(schema_map: Path) -> str:
    """stac-api-validator as a user runs it, with its schema downloads answered from the
    bundled copy of the STAC schemas (this machine has no internet)."""
    return f"""
import json, sys, requests
from pathlib import Path
from requests.models import Response
mapping = json.loads(Path({str(schema_map)!r}).read_text())
folder = Path({str(schema_map.parent)!r})
real_send = requests.Session.send
def send(self, request, **kw):
    for url, local in mapping.items():
        if request.url.split("#")[0] == url:
            r = Response(); r.status_code = 200; r._content = (folder / local).read_bytes()
            r.headers["Content-Type"] = "application/json"; r.url = request.url; r.request = request
            return r
    return real_send(self, request, **kw)
requests.Session.send = send
import pystac.stac_io
real_read = pystac.stac_io.DefaultStacIO.read_text_from_href
def read_text_from_href(self, href):  # pystac's schema downloads
    local = mapping.get(str(href).split("#")[0])
    return (folder / local).read_text() if local else real_read(self, href)
pystac.stac_io.DefaultStacIO.read_text_from_href = read_text_from_href
from stac_api_validator.__main__ import main
sys.exit(main())
"""


@pytest.mark.slow
def test_stac_api_validator_passes(server, items, tmp_path):
    pytest.importorskip("stac_api_validator")
    import subprocess

    from fullmaja_stac.stac.validate import BUNDLED_SCHEMA_MAP

    script = tmp_path / "validate_offline.py"
    script.write_text(_offline_validator_script(BUNDLED_SCHEMA_MAP))
    clouds = sorted(i["properties"]["eo:cloud_cover"] for i in items)
    low, high = f"{clouds[0] - 1:g}", f"{clouds[-1] + 1:g}"  # every comparison selects something
    args = ["--root-url", server.url, "--collection", "maja-s2-l2a",
            "--geometry", json.dumps({"type": "Polygon", "coordinates": [[[0, 40], [5, 40], [5, 50], [0, 50], [0, 40]]]}),
            "--fields-nested-property", "properties.eo:cloud_cover",
            "--query-comparison-field", "eo:cloud_cover", "--query-eq-value", f"{clouds[0]:g}",
            "--query-neq-value", f"{clouds[0]:g}", "--query-lt-value", high, "--query-lte-value", high,
            "--query-gt-value", low, "--query-gte-value", low,
            "--query-substring-field", "grid:code", "--query-starts-with-value", "MGRS",
            "--query-ends-with-value", "TCJ", "--query-contains-value", "31T",
            "--query-in-field", "mgrs:latitude_band", "--query-in-values", "T,U"]
    for cc in ("core", "collections", "features", "item-search", "filter", "item-search#sort", "item-search#fields",
               "item-search#query"):
        args += ["--conformance", cc]
    run = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    errors = out.split("Errors:", 1)[1] if "Errors:" in out else ""
    assert "Traceback" not in out and run.returncode == 0, out[-4000:]
    assert errors.strip().lstrip("-").strip() in ("", "none"), errors[:4000]
