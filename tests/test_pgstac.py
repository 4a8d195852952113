"""`publish pgstac` against a real PostgreSQL + PostGIS: the server named by
FULLMAJA_STAC_TEST_PGDSN (.ci/run installs and starts Debian's with
scripts/start_test_postgres.sh), else the one that script can start from what is installed.
Each test works in a database of its own, dropped afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from fullmaja_stac.analysis.consume import stackstac_items
from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.maja.synthetic import SynthOptions, write_product
from fullmaja_stac.publish.pgstac import masked_dsn, publish_pgstac
from test_export import written_items

psycopg = pytest.importorskip("psycopg")
ENV_DSN = "FULLMAJA_STAC_TEST_PGDSN"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_dsn() -> str:
    if os.environ.get(ENV_DSN):
        return os.environ[ENV_DSN]
    script = Path(__file__).resolve().parent.parent / "scripts" / "start_test_postgres.sh"
    run = subprocess.run(["bash", str(script), "--no-install"], capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        reason = (run.stderr.strip().splitlines() or ["no reason given"])[-1]
        pytest.skip(f"no PostgreSQL + PostGIS server: {ENV_DSN} is not set and {script.name} says: {reason}")
    return run.stdout.strip()


@pytest.fixture
def dsn(server_dsn):
    admin = server_dsn
    name = f"fullmaja_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _search(dsn: str, body: dict) -> list[dict]:
    with psycopg.connect(dsn, options="-c search_path=pgstac,public") as conn:
        result = conn.execute("SELECT search(%s::jsonb)", [json.dumps({"limit": 1000, **body})]).fetchone()[0]
    return result["features"]


def _instants(props: dict) -> dict:
    return {k: datetime.fromisoformat(v.replace("Z", "+00:00")) if k in ("datetime", "created", "updated") else v
            for k, v in props.items()}


def test_publish_loads_every_item_and_pgstac_search_agrees_with_brute_force(dsn, catalog):
    report = publish_pgstac(catalog, dsn)
    originals = {i["id"]: i for i in written_items(catalog)}  # the files as written, not our reader's view
    assert report.items == len(originals) == 5 and not report.removed
    found = {i["id"]: i for i in _search(dsn, {"collections": [report.collection]})}
    assert set(found) == set(originals)
    for item_id, item in found.items():
        assert _instants(item["properties"]) == _instants(originals[item_id]["properties"])
        assert item["assets"] == originals[item_id]["assets"]  # absolute local hrefs
    clouds = sorted(i["properties"]["eo:cloud_cover"] for i in originals.values())
    threshold = clouds[2]
    body = {"filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, threshold]}, "filter-lang": "cql2-json"}
    expected = {k for k, i in originals.items() if i["properties"]["eo:cloud_cover"] < threshold}
    assert 0 < len(expected) < 5 and {i["id"] for i in _search(dsn, body)} == expected


def _rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, content FROM pgstac.items ORDER BY id").fetchall()


def test_publishing_again_sends_nothing_and_changes_nothing(dsn, catalog):
    first = publish_pgstac(catalog, dsn)
    assert first.full and first.loaded == 5
    before = _rows(dsn)
    again = publish_pgstac(catalog, dsn)
    assert (again.full, again.loaded, again.skipped_parts, again.removed) == (False, 0, 1, [])
    assert _rows(dsn) == before
    forced = publish_pgstac(catalog, dsn, full=True)
    assert forced.full and forced.loaded == 5 and not forced.removed and _rows(dsn) == before
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgstac.collections").fetchone()[0] == 1


def test_only_changed_tile_years_are_sent(dsn, tmp_path, series_specs):
    """A catalog of two tile-years; an ingest into one of them sends only that one, and its
    replaced version is deleted from pgstac; a lost stamps table means a full load again."""
    root = tmp_path / "catalog"
    old = write_product(series_specs[0], tmp_path / "v1", SynthOptions(size=60, seed=3, version="4-0"))
    other_year = replace(series_specs[1], acquired=series_specs[1].acquired.replace(year=2020))
    zips = [old, write_product(other_year, tmp_path / "v1", SynthOptions(size=60, seed=3))]
    assert ingest(zips, root, workers=1).ok
    assert publish_pgstac(root, dsn).loaded == 2

    new = write_product(series_specs[0], tmp_path / "v2", SynthOptions(size=60, seed=3, version="4-1"))
    more = write_product(series_specs[2], tmp_path / "v1", SynthOptions(size=60, seed=3))
    assert ingest([new, more], root, workers=1).ok
    report = publish_pgstac(root, dsn)
    assert (report.full, report.loaded, report.skipped_parts, report.removed) == (False, 2, 1, [old.stem])
    found = {i["id"]: i for i in _search(dsn, {"collections": [report.collection]})}
    assert set(found) == {i["id"] for i in stackstac_items(root)}

    moved = publish_pgstac(root, dsn, base_url="https://data.example.org/maja/")  # new hrefs: all re-sent
    assert moved.loaded == 3 and not moved.full
    href = _search(dsn, {"ids": [new.stem]})[0]["assets"]["red"]["href"]
    assert href.startswith("https://data.example.org/maja/maja-s2-l2a/31TCJ/2019/") and href.endswith("_FRE_B4.tif")

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE fullmaja_stac.published")
    assert publish_pgstac(root, dsn).full


def test_bad_dsn_is_one_clear_line(catalog):
    with pytest.raises(FullMajaError, match=r"cannot connect to postgresql://u:\*\*\*@127\.0\.0\.1:1/x"):
        publish_pgstac(catalog, "postgresql://u:secret@127.0.0.1:1/x")
    assert masked_dsn("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"


def test_cli_publish(dsn, catalog):
    cmd = [sys.executable, "-m", "fullmaja_stac.cli", "publish", "pgstac", str(catalog)]
    run = subprocess.run(cmd, env={**os.environ, "FULLMAJA_STAC_PGSTAC_DSN": dsn},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    password = dsn.split("@")[0].rsplit(":", 1)[1]
    out = " ".join(run.stdout.split())
    assert "5 items" in out and "5 sent (full load)" in out
    assert f":{password}@" not in run.stdout and ":***@" in run.stdout  # the password is never printed


def _drop_item(root: Path, item_id: str) -> None:
    """Remove an item's folder and rebuild the catalog's derived files (`repair`)."""
    import shutil

    from fullmaja_stac.stac.catalog import repair_catalog

    shutil.rmtree(next(root.glob(f"maja-s2-l2a/*/*/{item_id}")))
    assert repair_catalog(root) == []


def test_a_full_publish_deletes_what_the_catalog_no_longer_holds(dsn, catalog, tmp_path):
    """Issue 28, 13: `publish pgstac --full` had no test of its deletions."""
    import shutil

    root = tmp_path / "catalog"
    shutil.copytree(catalog, root)
    assert publish_pgstac(root, dsn).loaded == 5
    victim = sorted(i["id"] for i in written_items(root))[2]
    _drop_item(root, victim)
    report = publish_pgstac(root, dsn, full=True)
    assert report.full and report.removed == [victim] and report.loaded == 4
    left = {p.parent.name for p in root.glob("maja-s2-l2a/*/*/*/*.json")}
    assert len(left) == 4 and {i["id"] for i in _search(dsn, {"collections": [report.collection]})} == left


def test_a_tile_year_gone_from_the_catalog_is_deleted_from_pgstac(dsn, tmp_path, series_specs):
    root = tmp_path / "catalog"
    other_year = replace(series_specs[1], acquired=series_specs[1].acquired.replace(year=2020))
    zips = [write_product(series_specs[0], tmp_path / "in", SynthOptions(size=24, seed=3)),
            write_product(other_year, tmp_path / "in", SynthOptions(size=24, seed=3))]
    assert ingest(zips, root, workers=1).ok
    assert publish_pgstac(root, dsn).loaded == 2
    gone = next(p.parent.name for p in root.glob("maja-s2-l2a/*/2020/*/*.json"))
    _drop_item(root, gone)  # the 2020 tile-year is now empty
    report = publish_pgstac(root, dsn)
    assert not report.full and report.loaded == 0 and report.removed == [gone]
    assert [i["id"] for i in _search(dsn, {"collections": [report.collection]})] == [zips[0].stem]


def test_no_migrate_on_a_database_without_pgstac_is_one_clear_line(dsn, catalog):
    with pytest.raises(FullMajaError, match="has no pgstac schema; run without --no-migrate"):
        publish_pgstac(catalog, dsn, migrate=False)
    assert publish_pgstac(catalog, dsn).loaded == 5  # migrates
    again = publish_pgstac(catalog, dsn, migrate=False)
    assert again.loaded == 0 and again.skipped_parts == 1
