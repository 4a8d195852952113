"""Ingest speed and memory of one synthetic MAJA product, as ratios to GDAL's own COG driver.

Baselines, run in this process on the same product with the same compression, predictor,
block size and overview resampling, one raster after the other:

- GDAL's COG driver reading each raster from the zip (``/vsizip/``), which is what
  ``gdal_translate -of COG /vsizip/product.zip/...`` does: the baseline of the goal;
- GDAL's COG driver on the rasters already extracted (the unzip itself not counted): the
  strictest baseline, printed beside it so that no gain hides in the zip.

Then our ingest with 1 worker (ratio per core) and with N workers (parallel speed-up and
efficiency, beside GDAL's own in N processes). Our ingest does more than either baseline:
statistics for every band, scale/offset/description in every GeoTIFF, the true-colour
``visual`` COG, the footprint, the item and the catalog. The stages of our ingest are also
timed one by one (reading the product; the COGs by family, read from the zip as ingest reads
them; the visual; the footprint; item and catalog), next to GDAL's time for the same family.
Peak RSS is sampled for every worker process while the N-process runs go (ours and GDAL's);
MB/s is product (zip) input per core.

With ``--repeat R``, the four runs that the two parallel efficiencies come from (GDAL on the
extracted rasters in 1 and N processes, our ingest on 1 and N cores) are each run R times,
interleaved, and the fastest of each is kept: on a shared machine a single run varies by
5-10 %, as much as the difference being measured. Each round's efficiency (its 1-process run
beside its N-process run) and their median are printed too: they are not biased by the
machine's speed drifting from one round to the next. The efficiency is also split in two, each
measured inside its own runs: the share of N x the wall time the workers spent on a CPU (the
scheduling: the start, idle workers, the tail) and the workers' CPU time against the 1-process
run's (what running N at once costs the same work on this machine). Both are read from the
kernel's accounting of each worker, and on this VM a conversion takes less CPU beside another
(both CPU figures came out between 0.83 and 0.97): compare ours with GDAL's, not with 1.

The forkserver that our workers fork from is started before the runs, as the ``fullmaja-stac``
command starts it before its own imports; a library caller's first ``ingest()`` waits for its
imports (0.4 s) once per process.

    python benchmarks/bench_ingest.py [--size 10980] [--workers N] [--repeat R] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from statistics import median

import rasterio
import rasterio.shutil

from fullmaja_stac.ingest.assets import MASK, plan_assets
from fullmaja_stac.maja.product import _strips_in_order, verify_member
from fullmaja_stac.ingest.cog import VISUAL_COMPRESS_THREADS
from fullmaja_stac.ingest.footprint import valid_footprint
from fullmaja_stac.ingest.run import cog_task, ingest, visual_task
from fullmaja_stac.lifeline import worker_context
from fullmaja_stac.maja import read_product
from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_product

BOUND_CORES = 16  # the machine the issue sizes the workers for
FAMILIES = {"reflectance": "reflectance", "atb": "ATB (AOT, WVC)", "mask": "masks"}


def _gdal_cog(source: str, target: str, predictor: bool, resampling: str, statistics: bool = False) -> float:
    options = dict(driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512, NUM_THREADS=1,
                   PREDICTOR="2" if predictor else "NO", OVERVIEW_RESAMPLING=resampling.upper(),
                   STATISTICS="YES" if statistics else "NO")
    start = time.perf_counter()
    with rasterio.Env(GDAL_NUM_THREADS="1"), rasterio.open(source) as src:
        rasterio.shutil.copy(src, target, **options)
    return time.perf_counter() - start


def gdal_jobs(product, out: Path, sources: dict[str, str]) -> list[tuple[str, tuple]]:
    """One conversion per source file (the 2-band ATB file once, both bands): (family, args)."""
    out.mkdir(parents=True, exist_ok=True)
    jobs, seen = [], set()
    for plan in plan_assets(product):
        if plan.raster.path not in seen:
            seen.add(plan.raster.path)
            jobs.append((plan.kind, (sources[plan.raster.path], str(out / plan.filename), plan.kind != MASK,
                                     plan.resampling)))
    return jobs


def gdal_serial(jobs) -> tuple[Run, Counter]:
    """The run (with its longest job), and its seconds per family."""
    by_family: Counter = Counter()
    cpu, longest = time.process_time(), 0.0
    for family, args in jobs:
        seconds = _gdal_cog(*args)
        by_family[family] += seconds
        longest = max(longest, seconds)
    return Run(sum(by_family.values()), time.process_time() - cpu, longest), by_family


def gdal_parallel(jobs, workers: int) -> tuple[Run, list[int]]:
    """The run, and the peak RSS of each worker."""
    with WorkerSampler() as sampler:
        start = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_gdal_cog, *zip(*(args for _, args in jobs))))
        wall = time.perf_counter() - start
    return Run(wall, sampler.worker_cpu), sampler.top_peaks(workers)


def unzip_all(product, folder: Path) -> tuple[float, dict[str, str]]:
    """Every raster of the (zipped) product extracted to ``folder``: the unzip time, and
    where each raster now is (the input of the strict baseline)."""
    folder.mkdir(parents=True, exist_ok=True)
    where, start = {}, time.perf_counter()
    with zipfile.ZipFile(product.source) as archive:
        for raster in product.rasters:
            source = product.raster_source(raster)
            target = folder / Path(raster.path).name
            with archive.open(source.member) as member, open(target, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
            where[raster.path] = str(target)
    return time.perf_counter() - start, where


def our_stages(product, out: Path) -> tuple[Counter, float, float, tuple[float, str]]:
    """Our conversion of each raster from the zip, as ingest does it (in place, or extracted
    once when its strips are out of order), timed by family; the true-colour COG, from the zip
    too, on one thread; the footprint (a worker's task too); and the longest of these tasks as a
    pool's worker runs them (seconds, name)."""
    out.mkdir(parents=True, exist_ok=True)
    by_family: Counter = Counter()
    plans = plan_assets(product)
    longest = (0.0, "")
    for plan in plans:
        start = time.perf_counter()
        function, *args = cog_task(product, plan, out)
        function(*args)
        seconds = time.perf_counter() - start
        by_family[plan.kind] += seconds
        longest = max(longest, (seconds, plan.filename.rsplit("_", 1)[-1]))
    start = time.perf_counter()
    function, *args = visual_task(product, plans, out, 1)  # as in a 1-process ingest
    function(*args)
    visual = time.perf_counter() - start
    start = time.perf_counter()
    function, *args = visual_task(product, plans, out)  # as a pool's worker makes it
    function(*args)
    longest = max(longest, (time.perf_counter() - start, f"the visual, on {VISUAL_COMPRESS_THREADS} compression threads"))
    start = time.perf_counter()
    valid_footprint(product, out)
    return by_family, visual, time.perf_counter() - start, longest


def crc_check_seconds(product) -> float:
    """What the CRC check of every member ingest reads in place costs on one core: each is
    read once more through zipfile (:func:`~fullmaja_stac.maja.product.verify_member`)."""
    plans = plan_assets(product)
    start = time.perf_counter()
    for plan in plans:
        source = product.raster_source(plan.raster)
        if source.archive is not None and _strips_in_order(source.gdal_path):
            verify_member(source)
    return time.perf_counter() - start


class WorkerSampler:
    """Every 50 ms, each worker process's resident memory (its peak is kept) and CPU time
    (user + system; the last value seen is its total, the workers being idle before they
    exit). Workers are the processes under this one except multiprocessing's forkserver and
    resource tracker: a fork pool's children, a forkserver's children."""

    def __init__(self) -> None:
        import threading

        import psutil

        self._me = psutil.Process()
        self.peaks: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self._servers: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _is_server(self, process) -> bool:
        if process.pid not in self._servers and process.ppid() == self._me.pid:
            if any("forkserver" in part or "resource_tracker" in part for part in process.cmdline()):
                self._servers.add(process.pid)
        return process.pid in self._servers

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for child in self._me.children(recursive=True):
                try:
                    if self._is_server(child):
                        continue
                    with child.oneshot():
                        times, rss = child.cpu_times(), child.memory_info().rss
                    self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), rss)
                    self.cpu[child.pid] = times.user + times.system
                except psutil.Error:
                    pass
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def worker_cpu(self) -> float:
        return sum(self.cpu.values())

    def top_peaks(self, workers: int) -> list[int]:
        """The ``workers`` highest peaks (a pool may replace a worker, which adds a process)."""
        return sorted(self.peaks.values(), reverse=True)[:workers]


