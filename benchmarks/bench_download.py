"""Download throughput on loopback, as a ratio to curl fetching the same file in the same run.

Both fetch one product zip from the embedded PEPS emulator (a real HTTP server on
127.0.0.1). Ours includes what makes it safe: the .part file, the length check, the zip
check and the sha256/md5 digests. Run a few rounds and keep the best of each.

    python benchmarks/bench_download.py [--size 4998] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from fullmaja_stac.peps.auth import Credentials
from fullmaja_stac.peps.client import make_session
from fullmaja_stac.peps.download import download
from fullmaja_stac.peps.emulator import DEMO_USER, PepsEmulator
from fullmaja_stac.peps.wps import MajaRequest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4998, help="R1 pixels of the served product")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("curl"):
        raise SystemExit("curl is needed as the baseline (apt-get install curl)")

    work = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        with PepsEmulator(speed=0, size=args.size) as emu:
            job = emu.submit(DEMO_USER[0], {"tileid": "31TCJ", "relativeOrbitNumber": "51",
                                            "startDate": "2019-06-01", "completionDate": "2019-06-06"})
            job.specs = [s for s in job.specs if not s.too_cloudy and not s.split][:1]
            print(f"writing a {args.size} px product for the emulator …", flush=True)
            emu.ensure_products(job)
            name, path = next(iter(job.files.items()))
            url = f"{emu.url}/cgi-bin/mapcache_results/maja/{job.id}/{name}"
            size_mb = path.stat().st_size / 1e6
            curl_best = ours_best = float("inf")
            for _ in range(args.rounds):
                target = work / "curl.zip"
                start = time.perf_counter()
                subprocess.run(["curl", "-sf", "-u", f"{DEMO_USER[0]}:{DEMO_USER[1]}", "-o", str(target), url], check=True)
                curl_best = min(curl_best, time.perf_counter() - start)
                target.unlink()
                ours = work / name
                start = time.perf_counter()
                download(make_session(Credentials(*DEMO_USER)), url, ours)
                ours_best = min(ours_best, time.perf_counter() - start)
                ours.unlink()
        print(f"file: {size_mb:.0f} MB")
        print(f"curl               : {size_mb / curl_best:8.0f} MB/s (baseline)")
        print(f"fullmaja-stac      : {size_mb / ours_best:8.0f} MB/s  ratio to curl {curl_best / ours_best:4.2f} (goal >= 0.9)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
