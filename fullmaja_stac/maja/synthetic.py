"""Synthetic MAJA L2A products in MUSCATE format, for tests, the demo and benchmarks.

The layout, names and MTD_ALL.xml follow real products (MAJA's own MUSCATE templates; docs/NOTES.md); pixels behave like a
landscape: smooth land with a plausible spectrum per band, lakes, snow on high ground,
clouds with shadows cast away from the sun, saturated specks, and masks computed from the same
fields, so cloud and snow percentages in the MTD match the masks. Pixels sit on the real
grid of the tile (10 m R1, 20 m R2, from the tile's upper-left corner); a product smaller than
10980 px covers the north-west part of the tile, so every client sees real S2 geometry.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from pyproj import Transformer

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.maja.bands import BY_MAJA_ID, GROUP_RESOLUTION_M, L2A_GROUPS, SPECTRAL_BANDS
from fullmaja_stac.maja.orbits import passes
from fullmaja_stac.tiles import TileGrid, tile_grid

# Reflectance spectra (0–1) of the surfaces we paint, per MAJA band.
SPECTRA: dict[str, dict[str, float]] = {
    "soil": dict(B2=0.08, B3=0.11, B4=0.14, B5=0.17, B6=0.19, B7=0.21, B8=0.23, B8A=0.24, B11=0.30, B12=0.26),
    "vegetation": dict(B2=0.03, B3=0.06, B4=0.04, B5=0.10, B6=0.28, B7=0.36, B8=0.40, B8A=0.42, B11=0.22, B12=0.11),
    "water": dict(B2=0.06, B3=0.05, B4=0.03, B5=0.02, B6=0.015, B7=0.01, B8=0.01, B8A=0.01, B11=0.005, B12=0.003),
    "snow": dict(B2=0.90, B3=0.88, B4=0.86, B5=0.84, B6=0.80, B7=0.78, B8=0.75, B8A=0.72, B11=0.10, B12=0.08),
    "cloud": dict(B2=0.45, B3=0.44, B4=0.44, B5=0.45, B6=0.46, B7=0.46, B8=0.47, B8A=0.47, B11=0.38, B12=0.30),
}
REFLECTANCE_QUANTIFICATION = 10000
AOT_QUANTIFICATION = 200
WVC_QUANTIFICATION = 20
NODATA = -10000
DETECTORS = ("04", "05", "06")
GROUP_PIXEL_M = {g: float(m) for g, m in GROUP_RESOLUTION_M.items()}
# Sentinel-2A's mean solar irradiance per band (W/m²/µm), as MAJA copies it into the MTD
SOLAR_IRRADIANCE = {"B1": 1913.57, "B2": 1941.63, "B3": 1822.61, "B4": 1512.79, "B5": 1425.56, "B6": 1288.32,
                    "B7": 1163.19, "B8": 1036.39, "B8A": 955.19, "B9": 813.04, "B10": 367.15, "B11": 245.59,
                    "B12": 85.25}
R1_PIXEL_M = GROUP_PIXEL_M["R1"]
MG2_NATURES = ("Water", "Cloud", "Snow", "Cloud_Shadow", "Topography_Shadow", "Hidden_Surface", "Sun_Too_Low", "Tangent_Sun")


@dataclass(frozen=True)
class SynthOptions:
    """How products look on disk. Defaults mimic a recent MUSCATE product."""

    size: int = 120  # R1 pixels (10 m) per side; R2 has half. 10980 is the whole tile.
    zipped: bool = True
    seed: int = 0
    nature: str = "C"
    version: str = "4-0"
    atb_dtype: str = "uint8"  # some versions write uint16
    with_dfp: bool = True  # DFP masks are absent from some versions
    band_entries: int = 13  # 13 (with an R3 group for B1, B9, B10) or 10 spectral entries
    path_prefix: str = ""  # "./" as some MTDs write it

    def __post_init__(self) -> None:
        if not 24 <= self.size <= 10980 or self.size % 6:
            raise FullMajaError(f"--size {self.size}: use a multiple of 6 between 24 and 10980 pixels "
                                "(10980 = the whole tile)")


@dataclass(frozen=True)
class ProductSpec:
    """One date of a series: what to paint and how to name it."""

    grid: TileGrid
    platform: str
    absolute_orbit: int
    relative_orbit: int
    acquired: datetime
    cloud_fraction: float
    split: bool = False

    @property
    def too_cloudy(self) -> bool:
        return self.cloud_fraction > 0.9

    def product_id(self, options: SynthOptions) -> str:
        stamp = self.acquired.strftime("%Y%m%d-%H%M%S-") + f"{self.acquired.microsecond // 1000:03d}"
        return f"{self.platform}_{stamp}_L2A_T{self.grid.tile}_{options.nature}_V{options.version}"


def plan_series(
    tile: str,
    orbit: int,
    start: date,
    end: date,
    seed: int = 0,
    too_cloudy: set[date] | None = None,
    split: set[date] | None = None,
) -> list[ProductSpec]:
    """The acquisitions of a tile on one relative orbit, with their weather, deterministic by seed.

    Without explicit sets, about one date in seven is too cloudy (> 90 %) and one in ten is a
    split product (half the tile outside the swath).
    """
    grid = tile_grid(tile)
    lat = grid.center_lonlat()[1]
    specs = []
    for p in passes(orbit, start, end, latitude=lat):
        rng = _rng(seed, grid.tile, p.day.isoformat())
        acquired = p.when.replace(microsecond=int(rng.integers(0, 1000)) * 1000)
        if too_cloudy is not None:
            cloudy = p.day in too_cloudy
        else:
            cloudy = rng.random() < 0.15
        is_split = (p.day in split) if split is not None else rng.random() < 0.1
        fraction = 0.93 if cloudy else float(rng.choice([0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7]))
        specs.append(ProductSpec(grid, p.platform, p.absolute_orbit, orbit, acquired, fraction, is_split))
    return specs


def write_series(specs: list[ProductSpec], out_dir: Path, options: SynthOptions = SynthOptions(), progress=None) -> list[Path]:
    """Write every product of ``specs`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in specs:
        paths.append(write_product(spec, out_dir, options))
        if progress is not None:
            progress()
    return paths


def write_product(spec: ProductSpec, out_dir: Path, options: SynthOptions = SynthOptions()) -> Path:
    """Write one product (zip or folder) atomically: nothing appears under its final name
    until it is complete."""
    product_id = spec.product_id(options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / (product_id + (".zip" if options.zipped else ""))
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".synth-") as tmp:
        folder = Path(tmp) / product_id
        _write_folder(spec, options, folder)
        if options.zipped:
            part = Path(tmp) / (product_id + ".zip")
            _zip_folder(folder, part, spec.acquired)
            os.replace(part, final)
        else:
            if final.exists():
                shutil.rmtree(final)
            os.replace(folder, final)
    return final


# ----------------------------------------------------------------------------- pixels


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _smooth(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1]: coarse noise upsampled with smoothstep weights (no
    creases along the coarse grid), two octaves."""
    out = np.zeros((n, n), dtype=np.float32)
    for octave, weight in ((cells, 0.7), (cells * 3, 0.3)):
        k = max(3, octave)
        coarse = rng.random((k, k), dtype=np.float32)
        pos = np.linspace(0, k - 1, n, dtype=np.float32)
        i0 = np.floor(pos).astype(np.int64).clip(0, k - 2)
        w = (pos - i0)[None, :]
        w = w * w * (3 - 2 * w)
        rows = coarse[:, i0] * (1 - w) + coarse[:, i0 + 1] * w  # (k, n)
        w = w.T
        out += weight * (rows[i0, :] * (1 - w) + rows[i0 + 1, :] * w)
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / (hi - lo + 1e-9)


def _shift(mask: np.ndarray, drow: int, dcol: int) -> np.ndarray:
    out = np.zeros_like(mask)
    n_r, n_c = mask.shape
    src = mask[max(0, -drow): n_r - max(0, drow), max(0, -dcol): n_c - max(0, dcol)]
    out[max(0, drow): max(0, drow) + src.shape[0], max(0, dcol): max(0, dcol) + src.shape[1]] = src
    return out


def _block_mean(a: np.ndarray) -> np.ndarray:
    n = a.shape[0] // 2
    return a[: 2 * n, : 2 * n].reshape(n, 2, n, 2).mean(axis=(1, 3))


def _block_any(a: np.ndarray) -> np.ndarray:
    n = a.shape[0] // 2
    return a[: 2 * n, : 2 * n].reshape(n, 2, n, 2).max(axis=(1, 3))


@dataclass
class _Scene:
    reflectance: dict[str, np.ndarray]  # MAJA band → int16 at its group's resolution (SRE)
    flat: dict[str, np.ndarray]  # FRE
    atb: dict[str, np.ndarray]  # group → (2, h, w)
    masks: dict[tuple[str, str], np.ndarray]  # (family, group) → uint8
    detectors: dict[tuple[str, str], np.ndarray]  # (group, detector) → uint8
    cloud_percent: int
    snow_percent: int
    quicklook: np.ndarray = field(repr=False)


def _paint(spec: ProductSpec, options: SynthOptions, sun_zenith: float, sun_azimuth: float) -> _Scene:
    n = options.size
    pixel = R1_PIXEL_M
    land_rng = _rng(options.seed, spec.grid.tile, "land")
    elevation = _smooth(land_rng, n, 5)
    greenness = _smooth(land_rng, n, 9)
    roughness = _smooth(land_rng, n, 40)
    day_rng = _rng(options.seed, spec.grid.tile, spec.acquired.isoformat())

    rows, cols = np.mgrid[0:n, 0:n]
    valid = np.ones((n, n), dtype=bool)
    if spec.split:  # the swath edge crosses the tile at a slant
        valid = cols < (0.45 * n + 0.25 * (rows - n / 2))

    water = elevation < np.quantile(elevation, 0.1)
    winter = spec.acquired.month in (11, 12, 1, 2, 3, 4)
    snow = ~water & (elevation > np.quantile(elevation, 0.82 if winter else 0.97))
    topo_shadow = ~water & (elevation > 0.7) & (roughness > 0.85)
    hidden = topo_shadow & (roughness > 0.95)

    clouds = _smooth(day_rng, n, 6)
    fraction = spec.cloud_fraction
    if fraction > 0:
        thick_thr = float(np.quantile(clouds, 1 - fraction))
        thin_thr = float(np.quantile(clouds, max(0.0, 1 - fraction - 0.04)))
    else:
        thick_thr = thin_thr = 2.0
    thick = clouds > thick_thr
    thin = (clouds > thin_thr) & ~thick
    opacity = np.clip((clouds - thin_thr) / (1 - thin_thr + 1e-6), 0, 1) if fraction > 0 else np.zeros_like(clouds)
    high = thick & (clouds > thick_thr + 0.5 * (1 - thick_thr))

    # Shadows fall away from the sun, further when the sun is low (clouds at ~2 km); capped so
    # that small products still show the shadows of their own clouds.
    dist_px = min(2000.0 * math.tan(math.radians(sun_zenith)) / pixel, n / 12)
    away = math.radians(sun_azimuth + 180.0)
    drow, dcol = int(round(-math.cos(away) * dist_px)), int(round(math.sin(away) * dist_px))
    if drow == 0 and dcol == 0 and fraction > 0:
        dcol = 1
    shadow = _shift(thick, drow, dcol) & ~thick & ~thin

    # Surface reflectance per band at 10 m, then R2 bands averaged to 20 m.
    veg = np.clip(greenness * 1.4 - 0.1, 0, 1)
    slope_factor = (1 + 0.15 * (roughness - 0.5)).astype(np.float32)
    sre: dict[str, np.ndarray] = {}
    fre: dict[str, np.ndarray] = {}
    sat_r1 = np.zeros((n, n), dtype=np.uint8)
    specks = day_rng.random((n, n)) < max(3.0 / (n * n), 1e-4)
    for b in [*L2A_GROUPS["R1"], *L2A_GROUPS["R2"]]:
        surface = SPECTRA["soil"][b] * (1 - veg) + SPECTRA["vegetation"][b] * veg
        surface = np.where(water, SPECTRA["water"][b], surface)
        surface = np.where(snow, SPECTRA["snow"][b], surface)
        surface = surface * (1 + 0.08 * (elevation - 0.5))
        surface = np.where(shadow, surface * 0.45, surface)
        surface = np.where(topo_shadow, surface * 0.6, surface)
        refl = surface * (1 - opacity) + SPECTRA["cloud"][b] * opacity
        fre_b = refl * slope_factor
        if b in L2A_GROUPS["R2"]:
            refl, fre_b = _block_mean(refl), _block_mean(fre_b)
            v = _block_mean(valid.astype(np.float32)) >= 1.0  # a 20 m pixel is valid if all its 10 m are
        else:
            v = valid
            refl = np.where(specks, 1.6, refl)
            fre_b = np.where(specks, 1.6, fre_b)
        sre[b] = np.where(v, np.round(refl * REFLECTANCE_QUANTIFICATION), NODATA).astype(np.int16)
        fre[b] = np.where(v, np.round(fre_b * REFLECTANCE_QUANTIFICATION), NODATA).astype(np.int16)
    for i in range(len(L2A_GROUPS["R1"])):  # a saturated speck saturates every 10 m band
        sat_r1 |= (specks & valid).astype(np.uint8) << i

    # Masks at R1, then R2 by "any pixel of the 2x2 block" (what MAJA does for flags).
    clm = np.zeros((n, n), dtype=np.uint8)
    cloud_any = thick | thin
    multi = thick & (_smooth(day_rng, n, 20) > 0.4)
    clm |= (thick | shadow).astype(np.uint8) << 0
    clm |= thick.astype(np.uint8) << 1
    clm |= (thick & ~multi | high).astype(np.uint8) << 2
    clm |= multi.astype(np.uint8) << 3
    clm |= thin.astype(np.uint8) << 4
    clm |= shadow.astype(np.uint8) << 5
    clm |= high.astype(np.uint8) << 7
    mg2 = np.zeros((n, n), dtype=np.uint8)
    mg2 |= water.astype(np.uint8) << 0
    mg2 |= cloud_any.astype(np.uint8) << 1
    mg2 |= (snow & ~cloud_any).astype(np.uint8) << 2
    mg2 |= shadow.astype(np.uint8) << 3
    mg2 |= topo_shadow.astype(np.uint8) << 4
    mg2 |= hidden.astype(np.uint8) << 5
    iab = cloud_any.astype(np.uint8) | ((cloud_any | shadow).astype(np.uint8) << 1)
    edg = (~valid).astype(np.uint8)
    for m in (clm, mg2, iab, sat_r1):
        m[~valid] = 0

    wvc = 0.8 + 2.0 * _smooth(day_rng, n, 3)  # g/cm²
    aot = 0.05 + 0.35 * _smooth(day_rng, n, 4)
    atb_dtype = np.dtype(options.atb_dtype)
    atb_r1 = np.stack([np.round(wvc * WVC_QUANTIFICATION), np.round(aot * AOT_QUANTIFICATION)]).clip(1, 255)
    atb_r1 = np.where(valid[None], atb_r1, 0).astype(atb_dtype)

    masks: dict[tuple[str, str], np.ndarray] = {}
    r1 = {"CLM": clm, "MG2": mg2, "SAT": sat_r1, "EDG": edg, "IAB": iab}
    if options.with_dfp:
        r1["DFP"] = np.zeros((n, n), dtype=np.uint8)
    for family, arr in r1.items():
        masks[(family, "R1")] = arr
        masks[(family, "R2")] = _block_any(arr)
    sat_r2 = np.zeros((n // 2, n // 2), dtype=np.uint8)
    for i, b in enumerate(L2A_GROUPS["R2"]):
        sat_r2 |= ((sre[b] >= 15000) & (sre[b] != NODATA)).astype(np.uint8) << i
    masks[("SAT", "R2")] = sat_r2
    masks[("EDG", "R2")] = (sre["B5"] == NODATA).astype(np.uint8)

    detectors: dict[tuple[str, str], np.ndarray] = {}
    for group, size in (("R1", n), ("R2", n // 2)):
        rr, cc = np.mgrid[0:size, 0:size]
        strip = np.clip(((cc + 0.15 * rr) / size * len(DETECTORS)).astype(int), 0, len(DETECTORS) - 1)
        all_bands = (1 << len(L2A_GROUPS[group])) - 1
        edg_g = masks[("EDG", group)]
        for k, det in enumerate(DETECTORS):
            detectors[(group, det)] = np.where((strip == k) & (edg_g == 0), all_bands, 0).astype(np.uint8)

    n_valid = max(1, int(valid.sum()))
    cloud_percent = int(round(100 * float((clm != 0)[valid].sum()) / n_valid))
    snow_percent = int(round(100 * float((mg2 & 4 != 0)[valid].sum()) / n_valid))

    rgb = np.stack([fre["B4"], fre["B3"], fre["B2"]]).astype(np.float32)
    qkl = np.where(rgb == NODATA, 0, np.clip(rgb / 2500.0 * 255, 0, 255)).astype(np.uint8)
    step = max(1, n // 1098)
    return _Scene(
        reflectance=sre,
        flat=fre,
        atb={"R1": atb_r1, "R2": atb_r1[:, ::2, ::2].copy()},
        masks=masks,
        detectors=detectors,
        cloud_percent=cloud_percent,
        snow_percent=snow_percent,
        quicklook=np.moveaxis(qkl[:, ::step, ::step], 0, -1),
    )


def _sun_angles(when: datetime, lat: float, lon: float) -> tuple[float, float]:
    """Solar zenith and azimuth (degrees), NOAA's low-precision formulas; good to ~0.5°."""
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    gamma = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                       - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma) - 0.006758 * math.cos(2 * gamma)
            + 0.000907 * math.sin(2 * gamma) - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    true_solar = hour * 60 + eqtime + 4 * lon
    ha = math.radians(true_solar / 4 - 180)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cos_zen)))
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi))) + 180
    return math.degrees(zen), az % 360


# ----------------------------------------------------------------------------- files


def _write_tif(path: Path, data: np.ndarray, grid: TileGrid, pixel: float) -> None:
    bands = data if data.ndim == 3 else data[None]
    profile = dict(driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
                   dtype=bands.dtype.name, crs=f"EPSG:{grid.epsg}",
                   transform=Affine(pixel, 0, grid.ulx, 0, -pixel, grid.uly))
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)


def _write_folder(spec: ProductSpec, options: SynthOptions, folder: Path) -> None:
    grid = spec.grid
    pid = spec.product_id(options)
    lon, lat = grid.center_lonlat()
    sun_zenith, sun_azimuth = _sun_angles(spec.acquired, lat, lon)
    scene = _paint(spec, options, sun_zenith, sun_azimuth)
    folder.mkdir(parents=True)
    pixel_of = GROUP_PIXEL_M

    files: dict[str, str] = {}  # logical key → relative path
    for b, arr in scene.flat.items():
        group = "R1" if b in L2A_GROUPS["R1"] else "R2"
        files[f"FRE_{b}"] = f"{pid}_FRE_{b}.tif"
        _write_tif(folder / files[f"FRE_{b}"], arr, grid, pixel_of[group])
        files[f"SRE_{b}"] = f"{pid}_SRE_{b}.tif"
        _write_tif(folder / files[f"SRE_{b}"], scene.reflectance[b], grid, pixel_of[group])
    for group, arr in scene.atb.items():
        files[f"ATB_{group}"] = f"{pid}_ATB_{group}.tif"
        _write_tif(folder / files[f"ATB_{group}"], arr, grid, pixel_of[group])
    for (family, group), arr in scene.masks.items():
        files[f"{family}_{group}"] = f"MASKS/{pid}_{family}_{group}.tif"
        _write_tif(folder / files[f"{family}_{group}"], arr, grid, pixel_of[group])
    for (group, det), arr in scene.detectors.items():
        files[f"DTF_{group}_{det}"] = f"MASKS/{pid}_DTF_{group}-D{det}.tif"
        _write_tif(folder / files[f"DTF_{group}_{det}"], arr, grid, pixel_of[group])
    quicklook = f"{pid}_QKL_ALL.jpg"
    Image.fromarray(scene.quicklook, "RGB").save(folder / quicklook, "JPEG", quality=85)
    jpi = f"DATA/{pid}_JPI_ALL.xml"
    (folder / "DATA").mkdir(exist_ok=True)
    (folder / jpi).write_bytes(_jpi_xml(pid, spec, options))
    mtd = _mtd_xml(spec, options, files, quicklook, jpi, scene, (sun_zenith, sun_azimuth), (lat, lon))
    (folder / f"{pid}_MTD_ALL.xml").write_bytes(mtd)


def _zip_folder(folder: Path, target: Path, when: datetime) -> None:
    """Zip ``folder`` as ``<name>/...`` entries, reproducibly (fixed timestamps, sorted)."""
    stamp = when.timetuple()[:6]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(f"{folder.name}/{path.relative_to(folder).as_posix()}", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with open(path, "rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)


def _sub(parent: ET.Element, tag: str, text: object = None, **attrs: object) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _mtd_xml(spec, options, files, quicklook, jpi, scene, sun, center) -> bytes:
    grid = spec.grid
    pid = spec.product_id(options)
    pre = options.path_prefix
    n = options.size
    rng = _rng(options.seed, pid, "angles")
    root = ET.Element("Muscate_Metadata_Document")
    meta = _sub(root, "Metadata_Identification")
    _sub(meta, "METADATA_FORMAT", "METADATA_MUSCATE", metadata_profile="USER", metadata_information="EXPERT", version="1.16")
    ident = _sub(root, "Dataset_Identification")
    _sub(ident, "IDENTIFIER", pid.rsplit("_V", 1)[0])  # real IDENTIFIERs stop at the nature; PRODUCT_ID has the version
    _sub(ident, "AUTHORITY", "THEIA")
    _sub(ident, "PRODUCER", "MUSCATE")
    _sub(ident, "PROJECT", "SENTINEL2")
    _sub(ident, "GEOGRAPHICAL_ZONE", f"T{grid.tile}", type="Tile")
    _sub(ident, "TITLE", pid)

    chars = _sub(root, "Product_Characteristics")
    _sub(chars, "PRODUCT_ID", pid)
    _sub(chars, "ACQUISITION_DATE", _iso(spec.acquired))
    _sub(chars, "PRODUCTION_DATE", _iso(spec.acquired + timedelta(days=2, hours=3)))
    _sub(chars, "PRODUCT_VERSION", options.version.replace("-", "."))
    _sub(chars, "PRODUCT_LEVEL", "L2A")
    _sub(chars, "PLATFORM", spec.platform)
    _sub(chars, "SPECTRAL_CONTENT", "XS")
    _sub(chars, "ORBIT_NUMBER", spec.absolute_orbit, type="Absolute")
    bands = [b.maja_id for b in SPECTRAL_BANDS] if options.band_entries == 13 else [*L2A_GROUPS["R1"], *L2A_GROUPS["R2"]]
    glist = _sub(chars, "Band_Global_List", count=len(bands))
    for b in bands:
        _sub(glist, "BAND_ID", b)
    groups = dict(L2A_GROUPS)
    if options.band_entries == 13:
        groups["R3"] = ("B1", "B9", "B10")
    group_list = _sub(chars, "Band_Group_List")
    for g, members in groups.items():
        ge = _sub(group_list, "Group", group_id=g)
        bl = _sub(ge, "Band_List", count=len(members))
        for b in members:
            _sub(bl, "BAND_ID", b)

    org = _sub(_sub(root, "Product_Organisation"), "Muscate_Product")
    _sub(org, "QUICKLOOK", pre + quicklook, bands_id="B4,B3,B2")
    images = _sub(org, "Image_List")

    def image(nature: str, encoding: str, entries: list[tuple[str, dict]]) -> None:
        im = _sub(images, "Image")
        props = _sub(im, "Image_Properties")
        _sub(props, "NATURE", nature)
        _sub(props, "FORMAT", "image/tiff")
        _sub(props, "ENCODING", encoding)
        _sub(props, "ENDIANNESS", "LittleEndian")
        fl = _sub(im, "Image_File_List")
        for path, attrs in entries:
            _sub(fl, "IMAGE_FILE", pre + path, **attrs)

    all_bands = [*L2A_GROUPS["R1"], *L2A_GROUPS["R2"]]
    image("Flat_Reflectance", "int16", [(files[f"FRE_{b}"], {"band_id": b}) for b in all_bands])
    image("Surface_Reflectance", "int16", [(files[f"SRE_{b}"], {"band_id": b}) for b in all_bands])
    image("Water_Vapor_Content", options.atb_dtype, [(files[f"ATB_{g}"], {"group_id": g, "band_number": 1}) for g in ("R1", "R2")])
    image("Aerosol_Optical_Thickness", options.atb_dtype, [(files[f"ATB_{g}"], {"group_id": g, "band_number": 2}) for g in ("R1", "R2")])

    masks = _sub(org, "Mask_List")

    def mask(nature: str, entries: list[tuple[str, dict]]) -> None:
        mk = _sub(masks, "Mask")
        props = _sub(mk, "Mask_Properties")
        _sub(props, "NATURE", nature)
        _sub(props, "FORMAT", "image/tiff")
        _sub(props, "ENCODING", "byte")
        fl = _sub(mk, "Mask_File_List")
        for path, attrs in entries:
            _sub(fl, "MASK_FILE", pre + path, **attrs)

    r12 = ("R1", "R2")
    # MAJA's templates number bits from 1 (bit_number="1" is bit 0) and list SAT and DFP per band
    mask("WVC_Interpolation", [(files[f"IAB_{g}"], {"group_id": g, "bit_number": 1}) for g in r12])
    mask("AOT_Interpolation", [(files[f"IAB_{g}"], {"group_id": g, "bit_number": 2}) for g in r12])
    mask("Detailed_Cloud", [(files[f"CLM_{g}"], {"group_id": g}) for g in r12])
    for bit, nature in enumerate(MG2_NATURES, start=1):
        mask(nature, [(files[f"MG2_{g}"], {"group_id": g, "bit_number": bit}) for g in r12])
    per_band = [(g, b, i) for g in r12 for i, b in enumerate(L2A_GROUPS[g], start=1)]
    mask("Saturation", [(files[f"SAT_{g}"], {"band_id": b, "bit_number": i}) for g, b, i in per_band])
    mask("Edge", [(files[f"EDG_{g}"], {"group_id": g}) for g in r12])
    if options.with_dfp:
        mask("Defective_Pixel", [(files[f"DFP_{g}"], {"band_id": b, "bit_number": i}) for g, b, i in per_band])
    mask("Detector_Footprint", [(files[f"DTF_{g}_{d}"], {"group_id": g, "detector_id": d}) for g in r12 for d in DETECTORS])
    data = _sub(_sub(org, "Data_List"), "Data")
    dprops = _sub(data, "Data_Properties")
    _sub(dprops, "NATURE", "Job_Processing_Informations_File")
    _sub(dprops, "FORMAT", "application/xml")
    _sub(_sub(data, "Data_File_List"), "DATA_FILE", pre + jpi)

    geo = _sub(root, "Geoposition_Informations")
    crs = _sub(_sub(geo, "Coordinate_Reference_System"), "GEO_TABLES", "EPSG", version="1.0")
    hcs = _sub(geo.find("Coordinate_Reference_System"), "Horizontal_Coordinate_System")
    _sub(hcs, "HORIZONTAL_CS_TYPE", "PROJECTED")
    zone = grid.epsg % 100
    _sub(hcs, "HORIZONTAL_CS_NAME", f"WGS 84 / UTM zone {zone}{'N' if grid.epsg < 32700 else 'S'}")
    _sub(hcs, "HORIZONTAL_CS_CODE", grid.epsg)
    del crs
    raster_cs = _sub(geo, "Raster_CS")
    _sub(raster_cs, "RASTER_CS_TYPE", "CELL")
    _sub(raster_cs, "PIXEL_ORIGIN", 0)
    geopos = _sub(geo, "Geopositioning")
    glob_pos = _sub(geopos, "Global_Geopositioning")
    to_ll = Transformer.from_crs(grid.epsg, 4326, always_xy=True)
    e = n * R1_PIXEL_M
    for name, (x, y) in {"upperLeft": (grid.ulx, grid.uly), "upperRight": (grid.ulx + e, grid.uly),
                         "lowerRight": (grid.ulx + e, grid.uly - e), "lowerLeft": (grid.ulx, grid.uly - e),
                         "center": (grid.ulx + e / 2, grid.uly - e / 2)}.items():
        plon, plat = to_ll.transform(x, y)
        pt = _sub(glob_pos, "Point", name=name)
        _sub(pt, "LAT", f"{plat:.9f}")
        _sub(pt, "LON", f"{plon:.9f}")
        _sub(pt, "X", f"{x:.0f}")
        _sub(pt, "Y", f"{y:.0f}")
    group_pos = _sub(geopos, "Group_Geopositioning_List")
    sizes = {"R1": (GROUP_PIXEL_M["R1"], n), "R2": (GROUP_PIXEL_M["R2"], n // 2)}
    if options.band_entries == 13:
        sizes["R3"] = (GROUP_PIXEL_M["R3"], n // 6)
    for g, (px, count) in sizes.items():
        gp = _sub(group_pos, "Group_Geopositioning", group_id=g)
        for tag, value in (("ULX", grid.ulx), ("ULY", grid.uly), ("XDIM", px), ("YDIM", -px), ("NROWS", count), ("NCOLS", count)):
            _sub(gp, tag, f"{value:g}" if isinstance(value, float) else value)

    geom = _sub(root, "Geometric_Informations")
    mean = _sub(geom, "Mean_Value_List")
    sun_el = _sub(mean, "Sun_Angles")
    _sub(sun_el, "ZENITH_ANGLE", f"{sun[0]:.6f}", unit="deg")
    _sub(sun_el, "AZIMUTH_ANGLE", f"{sun[1]:.6f}", unit="deg")
    views = _sub(mean, "Mean_Viewing_Incidence_Angle_List")
    base_zen = 2 + 8 * float(rng.random())
    base_az = 100.0 if rng.random() < 0.5 else 285.0
    for i, b in enumerate(bands):
        v = _sub(views, "Mean_Viewing_Incidence_Angle", band_id=b)
        _sub(v, "ZENITH_ANGLE", f"{base_zen + 0.05 * i:.6f}", unit="deg")
        _sub(v, "AZIMUTH_ANGLE", f"{base_az + 0.3 * i:.6f}", unit="deg")

    radio = _sub(root, "Radiometric_Informations")
    _sub(radio, "REFLECTANCE_QUANTIFICATION_VALUE", REFLECTANCE_QUANTIFICATION)
    _sub(radio, "WATER_VAPOR_CONTENT_QUANTIFICATION_VALUE", WVC_QUANTIFICATION)
    _sub(radio, "AEROSOL_OPTICAL_THICKNESS_QUANTIFICATION_VALUE", AOT_QUANTIFICATION)
    specials = _sub(radio, "Special_Values_List")
    _sub(specials, "SPECIAL_VALUE", NODATA, name="nodata")
    _sub(specials, "SPECIAL_VALUE", 0, name="water_vapor_content_nodata")
    _sub(specials, "SPECIAL_VALUE", 0, name="aerosol_optical_thickness_nodata")
    spectral = _sub(radio, "Spectral_Band_Informations_List")
    for b in bands:
        info = BY_MAJA_ID[b]
        sb = _sub(spectral, "Spectral_Band_Informations", band_id=b)
        _sub(sb, "SOLAR_IRRADIANCE", f"{SOLAR_IRRADIANCE[b]:.2f}", unit="W/m²/µm")
        _sub(sb, "SPATIAL_RESOLUTION", GROUP_PIXEL_M[info.default_group], unit="m")
        wl = _sub(sb, "Wavelength")
        _sub(wl, "MIN", f"{(info.center_um - info.fwhm_um / 2) * 1000:.0f}", unit="nm")
        _sub(wl, "MAX", f"{(info.center_um + info.fwhm_um / 2) * 1000:.0f}", unit="nm")
        _sub(wl, "CENTRAL", f"{info.center_um * 1000:.0f}", unit="nm")

    quality = _sub(_sub(_sub(root, "Quality_Informations"), "Current_Product"), "Product_Quality_List", level="N2")
    pq = _sub(quality, "Product_Quality")
    src = _sub(pq, "Source_Product")
    _sub(src, "PRODUCT_ID", pid)
    _sub(src, "ACQUISITION_DATE", _iso(spec.acquired))
    idx = _sub(pq, "Global_Index_List")
    _sub(idx, "QUALITY_INDEX", scene.cloud_percent, name="CloudPercent")
    _sub(idx, "QUALITY_INDEX", scene.snow_percent, name="SnowPercent")
    _sub(idx, "QUALITY_INDEX", "False", name="RainDetected")  # MAJA writes Python's True/False
    _sub(idx, "QUALITY_INDEX", "False", name="HotSpotDetected")
    _sub(idx, "QUALITY_INDEX", "False", name="SunGlintDetected")
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _jpi_xml(pid: str, spec: ProductSpec, options: SynthOptions) -> bytes:
    """The JPI file as MAJA writes it (its template JobProcessingInformations, Validity_Flag
    L2VALD/L2NOTV among the Processing_Flags_And_Modes); MAJA records no software version."""
    root = ET.Element("JobProcessingInformations")
    dem = _sub(root, "MNT_Statistics")
    for tag, value in (("Min", 12), ("Max", 1834), ("Average", "402.17"), ("Standard_Deviation", "311.52")):
        _sub(dem, tag, value, unit="m")
    flags = _sub(root, "Processing_Flags_And_Modes_List")
    for key, value in (("Processing_Mode", "STANDARD_MODE"), ("Adjacency_Effects_And_Slope_Correction", "true"),
                       ("Validity_Flag", "L2NOTV" if spec.too_cloudy else "L2VALD"), ("Cirrus_Correction", "true"),
                       ("CAMS_Processing", "Desactivated")):
        flag = _sub(flags, "Processing_Flags_And_Modes")
        _sub(flag, "Key", key)
        _sub(flag, "Value", value)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")
