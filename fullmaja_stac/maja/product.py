"""MajaProduct: one MAJA L2A product (zip or folder) as a plain model.

Everything comes from ``MTD_ALL.xml`` and the files it lists. A zip is read in place: the
XML through :mod:`zipfile`, rasters through GDAL's ``/vsizip/``, except a raster whose
strips GDAL would read out of order: a conversion inflates it once to a scratch file first
(:func:`local_raster` says why).
"""

from __future__ import annotations

import copy
import math
import os
import posixpath
import re
import shutil
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

import numpy as np
from isal import isal_zlib
import rasterio
from affine import Affine
from rasterio.errors import RasterioError

from fullmaja_stac.errors import FullMajaError, ProductError
from fullmaja_stac.maja.bands import L2A_GROUPS, REFLECTANCE_KINDS, normalize_band_id
from fullmaja_stac.maja.masks import MASK_FAMILIES
from fullmaja_stac.maja.mtd import FileEntry, SpectralInfo, find_maja_version, find_validity, parse_mtd, parse_xml
from fullmaja_stac.maja.orbits import relative_orbit
from fullmaja_stac.trust.paths import name_problem, shown
from fullmaja_stac.tiles import TILE_NAME, TILE_SIZE_M, tile_grid

MTD_SUFFIX = "_MTD_ALL.xml"
CRC_READ_CHUNK = 4 << 20
MAX_XML_BYTES = 64 * 1024 * 1024
# A raster member may hold its pixels plus TIFF headers and tags; beyond that it is not the
# raster its header describes, and inflating it would only fill the disk.
MEMBER_SLACK_BYTES = 16 * 1024 * 1024
NAME_PATTERN = re.compile(
    r"^(?P<platform>SENTINEL2[A-Z])_(?P<date>\d{8}-\d{6}-\d{3})_(?P<level>L\d[A-Z])_"
    r"T?(?P<tile>\d{2}[A-Z]{3})_(?P<nature>[A-Z])_V(?P<version>\d+-\d+)$"
)
# A raster's origin must be the MTD's to 1 % of a pixel: the item states the MTD's transform,
# and half a pixel (the old tolerance) let a 20 m grid given the 10 m group's corner through,
# shifting every native 20 m load by 10 m.
GRID_TOLERANCE = 0.01
CROPPED_HINT = ("; if the rasters were cropped, the MTD's Group_Geopositioning (ULX, ULY, NROWS, NCOLS) must be "
                "updated to the crop")
_REFLECTANCE = re.compile(rf"_({'|'.join(REFLECTANCE_KINDS)})_(B\d{{1,2}}A?)\.tif$", re.IGNORECASE)
_ATB = re.compile(r"_ATB_(R\d)\.tif$", re.IGNORECASE)
_MASK = re.compile(rf"_({'|'.join(MASK_FAMILIES)})_(R\d)(?:-D(\d+))?\.tif$", re.IGNORECASE)
NATURE_KIND = {
    "Surface_Reflectance": "SRE",
    "Flat_Reflectance": "FRE",
    "Water_Vapor_Content": "ATB",
    "Aerosol_Optical_Thickness": "ATB",
    "Detailed_Cloud": "CLM",
    "Cloud": "MG2",
    "Cloud_Shadow": "MG2",
    "Water": "MG2",
    "Snow": "MG2",
    "Topography_Shadow": "MG2",
    "Hidden_Surface": "MG2",
    "Sun_Too_Low": "MG2",
    "Tangent_Sun": "MG2",
    "Saturation": "SAT",
    "Edge": "EDG",
    "WVC_Interpolation": "IAB",
    "AOT_Interpolation": "IAB",
    "Defective_Pixel": "DFP",
    "Detector_Footprint": "DTF",
}


@dataclass(frozen=True)
class Grid:
    """Pixel grid of one resolution group (R1 = 10 m, R2 = 20 m)."""

    group: str
    ulx: float
    uly: float
    xdim: float
    ydim: float  # negative: rows go south
    nrows: int
    ncols: int

    @property
    def transform(self) -> Affine:
        return Affine(self.xdim, 0.0, self.ulx, 0.0, self.ydim, self.uly)

    @property
    def resolution(self) -> float:
        return abs(self.xdim)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nrows, self.ncols)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.ulx, self.uly + self.ydim * self.nrows, self.ulx + self.xdim * self.ncols, self.uly)


