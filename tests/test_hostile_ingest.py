"""`ingest` and `download` under inputs and faults we did not choose: non-UTF-8 names, pipes
named *.zip, empty inputs, a directory in place of the MTD, a full disk, kill -9 with
workers. Each gets one clear line, the good work is done, and nothing is left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from fullmaja_stac.ingest.assets import plan_assets
from fullmaja_stac.errors import FullMajaError, ProductError
from fullmaja_stac.ingest.run import ingest, visual_task
from fullmaja_stac.maja import read_product
from fullmaja_stac.maja.synthetic import SynthOptions, write_product


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_non_utf8_folder_is_one_line_and_the_good_products_land(tmp_path, product_zips):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9-produits"))
    odd.mkdir()
    shutil.copy(product_zips[0], odd / product_zips[0].name)
    report = ingest([odd / product_zips[0].name, product_zips[1]], tmp_path / "catalog", workers=1)
    assert len(report.added) == 1 and len(report.failed) == 1
    source, reason = report.failed[0]
    assert "not valid UTF-8" in reason and "\\xe9" in source
    run = _cli("ingest", os.fsdecode(bytes(odd)), "--catalog", str(tmp_path / "cat2"))
    assert "Traceback" not in run.stderr + run.stdout and "not valid UTF-8" in run.stdout + run.stderr


def test_a_pipe_or_a_folder_named_zip_and_an_empty_input(tmp_path, product_zips):
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "pipe.zip")
    (folder / "empty.zip").mkdir()
    shutil.copy(product_zips[0], folder / product_zips[0].name)
    report = ingest([folder], tmp_path / "catalog", workers=1)
    assert len(report.added) == 1
    reasons = dict((Path(s).name, r) for s, r in report.failed)
    assert "not a regular file" in reasons["pipe.zip"] and "without a MAJA product" in reasons["empty.zip"]
    assert "not a regular file" in dict(ingest([folder / "pipe.zip"], tmp_path / "c2", workers=1).failed).popitem()[1]
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    with pytest.raises(FullMajaError, match="no MAJA product found in"):
        ingest([nothing], tmp_path / "c3", workers=1)
    run = _cli("ingest", str(nothing), "--catalog", str(tmp_path / "c4"))
    assert run.returncode != 0 and "no MAJA product found" in run.stderr and "Traceback" not in run.stderr


def test_messages_name_the_missing_file_and_a_folder_in_place_of_the_mtd(tmp_path, series_specs):
    product = write_product(series_specs[0], tmp_path / "a", SynthOptions(size=24, seed=3, zipped=False))
    victim = next(product.glob("*_FRE_B4.tif"))
    victim.unlink()
    reason = dict(ingest([product], tmp_path / "c1", workers=1).failed)[str(product)]
    assert victim.name in reason and "missing from the product" in reason
    other = write_product(series_specs[1], tmp_path / "b", SynthOptions(size=24, seed=3, zipped=False))
    mtd = next(other.glob("*_MTD_ALL.xml"))
    mtd.unlink()
    mtd.mkdir()
    reason = dict(ingest([other], tmp_path / "c2", workers=1).failed)[str(other)]
    assert "is a folder" in reason and "corrupt" not in reason


def _marked(mark: str) -> list[int]:
    """Processes whose environment carries ``mark`` (the killed command's descendants)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if mark.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _rezip(source: Path, target: Path, suffix: str, change) -> str:
    """A copy of the product zip ``source`` whose member ending in ``suffix`` is ``change(bytes)``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename.endswith(suffix):
                data, name = change(data), info.filename
            new.writestr(info, data)
    return name


def _damage(source: Path, target: Path, suffix: str) -> Path:
    """A copy of the product zip ``source`` with 8 bytes flipped two thirds into the member
    ending in ``suffix``: its TIFF header still reads, its pixels and its CRC do not."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(suffix))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size * 2 // 3
    for i in range(middle, middle + 8):
        data[i] ^= 0x55
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("suffix", ["_FRE_B8.tif", "_FRE_B4.tif"])  # B4: the true-colour COG reads it too
def test_a_raster_member_failing_its_crc_fails_that_product_by_name(tmp_path, product_zips, suffix):
    """The bytes of one raster were damaged in the zip (its TIFF header still reads): GDAL
    fails to read it, its CRC is then checked, and the product is refused as corrupt,
    naming the member; the next product still lands."""
    bad = _damage(product_zips[1], tmp_path / product_zips[1].name, suffix)
    report = ingest([bad, product_zips[0]], tmp_path / "catalog", workers=2)
    assert len(report.added) == 1 and [Path(s).name for s, _ in report.failed] == [bad.name]
    reason = report.failed[0][1]
    assert suffix in reason and "fails its CRC check" in reason and "download it again" in reason
    assert not list((tmp_path / "catalog").rglob(".*.src")) and not list((tmp_path / "catalog").rglob(".staging-*"))


def _patch_crc(source: Path, target: Path, suffix: str, stored: bool) -> Path:
    """A copy of ``source`` whose member ending in ``suffix`` reads without any error from
    GDAL but holds other pixels than it did: STORED with one pixel byte flipped (its CRC no
    longer matches), or DEFLATED with a valid stream of one flipped byte and the original
    CRC written back in both headers."""
    with zipfile.ZipFile(source) as old:
        infos = old.infolist()
        victim = next(i for i in infos if i.filename.endswith(suffix))
        original = old.read(victim)
        with zipfile.ZipFile(target, "w") as new:
            for info in infos:
                data = old.read(info)
                if info is victim:
                    data = bytearray(data)
                    data[len(data) - 7] ^= 0x01  # a pixel near the end, past the TIFF header
                    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                    data = bytes(data) if not stored else original
                new.writestr(info, data, compress_type=info.compress_type)
    raw = bytearray(target.read_bytes())
    with zipfile.ZipFile(target) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(suffix))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    if stored:
        raw[start + info.compress_size - 7] ^= 0x01  # the stored bytes are the pixels
    else:
        good_crc = zlib.crc32(original).to_bytes(4, "little")
        raw[info.header_offset + 14: info.header_offset + 18] = good_crc
        central = next(i for i in _find_all(raw, b"PK\x01\x02") if raw[i + 46: i + 46 + len(info.filename)]
                       == info.filename.encode())
        raw[central + 16: central + 20] = good_crc
    target.write_bytes(bytes(raw))
    return target


