"""Convert one band of a MAJA raster into a Cloud-Optimized GeoTIFF with rio-cogeo.

Measurements (reflectance, ATB) get overviews averaged; masks and bitfields get ``nearest``
so an overview pixel only ever holds a value that exists at full resolution. Integer data is
DEFLATE-compressed with the horizontal predictor; flags without predictor (it does not help
bitfields). Written to a temporary name, then renamed: a killed run leaves no half COG.

The GeoTIFF says what its numbers mean, so that QGIS, GDAL and rio-tiler need no STAC: the
source band is read through a small VRT that carries its scale, offset and description
(units, which rio-cogeo does not carry over, are part of the description), and GDAL's COG
driver (through rio-cogeo) stores them with the band statistics it computes while writing.
The statistics are returned for the item's ``raster:bands``.

Each source is read once: a zip member in place, or inflated once to a scratch file when
GDAL would read its strips out of order (:func:`~fullmaja_stac.maja.product.local_raster`);
rio-cogeo copies it into its uncompressed intermediate, which has the no-data value (given
in the profile) for its overviews and statistics. rio-cogeo reads its source through a
WarpedVRT, whose warper runs a per-pixel kernel even onto the same grid; our calls read a
source on its own grid directly instead (:class:`_WarpedUnlessSameGrid`). The no-data
value is deliberately not on the VRT that rio-cogeo reads: rio-cogeo would then ask its
WarpedVRT to mask it, which is a real warp.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from xml.sax.saxutils import escape

import rasterio
import rio_cogeo.cogeo
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from fullmaja_stac.errors import ProductError
from fullmaja_stac.maja.product import RasterSource, check_member, local_raster

BLOCK_SIZE = 512
# rio-cogeo's intermediate for larger rasters is a temporary file beside the target instead
# of RAM: with the cache below, a worker peaks near 0.27 GB on a full-size product (bench_ingest),
# 0.61 GB with every band's intermediate in RAM; the file stays in the page cache (unborn_intermediate).
IN_MEMORY_MAX_PIXELS = 4096 * 4096
# GDAL's block cache defaults to 5 % of the machine's RAM per process: 6 GB in each of 16
# workers on a 128 GB machine. 64 MB holds the rows of tiles a conversion works on: a 5490 px
# band and the visual ran as fast with 16 MB as with the default 1.2 GB, and a worker peaked
# at 0.27 GB resident instead of 0.56 GB.
GDAL_CACHE_MB = 64
GDAL_CONFIG = {"GDAL_NUM_THREADS": "1", "GDAL_TIFF_OVR_BLOCKSIZE": str(BLOCK_SIZE), "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif",
               "GDAL_CACHEMAX": GDAL_CACHE_MB << 20}  # rasterio passes an int to GDAL as bytes


@contextmanager
def unborn_intermediate(dst_path: str | os.PathLike[str], suffix: str = ".tif"):
    """rio-cogeo's ``TemporaryRasterFile`` (its intermediate beside the COG, removed after),
    except that the file does not exist yet when GDAL creates it.

    rio-cogeo makes the file first (``NamedTemporaryFile``) and GDAL then opens it again with
    ``O_TRUNC``. ext4 (``auto_da_alloc``) and XFS take a truncated file for one being
    rewritten, and write it to disk when it is closed: the 240 MB intermediate of every 10 m
    band went to disk seconds before being deleted (and, on a ``discard`` mount, was trimmed),
    and the workers waited on it: 4 % of a full-size ingest, on one core as on two. A new file
    in a private folder stays in the page cache and is dropped unwritten."""
    parent = Path(dst_path).parent
    folder = Path(tempfile.mkdtemp(dir=parent if parent.is_dir() else None, prefix=".cog-intermediate-"))
    try:
        yield SimpleNamespace(name=str(folder / f"intermediate{suffix}"))  # path-ok: our own name
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# cog_translate looks the helper up in its module when it needs an intermediate on disk.
rio_cogeo.cogeo.TemporaryRasterFile = unborn_intermediate

# What rio-cogeo asks of its WarpedVRT when it only copies: the source's own size and type.
_COPY_ONLY_WARP = {"dtype", "width", "height", "resampling"}


class _WarpedUnlessSameGrid:
    """rio-cogeo's ``WarpedVRT(src, **params)``, except that a warp onto the source's own
    grid (same size, same data type, no no-data, alpha or GCPs to handle) reads the source
    directly. rio-cogeo always copies its source into the intermediate through a WarpedVRT
    (its issue #292, open); GDAL's warper then runs its per-pixel kernel for what is a copy:
    0.7 s more per 10980² raster than reading the source (0.82 s against 0.13 s for a mask,
    0.96 s against 0.28 s for a reflectance band): a full-size ingest took 113 s, now 101 s.

    A class, though it makes no instance of itself: rio-cogeo also names ``WarpedVRT`` in an
    ``isinstance`` check, which a function would make fail."""

    def __new__(cls, src_dataset, **params):
        same_grid = (set(params) <= _COPY_ONLY_WARP and not src_dataset.gcps[0]
                     and params.get("width", src_dataset.width) == src_dataset.width
                     and params.get("height", src_dataset.height) == src_dataset.height
                     and all(dtype == params.get("dtype", dtype) for dtype in src_dataset.dtypes))
        return nullcontext(src_dataset) if same_grid else WarpedVRT(src_dataset, **params)


@contextmanager
def _copy_without_warping():
    """Within this block, rio-cogeo reads a source on its own grid without GDAL's warper
    (:class:`_WarpedUnlessSameGrid`). Scoped to our own calls, so that other users of
    rio-cogeo in the process keep its WarpedVRT; a conversion in another thread at the same
    moment may get the real WarpedVRT back early, which is slower and writes the same bytes."""
    rio_cogeo.cogeo.WarpedVRT = _WarpedUnlessSameGrid
    try:
        yield
    finally:
        rio_cogeo.cogeo.WarpedVRT = WarpedVRT


GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
              "int32": "Int32", "float32": "Float32", "float64": "Float64"}
STATISTICS = {"STATISTICS_MINIMUM": "minimum", "STATISTICS_MAXIMUM": "maximum", "STATISTICS_MEAN": "mean",
              "STATISTICS_STDDEV": "stddev", "STATISTICS_VALID_PERCENT": "valid_percent"}


@dataclass(frozen=True)
class CogResult:
    path: str
    size: int
    checksum: str  # multihash: sha2-256 (0x12), 32 bytes (0x20), hex digest
    statistics: dict[str, float] | None = None  # minimum, maximum, mean, stddev, valid_percent (raw values)


def multihash_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "1220" + digest.hexdigest()


def _vrt_dataset_start(src) -> str:
    """The opening of a VRT on ``src``'s grid: size, CRS and geotransform."""
    srs = f"<SRS>{escape(src.crs.to_wkt())}</SRS>" if src.crs else ""
    transform = ", ".join(repr(v) for v in src.transform.to_gdal())
    return f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}">{srs}<GeoTransform>{transform}</GeoTransform>'