@dataclass(frozen=True)
class RasterFile:
    """One raster the MTD lists. ``kind``: FRE, SRE, ATB, CLM, MG2, SAT, EDG, IAB, DFP, DTF, OTHER."""

    path: str  # relative to the product root, normalised (no "./")
    kind: str
    group: str | None
    band_id: str | None  # MAJA band id (B2 … B12) for FRE/SRE
    dtype: str
    count: int
    detector: str | None = None
    natures: tuple[str, ...] = ()
    pixel_bytes: int = 0  # rows x columns x bands x sample size, as its header says


@dataclass(frozen=True)
class RasterSource:
    """Where a raster's bytes are: a file GDAL opens, or a member of a zip (then
    ``gdal_path`` is its ``/vsizip/`` path). Plain data, so it can go to a worker process."""

    gdal_path: str
    archive: str | None = None
    member: str | None = None
    max_bytes: int | None = None  # what the member may inflate to; more is a hostile zip

    @property
    def where(self) -> str:
        """The raster as a user names it: ``product.zip!folder/file.tif`` or its path."""
        return f"{self.archive}!{self.member}" if self.archive is not None else self.gdal_path


@dataclass(frozen=True)
class MajaProduct:
    id: str
    platform: str
    tile: str  # "31TCJ", without the leading T
    nature: str | None  # "C" or "D", opaque
    version: str | None  # "2-2" from the name
    product_version: str | None  # "2.2" from the MTD
    level: str
    acquired: datetime
    produced: datetime | None
    absolute_orbit: int | None
    relative_orbit: int | None
    epsg: int
    grids: dict[str, Grid]
    corners: dict[str, tuple[float, float]]
    sun_zenith: float | None
    sun_azimuth: float | None
    viewing: dict[str, tuple[float, float]]
    cloud_percent: float | None
    snow_percent: float | None
    quality: dict[str, str]
    reflectance_quantification: float
    aot_quantification: float
    wvc_quantification: float
    special_values: dict[str, float]
    band_groups: dict[str, tuple[str, ...]]
    atb_bands: dict[str, int]  # {"wvc": 1, "aot": 2}
    rasters: tuple[RasterFile, ...]
    quicklook: str | None
    mtd: str
    jpi: str | None
    valid: bool | None  # JPI flag: L2VALD True, L2NOTV False
    maja_version: str | None
    source: str = field(compare=False)  # the zip or folder given to read_product
    root: str = field(compare=False)  # GDAL path of the product folder (/vsizip/… for a zip)
    spectral: dict[str, SpectralInfo] = field(default_factory=dict)  # MAJA band id → the MTD's values
    zip_prefix: str | None = field(default=None, compare=False)  # the product folder inside the zip; None: a folder

    @property
    def reflectance_nodata(self) -> float:
        return self.special_values.get("nodata", -10000.0)

    @property
    def mean_viewing_zenith(self) -> float | None:
        values = [z for z, _ in self.viewing.values()]
        return sum(values) / len(values) if values else None

    @property
    def mean_viewing_azimuth(self) -> float | None:
        """The bands' mean viewing azimuth (a circular mean: 359° and 1° average to 0°)."""
        if not self.viewing:
            return None
        x = sum(math.cos(math.radians(a)) for _, a in self.viewing.values())
        y = sum(math.sin(math.radians(a)) for _, a in self.viewing.values())
        return round(math.degrees(math.atan2(y, x)) % 360.0, 6)

    def gdal_path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def raster_source(self, raster: RasterFile) -> RasterSource:
        if self.zip_prefix is None:
            return RasterSource(self.gdal_path(raster.path))
        return RasterSource(self.gdal_path(raster.path), self.source, self.zip_prefix + raster.path,
                            raster.pixel_bytes + MEMBER_SLACK_BYTES if raster.pixel_bytes else None)

    def files(self, kind: str) -> list[RasterFile]:
        return [r for r in self.rasters if r.kind == kind]


