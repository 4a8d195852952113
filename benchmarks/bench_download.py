"""Download throughput on loopback, as a ratio to curl fetching the same file in the same run.

The emulator runs as its own process (`fullmaja-stac emulator`), as a remote server would, so
the Python serving it does not share our process. A FULL_MAJA job is ordered and followed
through the real protocol; then one of its products is fetched by curl and by us, alternately.
Ours always includes the .part file, the length check, the zip's structure and a digest
computed beside the transfer (sha256). Then the two ways we verify content are timed too:
against a published MD5 (GEODES; MD5 is slower to compute than sha256 with SHA-NI), and by
decompressing every zip member to check its CRC (what PEPS downloads get by default, as PEPS
publishes no checksum), which curl does not do at all. Best of a few rounds.

    python benchmarks/bench_download.py [--size 3600] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import requests

from fullmaja_stac.providers.peps.auth import Credentials
from fullmaja_stac.providers.peps.client import PepsClient, make_session
from fullmaja_stac.providers.download import download
from fullmaja_stac.emulator.server import DEMO_USER
from fullmaja_stac.providers.peps.wps import MajaRequest

CREDS = Credentials(*DEMO_USER)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=3600, help="R1 pixels of the served products")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("curl"):
        raise SystemExit("curl is needed as the baseline (apt-get install curl)")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "fullmaja_stac.cli", "emulator", "--port", str(port),
                               "--speed", "1e9", "--size", str(args.size)], stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        for _ in range(100):
            try:
                requests.get(base, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        client = PepsClient(base, CREDS)
        answer, _ = client.submit(MajaRequest("31TCJ", 51, date(2019, 6, 1), date(2019, 7, 31)))
        print(f"ordered job {answer.job_id}; the emulator writes its {args.size} px products …", flush=True)
        status, json_url = client.refresh(answer.status_location, answer.job_id)
        while status.state != "FINISHED":
            time.sleep(0.5)
            status, json_url = client.refresh(answer.status_location, answer.job_id, json_url)
        url = next(u for u in status.results if "NOVALD" not in u)
        name = url.rsplit("/", 1)[-1]

        reference = work / "reference.zip"
        subprocess.run(["curl", "-sf", "-u", f"{DEMO_USER[0]}:{DEMO_USER[1]}", "-o", str(reference), url], check=True)
        md5 = hashlib.md5(reference.read_bytes()).hexdigest()  # noqa: S324 - what GEODES would publish
        size_mb = reference.stat().st_size / 1e6

        curl_best = plain_best = md5_best = crc_best = float("inf")
        for _ in range(args.rounds):
            target = work / "curl.zip"
            start = time.perf_counter()
            subprocess.run(["curl", "-sf", "-u", f"{DEMO_USER[0]}:{DEMO_USER[1]}", "-o", str(target), url], check=True)
            curl_best = min(curl_best, time.perf_counter() - start)
            target.unlink()
            ours = work / name
            start = time.perf_counter()
            download(make_session(CREDS, url), url, ours, check_zip=False)
            plain_best = min(plain_best, time.perf_counter() - start)
            ours.unlink()
            start = time.perf_counter()
            download(make_session(CREDS, url), url, ours, expected_md5=md5)
            md5_best = min(md5_best, time.perf_counter() - start)
            ours.unlink()
            start = time.perf_counter()
            download(make_session(CREDS, url), url, ours)
            crc_best = min(crc_best, time.perf_counter() - start)
            assert ours.read_bytes() == reference.read_bytes()
            ours.unlink()
        print(f"file: {size_mb:.0f} MB")
        print(f"curl               : {size_mb / curl_best:8.0f} MB/s (baseline)")
        print(f"fullmaja-stac      : {size_mb / plain_best:8.0f} MB/s  ratio to curl {curl_best / plain_best:4.2f} "
              "(goal >= 0.9): .part, length, zip structure, sha256")
        print(f"  + MD5 check      : {size_mb / md5_best:8.0f} MB/s  ratio to curl {curl_best / md5_best:4.2f} (GEODES)")
        print(f"  + zip CRC check  : {size_mb / crc_best:8.0f} MB/s  ratio to curl {curl_best / crc_best:4.2f} "
              "(PEPS default: every member decompressed)")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
