"""Trust boundary: our servers. Idle or slow clients cannot deny service to the static server
or the STAC API, every error is our one-line JSON, a damaged item does not stop the API, and
two servers starting at once share one index (issue 24, 9-11)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from fullmaja_stac.publish.api import app as api_module
from fullmaja_stac.publish.api.app import ApiServer, build_index
from fullmaja_stac.publish.serve import CatalogServer


def _idle_connections(url: str, count: int, trickle: bool = False) -> list[socket.socket]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    out = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)), timeout=5)
        if trickle:
            s.sendall(b"GET /catalog.json HTTP/1.1\r\nHo")  # a head that never ends
        out.append(s)
    return out


def _closed_by_server(s: socket.socket, within: float) -> bool:
    """Whether the server ends this connection (EOF or a reset) within ``within`` seconds."""
    s.settimeout(within)
    try:
        while s.recv(1024):
            pass  # a last answer the server may send before it closes
        return True
    except (TimeoutError, socket.timeout):
        return False
    except OSError:
        return True


@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "slow head"])
def test_idle_clients_do_not_deny_the_static_server(catalog, trickle):
    """64 idle connections used to leave the next GET unanswered for 15 s and more."""
    with CatalogServer(catalog, port=0, idle_timeout=3) as server:
        idle = _idle_connections(server.url, 100, trickle)
        try:
            started = time.monotonic()
            answer = requests.get(f"{server.url}/catalog.json", timeout=5)
            assert answer.status_code == 200 and time.monotonic() - started < 3
            # the head deadline closes the rest (those still in the listen backlog once accepted)
            assert _closed_by_server(idle[-1], within=15)
        finally:
            for s in idle:
                s.close()


def test_the_static_server_answers_other_methods_with_our_json(catalog):
    """POST and unknown methods used to get the standard library's HTML 501."""
    with CatalogServer(catalog, port=0) as server:
        for method in ("POST", "PUT", "DELETE", "PATCH", "FOO"):
            answer = requests.request(method, f"{server.url}/catalog.json", timeout=5)
            assert answer.status_code == 405, method
            assert answer.headers["Content-Type"] == "application/json" and answer.headers["Allow"] == "GET, HEAD, OPTIONS"
            body = answer.json()
            assert body["code"] == "MethodNotAllowed" and "\n" not in body["description"]
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"\x16\x03\x01 garbage\r\n\r\n")  # a TLS hello, or noise
            raw = b""
            while chunk := s.recv(4096):  # the server closes after an error
                raw += chunk
        assert raw.startswith(b"HTTP/1.") and b" 400 " in raw.split(b"\r\n")[0] and b'"code": "BadRequest"' in raw


@pytest.fixture()
def api_catalog(tmp_path, catalog) -> Path:
    shutil.copytree(catalog, tmp_path / "catalog")
    return tmp_path / "catalog"


def test_idle_clients_do_not_deny_the_api(api_catalog, tmp_path, monkeypatch):
    """200 idle connections used to make every request a 503 for as long as they stayed open."""
    monkeypatch.setattr(api_module, "HEAD_TIMEOUT", 2.0)
    index = build_index(api_catalog, tmp_path / "index")
    with ApiServer(index, port=0) as server:
        idle = _idle_connections(server.url, 300)
        trickling = _idle_connections(server.url, 20, trickle=True)
        try:
            for _ in range(5):
                answer = requests.get(f"{server.url}/search?limit=1", timeout=5)
                assert answer.status_code == 200, answer.text
            assert _closed_by_server(trickling[0], within=2 + 3) and _closed_by_server(idle[-1], within=2 + 3)
        finally:
            for s in idle + trickling:
                s.close()


def test_a_truncated_item_does_not_stop_the_api(api_catalog, tmp_path, capfd):
    victim = sorted(api_catalog.glob("maja-s2-l2a/*/*/*/*.json"))[1]
    victim.write_bytes(victim.read_bytes()[:50])
    index = build_index(api_catalog, tmp_path / "index")
    with ApiServer(index, port=0) as server:
        found = requests.get(f"{server.url}/search?limit=100", timeout=10).json()["features"]
    assert len(found) == 4 and victim.parent.name not in {f["id"] for f in found}
    assert str(victim) in capfd.readouterr().err
    again = build_index(api_catalog, tmp_path / "index")
    assert again.rebuilt, "a tile-year with a damaged item is read again on the next start"


BUILD = ("import sys; from fullmaja_stac.publish.api.app import build_index; "
         "build_index(sys.argv[1], sys.argv[2]); print('ok')")


def test_two_servers_building_a_fresh_index_at_once_both_start(api_catalog, tmp_path):
    """Two `serve --api` starting at once on a fresh index failed 2 times in 7
    (`duplicate column name: p9`)."""
    for attempt in range(4):
        cache = tmp_path / f"cache{attempt}"
        runs = [subprocess.Popen([sys.executable, "-c", BUILD, str(api_catalog), str(cache)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [run.communicate(timeout=120) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outs
        assert all(out.strip() == "ok" for out, _ in outs)
        db_files = list(cache.rglob("*.sqlite")) or list(cache.rglob("*.db")) or list(cache.rglob("index*"))
        assert db_files
    assert json.loads(Path(api_catalog / "catalog.json").read_text())["type"] == "Catalog"
