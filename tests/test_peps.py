"""PEPS FULL_MAJA: the emulator as a real HTTP server on loopback, our client, store, downloads."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import warnings
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.providers.jobs import JobStore, utcnow
from fullmaja_stac.providers.job_files import download_job
from fullmaja_stac.providers.orders import health, import_log, refresh, resubmit, submit
from fullmaja_stac.providers.peps.auth import Credentials, find_credentials, read_password_file
from fullmaja_stac.providers.peps.client import PepsClient, make_session
from fullmaja_stac.providers.download import DownloadError, download
from fullmaja_stac.emulator.server import DEMO_USER
from fullmaja_stac.providers.peps.wps import MajaRequest, PepsError, make_request
from fullmaja_stac.providers.base import PepsProvider

CREDS = Credentials(*DEMO_USER)
REQUEST = MajaRequest("36TWQ", 64, date(2019, 3, 1), date(2019, 6, 1))
HOUR = 3600


@pytest.fixture()
def store(tmp_path):
    return JobStore(tmp_path / "state")


def _finish(emu, store, client, job):
    """Jump past the end of the job, then poll while the emulator writes its products."""
    emu.clock.advance(200 * HOUR)
    job = refresh(store, client, job)
    for _ in range(200):
        if job.state != "STALLED":
            return job
        time.sleep(0.05)
        job = refresh(store, client, job)
    raise AssertionError(f"job never finished: {job.state} {job.progress}")


def test_request_status_download_report_for_a_three_month_series(emu, store, tmp_path):
    client = PepsClient(emu.url, CREDS)
    # Ten jobs fill the queue; ours is the eleventh and waits.
    for _ in range(10):
        refresh(store, client, submit(store, client, REQUEST))
    job = submit(store, client, REQUEST, log_file=tmp_path / "job.log")
    assert (tmp_path / "job.log").read_bytes().startswith(b"<?xml")
    job = refresh(store, client, job)
    assert job.state == "PENDING" and health(job).flag == "queued"

    emu.clock.advance(3 * HOUR)  # the first ten are still running (1 h + 25 min x 18 dates = 8.5 h)
    assert refresh(store, client, job).state == "PENDING"
    emu.clock.advance(6 * HOUR)  # they finish; ours starts
    job = refresh(store, client, job)
    assert job.state == "STALLED" and job.progress < 10 and health(job).flag == "running"
    emu.clock.advance(2 * HOUR)
    job = refresh(store, client, job)
    assert job.state == "STALLED" and 0 < job.progress < 100

    job = _finish(emu, store, client, job)
    assert job.state == "FINISHED"
    products = [u for u in job.results if "NOVALD" not in u]
    cloudy = [u for u in job.results if "NOVALD" in u]
    assert len(job.results) + job.unprocessed == 19  # every 5 days over three months
    report = download_job(store, PepsProvider(CREDS, emu.url), job, tmp_path / "products")
    assert report.ok and report.count("downloaded") == len(products) and report.count("too cloudy") == len(cloudy)
    doc = json.loads(report.report_path.read_text())
    assert doc["job_id"] == job.remote_id and doc["unprocessed"] == job.unprocessed
    assert {d["status"] for d in doc["dates"]} == {"downloaded", "too cloudy"}
    for url in products:
        name = url.rsplit("/", 1)[-1]
        with zipfile.ZipFile(tmp_path / "products" / name) as zf:
            assert zf.testzip() is None
    assert not list((tmp_path / "products").glob("*.part"))
    # A second download skips by size and checksum; a damaged file is fetched again.
    victim = tmp_path / "products" / products[0].rsplit("/", 1)[-1]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    again = download_job(store, PepsProvider(CREDS, emu.url), job, tmp_path / "products")
    assert again.count("already there") == len(products) - 1 and again.count("downloaded") == 1
    with zipfile.ZipFile(victim) as zf:
        assert zf.testzip() is None


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["drop", "truncate", "500", "429", "html"])
def test_downloads_complete_and_verified_despite_faults(tmp_path, store, fault, emulator):
    with emulator(faults={fault}) as emu:
        client = PepsClient(emu.url, CREDS)
        job = _finish(emu, store, client, submit(store, client, REQUEST))
        before, started = len(emu.requests), time.monotonic()
        report = download_job(store, PepsProvider(CREDS, emu.url), job, tmp_path / "out")
        elapsed = time.monotonic() - started
        assert report.ok, report.dates
        downloads = [p for _, p, _ in emu.requests[before:] if p.endswith(".zip")]
        products = [d for d in report.dates if d.status == "downloaded"]
        # the fault fired: 2 faulty attempts per file (body faults), or the first 2 downloads of all (429, 500)
        per_file = fault in ("drop", "truncate", "html")
        assert products and len(downloads) == (3 * len(products) if per_file else len(products) + 2), downloads
        if fault == "429":
            assert elapsed >= 1.0, "Retry-After: 1 was not honoured"
        for d in report.dates:
            if d.status == "downloaded":
                served = next(p for p in emu.data_dir.rglob(d.name))
                assert (tmp_path / "out" / d.name).read_bytes() == served.read_bytes()


def _served_product(emu, store) -> tuple[str, str, bytes]:
    """(url, file name, bytes the server holds) of the first product of a finished job."""
    client = PepsClient(emu.url, CREDS)
    job = _finish(emu, store, client, submit(store, client, REQUEST))
    url = next(u for u in job.results if "NOVALD" not in u)
    name = url.rsplit("/", 1)[-1]
    return url, name, emu.jobs[job.remote_id].files[name].read_bytes()


def test_resumed_download_sends_range_and_ends_byte_identical(emu, store, tmp_path):
    url, name, served = _served_product(emu, store)
    part = tmp_path / f"{name}.part"
    part.write_bytes(served[: len(served) // 3])  # what a cut transfer left
    got = download(make_session(CREDS, emu.url), url, tmp_path / name)
    assert got.resumed_from == len(served) // 3
    ranges = [h.get("Range") for m, p, h in emu.requests if p.endswith(name)]
    assert ranges[-1] == f"bytes={len(served) // 3}-"
    assert (tmp_path / name).read_bytes() == served and not part.exists()


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["html", "truncate"])
def test_bad_bodies_never_land_as_products(tmp_path, store, fault, emulator):
    with emulator(faults={fault}) as emu:
        client = PepsClient(emu.url, CREDS)
        job = _finish(emu, store, client, submit(store, client, REQUEST))
        url = next(u for u in job.results if "NOVALD" not in u)
        target = tmp_path / url.rsplit("/", 1)[-1]
        with pytest.raises(DownloadError, match="gave up after 2 attempts"):
            download(make_session(CREDS, emu.url), url, target, attempts=2, wait_max=0.1)
        assert not target.exists()


def test_corrupt_zip_is_refused_and_fetched_again(tmp_path, emu, store):
    url, name, good = _served_product(emu, store)
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF  # flip one byte inside a member: CRC error
    (tmp_path / f"{name}.part").write_bytes(bytes(data))  # a complete but corrupt .part
    got = download(make_session(CREDS, emu.url), url, tmp_path / name)
    assert got.path.read_bytes() == good


def test_stuck_job_is_flagged_stalled(tmp_path, store, emulator):
    with emulator(faults={"stuck"}) as emu:
        client = PepsClient(emu.url, CREDS)
        job = submit(store, client, REQUEST)
        for _ in range(4):
            emu.clock.advance(3 * HOUR)
            job = refresh(store, client, job)
        assert job.state == "STALLED" and job.progress == 40
        assert health(job).flag == "running"  # it has not been long in real time yet
        verdict = health(job, now=utcnow() + timedelta(hours=3))
        assert verdict.flag == "stalled" and "resubmit" in verdict.advice


def test_running_far_past_expected_end_is_stalled(emu, store):
    client = PepsClient(emu.url, CREDS)
    job = refresh(store, client, submit(store, client, REQUEST))
    later = utcnow() + timedelta(days=3)
    store.record_status(job.id, "STALLED", 50.0, "Process started", [], [], 0, at=later - timedelta(minutes=5))
    assert health(store.get(job.id), now=later).flag == "stalled"


@pytest.mark.parametrize("fault, state, words", [("error", "ERROR", "MAJA failed"), ("canceled", "CANCELED", "no DEM")])
def test_failed_jobs_show_message_and_log(store, fault, state, words, emulator):
    with emulator(faults={fault}) as emu:
        client = PepsClient(emu.url, CREDS)
        job = _finish(emu, store, client, submit(store, client, REQUEST))
        assert job.state == state and words in job.message and job.logs
        verdict = health(job)
        assert verdict.flag == "failed" and words in verdict.advice and job.logs[0] in verdict.advice


def test_submit_500_is_a_clear_error_and_stores_nothing(store, emulator):
    with emulator(faults={"submit500"}) as emu:
        with pytest.raises(PepsError, match="HTTP 500"):
            submit(store, PepsClient(emu.url, CREDS), REQUEST)
    assert store.all() == []


def test_bad_credentials_give_one_clear_line(emu, tmp_path):
    env = {**os.environ, "FULLMAJA_STAC_STATE_DIR": str(tmp_path / "state"), "PEPS_EMAIL": "me@example.org",
           "PEPS_PASSWORD": "wrong-secret"}
    run = subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", "request", "--tile", "36TWQ", "--orbit", "64",
                          "--start", "2019-03-01", "--end", "2019-06-01", "--peps-url", emu.url],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "refused the credentials (401)" in run.stderr
    assert "wrong-secret" not in run.stderr + run.stdout


@pytest.mark.parametrize("tile, orbit, start, end, words", [
    ("36TWQX9", 64, "2019-03-01", "2019-06-01", "not a Sentinel-2 tile"),
    ("36TWQ", 150, "2019-03-01", "2019-06-01", "between 1 and 143"),
    ("36TWQ", 64, "2019-03-01", "2019-03-20", "2 to 12 months"),
    ("36TWQ", 64, "2019-03-01", "2020-06-01", "2 to 12 months"),
    ("36TWQ", 64, "2015-12-01", "2016-03-01", "after 2016-04-01"),
    ("36TWQ", 64, "2019-09-01", "2019-03-01", "--end 2019-03-01 is not after --start 2019-09-01"),
])
def test_request_validation_like_the_reference(tile, orbit, start, end, words):
    with pytest.raises(FullMajaError, match=words):
        make_request(tile, orbit, date.fromisoformat(start), date.fromisoformat(end))


def test_reference_line_parsing_holds_on_emulator_documents(emu, store, tmp_path):
    """The extraction full_maja_process.py / full_maja_download.py do, line by line."""
    client = PepsClient(emu.url, CREDS)
    job = submit(store, client, REQUEST, log_file=tmp_path / "log.xml")
    status_url = None
    for line in (tmp_path / "log.xml").read_text().splitlines():
        if line.startswith("<wps:ExecuteResponse"):
            status_url = line.split('statusLocation="')[1].split('">')[0]
    assert status_url == job.status_url
    wps_id = status_url.split("pywps-")[1].split(".xml")[0]
    assert wps_id == job.remote_id and wps_id.isdigit()

    session = make_session(CREDS, emu.url)
    emu.clock.advance(HOUR)
    json_url = None
    for line in session.get(status_url).text.splitlines():
        if "wps:Reference href" in line:
            json_url = line.split('href="')[1].split('"')[0]
    assert json_url and json_url.endswith(".json")
    info = session.get(json_url).json()["USER_INFO"]
    assert info["job_status"] == "STALLED" and info["process"].endswith("%")


def test_reference_logs_list_on_error(store, emulator):
    with emulator(faults={"error"}) as emu:
        client = PepsClient(emu.url, CREDS)
        job = _finish(emu, store, client, submit(store, client, REQUEST))
        info = make_session(CREDS, emu.url).get(job.json_url).json()["USER_INFO"]
        assert info["job_status"] == "ERROR" and info["logs"]


def test_import_log_resubmit_and_forget(emu, store, tmp_path):
    client = PepsClient(emu.url, CREDS)
    client.submit  # noqa: B018 - the old script submitted it; we only have its log
    answer, raw = client.submit(REQUEST)
    (tmp_path / "old.log").write_bytes(raw)
    adopted = import_log(store, tmp_path / "old.log")
    assert adopted.remote_id == answer.job_id and adopted.base_url == emu.url
    assert refresh(store, client, adopted).state == "STALLED"
    with pytest.raises(FullMajaError, match="without its parameters"):
        resubmit(store, client, adopted)

    job = submit(store, client, REQUEST)
    again = resubmit(store, client, job)
    assert again.resubmitted_from == job.id and again.remote_id != job.remote_id
    store.forget(job.id)
    assert store.get(again.id).resubmitted_from is None
    with pytest.raises(FullMajaError, match="no job"):
        store.get(job.id)
    with pytest.raises(FullMajaError, match="not a FULL_MAJA log file"):
        (tmp_path / "junk.log").write_text("hello")
        import_log(store, tmp_path / "junk.log")


def _writer(folder: str, n: int) -> None:
    s = JobStore(Path(folder))
    for i in range(n):
        job = s.add_job("peps", "http://x", f"{os.getpid()}-{i}", None, {"tile": "31TCJ"}, "ACCEPTED")
        s.record_status(job.id, "STALLED", float(i), "", [], [], 0)


def test_two_processes_write_the_store_at_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path / "state"), 40)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    jobs = JobStore(tmp_path / "state").all()
    assert len(jobs) == 80 and all(j.progress == 39.0 for j in jobs if j.remote_id.endswith("-39"))


def test_password_file_netrc_and_environment(tmp_path, monkeypatch, capfd):
    secret = tmp_path / "peps.txt"
    secret.write_text("me@example.org s3cr3t\n")
    secret.chmod(0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        creds = read_password_file(secret)
    assert creds.as_auth() == ("me@example.org", "s3cr3t") and "s3cr3t" not in repr(creds)
    assert capfd.readouterr().err == ""
    secret.chmod(0o644)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one plain line, not a Python warning with its source line
        read_password_file(secret)
    err = capfd.readouterr().err
    assert err.startswith("warning: ") and "chmod 600" in err and err.count("\n") == 1
    (tmp_path / "bad.txt").write_text("just-an-email\n")
    with pytest.raises(FullMajaError, match="email password"):
        read_password_file(tmp_path / "bad.txt")

    monkeypatch.delenv("FULLMAJA_STAC_PEPS_AUTH", raising=False)
    monkeypatch.setenv("PEPS_EMAIL", "env@example.org")
    monkeypatch.setenv("PEPS_PASSWORD", "envpw")
    assert find_credentials("https://peps.cnes.fr").email == "env@example.org"
    monkeypatch.delenv("PEPS_EMAIL")
    monkeypatch.delenv("PEPS_PASSWORD")
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine peps.cnes.fr login net@example.org password netpw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_credentials("https://peps.cnes.fr").as_auth() == ("net@example.org", "netpw")
    assert find_credentials("https://elsewhere.example") is None


@pytest.mark.slow
def test_download_ingest_flag_lands_products_in_the_catalog(emu, store, tmp_path):
    """`download --ingest` (CLI) downloads a finished job and ingests what arrived."""
    client = PepsClient(emu.url, CREDS)
    job = _finish(emu, store, client, submit(store, client, REQUEST))
    env = {**os.environ, "FULLMAJA_STAC_STATE_DIR": str(store.path.parent), "PEPS_EMAIL": DEMO_USER[0],
           "PEPS_PASSWORD": DEMO_USER[1]}
    run = subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", "download", str(job.id), "--out",
                          str(tmp_path / "products"), "--ingest", "--catalog", str(tmp_path / "catalog")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    items = list((tmp_path / "catalog").glob("maja-s2-l2a/*/*/*/*.json"))
    assert len(items) == len([u for u in job.results if "NOVALD" not in u])


def test_status_document_with_another_suffix_and_a_plain_processing_status(store, emulator):
    """The reference takes any wps:Reference as the status document and ignores what
    PROCESSING_STATUS answers: a job whose Reference has no .json suffix still finishes."""
    with emulator(faults={"oddstatus"}) as emu:
        client = PepsClient(emu.url, CREDS)
        job = refresh(store, client, submit(store, client, REQUEST))
        assert job.json_url and not job.json_url.endswith(".json")
        assert _finish(emu, store, client, job).state == "FINISHED"


def test_unreadable_status_says_what_came_back():
    from fullmaja_stac.providers.peps.wps import parse_status_json

    with pytest.raises(PepsError, match="not JSON .*: '<html>maintenance"):
        parse_status_json(b"<html>maintenance until 14:00</html>", "status")
    with pytest.raises(PepsError, match="not of the expected shape: Object missing required field `USER_INFO`"):
        parse_status_json(b'{"status": "busy"}', "status")


def test_insecure_applies_to_the_named_host_only_and_says_so(monkeypatch, capfd):
    import requests

    from fullmaja_stac.config import allow_insecure

    monkeypatch.delenv("FULLMAJA_STAC_INSECURE_HOSTS", raising=False)
    assert make_session(None).merge_environment_settings("https://peps.cnes.fr/x", {}, None, None, None)["verify"] is not False
    allow_insecure("https://peps.cnes.fr/resto/wps")
    session = make_session(None)
    assert session.merge_environment_settings("https://peps.cnes.fr/x", {}, None, None, None)["verify"] is False
    assert session.merge_environment_settings("https://geodes-portal.cnes.fr/x", {}, None, None, None)["verify"] is not False
    err = capfd.readouterr().err
    assert "warning: TLS certificate checks are off for peps.cnes.fr" in err and err.count("\n") == 1
    assert isinstance(session, requests.Session)


def test_job_workflows_as_library_functions(emu, store, tmp_path):
    """What `status` and `download` do around the store, called from Python."""
    from fullmaja_stac.providers.orders import jobs_to_download, provider_for, refresh_jobs, too_cloudy_count

    with pytest.raises(FullMajaError, match="no finished job"):
        jobs_to_download(store, None)
    client = PepsClient(emu.url, CREDS)
    job = submit(store, client, REQUEST)
    emu.clock.advance(200 * HOUR)
    for _ in range(200):
        (job,), errors = refresh_jobs(store, [job], lambda url: client)
        assert not errors
        if job.state == "FINISHED":
            break
        time.sleep(0.05)
    assert [j.id for j in jobs_to_download(store, None)] == [job.id]
    assert too_cloudy_count(job) == sum("NOVALD" in u for u in job.results)
    os.environ.update(PEPS_EMAIL=DEMO_USER[0], PEPS_PASSWORD=DEMO_USER[1])
    try:
        assert isinstance(provider_for(job), PepsProvider)
    finally:
        os.environ.pop("PEPS_EMAIL")
        os.environ.pop("PEPS_PASSWORD")
