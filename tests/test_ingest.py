"""Ingest: COGs, items, catalog; validated by stac-validator and pystac; loaded by stackstac
and odc-stac exactly as the README shows, compared pixel for pixel with the source rasters."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pystac
import pystac.validation
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from fullmaja_stac.errors import FullMajaError, ProductError
from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.maja import read_product
from fullmaja_stac.maja.synthetic import SynthOptions, write_product
from fullmaja_stac.stac.catalog import CatalogStore
from fullmaja_stac.stac.validate import BUNDLED_SCHEMA_MAP, validate_catalog

REPO = Path(__file__).resolve().parents[1]
SHARED_SCHEMA_MAP = REPO.parent / "shared" / "stac-schemas" / "schema-map.json"


def _items(catalog: Path) -> dict[str, Path]:
    return {p.stem: p for p in catalog.glob("maja-s2-l2a/*/*/*/*.json")}


def _read_source(product, plan_raster_path: str, band: int = 1) -> np.ndarray:
    with rasterio.open(product.gdal_path(plan_raster_path)) as ds:
        return ds.read(band)


def test_every_asset_is_a_valid_cog_equal_to_its_source(catalog, product_zips):
    items = _items(catalog)
    for zip_path in product_zips:
        product = read_product(zip_path)
        item = json.loads(items[product.id].read_text())
        by_file = {r.path.rsplit("/", 1)[-1].removesuffix(".tif"): r for r in product.rasters}
        cogs = {k: a for k, a in item["assets"].items() if a["type"].endswith("cloud-optimized") and k != "visual"}
        assert len(cogs) == 42
        for key, asset in cogs.items():
            path = items[product.id].parent / asset["href"]
            valid, errors, _ = cog_validate(str(path), quiet=True)
            assert valid, (key, errors)
            stem = asset["href"].removeprefix("./").removesuffix(".tif")
            band = 1
            if stem.endswith(("_AOT", "_WVC")):
                stem, what = stem.rsplit("_", 1)
                band = product.atb_bands[what.lower()]
            with rasterio.open(path) as cog:
                assert cog.count == 1
                got = cog.read(1)
                assert list(cog.shape) == asset["proj:shape"]
                assert list(cog.transform)[:6] == asset["proj:transform"]
            np.testing.assert_array_equal(got, _read_source(product, by_file[stem].path, band), err_msg=key)


@pytest.fixture(scope="module")
def tiled(tmp_path_factory, series_specs) -> tuple[Path, Path]:
    """A 1098 px product (larger than a 512 px block, with overviews), ingested: (zip, item file)."""
    folder = tmp_path_factory.mktemp("tiled")
    cloudy = next(s for s in series_specs if 0 < s.cloud_fraction < 0.9)  # a CLM mask with clouds in it
    zip_path = write_product(cloudy, folder, SynthOptions(size=1098, seed=5))
    report = ingest([zip_path], folder / "catalog", workers=1)
    assert report.ok, report
    return zip_path, next((folder / "catalog").glob("maja-s2-l2a/*/*/*/*.json"))


def _first_overview(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(full resolution, first overview, block shape) of a single-band COG."""
    with rasterio.open(path) as cog:
        assert cog.overviews(1) and cog.overviews(1)[0] == 2, cog.overviews(1)
        full = cog.read(1)
        blocks = cog.block_shapes[0]
    with rasterio.open(path, overview_level=0) as overview:
        return full, overview.read(1), blocks


def test_cogs_are_tiled_512_and_their_overviews_average_reflectance_and_pick_mask_values(tiled):
    """Issue 28, 1: the old check `A and B or C` held for every fixture COG (all < 512 px)."""
    _, item_path = tiled
    item = json.loads(item_path.read_text())
    full, overview, blocks = _first_overview(item_path.parent / item["assets"]["red"]["href"])
    assert blocks == (512, 512) and full.shape == (1098, 1098) and overview.shape == (549, 549)
    quads = full.reshape(549, 2, 549, 2).astype(np.float64)
    valid = (quads != -10000).all(axis=(1, 3))
    expected = quads.mean(axis=(1, 3))
    assert valid.mean() > 0.5
    np.testing.assert_allclose(overview[valid], expected[valid], atol=1.0)  # GDAL rounds the mean
    assert (np.abs(overview[valid] - quads[:, 0, :, 0][valid]) > 1).any(), "an average, not a pick"

    full, overview, blocks = _first_overview(item_path.parent / item["assets"]["clm-r1"]["href"])
    assert blocks == (512, 512) and len(np.unique(full)) > 2
    quads = full.reshape(549, 2, 549, 2)
    picked = (overview[:, None, :, None] == quads).any(axis=(1, 3))
    assert picked.all(), "every mask overview pixel is one of the four it stands for (nearest, never a mean)"


