"""The served catalog: CORS, Range, and pystac-client walking it over HTTP."""

from __future__ import annotations

import requests
from pystac_client import Client

from fullmaja_stac.publish.serve import CatalogServer


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


# ----------------------------------------------------------------------------- hostile requests


def _raw(url: str, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes (requests would refuse to send these paths) and read the answer."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_nul_bytes_long_names_and_odd_ranges_get_an_answer(catalog, capfd):
    cog = next(catalog.glob("maja-s2-l2a/*/*/*/*_FRE_B4.tif"))
    rel = cog.relative_to(catalog).as_posix()
    size = cog.stat().st_size
    with CatalogServer(catalog, port=0) as server:
        for path in (b"/%00", b"/catalog%00.json", b"/" + b"a" * 300, b"/" + b"a/" * 3000 + b"x", b"/%ff%fe"):
            answer = _raw(server.url, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 404") or answer.startswith(b"HTTP/1.1 400") \
                or answer.startswith(b"HTTP/1.0 414"), (path[:40], answer[:80])
        huge = requests.get(f"{server.url}/{rel}", headers={"Range": "bytes=0-" + "9" * 5000}, timeout=10)
        assert huge.status_code == 200 and len(huge.content) == size  # not a range we can serve: the whole file
        inverted = requests.get(f"{server.url}/{rel}", headers={"Range": "bytes=5-3"}, timeout=10)
        assert inverted.status_code == 200 and len(inverted.content) == size  # RFC 9110: ignored
        past = requests.get(f"{server.url}/{rel}", headers={"Range": f"bytes={size + 10}-"}, timeout=10)
        assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{size}"
        assert requests.get(f"{server.url}/catalog.json", timeout=10).status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err, err


def test_idle_connections_are_closed_and_do_not_starve_others(catalog):
    """More idle connections than worker threads: each is closed after the idle timeout, and
    a real request made meanwhile is still answered."""
    import socket
    import time
    from urllib.parse import urlsplit

    with CatalogServer(catalog, port=0, idle_timeout=1.0) as server:
        parts = urlsplit(server.url)
        idle = [socket.create_connection((parts.hostname, parts.port), timeout=10) for _ in range(80)]
        start = time.monotonic()
        assert requests.get(f"{server.url}/catalog.json", timeout=20).status_code == 200
        assert time.monotonic() - start < 10
        for sock in idle:
            assert sock.recv(1) == b""  # closed by the server, not left open forever
            sock.close()
        assert server.httpd.request_queue_size >= 128


def test_open_server_picks_the_static_server_or_the_api(catalog, tmp_path):
    from fullmaja_stac.publish.serve import open_server

    server, line = open_server(catalog, port=0)
    try:
        assert line.startswith("catalog: http://127.0.0.1:")
        assert requests.get(server.catalog_url, timeout=10).json()["type"] == "Catalog"
    finally:
        server.stop()
    api, line = open_server(catalog, port=0, api=True, state_dir=tmp_path)
    try:
        assert line.startswith("STAC API: http://127.0.0.1:") and "re-indexed" in line
        assert requests.get(f"{api.url}/search", timeout=10).json()["numberMatched"] == 5
    finally:
        api.stop()
