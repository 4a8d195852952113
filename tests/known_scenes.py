"""Products whose rasters we paint with known clouds, shadows, cirrus, edges, saturation and
water, for the analysis-ready loader's tests: every expectation is a numpy count on these
arrays, never the loader's own output.

The masks follow the consistency rules MAJA's code implies (CLM bit 0 set wherever bit 1, 5
or 6 is, MG2 bit 1 = CLM bit 1, MG2 bit 3 = CLM bit 5 | 6), are zero outside the swath
(EDG = 1) as MAJA writes them, and the 20 m masks are the 10 m ones aggregated (any of
2 × 2). Real MUSCATE CLMs also hold pixels whose summary bit 0 is set alone (value 1: 26 of
299 200 pixels in 4 of 187 real cropped CLM_R2 masks, product versions V1-1 to V2-2, checked
by hand; docs/NOTES.md), and thinnest-cloud pixels (bit 4) outside bit 0: both are painted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

R1_BANDS = {"blue": "B2", "green": "B3", "red": "B4", "nir": "B8"}
R2_BANDS = {"rededge1": "B5", "rededge2": "B6", "rededge3": "B7", "nir08": "B8A", "swir16": "B11", "swir22": "B12"}
SAT_BIT = {"B2": 0, "B3": 1, "B4": 2, "B8": 3, "B5": 0, "B6": 1, "B7": 2, "B8A": 3, "B11": 4, "B12": 5}
NODATA = -10000


@dataclass
class Painted:
    """What was written into one product folder (group → array)."""

    folder: Path
    fre: dict[str, np.ndarray] = field(default_factory=dict)  # MAJA band → int16
    masks: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (family, group) → uint8

    def clear(self, band: str) -> np.ndarray:
        """numpy's own "clear": EDG = 0, CLM = 0, the band's SAT bit = 0, a value."""
        group = "R1" if band in R1_BANDS.values() else "R2"
        sat_bit = 1 << SAT_BIT[band]
        return ((self.masks["EDG", group] == 0) & (self.masks["CLM", group] == 0)
                & ((self.masks["SAT", group] & sat_bit) == 0) & (self.fre[band] != NODATA))


def _block_any(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))


def _block_or(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    blocks = a.reshape(h // 2, 2, w // 2, 2)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1)


def paint(folder: Path, seed: int, size: int, edge_columns: slice | None = None,
          cloud_at: tuple[int, int] = (5, 5)) -> Painted:
    """Overwrite a synthetic product folder's FRE bands and CLM, MG2, SAT and EDG masks."""
    rng = np.random.default_rng(seed)
    edg = np.zeros((size, size), np.uint8)
    if edge_columns is not None:
        edg[:, edge_columns] = 1
    clm = np.zeros((size, size), np.uint8)
    r, c = cloud_at
    clm[r:r + 10, c:c + 10] |= 0b11  # clouds (bit 1) and the summary bit 0
    clm[r + 12:r + 18, c:c + 10] |= 0b100001  # shadows of clouds (bit 5)
    clm[r + 20:r + 24, c + 2:c + 8] |= 0b1000001  # shadows of clouds outside the image (bit 6)
    clm[30:34, 30:40] |= 0b10000011  # cirrus (bit 7), part of all clouds
    clm[40:42, 40:50] |= 0b10000  # thinnest clouds only (bit 4): not in bit 0, still not clear
    clm[44:46, 44:46] |= 0b1  # the summary bit alone, as in real CLMs: no named condition, not clear
    clm[edg == 1] = 0
    mg2 = np.zeros_like(clm)
    mg2[size - 6:, :] |= 0b1  # water
    mg2[20:24, size - 8:] |= 0b100  # snow
    mg2[10:12, size - 8:] |= 0b110000  # topographic shadow and hidden surface
    mg2 |= ((clm >> 1) & 1) << 1  # MG2 bit 1 = CLM bit 1
    mg2 |= (((clm >> 5) | (clm >> 6)) & 1) << 3  # MG2 bit 3 = CLM bit 5 | 6
    mg2[edg == 1] = 0
    sat = np.zeros_like(clm)
    sat[size - 12:size - 10, :] |= 1 << SAT_BIT["B4"]  # red saturated, blue not
    sat[size - 10:size - 9, :] |= 1 << SAT_BIT["B2"]
    sat[edg == 1] = 0
    painted = Painted(folder)
    painted.masks.update({("EDG", "R1"): edg, ("CLM", "R1"): clm, ("MG2", "R1"): mg2, ("SAT", "R1"): sat})
    for family, array in list(painted.masks.items()):
        painted.masks[family[0], "R2"] = _block_any(array) if family[0] == "EDG" else _block_or(array)
    sat2 = np.zeros((size // 2, size // 2), np.uint8)
    sat2[2:4, :] |= 1 << SAT_BIT["B11"]
    painted.masks["SAT", "R2"] = np.where(painted.masks["EDG", "R2"] == 1, 0, sat2).astype(np.uint8)
    for bands, group in ((R1_BANDS, "R1"), (R2_BANDS, "R2")):
        n = size if group == "R1" else size // 2
        for band in bands.values():
            values = rng.integers(50, 6000, (n, n)).astype(np.int16)
            values[painted.masks["EDG", group] == 1] = NODATA
            painted.fre[band] = values
    for (family, group), array in painted.masks.items():
        _overwrite(next(folder.glob(f"MASKS/*_{family}_{group}.tif")), array)
    for band, array in painted.fre.items():
        _overwrite(next(folder.glob(f"*_FRE_{band}.tif")), array)
    return painted


def _overwrite(path: Path, array: np.ndarray) -> None:
    with rasterio.open(path, "r+") as dst:
        assert (dst.height, dst.width) == array.shape and dst.dtypes[0] == array.dtype.name, path
        dst.write(array, 1)