class _Container:
    """Files of a product, in a zip or a folder, addressed by their path inside the product."""

    def __init__(self, path: Path) -> None:
        if path.is_file() and path.name.endswith(MTD_SUFFIX):
            path = path.parent  # the MTD itself was given: read its folder
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        try:
            str(path.resolve()).encode("utf-8")
        except UnicodeEncodeError:
            raise ProductError(path, "the path is not valid UTF-8, which GDAL cannot open; rename the folder or file "
                                     "(e.g. with convmv) and ingest it again") from None
        if path.is_dir():
            mtds = sorted(p.name for p in path.iterdir() if p.name.endswith(MTD_SUFFIX))
            if mtds and (path / mtds[0]).is_dir():
                raise ProductError(path / mtds[0], "is a folder, not the product's metadata file")
            self._check_one(mtds)
            self.mtd = _check_relative(path, mtds[0])
            self.prefix = ""
            self.root = str(path.resolve())
            return
        if not path.exists():
            raise ProductError(path, "no such file or folder")
        if not path.is_file():
            raise ProductError(path, "not a regular file or folder (a pipe, a socket or a device?)")
        try:
            self.zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise ProductError(path, "not a readable zip (truncated or corrupt); download it again") from None
        except OSError as exc:
            raise ProductError(path, f"cannot open ({exc.strerror})") from None
        self.names = set(self.zip.namelist())
        mtds = sorted(n for n in self.names if n.endswith(MTD_SUFFIX) and n.count("/") <= 1)
        self._check_one(mtds)
        self.prefix = posixpath.dirname(mtds[0])
        if self.prefix:
            self.prefix += "/"
        _check_relative(path, mtds[0])
        self.mtd = posixpath.basename(mtds[0])
        self.root = f"/vsizip/{path.resolve()}" + (f"/{self.prefix.rstrip('/')}" if self.prefix else "")

    def _check_one(self, mtds: list[str]) -> None:
        if not mtds:
            raise ProductError(self.path, f"no *{MTD_SUFFIX} inside: not a MAJA (MUSCATE) product")
        if len(mtds) > 1:
            raise ProductError(self.path, f"holds {len(mtds)} products ({', '.join(mtds)}); give one product per zip or folder")

    def exists(self, relative: str) -> bool:
        if self.zip is not None:
            return self.prefix + relative in self.names
        full = self.path / relative
        return full.is_file() and full.resolve().is_relative_to(self.path.resolve())

    def read_bytes(self, relative: str) -> bytes:
        where = f"{self.path}/{relative}" if self.zip is None else f"{self.path}!{self.prefix}{relative}"
        try:
            if self.zip is not None:
                info = self.zip.getinfo(self.prefix + relative)
                if info.file_size > MAX_XML_BYTES:
                    raise ProductError(where, f"{info.file_size} bytes is too large for a metadata file")
                return self.zip.read(info)
            full = self.path / relative
            if full.is_dir():
                raise ProductError(where, "is a folder where the product should have a file")
            if not full.is_file() and full.exists():
                raise ProductError(where, "is not a regular file")
            if full.stat().st_size > MAX_XML_BYTES:
                raise ProductError(where, "too large for a metadata file")
            return full.read_bytes()
        except KeyError:
            raise ProductError(where, "missing from the product") from None
        except OSError as exc:
            if self.zip is None:
                raise ProductError(where, f"cannot be read ({exc.strerror or exc})") from None
            raise ProductError(where, f"unreadable ({exc}); the archive is corrupt") from None
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ProductError(where, f"unreadable ({exc}); the archive is corrupt") from None

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _check_relative(source: Path, relative: str) -> str:
    """Normalise a path from the MTD and refuse one that leaves the product."""
    rel = relative.replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    norm = posixpath.normpath(rel)
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or re.match(r"^[A-Za-z]:", norm):
        raise ProductError(source, f"the MTD lists {shown(relative)}, which points outside the product")
    problem = name_problem(posixpath.basename(norm))  # the file name is reused for what we write
    if problem is not None:
        raise ProductError(source, f"the MTD lists the file {shown(relative)}, whose name {problem}")
    return norm


