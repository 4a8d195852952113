"""Trust boundary: the catalog's own files. Everything that is not an item or a COG is
derived data and is rebuilt from the items when it is damaged; a damaged item is named and
converted again; a catalog or download folder that cannot be one says why in one line
(issue 24, 6-8)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fullmaja_stac.errors import FullMajaError, ProductError
from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.maja.product import read_product
from fullmaja_stac.maja.synthetic import SynthOptions, write_product
from fullmaja_stac.stac.catalog import repair_catalog
from fullmaja_stac.stac.validate import validate_catalog

YEAR = Path("maja-s2-l2a", "31TCJ", "2019")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def _items(cat: Path) -> list[str]:
    return sorted(p.parent.name for p in (cat / YEAR).glob("*/*.json"))


def _valid(cat: Path) -> bool:
    result = validate_catalog(cat)
    return result.ok and result.by_type.get("ITEM") == 5


@pytest.fixture()
def cat(tmp_path, catalog) -> Path:
    shutil.copytree(catalog, tmp_path / "catalog")
    return tmp_path / "catalog"


DAMAGES = {
    "_items.json truncated": (YEAR / "_items.json", lambda b: b[: len(b) // 2]),
    "_items.json wrong type": (YEAR / "_items.json", lambda b: b'{"items": ["a", "b"]}'),
    "_summary.json truncated": (YEAR / "_summary.json", lambda b: b[:7]),
    "_summary.json wrong type": (YEAR / "_summary.json", lambda b: b'{"count": "many"}'),
    "collection.json truncated": (Path("maja-s2-l2a", "collection.json"), lambda b: b[: len(b) // 3]),
    "collection.json a list": (Path("maja-s2-l2a", "collection.json"), lambda b: b"[]"),
    "root catalog.json truncated": (Path("catalog.json"), lambda b: b[:10]),
    "year catalog.json truncated": (YEAR / "catalog.json", lambda b: b[:10]),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_derived_file_is_rebuilt_by_the_next_ingest(cat, product_zips, damage):
    """Each used to raise the same traceback on every run (or leave the catalog invalid with
    rc 0): a re-ingest now rebuilds the file from the item files, and the catalog validates."""
    relative, spoil = DAMAGES[damage]
    path = cat / relative
    path.write_bytes(spoil(path.read_bytes()))
    assert not validate_catalog(cat).ok or relative.name.startswith("_")
    report = ingest(product_zips, cat, workers=1)
    assert report.ok and len(report.unchanged) == 5, report
    if relative.name == "catalog.json" and relative.parent != Path("."):
        repair_catalog(cat)  # a year catalog of a year this run did not touch: `repair` rebuilds it
    assert _valid(cat) and _items(cat) == sorted(i for i in _items(cat))


def test_a_truncated_item_is_named_and_converted_again(cat, product_zips, capsys):
    victim = sorted((cat / YEAR).glob("*/*.json"))[2]
    victim.write_bytes(victim.read_bytes()[:100])
    report = ingest(product_zips, cat, workers=1)
    assert report.ok and len(report.unchanged) == 4 and len(report.added) == 1, report
    assert victim.parent.name in report.added[0] and str(victim) in capsys.readouterr().err
    assert _valid(cat)


def test_repair_rebuilds_everything_and_names_a_damaged_item(cat):
    victim = sorted((cat / YEAR).glob("*/*.json"))[0]
    victim.write_bytes(b"{")
    for relative, spoil in DAMAGES.values():
        (cat / relative).write_bytes(b"\x00garbage")
    run = _cli("repair", str(cat))
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert victim.parent.name in run.stderr and "damaged item" in run.stderr and "1 damaged" in run.stdout
    result = validate_catalog(cat)
    assert result.ok and result.by_type == {"CATALOG": 3, "COLLECTION": 1, "ITEM": 4}, result  # the damaged one left out


def test_a_lock_path_that_is_a_folder_is_one_line(cat, product_zips):
    (cat / ".fullmaja-stac.lock").unlink(missing_ok=True)
    (cat / ".fullmaja-stac.lock").mkdir()
    run = _cli("ingest", str(product_zips[0]), "--catalog", str(cat))
    assert run.returncode == 1 and "Traceback" not in run.stderr and "lock" in run.stderr, run.stderr


@pytest.mark.parametrize("where", ["a file", "beneath a file"])
def test_a_catalog_that_cannot_be_a_folder_is_one_line(tmp_path, product_zips, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    target = blocker if where == "a file" else blocker / "sub" / "catalog"
    run = _cli("ingest", str(product_zips[0]), "--catalog", str(target))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "is a file, not a folder" in run.stderr and str(blocker) in run.stderr


@pytest.fixture()
def unwritable(tmp_path):
    """A folder nobody can write in, root included (the immutable attribute): a read-only
    catalog or download folder as root meets it."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.fail("chattr +i is refused here: this test needs an ext4-like file system under the temp folder")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_catalog_is_said_as_such(unwritable, product_zips):
    run = _cli("ingest", str(product_zips[0]), "--catalog", str(unwritable))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "cannot write in" in run.stderr and "permission denied" in run.stderr, run.stderr


def test_a_read_only_download_folder_is_not_called_full(unwritable):
    from fullmaja_stac.errors import writable_folder

    with pytest.raises(FullMajaError, match="cannot write in .*(permitted|permission)") as info:
        writable_folder(unwritable, "the download folder")
    assert "space" not in str(info.value)


def test_download_out_that_is_a_file_is_one_line(tmp_path):
    from fullmaja_stac.errors import writable_folder

    (tmp_path / "f").write_text("x")
    with pytest.raises(FullMajaError, match="is a file, not a folder"):
        writable_folder(tmp_path / "f", "the download folder")


def test_an_empty_image_file_in_the_mtd_is_refused(tmp_path, series_specs):
    """An empty IMAGE_FILE for B3 used to give an item with no `green` and no `visual`, rc 0."""
    product = write_product(series_specs[0], tmp_path, SynthOptions(size=24, seed=3, zipped=False))
    mtd = next(product.glob("*_MTD_ALL.xml"))
    text = mtd.read_text(encoding="utf-8")
    b3 = next(product.glob("*_FRE_B3.tif")).name
    start = text.index(b3)
    text = text[: text.rindex(">", 0, start) + 1] + text[text.index("<", start):]
    mtd.write_text(text, encoding="utf-8")
    with pytest.raises(ProductError, match="empty IMAGE_FILE.*B3"):
        read_product(product)


@pytest.mark.parametrize("report", [b"{", b'{"files": "x"}', b'{"files": [{"name": 3}]}', b'{"provider": ["x"], "files": []}'])
def test_a_damaged_download_report_does_not_stop_the_ingest(tmp_path, product_zips, capsys, report):
    """The report beside downloaded products is read for provenance; a damaged or edited one
    used to raise a traceback before any product was read."""
    folder = tmp_path / "products"
    folder.mkdir()
    shutil.copy(product_zips[0], folder)
    (folder / "fullmaja-download-peps-1.json").write_bytes(report)
    result = ingest([folder], tmp_path / "catalog", workers=1)
    assert result.ok and len(result.added) == 1
    assert "fullmaja-download-peps-1.json" in capsys.readouterr().err
