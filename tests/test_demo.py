"""`fullmaja-stac demo` end to end, as a user runs it: a subprocess with a fresh state folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date

import pytest

from fullmaja_stac.maja.synthetic import plan_series
from fullmaja_stac.stac.validate import validate_catalog


@pytest.mark.slow
def test_demo_builds_the_expected_valid_catalog(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "fullmaja_stac.cli", "demo", "--catalog", str(tmp_path / "catalog"),
         "--out", str(tmp_path / "products"), "--state-dir", str(tmp_path / "state"), "--size", "120"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    specs = plan_series("36TWQ", 64, date(2019, 3, 1), date(2019, 6, 1), seed=0)
    produced = [s for s in specs if not s.too_cloudy and not s.split]
    cloudy = [s for s in specs if s.too_cloudy]
    assert cloudy, "the demo period should contain a too-cloudy date"

    items = {p.stem for p in (tmp_path / "catalog").glob("maja-s2-l2a/*/*/*/*.json")}
    assert len(items) == len(produced)
    for spec in cloudy:
        assert not any(spec.acquired.strftime("%Y%m%d") in i for i in items)
        assert spec.acquired.strftime("%Y-%m-%d") in run.stdout  # reported as too cloudy
    assert f"too cloudy: {len(cloudy)}" in run.stdout
    assert "unprocessed L1C: " in run.stdout
    # the line may wrap at 80 columns; "valid", not "INVALID"
    assert re.search(rf"catalog: .*? -\s+{len(produced)} items,\s+valid\s+\(\d+\s+objects\)", run.stdout, re.S), run.stdout
    assert validate_catalog(tmp_path / "catalog").ok

    report = json.loads(next((tmp_path / "products").glob("fullmaja-download-*.json")).read_text())
    assert report["request"] == {"tile": "36TWQ", "orbit": 64, "start": "2019-03-01", "end": "2019-06-01"}
    item = json.loads(next((tmp_path / "catalog").glob("maja-s2-l2a/*/*/*/*.json")).read_text())
    # provenance reached the item, with the names the CLI uses: "job 1 (PEPS id …)"
    assert item["properties"]["fullmaja:job"] == report["local_job"] == 1
    assert item["properties"]["fullmaja:peps_job_id"] == report["job_id"]
    assert "fullmaja:job_id" not in item["properties"] and "fullmaja:remote_id" not in item["properties"]
    assert f"job 1 (PEPS id {report['job_id']})" in run.stdout
    assert f"PEPS FULL_MAJA job {report['job_id']}" in item["properties"]["processing:lineage"]

    again = subprocess.run(  # the same command again: the products are found on disk, not fetched again
        [sys.executable, "-m", "fullmaja_stac.cli", "demo", "--catalog", str(tmp_path / "catalog"),
         "--out", str(tmp_path / "products"), "--state-dir", str(tmp_path / "state"), "--size", "120"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"0 downloaded, {len(produced)} already there" in again.stdout


def test_ingest_and_validate_as_a_library_function(product_zips, tmp_path):
    import shutil

    from fullmaja_stac.emulator.demo import ingest_and_validate

    products = tmp_path / "products"
    products.mkdir()
    for z in product_zips[:2]:
        shutil.copy(z, products / z.name)
    report, validation, timings = ingest_and_validate(products, tmp_path / "catalog", workers=1)
    assert len(report.added) == 2 and validation.ok and set(timings) == {"ingest", "validate"}
