"""Bad input gets a ProductError naming the file, and the CLI prints one line, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fullmaja_stac.errors import ProductError
from fullmaja_stac.maja import read_product


@pytest.fixture()
def folder(tmp_path, product_folders) -> Path:
    dst = tmp_path / product_folders[0].name
    shutil.copytree(product_folders[0], dst)
    return dst


def _mtd(folder: Path) -> Path:
    return next(folder.glob("*_MTD_ALL.xml"))


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    return target


def test_missing_mtd(folder):
    _mtd(folder).unlink()
    with pytest.raises(ProductError, match="no \\*_MTD_ALL.xml inside") as err:
        read_product(folder)
    assert str(folder) in str(err.value)


def test_unreadable_mtd(folder):
    mtd = _mtd(folder)
    mtd.unlink()
    mtd.mkdir()  # a folder where the file should be: unreadable even for root
    with pytest.raises(ProductError, match="unreadable|too large") as err:
        read_product(folder)
    assert mtd.name in str(err.value)


def test_malformed_xml(folder):
    mtd = _mtd(folder)
    mtd.write_bytes(mtd.read_bytes()[:-200])
    with pytest.raises(ProductError, match="malformed XML") as err:
        read_product(folder)
    assert mtd.name in str(err.value)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Muscate_Metadata_Document><Dataset_Identification><IDENTIFIER>&lol3;</IDENTIFIER></Dataset_Identification></Muscate_Metadata_Document>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Muscate_Metadata_Document><Dataset_Identification><IDENTIFIER>&xxe;</IDENTIFIER></Dataset_Identification></Muscate_Metadata_Document>"""


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_hostile_xml_is_refused(folder, payload):
    _mtd(folder).write_bytes(payload)
    with pytest.raises(ProductError, match="refused: the XML declares a DTD or entities"):
        read_product(folder)


def test_hostile_xml_inside_a_zip(tmp_path, folder):
    _mtd(folder).write_bytes(BILLION_LAUGHS)
    with pytest.raises(ProductError, match="refused") as err:
        read_product(_zip(folder, tmp_path / "hostile.zip"))
    assert "hostile.zip!" in str(err.value)


def test_truncated_zip(tmp_path, product_zips):
    data = product_zips[0].read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ProductError, match="not a readable zip \\(truncated or corrupt\\)") as err:
        read_product(cut)
    assert "cut.zip" in str(err.value)


def test_garbage_zip(tmp_path):
    bad = tmp_path / "garbage.zip"
    bad.write_bytes(b"<html>502 Bad Gateway</html>")
    with pytest.raises(ProductError, match="not a readable zip"):
        read_product(bad)


def test_corrupt_mtd_member_in_zip(tmp_path, product_zips):
    data = bytearray(product_zips[0].read_bytes())
    with zipfile.ZipFile(product_zips[0]) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("_MTD_ALL.xml"))
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 10, start + 60):
        data[i] ^= 0xFF
    bad = tmp_path / "flipped.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(ProductError, match="corrupt"):
        read_product(bad)


def test_zip_listing_missing_files(tmp_path, folder):
    victim = next(folder.glob("*_FRE_B4.tif"))
    victim.unlink()
    with pytest.raises(ProductError, match="listed in the MTD but missing") as err:
        read_product(_zip(folder, tmp_path / "incomplete.zip"))
    assert victim.name in str(err.value)


def test_unreadable_raster(folder):
    victim = next(folder.glob("*_SRE_B11.tif"))
    victim.write_bytes(b"not a tiff at all")
    with pytest.raises(ProductError, match="unreadable") as err:
        read_product(folder)
    assert victim.name in str(err.value)


def test_folder_that_is_not_a_product(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ProductError, match="not a MAJA"):
        read_product(tmp_path)


def test_other_xml_root_is_not_a_product(folder):
    _mtd(folder).write_bytes(b"<Level-2A_User_Product/>")
    with pytest.raises(ProductError, match="not a MUSCATE metadata file"):
        read_product(folder)


def test_path_escaping_the_product_is_refused(folder):
    mtd = _mtd(folder)
    text = mtd.read_text()
    name = next(folder.glob("*_FRE_B2.tif")).name
    mtd.write_text(text.replace(f">{name}<", ">../../../etc/passwd<"))
    with pytest.raises(ProductError, match="points outside the product"):
        read_product(folder)


def test_symlink_out_of_the_product_counts_as_missing(tmp_path, folder):
    victim = next(folder.glob("*_FRE_B3.tif"))
    outside = tmp_path / "outside.tif"
    shutil.move(victim, outside)
    victim.symlink_to(outside)
    with pytest.raises(ProductError, match="missing"):
        read_product(folder)


def test_two_products_in_one_zip(tmp_path, product_folders):
    target = tmp_path / "two.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for folder in product_folders[:2]:
            for p in folder.rglob("*"):
                if p.is_file():
                    zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    with pytest.raises(ProductError, match="holds 2 products"):
        read_product(target)


def test_cli_prints_one_line_without_traceback(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    run = subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", "info", str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0
    assert "broken.zip" in run.stderr and "truncated or corrupt" in run.stderr