def _classify(entry: FileEntry) -> tuple[str, str | None, str | None, str | None]:
    """(kind, group, band_id, detector) from the file name, then from the MTD attributes."""
    name = posixpath.basename(entry.path)
    if m := _REFLECTANCE.search(name):
        return m.group(1).upper(), entry.group_id, normalize_band_id(m.group(2)), None
    if m := _ATB.search(name):
        return "ATB", m.group(1).upper(), None, None
    if m := _MASK.search(name):
        detector = m.group(3) or entry.detector_id
        return m.group(1).upper(), m.group(2).upper(), None, detector
    kind = NATURE_KIND.get(entry.nature, "OTHER")
    band = normalize_band_id(entry.band_id) if entry.band_id and kind in REFLECTANCE_KINDS else None
    return kind, entry.group_id, band, entry.detector_id


def _group_of_band(band: str, band_groups: dict[str, tuple[str, ...]]) -> str | None:
    for group, bands in band_groups.items():
        if band in {normalize_band_id(b) for b in bands}:
            return group
    for group, bands in L2A_GROUPS.items():
        if band in bands:
            return group
    return None


@dataclass(frozen=True)
class ProductIdentity:
    """What says whether a product is already in a catalog, from its MTD alone."""

    id: str
    platform: str
    tile: str
    acquired: datetime


def _read_identity(source: Path, container: _Container):
    mtd_where = f"{source}/{container.mtd}" if container.zip is None else f"{source}!{container.prefix}{container.mtd}"
    mtd = parse_mtd(container.read_bytes(container.mtd), mtd_where)
    name = NAME_PATTERN.match(mtd.id)
    platform = re.sub(r"[-_ ]", "", mtd.platform or (name.group("platform") if name else "")).upper()
    tile = (mtd.tile or (name.group("tile") if name else "")).upper()
    tile = tile[1:] if tile.startswith("T") and len(tile) == 6 else tile
    if not platform or not tile:
        raise ProductError(mtd_where, "cannot tell the platform and tile (no PLATFORM/GEOGRAPHICAL_ZONE and the id is not a MUSCATE name)")
    # the id and the tile name the product's folders in a catalog: checked here, once
    if (problem := name_problem(mtd.id)) is not None:
        raise ProductError(mtd_where, f"its PRODUCT_ID {shown(mtd.id)} cannot be an item id: it {problem}")
    if not TILE_NAME.fullmatch(tile):
        raise ProductError(mtd_where, f"its tile {shown(tile)} is not a Sentinel-2 tile name (two digits, three letters)")
    return mtd, name, ProductIdentity(mtd.id, platform, tile, mtd.acquired)


def read_identity(path: str | os.PathLike[str]) -> ProductIdentity:
    """Id, platform, tile and date of a product, reading its MTD only (no raster is opened):
    enough to skip a product already ingested. Same errors as :func:`read_product`."""
    source = Path(path)
    container = _Container(source)
    try:
        return _read_identity(source, container)[2]
    finally:
        container.close()


