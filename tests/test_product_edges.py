"""What real products showed (issue 27, 1-5): a grid off by one 10 m pixel, a product with no
valid pixel, the footprint's finest edge, a cropped product, a mask named without its
resolution suffix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio

from fullmaja_stac.errors import ProductError
from fullmaja_stac.ingest.footprint import valid_footprint
from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.maja.product import read_product
from fullmaja_stac.maja.synthetic import SynthOptions, write_product


@pytest.fixture()
def folder(tmp_path, series_specs) -> Path:
    return write_product(series_specs[0], tmp_path / "in", SynthOptions(size=48, seed=4, zipped=False))


def _mtd(folder: Path) -> Path:
    return next(folder.glob("*_MTD_ALL.xml"))


def _edit_group(folder: Path, group: str, tag: str, change) -> None:
    mtd = _mtd(folder)
    text = mtd.read_text(encoding="utf-8")
    start = text.index(f'<Group_Geopositioning group_id="{group}">')
    m = re.compile(rf"<{tag}>([^<]*)</{tag}>").search(text, start)
    text = text[: m.start(1)] + change(m.group(1)) + text[m.end(1):]
    mtd.write_text(text, encoding="utf-8")


def _fill(path: Path, values) -> None:
    with rasterio.open(path, "r+") as ds:
        data = ds.read(1)
        ds.write(values(data).astype(data.dtype), 1)


def test_a_20m_grid_one_10m_pixel_off_is_refused(folder):
    """Half a pixel was tolerated: 10 m off a 20 m grid passed, and its assets stated a
    transform 10 m away from their COGs'."""
    _edit_group(folder, "R2", "ULX", lambda v: f"{float(v) + 10:g}")
    with pytest.raises(ProductError, match="R2 grid starts at .*contradicts itself"):
        read_product(folder)


def test_a_grid_a_hundredth_of_a_pixel_off_is_accepted(folder):
    _edit_group(folder, "R2", "ULX", lambda v: f"{float(v) + 0.1:.1f}")  # rounding in a writer
    assert read_product(folder).grids["R2"].ulx % 1 != 0


def test_a_cropped_product_is_refused_with_the_hint(folder):
    _edit_group(folder, "R1", "NROWS", lambda v: str(int(v) * 2))
    with pytest.raises(ProductError, match="cropped, the MTD's Group_Geopositioning .* must be updated"):
        read_product(folder)


def test_a_product_with_no_valid_pixel_is_skipped_and_said(folder, tmp_path, product_zips):
    for edg in folder.glob("MASKS/*_EDG_R*.tif"):
        _fill(edg, lambda d: np.ones_like(d))
    report = ingest([folder, product_zips[1]], tmp_path / "catalog", workers=1)
    assert len(report.added) == 1 and not report.failed, report
    assert [s for s, _ in report.empty] == [str(folder)] and "every pixel is no data" in report.empty[0][1]
    items = list((tmp_path / "catalog").glob("maja-s2-l2a/*/*/*/*.json"))
    assert len(items) == 1 and read_product(folder).id not in items[0].name


def test_the_footprint_comes_from_the_finest_edge_mask(folder, tmp_path):
    """MAJA's 20 m EDG marks a pixel no data when any of its 10 m pixels is: the footprint
    from it missed the last valid 10 m column."""
    r1 = next(folder.glob("MASKS/*_EDG_R1.tif"))
    r2 = next(folder.glob("MASKS/*_EDG_R2.tif"))
    _fill(r1, lambda d: np.where(np.arange(d.shape[1])[None, :] >= d.shape[1] - 1, 1, 0) * np.ones_like(d))
    _fill(r2, lambda d: np.where(np.arange(d.shape[1])[None, :] >= d.shape[1] - 1, 1, 0) * np.ones_like(d))
    product = read_product(folder)
    _, bbox = valid_footprint(product, tmp_path)
    with rasterio.open(r1) as ds:
        from rasterio.warp import transform
        east = ds.bounds.right - ds.res[0]  # the last valid 10 m column ends one 10 m pixel from the edge
        lons, _ = transform(ds.crs, "EPSG:4326", [east, east], [ds.bounds.top, ds.bounds.bottom])
    assert bbox[2] >= max(lons) - 1e-6, (bbox, lons)  # the coarse mask would stop 20 m short


def test_a_mask_named_without_its_resolution_gets_its_grid_from_its_size(folder, tmp_path):
    clm_r2 = next(folder.glob("MASKS/*_CLM_R2.tif"))
    renamed = clm_r2.with_name(clm_r2.name.replace("_CLM_R2", "_CLM"))
    clm_r2.rename(renamed)
    mtd = _mtd(folder)
    text = mtd.read_text(encoding="utf-8")
    # the file named without _R2, and its MASK_FILE without the group_id attribute either
    text = re.sub(rf'<MASK_FILE group_id="R2">([^<]*){re.escape(clm_r2.name)}', rf"<MASK_FILE>\g<1>{renamed.name}", text)
    assert renamed.name in text
    mtd.write_text(text, encoding="utf-8")
    report = ingest([folder], tmp_path / "catalog", workers=1)
    assert report.ok, report
    item = json.loads(next((tmp_path / "catalog").glob("maja-s2-l2a/*/*/*/*.json")).read_text())
    assert "clm-r2" in item["assets"] and "clm-r1" in item["assets"] and "clm" not in item["assets"]


def test_item_titles_sort_by_date(catalog):
    """STAC Browser sorts a year's items by title: the platform first put all of 2A before 2B."""
    items = [json.loads(p.read_text()) for p in catalog.glob("maja-s2-l2a/*/*/*/*.json")]
    by_title = [i["properties"]["datetime"] for i in sorted(items, key=lambda i: i["properties"]["title"])]
    assert by_title == sorted(by_title) and len({i["properties"]["platform"] for i in items}) == 2