def _find_all(data: bytes | bytearray, needle: bytes):
    start = data.find(needle)
    while start != -1:
        yield start
        start = data.find(needle, start + 1)


@pytest.mark.parametrize("stored", [True, False], ids=["stored, a byte flipped", "deflated, valid stream, wrong CRC"])
@pytest.mark.parametrize("suffix", ["_FRE_B8.tif", "_FRE_B4.tif", "_CLM_R1.tif"])
def test_a_member_gdal_reads_without_error_is_still_crc_checked(tmp_path, product_zips, suffix, stored):
    """Issue 24, 5: both used to be ingested with rc 0 and 1-2 wrong pixels."""
    bad = _patch_crc(product_zips[1], tmp_path / product_zips[1].name, suffix, stored)
    with zipfile.ZipFile(bad) as zf, pytest.raises(zipfile.BadZipFile, match="CRC"):
        zf.read(next(n for n in zf.namelist() if n.endswith(suffix)))  # the damage is real
    report = ingest([bad, product_zips[0]], tmp_path / "catalog", workers=1)
    assert len(report.added) == 1 and [Path(s).name for s, _ in report.failed] == [bad.name], report
    assert suffix in report.failed[0][1] and "fails its CRC check" in report.failed[0][1]


def test_the_true_colour_cog_names_a_damaged_band_and_leaves_nothing(tmp_path, product_zips):
    """The true-colour COG reads the red, green and blue members itself: one that fails its
    CRC is named as such, and neither a scratch copy nor a half-written COG is left."""
    bad = _damage(product_zips[1], tmp_path / product_zips[1].name, "_FRE_B4.tif")
    product = read_product(bad)
    out = tmp_path / "out"
    out.mkdir()
    function, *args = visual_task(product, plan_assets(product), out)
    with pytest.raises(ProductError, match=r"_FRE_B4\.tif.*fails its CRC check"):
        function(*args)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("suffix", ["_SAT_R1.tif", "_FRE_B4.tif"])  # a mask; a band the true-colour COG reads too