def read_product(path: str | os.PathLike[str]) -> MajaProduct:
    """Read one MAJA product (zip, folder, or the folder's MTD file).

    Raises ProductError naming the file for anything a user can fix: a missing, corrupt or
    hostile MTD, a damaged zip, a file the MTD lists that is absent or unreadable.
    """
    source = Path(path)
    container = _Container(source)
    try:
        mtd, name, identity = _read_identity(source, container)
        platform, tile = identity.platform, identity.tile

        grids = {g: Grid(g, *values) for g, values in mtd.grids.items()}
        _check_tile(source, tile, mtd.epsg, grids)
        rasters = _rasters(source, container, mtd, grids)

        quicklook = _check_relative(source, mtd.quicklook) if mtd.quicklook else None
        if quicklook and not container.exists(quicklook):
            quicklook = None
        jpi = _check_relative(source, mtd.jpi) if mtd.jpi else f"DATA/{mtd.id}_JPI_ALL.xml"
        valid = None
        maja_version = mtd.maja_version
        if container.exists(jpi):
            jpi_root = parse_xml(container.read_bytes(jpi), f"{source}/{jpi}")
            valid = find_validity(jpi_root)
            maja_version = maja_version or find_maja_version(jpi_root)
        else:
            jpi = None

        atb_bands = {"wvc": 1, "aot": 2}
        for entry in mtd.images:
            if entry.band_number is not None and entry.nature == "Water_Vapor_Content":
                atb_bands["wvc"] = entry.band_number
            if entry.band_number is not None and entry.nature == "Aerosol_Optical_Thickness":
                atb_bands["aot"] = entry.band_number

        absolute = mtd.absolute_orbit
        return MajaProduct(
            id=mtd.id,
            platform=platform,
            tile=tile,
            nature=name.group("nature") if name else None,
            version=name.group("version") if name else None,
            product_version=mtd.product_version,
            level=mtd.level or (name.group("level") if name else "L2A"),
            acquired=mtd.acquired,
            produced=mtd.produced,
            absolute_orbit=absolute,
            relative_orbit=relative_orbit(platform, absolute) if absolute is not None else None,
            epsg=mtd.epsg,
            grids=grids,
            corners=mtd.corners,
            sun_zenith=mtd.sun_zenith,
            sun_azimuth=mtd.sun_azimuth,
            viewing={normalize_band_id(k): v for k, v in mtd.viewing.items()},
            cloud_percent=_percent(mtd.quality.get("CloudPercent")),
            snow_percent=_percent(mtd.quality.get("SnowPercent")),
            quality=mtd.quality,
            reflectance_quantification=mtd.reflectance_quantification or 10000.0,
            aot_quantification=mtd.aot_quantification or 200.0,
            wvc_quantification=mtd.wvc_quantification or 20.0,
            special_values=mtd.special_values,
            band_groups=mtd.band_groups,
            atb_bands=atb_bands,
            rasters=rasters,
            quicklook=quicklook,
            mtd=container.mtd,
            jpi=jpi,
            valid=valid,
            maja_version=maja_version,
            source=str(source),
            root=container.root,
            spectral={normalize_band_id(k): v for k, v in mtd.spectral.items()},
            zip_prefix=container.prefix if container.zip is not None else None,
        )
    finally:
        container.close()


def read_member(product: MajaProduct, relative: str) -> bytes:
    """Bytes of a small file of the product (quicklook, MTD), read in place from a zip."""
    container = _Container(Path(product.source))
    try:
        return container.read_bytes(relative)
    finally:
        container.close()


@contextmanager
def local_raster(source: RasterSource, scratch: Path) -> Iterator[str]:
    """A path to ``source`` that GDAL can read front to back: the file itself, the zip
    member in place when its strips are stored in row order, or else the member inflated
    once to ``scratch`` (removed afterwards).

    Why: ``/vsizip/`` seeks backwards by inflating again from its last snapshot, and it keeps
    only one per 1 % of the member (at least 64 KB). GDAL writes the all-zero strips of an
    uncompressed GeoTIFF after the others, so a mask with some set rows (SAT, CLM with
    clouds) is read out of order: a 5490² SAT mask took 12 s through ``/vsizip/`` and 0.1 s
    once extracted, and GDAL's COG driver reads its source twice. A member that inflates to
    more than its header's pixels is refused before anything is read."""
    path = source.gdal_path if source.archive is None else _stage(source, scratch)
    try:
        yield path
        if source.archive is not None and path == source.gdal_path:
            verify_member(source)  # GDAL checks no CRC: a flipped byte would land as a wrong pixel
    finally:
        if path != source.gdal_path:
            scratch.unlink(missing_ok=True)


