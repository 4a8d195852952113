"""`fullmaja-stac validate` throughput: objects per second per core on a catalog of N items
(copies of one real ingested item, 45 assets, 86 KB of JSON); then the ratio to stac-validator
on the same sample of objects, in the same process, with the same bundled schemas, both warmed
(each has validated the sample once before it is timed: schemas loaded and compiled), timed
in interleaved rounds; the medians are compared.

    python benchmarks/bench_validate.py [--items 2000] [--sample 40] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_catalog import _clones, _template, write_ours  # noqa: E402

from statistics import median  # noqa: E402

from fullmaja_stac.stac.validate import BUNDLED_SCHEMA_MAP, _check, catalog_objects, validate_catalog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=40, help="objects both validators are timed on")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the comparison")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    try:
        root = work / "catalog"
        write_ours(root, _clones(_template(work), args.items))
        objects = catalog_objects(root / "catalog.json")
        validate_catalog(root, workers=1)  # schemas compiled once per process: not what we measure
        start = time.perf_counter()
        one = validate_catalog(root, workers=1)
        ours_all_s = time.perf_counter() - start
        start = time.perf_counter()
        pooled = validate_catalog(root)
        pool_s = time.perf_counter() - start
        assert one.ok and pooled.ok and one.checked == len(objects)
        sample = [o for o in objects if o.name != "catalog.json"][: args.sample]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from stac_validator.validate import StacValidate

        def theirs() -> None:
            for path in sample:
                validator = StacValidate(str(path), schema_config=str(BUNDLED_SCHEMA_MAP))
                validator.run()
                assert all(m["valid_stac"] for m in validator.message)

        def ours() -> None:
            assert not any(error for _, _, error in _check([str(p) for p in sample], str(BUNDLED_SCHEMA_MAP), False))

        theirs(), ours()  # warm both: schemas read and compiled once per process
        times: dict = {"ours": [], "theirs": []}
        for _ in range(args.rounds):
            for name, run in (("ours", ours), ("theirs", theirs)):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        ours_s, theirs_s = median(times["ours"]), median(times["theirs"])
        print(f"{one.checked} objects ({args.items} items): ours {one.checked / ours_all_s:.0f} objects/s on one core, "
              f"{pooled.checked / pool_s:.0f} objects/s with the process pool")
        print(f"same {len(sample)} items, both warmed, median of {args.rounds} interleaved rounds: ours "
              f"{len(sample) / ours_s:.0f} objects/s, stac-validator {len(sample) / theirs_s:.1f} objects/s -> "
              f"{theirs_s / ours_s:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
