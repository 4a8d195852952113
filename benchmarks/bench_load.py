"""The analysis-ready loader and the composite, against what a user would write by hand.

1. ``load()`` (every item masked with its own bits, then merged) against ``odc.stac.load`` of
   the same bands and their masks with the clear mask and the scale applied by hand
   (``where(edg == 0 & clm == 0 & sat & bit == 0) * scale``), same items, same grid, same
   resampling (bilinear bands, nearest masks), interleaved rounds; medians compared. Goal
   ≤ 1.2x.
2. ``composite()`` of a month (read, mask, median, COGs of each band, count and visual
   written) in pixels per second per core (pixels = dates × rows × columns × bands), against
   numpy's ``nanmedian`` over the same stack already in memory, interleaved rounds. Goal
   ≥ 0.8x (ours is the whole job; numpy's only the statistic). Both run on one core. The
   median step alone (ours: bottleneck's, on the same stack) is timed against numpy's too, so
   that the reading and writing, which numpy's figure leaves out, show as the difference.

    python benchmarks/bench_load.py [--size 1098] [--rounds 3] [--work DIR]

The products are synthetic MAJA products of one month (``--size`` R1 pixels a side), written
and ingested once into ``--work`` (kept and reused when given).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path
from statistics import median

import numpy as np

from fullmaja_stac.analysis.composite import composite
from fullmaja_stac.analysis.consume import odc_items
from fullmaja_stac.analysis.load import load
from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_series
from fullmaja_stac.stac.constants import COMPOSITE_COLLECTION_ID

BANDS = ["red", "nir", "swir16"]
COMPOSITE_BANDS = ["blue", "green", "red", "nir"]


def prepare(work: Path, size: int) -> Path:
    catalog = work / "catalog"
    if (catalog / "catalog.json").exists():
        return catalog
    specs = plan_series("31TCJ", 51, date(2019, 7, 1), date(2019, 7, 31), seed=5, too_cloudy=set(), split=set())
    zips = write_series(specs, work / "products", SynthOptions(size=size, seed=5))
    report = ingest(zips, catalog)
    assert report.ok, report
    return catalog


def by_hand(items) -> dict:
    """What a user writes with odc-stac alone for the same clear-sky reflectance."""
    import odc.stac

    masks = ["edg-r1", "clm-r1", "sat-r1", "edg-r2", "clm-r2", "sat-r2"]
    raw = odc.stac.load(items, bands=[*BANDS, *masks], groupby="solar_day", resolution=10,
                        resampling={**{b: "bilinear" for b in BANDS}, **{m: "nearest" for m in masks}})
    sat_bit = {"red": 1 << 2, "nir": 1 << 3, "swir16": 1 << 4}
    out = {}
    for band in BANDS:
        group = "r2" if band == "swir16" else "r1"
        clear = ((raw[f"edg-{group}"] == 0) & (raw[f"clm-{group}"] == 0) & ((raw[f"sat-{group}"] & sat_bit[band]) == 0)
                 & (raw[band] != -10000))
        out[band] = (raw[band].astype("float32") * np.float32(0.0001)).where(clear).values
    return out


def ours(items) -> dict:
    ds = load(items, bands=BANDS, resolution=10)
    return {band: ds[band].values for band in BANDS}


def interleaved(rounds: int, first, second) -> tuple[list[float], list[float]]:
    a, b = [], []
    for n in range(rounds):
        for fn, times in ((first, a), (second, b)) if n % 2 == 0 else ((second, b), (first, a)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1098)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("GDAL_NUM_THREADS", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-load-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        catalog = prepare(work, args.size)
        items = odc_items(catalog)
        print(f"{len(items)} items of {args.size} x {args.size} px (10 m), {os.cpu_count()} CPUs, {args.rounds} rounds")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mine, hand = ours(items), by_hand(items)  # warm both (GDAL, imports), and check they agree
        for band in BANDS:
            np.testing.assert_allclose(mine[band], hand[band], rtol=1e-6)  # single tile: same work, same pixels
        ours_s, hand_s = interleaved(args.rounds, lambda: ours(items), lambda: by_hand(items))
        print(f"\n## load: {', '.join(BANDS)} on the 10 m grid, clear mask")
        print(f"ours (load)            median {median(ours_s):7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours_s)})")
        print(f"odc-stac + mask by hand median {median(hand_s):6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in hand_s)})")
        print(f"ratio ours / by hand: {median(ours_s) / median(hand_s):.2f}x (goal <= 1.2x)")

        ds = load(items, bands=COMPOSITE_BANDS)
        stack = {band: ds[band].values for band in COMPOSITE_BANDS}
        dates, height, width = stack["red"].shape
        pixels = dates * height * width * len(COMPOSITE_BANDS)

        def ours_composite() -> None:
            shutil.rmtree(catalog / COMPOSITE_COLLECTION_ID, ignore_errors=True)
            report = composite(catalog, bands=COMPOSITE_BANDS)
            assert len(report.written) == 1, report

        def numpy_median() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                for band in COMPOSITE_BANDS:
                    np.nanmedian(stack[band], axis=0)

        def our_median_step() -> None:
            import bottleneck

            for band in COMPOSITE_BANDS:
                bottleneck.nanmedian(stack[band], axis=0)

        ours_composite()
        comp_s, np_s = interleaved(args.rounds, ours_composite, numpy_median)
        step_s, np2_s = interleaved(args.rounds, our_median_step, numpy_median)
        ours_rate, np_rate = pixels / median(comp_s), pixels / median(np_s)
        step_rate, np2_rate = pixels / median(step_s), pixels / median(np2_s)
        print(f"\n## composite: one month, {dates} dates x {height} x {width} px x {len(COMPOSITE_BANDS)} bands, one core")
        print(f"ours (read, mask, median, 6 COGs) {ours_rate / 1e6:7.1f} Mpx/s  (runs: {', '.join(f'{t:.2f}' for t in comp_s)} s)")
        print(f"numpy nanmedian, stack in memory  {np_rate / 1e6:7.1f} Mpx/s  (runs: {', '.join(f'{t:.2f}' for t in np_s)} s)")
        print(f"ratio ours / numpy: {ours_rate / np_rate:.2f}x (goal >= 0.8x)")
        print(f"the median step alone, same stack: ours (bottleneck) {step_rate / 1e6:.1f} Mpx/s, "
              f"numpy {np2_rate / 1e6:.1f} Mpx/s: {step_rate / np2_rate:.2f}x")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