def test_a_raster_member_bigger_than_its_header_is_refused_before_inflating(tmp_path, product_zips, suffix):
    """A zip bomb in a product's clothes: the TIFF header says 60x60 px but the member
    inflates to 40 MB. It is refused from the zip's directory, without writing it out, by
    whichever task reads it first; nothing is left in the catalog."""
    bomb = tmp_path / product_zips[0].name
    member = _rezip(product_zips[0], bomb, suffix, lambda data: data + bytes(40 << 20))
    report = ingest([bomb], tmp_path / "catalog", workers=2)
    assert not report.added
    reason = report.failed[0][1]
    assert member.rsplit("/", 1)[-1] in reason and "more than the" in reason and "damaged or hostile" in reason
    assert not [p for p in (tmp_path / "catalog").rglob("*") if p.is_file() and p.suffix in (".tif", ".src", ".tmp")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
@pytest.mark.slow
def test_kill_9_with_workers_leaves_no_process_behind(tmp_path, series_specs):
    inputs = tmp_path / "inputs"
    for spec in series_specs[:3]:
        write_product(spec, inputs, SynthOptions(size=900, seed=5))
    mark = f"FULLMAJA_TEST_MARK_{os.getpid()}_{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-m", "fullmaja_stac.cli", "ingest", str(inputs), "--catalog",
                             str(tmp_path / "catalog"), "--workers", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, mark: "1"})
    deadline = time.monotonic() + 120
    while len(_marked(mark)) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)  # the command, the forkserver, its workers (and the resource tracker)
    assert proc.poll() is None and len(_marked(mark)) >= 3, "the ingest ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(mark) == [], "processes outlived the killed ingest"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("workers, scheduler, starts", [(2, None, True), (1, None, False), (2, "local", False)])
