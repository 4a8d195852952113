"""Reading MAJA products: round trip with the synthetic writer, variants real products show."""

from __future__ import annotations

from datetime import date

import pytest
import rasterio

from fullmaja_stac.maja import read_product
from fullmaja_stac.maja.bands import L2A_GROUPS
from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_product
from fullmaja_stac.tiles import tile_grid

from conftest import SIZE


def test_zip_and_folder_give_equal_models(product_zips, product_folders):
    for z, f in zip(product_zips, product_folders):
        from_zip, from_folder = read_product(z), read_product(f)
        assert from_zip == from_folder
        assert from_zip.root.startswith("/vsizip/")
        assert not from_folder.root.startswith("/vsi")


def test_written_fields_read_back(product_zips, series_specs):
    for path, spec in zip(product_zips, series_specs):
        p = read_product(path)
        options = SynthOptions(size=SIZE, seed=3)
        assert p.id == spec.product_id(options) == path.stem
        assert p.platform == spec.platform
        assert p.tile == "31TCJ" and p.nature == "C" and p.version == "4-0" and p.product_version == "4.0"
        assert p.acquired == spec.acquired.replace(microsecond=spec.acquired.microsecond // 1000 * 1000)
        assert p.absolute_orbit == spec.absolute_orbit and p.relative_orbit == 51
        assert p.epsg == 32631
        grid = tile_grid("31TCJ")
        assert (p.grids["R1"].ulx, p.grids["R1"].uly) == (grid.ulx, grid.uly)
        assert p.grids["R1"].shape == (SIZE, SIZE) and p.grids["R2"].shape == (SIZE // 2, SIZE // 2)
        assert p.grids["R2"].resolution == 2 * p.grids["R1"].resolution
        assert set(p.corners) == {"upperLeft", "upperRight", "lowerRight", "lowerLeft", "center"}
        assert 0 < p.sun_zenith < 90 and 0 <= p.sun_azimuth < 360
        assert len(p.viewing) == 13
        assert p.reflectance_quantification == 10000 and p.aot_quantification == 200 and p.wvc_quantification == 20
        assert p.reflectance_nodata == -10000
        assert p.atb_bands == {"wvc": 1, "aot": 2}
        assert p.maja_version is None  # MAJA's MUSCATE writer records no software version
        assert p.valid is (not spec.too_cloudy)
        assert p.quicklook and p.quicklook.endswith("_QKL_ALL.jpg")
        assert p.jpi and p.jpi.startswith("DATA/")
        kinds = sorted(r.kind for r in p.rasters)
        assert kinds.count("FRE") == 10 and kinds.count("SRE") == 10 and kinds.count("ATB") == 2
        for fam in ("CLM", "MG2", "SAT", "EDG", "IAB", "DFP"):
            assert kinds.count(fam) == 2
        assert kinds.count("DTF") == 6
        fre = {r.band_id: r for r in p.files("FRE")}
        assert {b for b, r in fre.items() if r.group == "R1"} == set(L2A_GROUPS["R1"])
        assert all(r.dtype == "int16" for r in fre.values())
        mg2 = next(r for r in p.rasters if r.kind == "MG2" and r.group == "R1")
        assert len(mg2.natures) == 8  # one file, eight MTD natures


def test_cloud_and_snow_percent_match_the_masks(product_zips):
    for path in product_zips:
        p = read_product(path)
        clm = next(r for r in p.rasters if r.kind == "CLM" and r.group == "R1")
        mg2 = next(r for r in p.rasters if r.kind == "MG2" and r.group == "R1")
        edg = next(r for r in p.rasters if r.kind == "EDG" and r.group == "R1")
        with rasterio.open(p.gdal_path(clm.path)) as a, rasterio.open(p.gdal_path(mg2.path)) as b, \
                rasterio.open(p.gdal_path(edg.path)) as c:
            clouds, geo, valid = a.read(1), b.read(1), c.read(1) == 0
        assert p.cloud_percent == round(100 * (clouds != 0)[valid].mean())
        assert p.snow_percent == round(100 * ((geo & 4) != 0)[valid].mean())


def test_too_cloudy_and_split_products(product_zips, series_specs):
    cloudy = read_product(product_zips[3])
    assert series_specs[3].too_cloudy and cloudy.valid is False and cloudy.cloud_percent > 90
    split = read_product(product_zips[4])
    edg = next(r for r in split.rasters if r.kind == "EDG" and r.group == "R1")
    b2 = next(r for r in split.rasters if r.kind == "FRE" and r.band_id == "B2")
    with rasterio.open(split.gdal_path(edg.path)) as e, rasterio.open(split.gdal_path(b2.path)) as r:
        outside, pixels = e.read(1) == 1, r.read(1)
    assert 0.3 < outside.mean() < 0.7
    assert (pixels[outside] == -10000).all() and (pixels[~outside] != -10000).all()


def test_synthetic_output_is_deterministic(tmp_path, series_specs):
    a = write_product(series_specs[0], tmp_path / "a", SynthOptions(size=SIZE, seed=3))
    b = write_product(series_specs[0], tmp_path / "b", SynthOptions(size=SIZE, seed=3))
    assert a.read_bytes() == b.read_bytes()


def test_products_sit_on_the_real_grid_of_other_tiles(tmp_path):
    spec = plan_series("31TFJ", 51, date(2019, 3, 1), date(2019, 3, 6))[0]
    path = write_product(spec, tmp_path, SynthOptions(size=SIZE))
    p = read_product(path)
    with rasterio.open(p.gdal_path(p.files("FRE")[0].path)) as ds:
        assert ds.crs.to_epsg() == 32631
        assert (ds.transform.c, ds.transform.f) == (600000, 4900020)


@pytest.mark.parametrize(
    "options",
    [
        SynthOptions(size=42, atb_dtype="uint16"),
        SynthOptions(size=42, with_dfp=False),
        SynthOptions(size=42, band_entries=10),
        SynthOptions(size=42, path_prefix="./"),
        SynthOptions(size=42, nature="D", version="1-0"),
    ],
    ids=["atb-uint16", "no-dfp", "10-bands", "dot-slash-paths", "nature-D-V1"],
)
def test_reader_tolerates_real_product_variants(tmp_path, series_specs, options):
    p = read_product(write_product(series_specs[0], tmp_path, options))
    atb = p.files("ATB")
    assert atb and all(r.dtype == options.atb_dtype and r.count == 2 for r in atb)
    assert bool(p.files("DFP")) == options.with_dfp
    assert len(p.viewing) == options.band_entries
    assert ("R3" in p.grids) == (options.band_entries == 13)
    assert p.nature == options.nature and p.version == options.version
    assert all(not r.path.startswith("./") for r in p.rasters)


# ----------------------------------------------------------------------------- real MTD shape
# Facts from MAJA's own MUSCATE templates and writer (CNES/MAJA): IDENTIFIER without the
# version and PRODUCT_ID with it; per-band mean viewing zenith and azimuth; wavelengths
# (MIN/MAX/CENTRAL, nm) and SOLAR_IRRADIANCE per band; quality indices True/False; the JPI
# validity flag as Processing_Flags_And_Modes Key=Validity_Flag / Value=L2VALD|L2NOTV.


def _mtd_text(folder) -> tuple:
    mtd = next(folder.glob("*_MTD_ALL.xml"))
    return mtd, mtd.read_text(encoding="utf-8")


def test_written_mtd_has_the_real_structure(tmp_path, series_specs):
    import xml.etree.ElementTree as ET

    folder = write_product(series_specs[0], tmp_path, SynthOptions(size=SIZE, seed=3, zipped=False))
    root = ET.parse(next(folder.glob("*_MTD_ALL.xml"))).getroot()
    assert root.findtext("Dataset_Identification/IDENTIFIER") == folder.name.rsplit("_V", 1)[0]
    assert root.findtext("Product_Characteristics/PRODUCT_ID") == folder.name
    band = root.find(".//Spectral_Band_Informations_List/Spectral_Band_Informations[@band_id='B4']")
    assert band.findtext("Wavelength/CENTRAL") and band.findtext("SOLAR_IRRADIANCE")
    assert root.find(".//QUALITY_INDEX[@name='RainDetected']").text == "False"
    jpi = ET.parse(next((folder / "DATA").glob("*_JPI_ALL.xml"))).getroot()
    assert jpi.tag == "JobProcessingInformations"
    flags = {f.findtext("Key"): f.findtext("Value") for f in jpi.iterfind(".//Processing_Flags_And_Modes")}
    assert flags["Validity_Flag"] == "L2VALD"


def test_id_nature_and_version_come_from_product_id(tmp_path, series_specs):
    p = read_product(write_product(series_specs[0], tmp_path, SynthOptions(size=SIZE, seed=3, version="1-0")))
    assert p.id.endswith("_C_V1-0") and p.nature == "C" and p.version == "1-0"


def test_spectral_information_and_viewing_azimuth_are_read(tmp_path, series_specs):
    folder = write_product(series_specs[0], tmp_path, SynthOptions(size=SIZE, seed=3, zipped=False))
    mtd, text = _mtd_text(folder)
    start = text.index('<Spectral_Band_Informations band_id="B4">')
    block = text[start:text.index("</Spectral_Band_Informations>", start)]
    edited = block.replace(block[block.index("<CENTRAL"):block.index("</CENTRAL>")], '<CENTRAL unit="nm">664.6')
    mtd.write_text(text.replace(block, edited), encoding="utf-8")
    p = read_product(folder)
    assert p.spectral["B4"].central_nm == 664.6 and p.spectral["B4"].solar_irradiance == 1512.79
    azimuths = [a for _, a in p.viewing.values()]
    assert min(azimuths) <= p.mean_viewing_azimuth <= max(azimuths)


def test_validity_flag_as_maja_writes_it(tmp_path, series_specs):
    cloudy = next(s for s in series_specs if s.too_cloudy)
    assert read_product(write_product(cloudy, tmp_path, SynthOptions(size=SIZE, seed=3))).valid is False
    assert read_product(write_product(series_specs[0], tmp_path, SynthOptions(size=SIZE, seed=3))).valid is True


def test_mtd_that_contradicts_its_tile_is_refused(tmp_path, series_specs):
    """An MTD naming 36TWQ over 31TCJ's rasters (EPSG 32631, 31TCJ's corner) is refused."""
    from fullmaja_stac.errors import ProductError

    folder = write_product(series_specs[0], tmp_path, SynthOptions(size=SIZE, seed=3, zipped=False))
    mtd, text = _mtd_text(folder)
    mtd.write_text(text.replace(">T31TCJ<", ">T36TWQ<"), encoding="utf-8")
    with pytest.raises(ProductError, match="36TWQ.*contradicts"):
        read_product(folder)
    twq = tile_grid("36TWQ")
    mtd.write_text(text.replace(">T31TCJ<", ">T36TWQ<").replace(">32631<", f">{twq.epsg}<"), encoding="utf-8")
    with pytest.raises(ProductError, match="contradicts"):  # the CRS agrees, the grid origin does not
        read_product(folder)


def test_a_zip_member_is_read_in_place_only_when_its_strips_are_in_row_order(tmp_path):
    """GDAL writes the all-zero strips of an uncompressed GeoTIFF after the others (as MAJA's
    writer, through GDAL, does for masks with a few set rows). Reading such a member through
    /vsizip/ seeks backwards and inflates it again and again, so it is extracted once; a
    member in row order is read in place, and neither copy outlives its use."""
    import zipfile

    import numpy as np
    from affine import Affine

    from fullmaja_stac.maja.product import RasterSource, local_raster

    def write(name: str, rows: slice) -> None:
        mask = np.zeros((300, 300), np.uint8)
        mask[rows] = 4
        with rasterio.open(tmp_path / name, "w", driver="GTiff", width=300, height=300, count=1, dtype="uint8",
                           crs="EPSG:32631", transform=Affine(10, 0, 300000, 0, -10, 4900020)) as dst:
            dst.write(mask, 1)

    write("sparse.tif", slice(140, 160))
    write("dense.tif", slice(0, 300))
    archive = tmp_path / "p.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("sparse.tif", "dense.tif"):
            zf.write(tmp_path / name, f"P/{name}")
    for name, staged in (("sparse.tif", True), ("dense.tif", False)):
        source = RasterSource(f"/vsizip/{archive}/P/{name}", str(archive), f"P/{name}", 300 * 300 + (1 << 20))
        scratch = tmp_path / f".{name}.src"
        with local_raster(source, scratch) as path, rasterio.open(path) as ds:
            assert (path == str(scratch)) is staged
            with rasterio.open(tmp_path / name) as original:
                assert np.array_equal(ds.read(), original.read())
        assert not scratch.exists()