@dataclass
class Run:
    """One timed run: wall seconds and the CPU seconds of the processes that did the work
    (this one for a 1-process run, the workers for an N-process run)."""

    wall: float
    cpu: float
    longest: float = 0.0  # its longest task, for a 1-process run

    def busy(self, processes: int) -> float:
        """The share of ``processes`` x wall time the workers spent on a CPU: what the
        scheduling (start, idle workers, the tail) leaves of the run, whatever the machine's speed."""
        return self.cpu / (processes * self.wall)


class StageClock:
    """An ingest observer that notes when things happen: reading the product (MTD and raster
    headers) ends at ``product_started``; the item and the catalog commit run between the
    last ``raster_done`` and ``product_done``."""

    def __init__(self) -> None:
        self.begin = self.read = self.last_raster = self.end = time.perf_counter()

    def started(self, total_products: int) -> None:
        self.begin = time.perf_counter()

    def product_started(self, product_id: str, total_rasters: int) -> None:
        self.read = time.perf_counter()

    def raster_done(self, product_id: str) -> None:  # any task: a COG, the footprint
        self.last_raster = time.perf_counter()

    def product_done(self, product_id: str, outcome: str) -> None:
        self.end = time.perf_counter()


def timed_ingest(zip_path: Path, catalog: Path, workers: int) -> tuple[Run, StageClock, list[int]]:
    """The run (its CPU: this process's inline, the workers' with a pool), when its stages
    ended, and the peak RSS of each worker."""
    shutil.rmtree(catalog, ignore_errors=True)
    clock = StageClock()
    with WorkerSampler() if workers > 1 else nullcontext() as sampler:
        start, cpu = time.perf_counter(), time.process_time()
        report = ingest([zip_path], catalog, workers=workers, observer=clock)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if not report.ok or not report.added:
        sys.exit(f"ingest failed: {report}")
    if sampler is None:
        return Run(wall, cpu), clock, []
    return Run(wall, sampler.worker_cpu), clock, sampler.top_peaks(workers)