def band_vrt(src, band_index: int, scale: float | None, offset: float | None, description: str | None) -> str:
    """A one-band VRT over ``src``'s band that adds what the GeoTIFF should say about it
    (the no-data value goes in the COG profile, see the module's docstring)."""
    def text(value: object) -> str:
        return escape(str(value))

    parts = [_vrt_dataset_start(src)]
    parts.append(f'<VRTRasterBand dataType="{GDAL_TYPES[src.dtypes[band_index - 1]]}" band="1">')
    if description:
        parts.append(f"<Description>{text(description)}</Description>")
    if scale is not None:
        parts.append(f"<Offset>{(offset or 0.0)!r}</Offset><Scale>{scale!r}</Scale>")
    parts.append(f'<SimpleSource><SourceFilename relativeToVRT="0">{text(src.name)}</SourceFilename>'
                 f"<SourceBand>{band_index}</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>")
    return "".join(parts)


def _profile(nodata: float | None, predictor: bool, **extra) -> dict:
    profile = dict(cog_profiles.get("deflate"), blockxsize=BLOCK_SIZE, blockysize=BLOCK_SIZE, **extra)
    if predictor:
        profile["predictor"] = 2
    if nodata is not None:
        profile["nodata"] = nodata
    return profile


@contextmanager
def _temporary_cog(dst: Path, sources: list[RasterSource], doing: str):
    """The temporary name beside ``dst`` that a COG is written to, then renamed by the caller.
    If anything fails the file is removed (a killed run leaves no half COG); a GDAL error is
    said against the first source, once the sources' zip members have had their CRCs checked
    so that a damaged one is named as such."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        yield tmp
    except RasterioError as exc:
        tmp.unlink(missing_ok=True)
        for source in sources:
            check_member(source)
        raise ProductError(sources[0].where, f"cannot {doing} ({exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def convert(source: RasterSource | str, target: str, band_index: int, nodata: float | None, resampling: str,
            predictor: bool, scale: float | None = None, offset: float | None = None,
            description: str | None = None) -> CogResult:
    """Write band ``band_index`` of ``source`` (a GDAL path or a zip member) as a COG at
    ``target``, with its scale, offset, nodata, description and statistics."""
    dst = Path(target)
    source = source if isinstance(source, RasterSource) else RasterSource(source)
    profile = _profile(nodata, predictor, statistics="YES")
    with _temporary_cog(dst, [source], "convert to COG") as tmp:
        with rasterio.Env(**GDAL_CONFIG), local_raster(source, dst.with_name(f".{dst.name}.src")) as path, \
                rasterio.open(path) as src, rasterio.open(band_vrt(src, band_index, scale, offset, description)) as band, \
                _copy_without_warping():
            cog_translate(
                band, tmp, profile,
                indexes=[1],
                nodata=None,  # in the profile: see the module's docstring
                overview_resampling=resampling,
                config=GDAL_CONFIG,
                quiet=True,
                in_memory=src.width * src.height <= IN_MEMORY_MAX_PIXELS,
                use_cog_driver=True,
            )
        with rasterio.open(tmp) as written:
            tags = written.tags(1)
        statistics = {name: float(tags[key]) for key, name in STATISTICS.items() if key in tags} or None
        os.replace(tmp, dst)
    return CogResult(str(dst), dst.stat().st_size, multihash_sha256(dst), statistics)


# True colour: reflectance 0 → 1 and VISUAL_MAX_REFLECTANCE → 255, linear, brighter saturates
# (clouds are white); 0 is no-data. Negative reflectances (rare, over water) show as 1.
VISUAL_MAX_REFLECTANCE = 0.25
# The true-colour COG is a product's longest task (a full-size one took 12.4 s where a 10 m band
# takes about 9): on a machine with more cores than a product has tasks left, it alone would hold
# the end of the ingest. In a pool, GDAL's COG driver compresses its tiles on this many threads
# (of the machine the worker runs on): 9.4 s with 2 on a 2-core machine, for the same CPU time
# (11.7 s against 12.4 s) and the same bytes.
VISUAL_COMPRESS_THREADS = min(4, os.cpu_count() or 1)


def visual_vrt(sources: list[tuple[str, int]], nodata: float, quantification: float) -> str:
    """A 3-band Byte VRT (red, green, blue) stretched from the int16 reflectance bands by a
    lookup table; GDAL streams it block by block, so no band is held whole in memory.
    ``sources``: (GDAL path, band) of each, readable front to back (:func:`local_raster`)."""
    top = int(round(VISUAL_MAX_REFLECTANCE * quantification))
    lut = f"{nodata:g}:0,{nodata + 1:g}:1,0:1,{top}:255"
    with rasterio.open(sources[0][0]) as first:
        parts = [_vrt_dataset_start(first)]
    for i, ((path, band), colour) in enumerate(zip(sources, ("Red", "Green", "Blue")), start=1):
        parts.append(f'<VRTRasterBand dataType="Byte" band="{i}">'
                     f"<ColorInterp>{colour}</ColorInterp><Description>{colour.lower()} (true colour, reflectance 0 to "
                     f"{VISUAL_MAX_REFLECTANCE:g} stretched to 1-255)</Description>"
                     f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename>'
                     f"<SourceBand>{band}</SourceBand><LUT>{lut}</LUT></ComplexSource></VRTRasterBand>")
    parts.append("</VRTDataset>")
    return "".join(parts)


def convert_visual(sources: list[RasterSource | str], target: str, nodata: float, quantification: float,
                   band_indexes: tuple[int, int, int] = (1, 1, 1), compress_threads: int | None = None) -> CogResult:
    """A 3-band 8-bit true-colour COG (B4, B3, B2) that any viewer shows without settings.

    Made from the product's own rasters (zip members read in place, see :func:`convert`),
    not from the band COGs: it does not wait for them, so it can start first. It is the
    longest task of a product; made last, after its bands, it ran alone at the end of a
    one-product ingest on 8 cores or more. ``compress_threads``: None for
    :data:`VISUAL_COMPRESS_THREADS`, 1 for an ingest asked to run in one process."""
    dst = Path(target)
    rasters = [source if isinstance(source, RasterSource) else RasterSource(source) for source in sources]
    profile = _profile(0, True, photometric="RGB", num_threads=compress_threads or VISUAL_COMPRESS_THREADS)
    with _temporary_cog(dst, rasters, "make the true-colour COG") as tmp:
        with rasterio.Env(**GDAL_CONFIG), ExitStack() as stack:
            paths = [(stack.enter_context(local_raster(raster, dst.with_name(f".{dst.name}.{i}.src"))), band)
                     for i, (raster, band) in enumerate(zip(rasters, band_indexes))]
            with rasterio.open(visual_vrt(paths, nodata, quantification)) as rgb, _copy_without_warping():
                cog_translate(rgb, tmp, profile, nodata=None, overview_resampling="average", config=GDAL_CONFIG,
                              quiet=True, in_memory=rgb.width * rgb.height <= IN_MEMORY_MAX_PIXELS, use_cog_driver=True)
        os.replace(tmp, dst)
    return CogResult(str(dst), dst.stat().st_size, multihash_sha256(dst))
