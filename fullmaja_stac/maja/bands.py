"""Sentinel-2 MSI spectral bands as MAJA names them, with the STAC names we publish.

MAJA calls bands ``B2`` … ``B8A``; ESA and STAC ``eo:bands`` use ``B02`` … ``B8A``; the asset
keys follow Earth Search's common names. Wavelengths are the S2A MSI centre/FWHM in µm.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpectralBand:
    maja_id: str
    esa_id: str
    common_name: str
    asset_key: str
    center_um: float
    fwhm_um: float
    default_group: str


SPECTRAL_BANDS: tuple[SpectralBand, ...] = (
    SpectralBand("B1", "B01", "coastal", "coastal", 0.443, 0.027, "R3"),
    SpectralBand("B2", "B02", "blue", "blue", 0.490, 0.098, "R1"),
    SpectralBand("B3", "B03", "green", "green", 0.560, 0.045, "R1"),
    SpectralBand("B4", "B04", "red", "red", 0.665, 0.038, "R1"),
    SpectralBand("B5", "B05", "rededge", "rededge1", 0.704, 0.019, "R2"),
    SpectralBand("B6", "B06", "rededge", "rededge2", 0.740, 0.018, "R2"),
    SpectralBand("B7", "B07", "rededge", "rededge3", 0.783, 0.028, "R2"),
    SpectralBand("B8", "B08", "nir", "nir", 0.842, 0.145, "R1"),
    SpectralBand("B8A", "B8A", "nir08", "nir08", 0.865, 0.033, "R2"),
    SpectralBand("B9", "B09", "nir09", "nir09", 0.945, 0.026, "R3"),
    SpectralBand("B10", "B10", "cirrus", "cirrus", 1.375, 0.075, "R3"),
    SpectralBand("B11", "B11", "swir16", "swir16", 1.610, 0.143, "R2"),
    SpectralBand("B12", "B12", "swir22", "swir22", 2.190, 0.242, "R2"),
)

BY_MAJA_ID: dict[str, SpectralBand] = {b.maja_id: b for b in SPECTRAL_BANDS}

# The ten bands MAJA delivers as L2A reflectances, per resolution group, in MTD order.
L2A_GROUPS: dict[str, tuple[str, ...]] = {
    "R1": ("B2", "B3", "B4", "B8"),
    "R2": ("B5", "B6", "B7", "B8A", "B11", "B12"),
}
GROUP_RESOLUTION_M: dict[str, int] = {"R1": 10, "R2": 20, "R3": 60}
REFLECTANCE_KINDS = ("FRE", "SRE")  # flat (slope-corrected) and surface reflectance


def normalize_band_id(band_id: str) -> str:
    """Return MAJA's spelling of a band id: ``B02`` → ``B2``, ``b8a`` → ``B8A``."""
    text = band_id.strip().upper()
    if text.startswith("B") and text[1:].isdigit():
        return f"B{int(text[1:])}"
    return text
