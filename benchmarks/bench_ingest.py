"""Ingest speed and memory of one synthetic MAJA product, as ratios to GDAL's own COG driver.

Baseline: every raster of the product converted serially by GDAL's COG driver (what
``gdal_translate -of COG`` does, called through rasterio), same compression, predictor,
block size and overview resampling. Then our ingest with 1 worker (ratio per core) and with
N workers (parallel speed-up and efficiency, beside GDAL's own in N processes). Our ingest
does more than the baseline: statistics for every band, scale/offset/description in every
GeoTIFF, the true-colour ``visual`` COG, the item and the catalog. Everything runs in this
process, on the same files, so the ratios compare like with like. Peak RSS is sampled for
every worker process while the N-worker ingest runs; MB/s is product (zip) input per core.

    python benchmarks/bench_ingest.py [--size 10980] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import rasterio
import rasterio.shutil

from fullmaja_stac.assets import MASK, plan_assets
from fullmaja_stac.ingest import ingest
from fullmaja_stac.maja import read_product
from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_product


def _gdal_cog(source: str, target: str, predictor: bool, resampling: str) -> None:
    options = dict(driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512, NUM_THREADS=1,
                   PREDICTOR="2" if predictor else "NO", OVERVIEW_RESAMPLING=resampling.upper())
    with rasterio.Env(GDAL_NUM_THREADS="1"), rasterio.open(source) as src:
        rasterio.shutil.copy(src, target, **options)


def gdal_cog_baseline(product, out: Path, workers: int = 1) -> float:
    """Convert each source file once with GDAL's COG driver (the 2-band ATB file once, both
    bands); returns seconds. With workers > 1, the same conversions in a process pool: how
    well the machine itself scales this kind of work."""
    out.mkdir(parents=True, exist_ok=True)
    jobs, seen = [], set()
    for plan in plan_assets(product):
        if plan.raster.path not in seen:
            seen.add(plan.raster.path)
            jobs.append((product.gdal_path(plan.raster.path), str(out / plan.filename), plan.kind != MASK, plan.resampling))
    start = time.perf_counter()
    if workers == 1:
        for job in jobs:
            _gdal_cog(*job)
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_gdal_cog, *zip(*jobs)))
    return time.perf_counter() - start


class RssSampler:
    """Peak resident memory of each child process (the workers), sampled every 50 ms."""

    def __init__(self) -> None:
        import threading

        import psutil

        self._me = psutil.Process()
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for child in self._me.children(recursive=True):
                try:
                    self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), child.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def timed_ingest(zip_path: Path, catalog: Path, workers: int) -> float:
    shutil.rmtree(catalog, ignore_errors=True)
    start = time.perf_counter()
    report = ingest([zip_path], catalog, workers=workers)
    elapsed = time.perf_counter() - start
    if not report.ok or not report.added:
        sys.exit(f"ingest failed: {report}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10980, help="R1 pixels per side (10980 = full size)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", type=Path, default=None, help="folder to cache the synthetic product in")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    cache = args.keep or work
    try:
        spec = plan_series("31TCJ", 51, date(2019, 6, 1), date(2019, 6, 10), seed=1)[0]
        options = SynthOptions(size=args.size, seed=1)
        zip_path = cache / str(args.size) / f"{spec.product_id(options)}.zip"
        if not zip_path.exists():
            print(f"writing a {args.size} px synthetic product …", flush=True)
            zip_path = write_product(spec, cache / str(args.size), options)
        product = read_product(zip_path)
        n_cogs = len(plan_assets(product))
        print(f"product: {product.id}, {n_cogs} COGs, {zip_path.stat().st_size / 1e6:.0f} MB zip")

        baseline = gdal_cog_baseline(product, work / "gdal")
        gdal_many = gdal_cog_baseline(product, work / "gdalN", args.workers)
        one = timed_ingest(zip_path, work / "cat1", 1)
        with RssSampler() as rss:
            many = timed_ingest(zip_path, work / "catN", args.workers)
        workers_rss = sorted(rss.peaks.values(), reverse=True)[: args.workers]
        speedup = one / many
        gdal_speedup = baseline / gdal_many
        mb = zip_path.stat().st_size / 1e6
        print(f"GDAL COG driver, serial       : {baseline:8.1f} s (baseline)")
        print(f"GDAL COG driver, {args.workers} processes: {gdal_many:8.1f} s  speed-up {gdal_speedup:4.2f}x, "
              f"parallel efficiency {gdal_speedup / args.workers:4.2f} (what this machine allows)")
        print(f"fullmaja-stac ingest, 1 core  : {one:8.1f} s  ratio to baseline {one / baseline:5.2f}x (goal <= 1.0)")
        print(f"fullmaja-stac ingest, {args.workers} cores : {many:8.1f} s  speed-up {speedup:4.2f}x, "
              f"parallel efficiency {speedup / args.workers:4.2f} (goal >= GDAL's {gdal_speedup / args.workers:4.2f})")
        print(f"input throughput: {mb / one:6.1f} MB/s on 1 core, {mb / many / args.workers:6.1f} MB/s per core "
              f"with {args.workers}")
        print(f"peak RSS per worker ({args.workers} workers): "
              + ", ".join(f"{r / 2**30:.2f} GB" for r in workers_rss) + " (goal <= 0.5 GB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