def test_the_cli_starts_the_forkserver_before_the_ingest_only_for_a_pool(workers, scheduler, starts):
    """The command starts the forkserver before importing the ingest, so that the server's
    import overlaps its own; never for an inline (one worker) or dask ingest. The server
    goes when the command ends."""
    mark = f"FULLMAJA_TEST_MARK_{os.getpid()}_{time.monotonic_ns()}"
    code = ("import sys\nfrom fullmaja_stac.cli import _start_workers_early\n"
            f"_start_workers_early({workers}, {scheduler!r})\n"
            "print('ingest imported' if 'fullmaja_stac.ingest.run' in sys.modules else 'ready', flush=True)\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, mark: "1"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while starts and len(_marked(mark)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (len(_marked(mark)) > 1) == starts  # the command and, when started, its forkserver
    finally:
        proc.communicate("", timeout=30)
    deadline = time.monotonic() + 15
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(mark) == []


def test_the_workers_of_a_command_import_nothing_before_their_first_task(tmp_path, series_specs):
    """multiprocessing has every worker import the command's script, and a worker imports the
    module of each function it runs: all of that is loaded once by the forkserver (the CLI,
    the COG and footprint modules), so a worker starts converting at once. Seen through
    Python's import log of every process: the ingest is imported by the command alone, the
    CLI by the command and the forkserver, rasterio by the command and the forkserver."""
    write_product(series_specs[0], tmp_path / "in", SynthOptions(size=120, seed=2))
    script = tmp_path / "fullmaja-stac"  # what the installed entry point is
    script.write_text("import sys\nfrom fullmaja_stac.cli import app\n"
                      "if __name__ == '__main__':\n    sys.exit(app())\n")
    run = subprocess.run([sys.executable, str(script), "ingest", str(tmp_path / "in"), "--catalog",
                          str(tmp_path / "catalog"), "--workers", "2"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")]
    assert "1 added" in run.stdout
    assert imported.count("fullmaja_stac.ingest.run") == 1
    assert imported.count("fullmaja_stac.cli") == imported.count("rasterio") == 2


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MB file system (tmpfs), so that a full disk can be met for real; skipped where
    this test cannot mount one (not root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if run.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {run.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_ingest_into_a_full_disk_says_so(small_disk, tmp_path, series_specs):
    zips = [write_product(s, tmp_path / "in", SynthOptions(size=300, seed=3)) for s in series_specs[:3]]
    run = _cli("ingest", str(tmp_path / "in"), "--catalog", str(small_disk / "catalog"), "--workers", "1")
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "Traceback" not in out, out[-2000:]
    assert "no space left on the device of" in out, out[-2000:]
    assert "Unknown GDAL Error" not in out and "TIFFWriteDirectory" not in out
    assert not list(small_disk.rglob("*.tmp"))
    assert len(zips) == 3


@pytest.mark.slow
def test_download_into_a_full_disk_keeps_the_report_and_resumes(small_disk, tmp_path, emulator):
    from fullmaja_stac.providers.jobs import JobStore
    from fullmaja_stac.providers.job_files import download_job
    from fullmaja_stac.providers.orders import refresh, submit
    from fullmaja_stac.providers.peps.auth import Credentials
    from fullmaja_stac.providers.peps.client import PepsClient
    from fullmaja_stac.emulator.server import DEMO_USER
    from fullmaja_stac.providers.peps.wps import MajaRequest
    from fullmaja_stac.providers.base import PepsProvider
    from datetime import date

    creds = Credentials(*DEMO_USER)
    store = JobStore(tmp_path / "state")
    with emulator(size=240) as emu:  # large enough to fill 4 MB
        client = PepsClient(emu.url, creds)
        job = submit(store, client, MajaRequest("36TWQ", 64, date(2019, 3, 1), date(2019, 5, 1)))
        emu.clock.advance(500 * 3600)
        for _ in range(200):
            job = refresh(store, client, job)
            if job.state == "FINISHED":
                break
            time.sleep(0.05)
        (small_disk / "products").mkdir()
        report = download_job(store, PepsProvider(creds, emu.url), job, small_disk / "products")
        assert not report.ok and report.disk_full and "no space left on the device of" in report.disk_full
        assert "products complete, free some space and run the same command again" in report.disk_full
        assert report.report_path is not None and report.report_path.exists()  # what did complete is recorded
        done = report.count("downloaded")
        assert done < len([d for d in report.dates if d.status != "too cloudy"])
        # free space: move what arrived elsewhere, then the same command finishes
        bigger = tmp_path / "products"
        shutil.copytree(small_disk / "products", bigger)
        again = download_job(store, PepsProvider(creds, emu.url), job, bigger)
        assert again.ok and again.disk_full is None


# ----------------------------------------------------------------------------- secrets


def test_secret_files_too_open_get_one_plain_warning_line(tmp_path, monkeypatch, capfd):
    from fullmaja_stac.providers.geodes import find_api_key
    from fullmaja_stac.providers.peps.auth import find_credentials

    monkeypatch.delenv("GEODES_API_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    key = tmp_path / "cfg" / "fullmaja-stac" / "geodes-api-key"
    key.parent.mkdir(parents=True)
    key.write_text("k3y\n")
    key.chmod(0o644)
    assert find_api_key("https://geodes-portal.cnes.fr") == "k3y"
    err = capfd.readouterr().err
    assert err.startswith("warning: ") and "chmod 600" in err and str(key) in err and err.count("\n") == 1
    key.chmod(0o600)
    find_api_key("https://geodes-portal.cnes.fr")
    assert capfd.readouterr().err == ""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine peps.cnes.fr login me@x.org password pw\n")
    netrc.chmod(0o644)
    for var in ("PEPS_EMAIL", "PEPS_PASSWORD", "FULLMAJA_STAC_PEPS_AUTH", "FULLMAJA_STAC_PEPS_URL"):
        monkeypatch.delenv(var, raising=False)
    find_credentials("https://peps.cnes.fr")
    err = capfd.readouterr().err
    assert "warning: " in err and ".netrc" in err and "chmod 600" in err and "pw\n" not in err


@pytest.mark.slow
def test_password_in_a_url_is_never_shown(tmp_path):
    env = {"FULLMAJA_STAC_PEPS_URL": "http://alice:s3cr3t-pw@127.0.0.1:9", "FULLMAJA_STAC_STATE_DIR": str(tmp_path)}
    for var in ("PEPS_EMAIL", "PEPS_PASSWORD", "FULLMAJA_STAC_PEPS_AUTH"):
        env[var] = ""
    run = _cli("request", "--tile", "36TWQ", "--orbit", "64", "--start", "2019-03-01", "--end", "2019-06-01", env=env)
    out = run.stdout + run.stderr
    assert run.returncode == 1 and "s3cr3t-pw" not in out and "Traceback" not in out, out
    assert "cannot reach" in out and "127.0.0.1" in out


def test_text_from_files_is_never_read_as_markup(tmp_path, series_specs):
    """A product whose MTD says `[/]` (Rich's closing tag) in a file name must not crash the
    report: text from files and servers is printed as it is."""
    product = write_product(series_specs[0], tmp_path / "a", SynthOptions(size=24, seed=3, zipped=False))
    mtd = next(product.glob("*_MTD_ALL.xml"))
    text = mtd.read_text(encoding="utf-8")
    victim = next(product.glob("*_FRE_B4.tif")).name
    mtd.write_text(text.replace(victim, victim.replace(".tif", "[/bold][/].tif")), encoding="utf-8")
    run = _cli("ingest", str(product), "--catalog", str(tmp_path / "catalog"))
    out = run.stdout + run.stderr
    assert run.returncode == 1 and "Traceback" not in out and "MarkupError" not in out, out[-2000:]
    assert "[/bold][/].tif" in out and "whose name may hold only ASCII letters" in out
