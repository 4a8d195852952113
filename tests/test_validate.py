"""`validate`: our validator (jsonschema-rs, bundled schemas, loaded once) gives the same
verdicts as stac-validator, object by object, on valid and broken items, and says why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from fullmaja_stac.stac.validate import BUNDLED_SCHEMA_MAP, catalog_objects, validate_catalog

BREAKS = {
    "cloud cover is text": lambda d: d["properties"].__setitem__("eo:cloud_cover", "x"),
    "no datetime": lambda d: d["properties"].pop("datetime"),
    "epsg as a string": lambda d: d["properties"].__setitem__("proj:epsg", "32631"),
    "unknown data type": lambda d: d["assets"]["red"]["raster:bands"][0].__setitem__("data_type", "int17"),
}


def _stac_validator_verdict(path) -> bool:
    run = subprocess.run(["stac-validator", "validate", "--schema-config", str(BUNDLED_SCHEMA_MAP), str(path)],
                         capture_output=True, text=True)
    reports, _ = json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("["):])
    return all(r["valid_stac"] for r in reports)


@pytest.mark.slow
def test_same_verdicts_as_stac_validator_on_valid_and_broken_items(catalog, tmp_path):
    root = tmp_path / "catalog"
    shutil.copytree(catalog, root)
    items = sorted(root.glob("maja-s2-l2a/*/*/*/*.json"))
    for path, (name, breaker) in zip(items, BREAKS.items()):
        doc = json.loads(path.read_text())
        breaker(doc)
        path.write_text(json.dumps(doc))
    result = validate_catalog(root, workers=1)
    ours = {p for p, _ in result.invalid}
    assert result.checked == 9 and len(ours) == len(BREAKS)
    for path in catalog_objects(root / "catalog.json"):
        assert (str(path) not in ours) == _stac_validator_verdict(path), path.name
    messages = dict(result.invalid)
    assert "'x' is not of type 'number' at properties/eo:cloud_cover" in messages[str(items[0])]
    assert "'datetime' is a required property" in messages[str(items[1])]
    assert "at assets/red/raster:bands/0/data_type" in messages[str(items[3])]
    pooled = validate_catalog(root, workers=2)
    assert sorted(pooled.invalid) == sorted(result.invalid) and pooled.by_type == result.by_type


def test_validate_command_works_with_the_plain_install_dependencies(catalog):
    """No stac-validator import: the demo and `validate` need only the base dependencies."""
    code = ("import sys, builtins; real = builtins.__import__\n"
            "def guard(name, *a, **k):\n"
            "    if name.split('.')[0] in ('stac_validator', 'stac_check', 'pystac_client'):\n"
            "        raise ImportError(name)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = guard\n"
            f"from fullmaja_stac.stac.validate import validate_catalog\n"
            f"r = validate_catalog({str(catalog)!r}); print(r.ok, r.checked)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.strip() == "True 9", run.stderr