def test_cogs_say_what_their_numbers_mean(catalog, product_zips):
    """Scale, offset, nodata, a description and statistics are in the GeoTIFF itself, so GDAL,
    QGIS and rio-tiler read reflectance without STAC; the item's raster:bands agree."""
    product = read_product(product_zips[0])
    path = _items(catalog)[product.id]
    item = json.loads(path.read_text())
    for key, scale, nodata, words in (("red", 1e-4, -10000, "Flat reflectance"), ("nir-sre", 1e-4, -10000, "Surface"),
                                      ("aot-r1", 1 / 200, 0, "Aerosol"), ("wvc-r2", 1 / 20, 0, "g/cm^2"),
                                      ("clm-r1", 1.0, None, "Cloud mask")):
        band = item["assets"][key]["raster:bands"][0]
        with rasterio.open(path.parent / item["assets"][key]["href"]) as cog:
            assert cog.scales[0] == pytest.approx(scale) and cog.offsets[0] == 0
            assert cog.nodata == nodata and words in cog.descriptions[0], (key, cog.descriptions)
            tags = cog.tags(1)
            stats = band["statistics"]
            assert float(tags["STATISTICS_MINIMUM"]) == stats["minimum"] and float(tags["STATISTICS_MAXIMUM"]) == stats["maximum"]
            raw = cog.read(1)
            valid = raw[raw != nodata] if nodata is not None else raw.ravel()
            assert stats["minimum"] == valid.min() and stats["maximum"] == valid.max()
            assert stats["mean"] == pytest.approx(valid.mean(), rel=1e-6)


def test_visual_is_a_true_colour_cog(catalog, product_zips):
    product = read_product(product_zips[4])  # the split product: half no-data
    path = _items(catalog)[product.id]
    item = json.loads(path.read_text())
    visual = item["assets"]["visual"]
    assert visual["roles"] == ["visual"] and visual["type"].endswith("cloud-optimized")
    assert [b["name"] for b in visual["eo:bands"]] == ["B04", "B03", "B02"] and "raster:bands" not in visual
    tif = path.parent / visual["href"]
    assert cog_validate(str(tif), quiet=True)[0]
    with rasterio.open(tif) as rgb, rasterio.open(path.parent / item["assets"]["red"]["href"]) as red:
        assert rgb.count == 3 and rgb.dtypes == ("uint8",) * 3 and rgb.nodata == 0
        assert [c.name for c in rgb.colorinterp] == ["red", "green", "blue"]
        r, raw = rgb.read(1), red.read(1)
    nodata = raw == -10000
    assert (r[nodata] == 0).all() and (r[~nodata] >= 1).all()
    expected = np.clip(1 + raw[~nodata].astype(float) * 254 / 2500, 1, 255)
    assert np.abs(r[~nodata] - expected).max() <= 1  # reflectance 0-0.25 stretched to 1-255


def test_the_true_colour_cog_is_made_first_from_the_product_itself(tmp_path, product_zips):
    """The true-colour COG is a product's longest task. Made from the band COGs, it waited
    for them and ran alone at the end of a one-product ingest on 8 cores or more; it is made
    from the product's own rasters, first: inline, it is written before any band's COG, and
    it is, pixel for pixel, the one made from the red, green and blue COGs."""
    from fullmaja_stac.ingest.cog import convert_visual
    from fullmaja_stac.ingest.run import VISUAL_KEYS

    product = read_product(product_zips[1])
    report = ingest([product_zips[1]], tmp_path / "catalog", workers=1)
    assert report.added == [product.id]
    path = _items(tmp_path / "catalog")[product.id]
    assets = json.loads(path.read_text())["assets"]
    files = {key: path.parent / asset["href"] for key, asset in assets.items() if asset["type"].endswith("optimized")}
    written = {key: file.stat().st_mtime_ns for key, file in files.items()}
    assert written["visual"] < min(time for key, time in written.items() if key != "visual")
    convert_visual([str(files[key]) for key in VISUAL_KEYS], str(tmp_path / "from-cogs.tif"),
                   product.reflectance_nodata, product.reflectance_quantification)
    with rasterio.open(files["visual"]) as ours, rasterio.open(tmp_path / "from-cogs.tif") as from_cogs:
        assert (ours.read() == from_cogs.read()).all()


