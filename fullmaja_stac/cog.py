"""Convert one band of a MAJA raster into a Cloud-Optimized GeoTIFF with rio-cogeo.

Measurements (reflectance, ATB) get overviews averaged; masks and bitfields get ``nearest``
so an overview pixel only ever holds a value that exists at full resolution. Integer data is
DEFLATE-compressed with the horizontal predictor; flags without predictor (it does not help
bitfields). Written to a temporary name, then renamed: a killed run leaves no half COG.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from fullmaja_stac.errors import ProductError

BLOCK_SIZE = 512
IN_MEMORY_MAX_PIXELS = 11_000 * 11_000  # a full S2 band (~240 MB as int16) stays in RAM
GDAL_CONFIG = {"GDAL_NUM_THREADS": "1", "GDAL_TIFF_OVR_BLOCKSIZE": str(BLOCK_SIZE), "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif"}


@dataclass(frozen=True)
class CogResult:
    path: str
    size: int
    checksum: str  # multihash: sha2-256 (0x12), 32 bytes (0x20), hex digest


def multihash_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "1220" + digest.hexdigest()


def convert(source: str, target: str, band_index: int, nodata: float | None, resampling: str, predictor: bool) -> CogResult:
    """Write band ``band_index`` of GDAL path ``source`` as a COG at ``target``."""
    dst = Path(target)
    tmp = dst.with_name(f".{dst.name}.tmp")
    profile = dict(cog_profiles.get("deflate"), blockxsize=BLOCK_SIZE, blockysize=BLOCK_SIZE)
    if predictor:
        profile["predictor"] = 2
    try:
        with rasterio.Env(**GDAL_CONFIG), rasterio.open(source) as src:
            cog_translate(
                src, tmp, profile,
                indexes=[band_index],
                nodata=nodata,
                overview_resampling=resampling,
                config=GDAL_CONFIG,
                quiet=True,
                in_memory=src.width * src.height <= IN_MEMORY_MAX_PIXELS,
            )
        os.replace(tmp, dst)
    except RasterioError as exc:
        tmp.unlink(missing_ok=True)
        raise ProductError(source, f"cannot convert to COG ({exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return CogResult(str(dst), dst.stat().st_size, multihash_sha256(dst))
