"""What a new user met in the CLI (issue 27, 8-11): options checked before anything runs,
errors that say the real cause and what works, a status that fails when it could not
refresh, an emulator that says how to reach both services."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fullmaja_stac.providers.jobs import JobStore
from fullmaja_stac.providers.orders import submit
from fullmaja_stac.providers.peps.auth import Credentials
from fullmaja_stac.providers.peps.client import PepsClient
from fullmaja_stac.emulator.server import DEMO_USER, GEODES_KEY
from fullmaja_stac.providers.peps.wps import make_request


def _cli(*args: str, env: dict | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "fullmaja_stac.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


SEARCH = ["search", "--tile", "31TCJ", "--start", "2020-06-01", "--end", "2020-06-30", "--geodes-url", "http://127.0.0.1:9"]


@pytest.mark.parametrize("args, words", [
    (["--max-cloud", "150"], "less than or equal to 100"),
    (["--max-cloud", "-5"], "greater than or equal to 0"),
])
def test_search_refuses_a_cloud_cover_outside_0_100(args, words):
    run = _cli(*SEARCH, *args)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "--max-cloud" in run.stderr and words in run.stderr


def test_search_refuses_an_end_before_its_start():
    run = _cli("search", "--tile", "31TCJ", "--start", "2020-06-30", "--end", "2020-06-01", "--geodes-url",
               "http://127.0.0.1:9")
    assert run.returncode == 1 and "is before --start" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("command", [["request", "--orbit", "51", "--start", "2019-03-01", "--end", "2019-06-01"], SEARCH[:1]])
def test_an_unknown_tile_is_refused_locally(command):
    args = [*command, "--tile", "31ZZZ"] + ([] if command[0] == "request" else SEARCH[3:])
    run = _cli(*args, env={"PEPS_EMAIL": "x", "PEPS_PASSWORD": "y"})
    assert run.returncode == 1 and "31ZZZ is not part of the Sentinel-2 tiling grid" in run.stderr, run.stderr


def test_status_with_a_wrong_password_fails(emu, tmp_path):
    store = JobStore(tmp_path / "state")
    client = PepsClient(emu.url, Credentials(*DEMO_USER))
    submit(store, client, make_request("31TCJ", 51, *_period()))
    run = _cli("status", env={"FULLMAJA_STAC_STATE_DIR": str(tmp_path / "state"), "PEPS_EMAIL": DEMO_USER[0],
                              "PEPS_PASSWORD": "wrong", "HOME": str(tmp_path)})
    assert run.returncode == 1 and "401" in run.stdout + run.stderr


def _period():
    from datetime import date

    return date(2019, 3, 1), date(2019, 6, 1)


def test_the_emulator_says_how_to_reach_peps_and_geodes(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "fullmaja_stac.cli", "emulator", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
    finally:
        proc.terminate()
        proc.wait(10)
    text = "".join(lines)
    assert "FULLMAJA_STAC_PEPS_URL=http://127.0.0.1:" in text
    assert "FULLMAJA_STAC_GEODES_URL=http://127.0.0.1:" in text and f"GEODES_API_KEY={GEODES_KEY}" in text


BLOCK = "import sys; sys.modules[{name!r}] = None; from fullmaja_stac.cli import app; sys.argv[0] = 'fullmaja-stac'; app()"


def test_serve_api_without_the_extra_says_what_works_before_indexing(catalog, tmp_path):
    run = _cli("serve", str(catalog), "--api", "--state-dir", str(tmp_path / "state"), code=BLOCK.format(name="fastapi"))
    assert run.returncode == 1 and "pip install -e '.[api]'" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "state" / "api-index").exists(), "nothing indexed before saying it cannot serve"


def test_ingest_with_a_scheduler_but_no_dask_leaves_no_catalog(product_zips, tmp_path):
    run = _cli("ingest", str(product_zips[0]), "--catalog", str(tmp_path / "catalog"), "--scheduler", "local",
               code=BLOCK.format(name="distributed"))
    assert run.returncode == 1 and "pip install -e '.[dask]'" in run.stderr, run.stderr
    assert not (tmp_path / "catalog").exists()


def test_info_piped_to_a_file_is_not_cut_at_80_columns(product_zips):
    run = subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", "info", str(product_zips[0])], capture_output=True,
                         text=True, env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    first = run.stdout.splitlines()
    assert run.returncode == 0 and any(len(line) > 80 for line in first), first
    assert first[1].startswith("  platform") and first[2].startswith("  acquired")


def test_status_watch_follows_a_job_until_it_ends(tmp_path):
    """Issue 28, 13: `status --watch` had no test. An emulator whose clock runs 40 000x
    (a 3-month job in about a second): the command refreshes until the job is finished."""
    from fullmaja_stac.emulator import PepsEmulator

    with PepsEmulator(speed=40_000, size=24) as emu:
        store = JobStore(tmp_path / "state")
        job = submit(store, PepsClient(emu.url, Credentials(*DEMO_USER)), make_request("31TCJ", 51, *_period()))
        run = _cli("status", str(job.id), "--watch", "--interval", "0.2",
                   env={"FULLMAJA_STAC_STATE_DIR": str(tmp_path / "state"), "PEPS_EMAIL": DEMO_USER[0],
                        "PEPS_PASSWORD": DEMO_USER[1], "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    tables = run.stdout.count("job / provider id")
    assert tables >= 2 and "finished" in run.stdout.rsplit("job / provider id", 1)[1], run.stdout[-1500:]