def test_rio_tiler_reads_reflectance_with_no_statistics_warning(catalog, product_zips):
    rio_tiler = pytest.importorskip("rio_tiler.io")
    import warnings

    path = _items(catalog)[read_product(product_zips[0]).id]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with rio_tiler.STACReader(str(path)) as reader:
            raw = reader.preview(assets=["red"], max_size=64)
            scaled = reader.preview(assets=["red"], max_size=64, unscale=True)
    values = scaled.data[0][~scaled.array.mask[0]]
    assert values.size and np.percentile(values, 99) <= 1.5 and values.max() <= 1.6  # 1.6: saturated specks
    np.testing.assert_allclose(values, raw.data[0][~raw.array.mask[0]] * 1e-4, rtol=1e-6)
    assert not [w for w in seen if "statistic" in str(w.message).lower()], [str(w.message) for w in seen]


def test_gdal_block_cache_is_capped_at_what_cog_says():
    """GDAL's cache defaults to 5 % of the RAM per process (6 GB for each of 16 workers on a
    128 GB machine). rasterio hands an int GDAL_CACHEMAX to GDAL as bytes, so "64" would have
    been a 64-byte cache that re-read every tile: this asks GDAL itself what it got."""
    import ctypes

    from fullmaja_stac.ingest.cog import GDAL_CACHE_MB, GDAL_CONFIG

    maps = Path("/proc/self/maps")
    with rasterio.Env():
        libgdal = next((line.split()[-1] for line in maps.read_text().splitlines() if "libgdal" in line), None) \
            if maps.exists() else None
        if libgdal is None:
            pytest.skip("cannot find the GDAL library this process loaded")
        gdal = ctypes.CDLL(libgdal)
        gdal.GDALGetCacheMax64.restype = ctypes.c_int64
        with rasterio.Env(**GDAL_CONFIG):
            assert gdal.GDALGetCacheMax64() == GDAL_CACHE_MB * 1024 * 1024


def _band_file(path: Path, pixels: np.ndarray) -> Path:
    height, width = pixels.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1, dtype=pixels.dtype.name,
                       crs="EPSG:32631", transform=rasterio.transform.from_origin(300000, 4800000, 10, 10)) as dst:
        dst.write(pixels, 1)
    return path


def test_an_intermediate_on_disk_is_created_by_gdal_and_leaves_nothing(tmp_path, monkeypatch):
    """rio-cogeo's intermediate, when on disk, must not exist before GDAL creates it: GDAL
    re-opening an existing file with O_TRUNC makes ext4 and XFS write the whole file to disk
    when it is closed (240 MB per 10 m band, deleted seconds later). The COG is still the
    source's pixels, and nothing is left beside it."""
    from contextlib import contextmanager

    import rio_cogeo.cogeo

    from fullmaja_stac.ingest import cog

    monkeypatch.setattr(cog, "IN_MEMORY_MAX_PIXELS", 0)  # every intermediate on disk
    helper, seen = rio_cogeo.cogeo.TemporaryRasterFile, []

    @contextmanager
    def watched(dst_path, *args, **kwargs):
        with helper(dst_path, *args, **kwargs) as tmp:
            seen.append((Path(tmp.name), Path(tmp.name).exists()))
            yield tmp
            seen.append(Path(tmp.name).exists())

    monkeypatch.setattr(rio_cogeo.cogeo, "TemporaryRasterFile", watched)
    pixels = np.random.default_rng(5).integers(-10000, 10000, (700, 600), dtype=np.int16)
    source = _band_file(tmp_path / "band.tif", pixels)
    target = tmp_path / "band_cog.tif"
    cog.convert(str(source), str(target), 1, -10000, "average", True)
    (intermediate, existed_before), made_by_gdal = seen
    assert not existed_before and made_by_gdal
    assert intermediate.parent.parent == tmp_path and not intermediate.parent.exists()
    assert sorted(tmp_path.iterdir()) == [source, target]
    with rasterio.open(target) as written:
        assert (written.read(1) == pixels).all()
    assert cog_validate(str(target), strict=True)[0]