def _rounds(serial_runs: list[tuple[Run, object]], parallel_runs: list[Run], workers: int
            ) -> tuple[list[float], float, float]:
    """Each round's parallel efficiency (its 1-process run beside its N-process run), and the
    medians over the rounds of the N-process runs' busy share and of their CPU time against
    the same round's 1-process run."""
    pairs = [(serial, run) for (serial, _), run in zip(serial_runs, parallel_runs)]
    efficiencies = [serial.wall / run.wall / workers for serial, run in pairs]
    busy = median(run.busy(workers) for _, run in pairs)
    growth = median(run.cpu / serial.cpu for serial, run in pairs)
    return efficiencies, busy, growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10980, help="R1 pixels per side (10980 = full size)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", type=Path, default=None, help="folder to cache the synthetic product in")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each timing the parallel efficiencies come from (the fastest is kept)")
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
        mb = zip_path.stat().st_size / 1e6
        print(f"product: {product.id}, {n_cogs} COGs + visual, {mb:.0f} MB zip", flush=True)

        in_zip = {r.path: product.gdal_path(r.path) for r in product.rasters}
        zip_jobs = gdal_jobs(product, work / "gdal-zip", in_zip)
        unzip, extracted = unzip_all(product, work / "extracted")
        plain_jobs = gdal_jobs(product, work / "gdal-plain", extracted)
        largest = max(plain_jobs, key=lambda job: os.path.getsize(job[1][0]))[1]
        no_stats, with_stats = _gdal_cog(*largest), _gdal_cog(*largest, statistics=True)
        stages, visual, footprint, (our_longest, longest_name) = our_stages(product, work / "ours")
        crc = crc_check_seconds(product)
        shutil.rmtree(work / "ours", ignore_errors=True)
        # Our script is the main module: every worker imports it, and with it what it imports.
        # The command preloads its own module in the forkserver; so does this benchmark.
        worker_context(also_preload=("fullmaja_stac.ingest.run", "fullmaja_stac.maja.synthetic"))
        plain_runs, gdal_many_runs, one_runs, many_runs, workers_rss, gdal_rss = [], [], [], [], [], []
        zip_runs = []
        for _ in range(max(1, args.repeat)):
            # the goal's baseline is repeated and interleaved exactly like our 1-core run
            zip_runs.append(gdal_serial(zip_jobs))
            plain_runs.append(gdal_serial(plain_jobs))
            gdal_run, peaks = gdal_parallel(plain_jobs, args.workers)
            gdal_many_runs.append(gdal_run)
            gdal_rss = max(gdal_rss, peaks)
            one_run, one_clock, _ = timed_ingest(zip_path, work / "cat1", 1)
            one_runs.append((one_run, one_clock))
            many_run, _, peaks = timed_ingest(zip_path, work / "catN", args.workers)
            many_runs.append(many_run)
            workers_rss = max(workers_rss, peaks)
        shutil.rmtree(work / "extracted", ignore_errors=True)
        plain_total, plain_family, gdal_longest = min(((run.wall, family, run.longest) for run, family in plain_runs),
                                                      key=lambda r: r[0])
        zip_total, zip_family = min(((run.wall, family) for run, family in zip_runs), key=lambda r: r[0])
        zip_median = median(run.wall for run, _ in zip_runs)
        one_median = median(run.wall for run, _ in one_runs)
        gdal_many = min(run.wall for run in gdal_many_runs)
        one, clock = min(((run.wall, clock) for run, clock in one_runs), key=lambda r: r[0])
        many = min(run.wall for run in many_runs)
        if args.repeat > 1:
            print("runs (s): GDAL 1 process from the zip " + ", ".join(f"{run.wall:.1f}" for run, _ in zip_runs)
                  + "; GDAL 1 process extracted " + ", ".join(f"{run.wall:.1f}" for run, _ in plain_runs)
                  + f"; GDAL {args.workers} processes " + ", ".join(f"{run.wall:.1f}" for run in gdal_many_runs)
                  + "; ours 1 core " + ", ".join(f"{run.wall:.1f}" for run, _ in one_runs)
                  + f"; ours {args.workers} cores " + ", ".join(f"{run.wall:.1f}" for run in many_runs)
                  + " (fastest kept)")

        speedup, gdal_speedup = one / many, plain_total / gdal_many
        print(f"GDAL COG driver, 1 process, reading the zip      : {zip_total:7.1f} s  (baseline)")
        print(f"GDAL COG driver, 1 process, rasters extracted    : {plain_total:7.1f} s  (unzip not counted; "
              f"it took {unzip:.1f} s)")
        print(f"fullmaja-stac ingest, 1 core                     : {one:7.1f} s  ratio {one / zip_total:4.2f}x to the "
              f"baseline (goal <= 1.0), {one / plain_total:4.2f}x to GDAL on extracted rasters (fastest of "
              f"{len(one_runs)} each)")
        print(f"  medians of the {len(one_runs)} interleaved rounds: ours {one_median:.1f} s, GDAL from the zip "
              f"{zip_median:.1f} s: ratio {one_median / zip_median:4.2f}x")
        print(f"  of which the CRC check of the zip members GDAL reads in place: {crc:.2f} s "
              f"({100 * crc / one:.1f} % of our 1-core time; GDAL checks no CRC)")
        print("  stage (ours, 1 core)            ours      GDAL from zip   GDAL extracted")
        print(f"  read the MTD, raster headers {clock.read - clock.begin:7.2f} s")
        for family, title in FAMILIES.items():
            print(f"  COGs: {title:22s} {stages[family]:7.1f} s   {zip_family[family]:9.1f} s   "
                  f"{plain_family[family]:9.1f} s")
        print(f"  true-colour visual COG       {visual:7.1f} s   (no counterpart)")
        print(f"  footprint (valid pixels)     {footprint:7.2f} s")
        print(f"  item and catalog (serial)    {clock.end - clock.last_raster:7.2f} s")
        print(f"  statistics: GDAL's COG driver takes {with_stats / no_stats:4.2f}x as long with STATISTICS=YES on "
              f"the largest raster ({with_stats:.2f} s vs {no_stats:.2f} s)")
        print(f"GDAL COG driver, {args.workers} processes (extracted) : {gdal_many:7.1f} s  speed-up {gdal_speedup:4.2f}x, "
              f"parallel efficiency {gdal_speedup / args.workers:4.2f} (what this machine allows)")
        print(f"fullmaja-stac ingest, {args.workers} cores                    : {many:7.1f} s  speed-up {speedup:4.2f}x, "
              f"parallel efficiency {speedup / args.workers:4.2f} (goal >= GDAL's {gdal_speedup / args.workers:4.2f})")
        gdal_rounds, gdal_busy, gdal_growth = _rounds(plain_runs, gdal_many_runs, args.workers)
        ours_rounds, our_busy, our_growth = _rounds(one_runs, many_runs, args.workers)
        if args.repeat > 1:
            # A slow drift of this machine's speed between rounds (seen: +20 % over five rounds)
            # biases the fastest-of-each figures; a round's 1-core and N-core runs are adjacent,
            # so the efficiency of each round is not biased by it.
            print("parallel efficiency round by round (each 1-process run beside its N-process run): GDAL "
                  + ", ".join(f"{e:.2f}" for e in gdal_rounds) + "; ours " + ", ".join(f"{e:.2f}" for e in ours_rounds)
                  + f"; median GDAL {median(gdal_rounds):.2f}, ours {median(ours_rounds):.2f}")
        # Efficiency = busy share / CPU growth x the 1-process run's CPU share (1 on a quiet machine). The busy
        # share is the scheduling's (start, idle workers, the tail), the CPU growth what running N at once costs
        # the same work (shared caches, memory bandwidth): each is measured inside its run, so the drift of the
        # machine's speed between runs, which moves the efficiencies by as much as their difference, is not in them.
        print(f"  where it goes ({args.workers} processes, median of the rounds): workers busy {gdal_busy:.3f} of "
              f"{args.workers} x the wall time for GDAL, {our_busy:.3f} for ours (the scheduling); CPU "
              f"{gdal_growth:.3f}x the 1-process run's for GDAL, {our_growth:.3f}x for ours (the machine)")
        # One product on a machine with more cores than it has long tasks can end no sooner than its
        # longest task: the bound that a 16-core machine would meet, from this machine's 1-core times.
        print(f"one product on {BOUND_CORES} cores ends no sooner than its longest task: ours {our_longest:.1f} s "
              f"({longest_name}), GDAL's {gdal_longest:.1f} s; parallel efficiency at most "
              f"{min(1.0, one / (BOUND_CORES * our_longest)):.2f} for ours, "
              f"{min(1.0, plain_total / (BOUND_CORES * gdal_longest)):.2f} for GDAL's")
        print(f"input throughput: {mb / one:6.1f} MB/s on 1 core, {mb / many / args.workers:6.1f} MB/s per core "
              f"with {args.workers}")
        print(f"peak RSS per worker ({args.workers} workers): "
              + ", ".join(f"{r / 2**30:.2f} GB" for r in workers_rss) + " (goal <= 0.5 GB; GDAL's own: "
              + ", ".join(f"{r / 2**30:.2f} GB" for r in gdal_rss) + ")")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