def _stage(source: RasterSource, scratch: Path) -> str:
    try:
        with zipfile.ZipFile(source.archive or "") as archive:
            info = archive.getinfo(source.member or "")
            if source.max_bytes is not None and info.file_size > source.max_bytes:
                raise ProductError(source.where, f"inflates to {info.file_size} bytes, more than the {source.max_bytes} "
                                                 "its raster header allows; the archive is damaged or hostile")
            if _strips_in_order(source.gdal_path):
                return source.gdal_path
            with archive.open(info) as member, open(scratch, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
            return str(scratch)
    except KeyError:
        raise ProductError(source.where, "missing from the product") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        scratch.unlink(missing_ok=True)
        raise _corrupt(source, exc) from None
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


# What reading a member through its CRC check raises when the member is damaged.
_DAMAGED = (zipfile.BadZipFile, zlib.error, isal_zlib.error, EOFError, RuntimeError)  # RuntimeError: encrypted


def verify_member(source: RasterSource) -> None:
    """Read a zip member GDAL has read in place once more, front to back, so that its CRC
    is checked (GDAL checks none, and an inflated member that :func:`_stage` extracted has
    been checked by :mod:`zipfile` already). A STORED member with a flipped byte, or a
    deflated one whose stream is valid but whose CRC is wrong, is a ProductError naming it.
    Its cost is measured in ``benchmarks/bench_ingest.py`` (the "CRC check" stage)."""
    if source.archive is None or source.member is None:
        return
    try:
        _check_crc(source)
    except KeyError:
        raise ProductError(source.where, "missing from the product") from None
    except (*_DAMAGED, OSError) as exc:
        raise _corrupt(source, exc) from None


def check_member(source: RasterSource) -> None:
    """Raise a ProductError if ``source`` is a zip member that fails its CRC: what to tell
    the user when GDAL could not read a member in place (a member missing or unreadable
    for another reason is left to GDAL's own error)."""
    if source.archive is None or source.member is None:
        return
    try:
        _check_crc(source)
    except _DAMAGED as exc:
        raise _corrupt(source, exc) from None
    except (KeyError, OSError):
        return


def _check_crc(source: RasterSource) -> None:
    """Raise one of :data:`_DAMAGED` if the member's content does not match its size and
    CRC-32 (KeyError if it is missing, OSError if the archive cannot be read)."""
    with zipfile.ZipFile(source.archive or "") as archive:
        info = archive.getinfo(source.member or "")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            with archive.open(info) as member:  # zipfile inflates it and checks the CRC itself
                while member.read(CRC_READ_CHUNK):
                    pass
            return
        crc, size = _member_crc(archive, info)
    if crc != info.CRC:  # first, as zipfile says it: a damaged stream also comes out short
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    if size != info.file_size:
        raise zipfile.BadZipFile(f"inflates to {size} bytes, its header says {info.file_size}")


def _member_crc(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, int]:
    """(CRC-32, size) of a member's content. zipfile parses and checks the local header and
    hands over the raw stream (read as STORED, without its own CRC check); ISA-L inflates it
    and sums it, 1.8x as fast as zlib (574 against 322 MB/s here): the check is then about 4 %
    of a 1-core ingest instead of 8.5 %."""
    raw_info = copy.copy(info)
    raw_info.compress_type, raw_info.file_size, raw_info.CRC = zipfile.ZIP_STORED, info.compress_size, None
    inflater = isal_zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    crc = size = 0
    with archive.open(raw_info) as stream:
        while chunk := stream.read(CRC_READ_CHUNK):
            data = inflater.decompress(chunk, MEMBER_SLACK_BYTES + info.file_size - size) if inflater else chunk
            crc, size = isal_zlib.crc32(data, crc), size + len(data)
            if size > info.file_size:
                break  # more than announced: the caller says so, nothing more is inflated
        if inflater is not None and size <= info.file_size:
            tail = inflater.flush()
            crc, size = isal_zlib.crc32(tail, crc), size + len(tail)
            if not inflater.eof:
                raise zipfile.BadZipFile("the compressed stream ends before its end marker")
    return crc, size


def _corrupt(source: RasterSource, exc: Exception) -> ProductError:
    problem = "fails its CRC check" if "CRC" in str(exc) else f"cannot be inflated ({exc or type(exc).__name__})"
    return ProductError(source.where, f"{problem}; the archive is corrupt, download it again")


def _strips_in_order(gdal_path: str) -> bool:
    """Whether GDAL reading the raster row by row only ever seeks forward: strips (not
    tiles) whose offsets grow with the row, band by band. An unreadable header says no:
    the extraction then says what is wrong."""
    try:
        with rasterio.open(gdal_path) as ds:
            rows_per_strip, width = ds.block_shapes[0]
            if width != ds.width:
                return False
            for band in ds.indexes:
                last = 0
                for row in range(math.ceil(ds.height / rows_per_strip)):
                    offset = int(ds.get_tag_item(f"BLOCK_OFFSET_0_{row}", "TIFF", bidx=band) or 0)
                    if 0 < offset < last:
                        return False
                    last = max(last, offset)
    except (RasterioError, ValueError):
        return False
    return True


def _percent(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _check_tile(source: Path, tile: str, epsg: int, grids: dict[str, Grid]) -> None:
    """The MTD's tile, CRS and grid origins must agree with the Sentinel-2 tiling grid: a
    product whose metadata names one tile over another's rasters is refused, not filed
    under the wrong tile."""
    try:
        expected = tile_grid(tile)
    except FullMajaError:
        return  # a tile outside ESA's grid: nothing to compare with
    if epsg != expected.epsg:
        raise ProductError(source, f"the MTD says tile {tile} (EPSG:{expected.epsg}) but its CRS is EPSG:{epsg}; "
                                   "the product contradicts itself")
    for group, grid in grids.items():
        inside_x = expected.ulx - abs(grid.xdim) / 2 <= grid.ulx < expected.ulx + TILE_SIZE_M
        inside_y = expected.uly - TILE_SIZE_M < grid.uly <= expected.uly + abs(grid.ydim) / 2
        if not (inside_x and inside_y):
            raise ProductError(source, f"the MTD's {group} grid starts at ({grid.ulx:.0f}, {grid.uly:.0f}), outside tile "
                                       f"{tile} (upper-left corner ({expected.ulx:.0f}, {expected.uly:.0f})); "
                                       "the product contradicts itself")


def _rasters(source: Path, container: _Container, mtd, grids: dict[str, Grid]) -> tuple[RasterFile, ...]:
    """Every distinct file of Image_List and Mask_List, classified and checked on disk."""
    by_path: dict[str, tuple[str, str | None, str | None, str | None, list[str]]] = {}
    for entry in [*mtd.images, *mtd.masks]:
        rel = _check_relative(source, entry.path)
        kind, group, band, detector = _classify(entry)
        if kind in REFLECTANCE_KINDS and band and not group:
            group = _group_of_band(band, mtd.band_groups)
        if rel in by_path:
            if entry.nature and entry.nature not in by_path[rel][4]:
                by_path[rel][4].append(entry.nature)
            continue
        by_path[rel] = (kind, group, band, detector, [entry.nature] if entry.nature else [])
    if not any(k in REFLECTANCE_KINDS for k, *_ in by_path.values()):
        raise ProductError(source, "the MTD lists no FRE or SRE reflectance image")

    rasters = []
    for rel, (kind, group, band, detector, natures) in by_path.items():
        where = f"{source}/{rel}" if container.zip is None else f"{source}!{container.prefix}{rel}"
        if not container.exists(rel):
            raise ProductError(where, "listed in the MTD but missing from the product")
        try:
            with rasterio.open(f"{container.root}/{rel}") as ds:
                dtype, count, shape = ds.dtypes[0], ds.count, (ds.height, ds.width)
                pixel_bytes = ds.height * ds.width * sum(np.dtype(t).itemsize for t in ds.dtypes)
                epsg, origin = (ds.crs.to_epsg() if ds.crs else None), (ds.transform.c, ds.transform.f)
        except RasterioError as exc:
            raise ProductError(where, f"listed in the MTD but unreadable ({exc})") from None
        if group is None and kind not in REFLECTANCE_KINDS:  # a mask or ATB named without _R1/_R2: its grid by size
            same = [g for g, grid in grids.items() if grid.shape == shape]
            group = same[0] if len(same) == 1 else None
        grid = grids.get(group or "")
        if grid is not None and shape != grid.shape:
            raise ProductError(where, f"is {shape[0]}x{shape[1]} px but the {group} grid in the MTD is {grid.nrows}x{grid.ncols}"
                                      f"{CROPPED_HINT}")
        if epsg is not None and epsg != mtd.epsg:
            raise ProductError(where, f"is in EPSG:{epsg} but the MTD says EPSG:{mtd.epsg}; the product contradicts itself")
        if grid is not None and (abs(origin[0] - grid.ulx) > abs(grid.xdim) * GRID_TOLERANCE
                                 or abs(origin[1] - grid.uly) > abs(grid.ydim) * GRID_TOLERANCE):
            raise ProductError(where, f"starts at ({origin[0]:.2f}, {origin[1]:.2f}) but the MTD's {group} grid starts at "
                                      f"({grid.ulx:.2f}, {grid.uly:.2f}); the product contradicts itself{CROPPED_HINT}")
        rasters.append(RasterFile(rel, kind, group, band, dtype, count, detector, tuple(natures), pixel_bytes))
    return tuple(rasters)