def test_a_copy_onto_the_same_grid_does_not_run_gdal_warper(tmp_path, caplog):
    """rio-cogeo reads every source through a WarpedVRT; on the source's own grid, GDAL's
    warper only copies, at 0.7 s per full-size raster (a tenth of an ingest). Our conversions
    read the source directly: GDAL logs no warp kernel, for a band as for the true-colour
    COG; the band has the source's pixels and, level by level, the overviews GDAL's own COG
    driver makes of it."""
    import logging

    from fullmaja_stac.ingest import cog

    pixels = np.random.default_rng(7).integers(-200, 3000, (700, 600), dtype=np.int16)
    pixels[:50] = -10000  # some no-data
    bands = [str(_band_file(tmp_path / f"B{i}.tif", np.where(pixels == -10000, pixels, pixels + i).astype(np.int16)))
             for i in range(3)]

    def write(folder: Path) -> list[Path]:
        folder.mkdir()
        cog.convert(bands[0], str(folder / "band.tif"), 1, -10000, "average", True, 0.001, 0.0, "red")
        cog.convert_visual(bands, str(folder / "visual.tif"), -10000, 1000)
        return [folder / "band.tif", folder / "visual.tif"]

    with caplog.at_level(logging.DEBUG, logger="rasterio"), rasterio.Env(CPL_DEBUG=True):
        ours = write(tmp_path / "ours")
    gdal_said = [record.getMessage() for record in caplog.records]
    assert any("COG" in line for line in gdal_said), "GDAL's debug messages were not captured"
    assert not [line for line in gdal_said if "GDALWarpKernel" in line]
    # The expectation is computed by GDAL itself, not by our code with the shortcut patched out:
    # its COG driver on the same band, same block size and overview resampling.
    from rasterio.shutil import copy as gdal_copy

    gdal_copy(bands[0], str(tmp_path / "gdal.tif"), driver="COG", BLOCKSIZE=cog.BLOCK_SIZE,
                         RESAMPLING="AVERAGE", OVERVIEW_RESAMPLING="AVERAGE", COMPRESS="DEFLATE")
    with rasterio.open(ours[0]) as written, rasterio.open(tmp_path / "gdal.tif") as gdal:
        assert (written.read(1) == pixels).all() and written.scales == (0.001,) and written.nodata == -10000
        assert written.overviews(1) == gdal.overviews(1) and written.transform == gdal.transform
        for level, factor in enumerate(gdal.overviews(1)):
            with rasterio.open(ours[0], overview_level=level) as a, rasterio.open(tmp_path / "gdal.tif",
                                                                                    overview_level=level) as b:
                np.testing.assert_array_equal(a.read(1), b.read(1), err_msg=f"overview 1/{factor}")
    assert all(cog_validate(str(path), strict=True)[0] for path in ours)


