"""`fullmaja-stac validate` throughput: objects per second per core on a catalog of N items
(copies of one real ingested item, 45 assets, 86 KB of JSON), against stac-validator
validating a sample of the same catalog in the same run with the same bundled schemas.

    python benchmarks/bench_validate.py [--items 2000] [--sample 40]
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

from fullmaja_stac.stac.validate import BUNDLED_SCHEMA_MAP, catalog_objects, validate_catalog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=40, help="objects given to stac-validator (it is slow)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    try:
        root = work / "catalog"
        write_ours(root, _clones(_template(work), args.items))
        objects = catalog_objects(root / "catalog.json")
        validate_catalog(root, workers=1)  # schemas compiled once per process: not what we measure
        start = time.perf_counter()
        one = validate_catalog(root, workers=1)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        pooled = validate_catalog(root)
        pool_s = time.perf_counter() - start
        assert one.ok and pooled.ok and one.checked == len(objects)
        sample = [o for o in objects if o.name != "catalog.json"][: args.sample]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from stac_validator.validate import StacValidate
        start = time.perf_counter()
        for path in sample:  # in this process, so only validation is timed
            validator = StacValidate(str(path), schema_config=str(BUNDLED_SCHEMA_MAP))
            validator.run()
            assert all(m["valid_stac"] for m in validator.message)
        theirs_s = time.perf_counter() - start
        ours_rate, theirs_rate = one.checked / ours_s, len(sample) / theirs_s
        print(f"{one.checked} objects ({args.items} items): ours {ours_rate:.0f} objects/s on one core, "
              f"{pooled.checked / pool_s:.0f} objects/s with the process pool; stac-validator {theirs_rate:.1f} objects/s "
              f"(in this process, same schemas) -> {ours_rate / theirs_rate:.0f}x per core")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
