"""The served catalog: CORS, Range, and pystac-client walking it over HTTP."""

from __future__ import annotations

import requests
from pystac_client import Client

from fullmaja_stac.serve import CatalogServer


def test_pystac_client_walks_the_served_catalog(catalog):
    with CatalogServer(catalog, port=0) as server:
        client = Client.open(server.catalog_url)
        collections = list(client.get_collections())
        assert [c.id for c in collections] == ["maja-s2-l2a"]
        items = list(collections[0].get_items(recursive=True))
        assert len(items) == 5
        assert all(i.properties["grid:code"] == "MGRS-31TCJ" for i in items)


def test_cors_and_range_for_cogs(catalog):
    cog = next(catalog.glob("maja-s2-l2a/*/*/*/*_FRE_B4.tif"))
    rel = cog.relative_to(catalog).as_posix()
    with CatalogServer(catalog, port=0) as server:
        head = requests.get(f"{server.url}/{rel}", headers={"Range": "bytes=0-15", "Origin": "http://x"})
        assert head.status_code == 206 and head.content == cog.read_bytes()[:16]
        assert head.headers["Access-Control-Allow-Origin"] == "*"
        assert head.headers["Content-Range"] == f"bytes 0-15/{cog.stat().st_size}"
        tail = requests.get(f"{server.url}/{rel}", headers={"Range": "bytes=-8"})
        assert tail.content == cog.read_bytes()[-8:]
        pre = requests.options(f"{server.url}/{rel}", headers={"Access-Control-Request-Headers": "range"})
        assert pre.status_code == 204 and "Range" in pre.headers["Access-Control-Allow-Headers"]
        assert requests.get(f"{server.url}/../../etc/passwd").status_code == 404
        assert requests.get(f"{server.url}/catalog.json").json()["type"] == "Catalog"