def test_the_true_colour_cog_is_the_same_on_one_compression_thread_or_several(tmp_path):
    """In a pool the true-colour COG is compressed on several threads (it is a product's
    longest task); a 1-process ingest makes it on one. The file is the same byte for byte."""
    from fullmaja_stac.ingest import cog

    pixels = np.random.default_rng(11).integers(-300, 4000, (1100, 900), dtype=np.int16)
    bands = [str(_band_file(tmp_path / f"B{i}.tif", (pixels // (i + 1)).astype(np.int16))) for i in range(3)]
    one = cog.convert_visual(bands, str(tmp_path / "one.tif"), -10000, 10000, compress_threads=1)
    several = cog.convert_visual(bands, str(tmp_path / "several.tif"), -10000, 10000, compress_threads=3)
    assert one.checksum == several.checksum and cog_validate(several.path, strict=True)[0]


def test_a_real_warp_still_goes_through_gdal_warper(tmp_path):
    """Only the copy is short-cut: a warp that changes the size, the data type or handles
    no-data gets rio-cogeo's WarpedVRT, and rio-cogeo's own name is back after our call,
    even when it fails."""
    import rio_cogeo.cogeo
    from rasterio.vrt import WarpedVRT

    from fullmaja_stac.ingest import cog

    source = _band_file(tmp_path / "band.tif", np.ones((64, 48), dtype=np.uint8))
    with rasterio.open(source) as src:
        with cog._WarpedUnlessSameGrid(src, dtype="uint8", width=48, height=64) as same:
            assert same is src
        for params in ({"width": 24, "height": 32}, {"dtype": "uint16"}, {"nodata": 0, "src_nodata": 0}):
            with cog._WarpedUnlessSameGrid(src, **params) as warped:
                assert isinstance(warped, WarpedVRT)
        assert not isinstance(src, cog._WarpedUnlessSameGrid)  # rio-cogeo's type check still works
    with pytest.raises(RuntimeError), cog._copy_without_warping():
        assert rio_cogeo.cogeo.WarpedVRT is cog._WarpedUnlessSameGrid
        raise RuntimeError
    assert rio_cogeo.cogeo.WarpedVRT is WarpedVRT


def test_item_metadata(catalog, product_zips):
    product = read_product(product_zips[0])
    item = json.loads(_items(catalog)[product.id].read_text())
    props = item["properties"]
    assert props["eo:cloud_cover"] == product.cloud_percent
    assert props["eo:snow_cover"] == product.snow_percent
    assert props["grid:code"] == "MGRS-31TCJ" and props["mgrs:utm_zone"] == 31
    assert props["mgrs:latitude_band"] == "T" and props["mgrs:grid_square"] == "CJ"
    assert props["sat:relative_orbit"] == 51 and props["sat:absolute_orbit"] == product.absolute_orbit
    assert props["proj:epsg"] == 32631 and props["proj:code"] == "EPSG:32631"
    assert props["platform"] == product.platform.lower().replace("sentinel2", "sentinel-2")
    assert props["view:sun_elevation"] == pytest.approx(90 - product.sun_zenith)
    assert "MAJA" not in props["processing:software"]  # not recorded by MAJA's MUSCATE writer
    assert props["view:azimuth"] == pytest.approx(product.mean_viewing_azimuth)
    assert props["view:incidence_angle"] == pytest.approx(product.mean_viewing_zenith)
    assert props["maja:rain_detected"] is False and props["maja:sun_glint_detected"] is False
    assert props["maja:hot_spot_detected"] is False and "maja:cloud_percent" not in props
    assert "https://stac-extensions.github.io/projection/v1.2.0/schema.json" in item["stac_extensions"]
    red = item["assets"]["red"]
    band = dict(red["raster:bands"][0])
    assert set(band.pop("statistics")) == {"minimum", "maximum", "mean", "stddev", "valid_percent"}
    assert band == {"data_type": "int16", "nodata": -10000.0, "scale": 0.0001, "offset": 0.0, "spatial_resolution": 10.0}
    assert red["eo:bands"][0]["name"] == "B04" and red["eo:bands"][0]["common_name"] == "red"
    assert red["eo:bands"][0]["solar_illumination"] == product.spectral["B4"].solar_irradiance  # from the MTD
    assert red["eo:bands"][0]["center_wavelength"] == product.spectral["B4"].central_nm / 1000
    assert red["file:checksum"].startswith("1220") and red["file:size"] > 0
    assert item["assets"]["swir16"]["proj:transform"][0] == 20.0
    assert item["assets"]["aot-r1"]["raster:bands"][0]["scale"] == 1 / 200
    assert item["assets"]["wvc-r1"]["raster:bands"][0]["scale"] == 1 / 20
    clm = item["assets"]["clm-r1"]
    assert "nodata" not in clm["raster:bands"][0]
    names = [b["name"] for b in clm["classification:bitfields"]]
    assert names[1] == "all_clouds" and len(names) == 8
    assert [b["name"] for b in item["assets"]["sat-r2"]["classification:bitfields"]] == [
        "saturated_b5", "saturated_b6", "saturated_b7", "saturated_b8a", "saturated_b11", "saturated_b12"]
    assert item["assets"]["thumbnail"]["type"] == "image/jpeg"
    assert "thumbnail" in item["assets"]["thumbnail"]["roles"]


def test_split_product_footprint_is_half_the_grid(catalog, product_zips):
    from shapely.geometry import shape

    full = json.loads(_items(catalog)[read_product(product_zips[0]).id].read_text())
    split = json.loads(_items(catalog)[read_product(product_zips[4]).id].read_text())
    ratio = shape(split["geometry"]).area / shape(full["geometry"]).area
    assert 0.3 < ratio < 0.7


def test_catalog_validates_with_stac_validator_cli(catalog):
    schema_map = SHARED_SCHEMA_MAP if SHARED_SCHEMA_MAP.exists() else BUNDLED_SCHEMA_MAP
    run = subprocess.run(["stac-validator", "validate", "--schema-config", str(schema_map), "--recursive",
                          str(catalog / "catalog.json")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
    reports, _ = json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("["):])
    assert len(reports) == 1 + 1 + 1 + 1 + 5 and all(r["valid_stac"] for r in reports)


def test_catalog_validates_with_our_command_and_pystac(catalog):
    result = validate_catalog(catalog)
    assert result.ok and result.by_type == {"CATALOG": 3, "COLLECTION": 1, "ITEM": 5}

    validator = pystac.validation.JsonSchemaSTACValidator()
    mapping = json.loads(BUNDLED_SCHEMA_MAP.read_text())
    for url, rel in mapping.items():
        validator.schema_cache[url] = json.loads((BUNDLED_SCHEMA_MAP.parent / rel).read_text())
    pystac.validation.set_validator(validator)
    try:
        root = pystac.Catalog.from_file(str(catalog / "catalog.json"))
        assert root.validate_all() == 5
    finally:
        pystac.validation.set_validator(pystac.validation.JsonSchemaSTACValidator())


def test_collection_extent_and_summaries(catalog, product_zips):
    coll = json.loads((catalog / "maja-s2-l2a" / "collection.json").read_text())
    products = [read_product(p) for p in product_zips]
    interval = coll["extent"]["temporal"]["interval"][0]
    assert interval[0].startswith(min(p.acquired for p in products).strftime("%Y-%m-%dT%H:%M:%S"))
    assert interval[1].startswith(max(p.acquired for p in products).strftime("%Y-%m-%dT%H:%M:%S"))
    assert coll["summaries"]["sat:relative_orbit"] == [51]
    assert coll["summaries"]["grid:code"] == ["MGRS-31TCJ"]
    clouds = [p.cloud_percent for p in products]
    assert coll["summaries"]["eo:cloud_cover"] == {"minimum": min(clouds), "maximum": max(clouds)}
    assert "red" in coll["item_assets"] and "href" not in coll["item_assets"]["red"]
    assert coll["license"] == "etalab-2.0"


def _snippet(name: str) -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", text, re.S)
    assert m, f"README has no {name} snippet"
    return m.group(1)


def _run_snippet(name: str, catalog: Path, monkeypatch) -> dict:
    monkeypatch.chdir(catalog.parent)
    scope: dict = {}
    exec(compile(_snippet(name), f"README:{name}", "exec"), scope)
    return scope


def _sources(product_zips):
    """Source pixels per (date, asset key) for a few bands, straight from the zips."""
    out = {}
    for z in product_zips:
        p = read_product(z)
        by_band = {(r.kind, r.band_id): r for r in p.rasters}
        out[p.acquired] = {key: _read_source(p, by_band[("FRE", band)].path)
                           for key, band in (("red", "B4"), ("nir", "B8"), ("swir16", "B11"))}
    return out


def test_readme_pystac_snippet(catalog, monkeypatch):
    scope = _run_snippet("pystac", catalog, monkeypatch)
    assert len(scope["items"]) == 5


def test_readme_stackstac_snippet_loads_source_pixels(catalog, product_zips, monkeypatch):
    cube = _run_snippet("stackstac", catalog, monkeypatch)["cube"]
    sources = _sources(product_zips)
    assert cube.sizes["time"] == 5 and cube.attrs["crs"] == "epsg:32631" and cube.attrs["resolution"] == 10
    assert [np.datetime64(t.replace(tzinfo=None), "ns") for t in sorted(sources)] == list(cube.time.values)
    for t, when in zip(range(5), sorted(sources)):
        for key, src in sources[when].items():
            got = cube.isel(time=t).sel(band=key).values
            if key == "swir16":  # 20 m band on the 10 m grid: each pixel repeated 2x2
                src = np.repeat(np.repeat(src, 2, axis=0), 2, axis=1)
            expected = np.where(src == -10000, np.nan, src * 0.0001)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9, err_msg=f"{when} {key}")
    assert float(cube.x[0]) == 300000 and float(cube.y[0]) == 4900020  # stackstac: pixel corners


def test_readme_odc_snippet_loads_source_pixels(catalog, product_zips, monkeypatch):
    ds = _run_snippet("odc-stac", catalog, monkeypatch)["ds"]
    sources = _sources(product_zips)
    assert ds.sizes["time"] == 5 and ds.odc.crs.epsg == 32631
    assert tuple(ds.odc.geobox.resolution.xy) == (10, -10)
    for t, when in zip(range(5), sorted(sources)):
        for key, src in sources[when].items():
            if key == "swir16":
                src = np.repeat(np.repeat(src, 2, axis=0), 2, axis=1)
            np.testing.assert_array_equal(ds[key].isel(time=t).values, src, err_msg=f"{when} {key}")
    assert ds["red"].attrs["nodata"] == -10000


def test_catalog_files_get_the_usual_permissions(catalog, tmp_path):
    """A web server running as another user must be able to read the catalog."""
    from fullmaja_stac.publish.export import export_geoparquet
    from fullmaja_stac.jsonio import NEW_FILE_MODE

    export_geoparquet(catalog, tmp_path / "items.parquet")
    files = [p for p in catalog.rglob("*") if p.is_file()] + [tmp_path / "items.parquet"]
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(NEW_FILE_MODE)}


def test_reingest_changes_no_file_and_does_no_raster_work(catalog, product_zips):
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in catalog.rglob("*") if p.is_file()}
    report = ingest(product_zips, catalog, workers=2)
    assert report.unchanged and not report.added and report.ok
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in catalog.rglob("*") if p.is_file()}
    assert before == after


@pytest.mark.slow
def test_mask_overviews_hold_only_full_resolution_values(tmp_path, series_specs):
    big = write_product(series_specs[2], tmp_path / "big", SynthOptions(size=1200, seed=3))
    root = tmp_path / "catalog"
    assert ingest([big], root, workers=2).ok
    item_dir = next(root.glob("maja-s2-l2a/*/*/*/"))
    checked = 0
    for path in item_dir.glob("*.tif"):
        if not re.search(r"_(CLM|MG2|SAT|EDG|IAB|DTF)_", path.name):
            continue
        with rasterio.open(path) as ds:
            overviews = ds.overviews(1)
            if not overviews:
                continue
            full = set(np.unique(ds.read(1)).tolist())
            for level in overviews:
                small = ds.read(1, out_shape=(ds.height // level, ds.width // level))
                assert set(np.unique(small).tolist()) <= full, path.name
            checked += 1
    assert checked >= 6


def test_corrupt_product_among_good_ones(tmp_path, product_zips):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for z in product_zips[:2]:
        shutil.copy(z, inputs)
    data = product_zips[2].read_bytes()
    (inputs / "SENTINEL2X_broken.zip").write_bytes(data[: len(data) // 3])
    run = subprocess.run([sys.executable, "-m", "fullmaja_stac.cli", "ingest", str(inputs), "--catalog",
                          str(tmp_path / "catalog"), "--workers", "2"], capture_output=True, text=True)
    assert run.returncode == 1
    assert "SENTINEL2X_broken.zip" in run.stderr and "truncated or corrupt" in run.stderr
    assert "Traceback" not in run.stderr
    assert len(_items(tmp_path / "catalog")) == 2
    assert validate_catalog(tmp_path / "catalog").ok


@pytest.mark.parametrize("member", ["*_FRE_B8.tif", "MASKS/*_EDG_R2.tif"])
def test_corrupt_raster_data_fails_only_that_product(tmp_path, product_folders, member):
    """The failing product goes first: its error comes back from a worker process (pickled),
    and the products converted after it must not be lost with a broken pool. The coarsest
    EDG mask is also what the footprint is read from (in a worker too)."""
    bad = tmp_path / product_folders[1].name
    shutil.copytree(product_folders[1], bad)
    victim = next(bad.glob(member))
    data = bytearray(victim.read_bytes())
    victim.write_bytes(bytes(data[: len(data) - 2000]))  # header intact, pixels cut
    good = [product_folders[0], *product_folders[2:4]]
    report = ingest([bad, *good], tmp_path / "catalog", workers=2)
    assert [s for s, _ in report.failed] == [str(bad)], "\n".join(f"{s}: {r}" for s, r in report.failed)
    assert victim.name in report.failed[0][1] and "cannot" in report.failed[0][1], report.failed[0][1]
    assert len(report.added) == 3
    assert not list((tmp_path / "catalog").rglob(".staging-*"))


def test_product_error_survives_pickling():
    """What a worker raises reaches the parent whole (path, problem, one-line text)."""
    import pickle

    error = pickle.loads(pickle.dumps(ProductError("/data/p.zip!B8.tif", "cannot convert to COG (x)")))
    assert (error.path, error.problem, str(error)) == ("/data/p.zip!B8.tif", "cannot convert to COG (x)",
                                                       "/data/p.zip!B8.tif: cannot convert to COG (x)")


def test_newer_version_replaces_older(tmp_path, series_specs):
    """V1-0 then V1-1 of one acquisition: one item, the newer. The MTDs have the real shape
    (IDENTIFIER without the version), so the version must come from PRODUCT_ID."""
    root = tmp_path / "catalog"
    old = write_product(series_specs[0], tmp_path / "v1", SynthOptions(size=60, seed=3, version="1-0"))
    new = write_product(series_specs[0], tmp_path / "v2", SynthOptions(size=60, seed=3, version="1-1"))
    assert ingest([old], root, workers=1).added
    report = ingest([new], root, workers=1)
    assert report.replaced == [(new.stem, old.stem)]
    assert set(_items(root)) == {new.stem}
    again = ingest([old], root, workers=1)
    assert again.superseded == [(old.stem, new.stem)] and set(_items(root)) == {new.stem}
    assert validate_catalog(root).ok


@pytest.mark.parametrize("newer_first", [False, True])
def test_two_versions_in_one_run_keep_only_the_newer(tmp_path, series_specs, newer_first):
    """V1-0 and V1-1 of one acquisition given together (a folder holding both): the catalog
    gets the newer only, as it would from two runs, whatever the order; a copy of the newer
    elsewhere is the same product, ingested once."""
    root = tmp_path / "catalog"
    old = write_product(series_specs[0], tmp_path / "v1", SynthOptions(size=60, seed=3, version="1-0"))
    new = write_product(series_specs[0], tmp_path / "v2", SynthOptions(size=60, seed=3, version="1-1"))
    copy = tmp_path / "copy" / new.name
    copy.parent.mkdir()
    shutil.copy(new, copy)
    report = ingest([new, old, copy] if newer_first else [old, new, copy], root, workers=1)
    assert report.added == [new.stem] and report.superseded == [(old.stem, new.stem)]
    assert report.unchanged == [new.stem] and not report.failed
    assert set(_items(root)) == {new.stem}
    assert validate_catalog(root).ok


def _linked(year_catalog: Path) -> set[str]:
    if not year_catalog.exists():
        return set()
    return {link["href"].split("/")[1] for link in json.loads(year_catalog.read_text())["links"] if link["rel"] == "item"}


@pytest.mark.parametrize("every", [0.0, 3600.0])
def test_year_files_are_written_as_items_come_and_at_flush(catalog, tmp_path, every):
    """Linking is batched: the year's files follow every ``every`` seconds and at flush."""
    from fullmaja_stac.stac.catalog import placement

    source = next(iter(_items(catalog).values()))
    doc = json.loads(source.read_text())
    item = pystac.Item.from_dict(doc, migrate=False)
    store = CatalogStore(tmp_path / "catalog", year_flush_seconds=every)
    with store.lock():
        store.ensure_root()
        where = placement(item.id, item.properties["grid:code"].removeprefix("MGRS-"), item.datetime)
        staging = store.staging_dir(where)
        staging.mkdir(parents=True)
        store.commit(where, item, staging)
        year_catalog = store.year_dir(where) / "catalog.json"
        assert store.item_path(where).exists()
        assert _linked(year_catalog) == ({item.id} if every == 0 else set())
        store.flush()
        assert _linked(year_catalog) == {item.id}
    assert validate_catalog(tmp_path / "catalog").ok


def test_two_writers_are_refused(tmp_path, product_zips):
    store = CatalogStore(tmp_path / "catalog")
    with store.lock():
        with pytest.raises(FullMajaError, match="another fullmaja-stac process is writing"):
            ingest(product_zips[:1], tmp_path / "catalog", workers=1)


@pytest.mark.slow
def test_killed_ingest_leaves_a_valid_catalog_that_the_next_run_completes(tmp_path, series_specs):
    import os
    import signal
    import time

    inputs = tmp_path / "inputs"
    for spec in series_specs:
        write_product(spec, inputs, SynthOptions(size=600, seed=5))
    root = tmp_path / "catalog"
    proc = subprocess.Popen([sys.executable, "-m", "fullmaja_stac.cli", "ingest", str(inputs), "--catalog",
                             str(root), "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _items(root) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    landed = len(_items(root))
    assert 1 <= landed < 5, f"the kill should land between the first and the last item, {landed} landed"
    after_kill = validate_catalog(root)
    assert after_kill.ok, after_kill.invalid
    report = ingest([inputs], root, workers=2)
    assert report.ok and len(report.added) + len(report.unchanged) == 5, report
    final = validate_catalog(root)
    assert len(_items(root)) == 5 and final.ok and final.by_type["ITEM"] == 5  # all reachable by links
    assert not list(root.rglob(".staging-*")) and not list(root.rglob("*.tmp"))


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_catalog_byte_for_byte(tmp_path, product_zips):
    from datetime import datetime, timezone

    fixed = lambda: datetime(2026, 1, 1, tzinfo=timezone.utc)  # noqa: E731 - created/updated stamps
    pool = ingest(product_zips[:3], tmp_path / "pool", workers=2, now=fixed)
    dask = ingest(product_zips[:3], tmp_path / "dask", workers=2, now=fixed, scheduler="local")
    assert pool.ok and dask.ok and sorted(pool.added) == sorted(dask.added)

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and not p.name.startswith(".fullmaja-stac.lock")}

    assert files(tmp_path / "pool") == files(tmp_path / "dask")


@pytest.mark.slow
def test_ingest_on_a_real_dask_scheduler_writes_the_same_cogs(tmp_path, catalog, product_zips):
    """Issue 28, 13: `--scheduler tcp://` against real `dask scheduler` and `dask worker`
    processes (not a LocalCluster): the same COGs, byte for byte, as the process pool's."""
    import json as _json
    import time as _time

    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen(["dask", "scheduler", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        deadline = _time.monotonic() + 60
        while not scheduler_file.exists() and _time.monotonic() < deadline:
            _time.sleep(0.2)
        address = _json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://")
        procs.append(subprocess.Popen(["dask", "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "2",
                                       "--nthreads", "1", "--no-dashboard"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=env))
        report = ingest(product_zips, tmp_path / "catalog", workers=2, scheduler=address)
        assert report.ok and len(report.added) == 5, report
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)
    ours = {p.relative_to(tmp_path / "catalog"): p.read_bytes() for p in (tmp_path / "catalog").rglob("*.tif")}
    pool = {p.relative_to(catalog): p.read_bytes() for p in catalog.rglob("*.tif")}
    assert ours.keys() == pool.keys() and len(ours) == 5 * 43
    assert all(ours[k] == pool[k] for k in ours), [str(k) for k in ours if ours[k] != pool[k]][:3]
