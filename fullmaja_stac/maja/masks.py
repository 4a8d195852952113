"""MAJA mask families and the meaning of each bit, as data.

Source: the MUSCATE L2A product format (Theia) and MAJA's own MUSCATE templates (see
docs/NOTES.md). SAT, DFP and DTF bits follow the bands of the resolution group, so their
tables are built per group from one line of data each.
"""

from __future__ import annotations

from dataclasses import dataclass

from fullmaja_stac.maja.bands import L2A_GROUPS


@dataclass(frozen=True)
class Bit:
    number: int
    name: str
    description: str


CLM_BITS: tuple[Bit, ...] = (
    Bit(0, "all_clouds_and_shadows", "All clouds except the thinnest, and all shadows"),
    Bit(1, "all_clouds", "All clouds except the thinnest"),
    Bit(2, "clouds_mono_temporal", "Clouds detected by mono-temporal thresholds"),
    Bit(3, "clouds_multi_temporal", "Clouds detected by multi-temporal thresholds"),
    Bit(4, "thinnest_clouds", "Thinnest clouds"),
    Bit(5, "cloud_shadows", "Shadows of clouds detected in the image"),
    Bit(6, "outside_cloud_shadows", "Shadows of clouds outside the image"),
    Bit(7, "high_clouds", "High clouds detected with the 1.38 µm band"),
)
MG2_BITS: tuple[Bit, ...] = (
    Bit(0, "water", "Water"),
    Bit(1, "cloud", "Cloud, including the thinnest"),
    Bit(2, "snow", "Snow"),
    Bit(3, "cloud_shadow", "Cloud shadow"),
    Bit(4, "topographic_shadow", "Topographic shadow"),
    Bit(5, "hidden_surface", "Surface hidden by relief"),
    Bit(6, "sun_too_low", "Sun too low for a correction"),
    Bit(7, "tangent_sun", "Sun tangent to the slope"),
)
IAB_BITS: tuple[Bit, ...] = (
    Bit(0, "wvc_interpolated", "Water vapour content interpolated"),
    Bit(1, "aot_interpolated", "Aerosol optical thickness interpolated"),
)
EDG_BITS: tuple[Bit, ...] = (Bit(0, "no_data", "Outside the swath or no data"),)


@dataclass(frozen=True)
class MaskFamily:
    code: str
    title: str
    roles: tuple[str, ...]


MASK_FAMILIES: dict[str, MaskFamily] = {
    "CLM": MaskFamily("CLM", "Cloud mask", ("cloud", "data-mask")),
    "MG2": MaskFamily("MG2", "Geophysical mask", ("cloud", "snow-ice", "water-mask", "data-mask")),
    "SAT": MaskFamily("SAT", "Saturation mask", ("saturation", "data-mask")),
    "EDG": MaskFamily("EDG", "Edge (no-data) mask", ("data-mask",)),
    "IAB": MaskFamily("IAB", "Interpolated ATB mask", ("data-mask",)),
    "DFP": MaskFamily("DFP", "Defective pixel mask", ("data-mask",)),
    "DTF": MaskFamily("DTF", "Detector footprint", ("data-mask",)),
}


FIXED_BITS: dict[str, tuple[Bit, ...]] = {"CLM": CLM_BITS, "MG2": MG2_BITS, "IAB": IAB_BITS, "EDG": EDG_BITS}
# family → (bit name prefix, what a set bit means for band B), bit i = i-th band of the group
PER_BAND_BITS: dict[str, tuple[str, str]] = {
    "SAT": ("saturated", "Saturation in band {band}"),
    "DFP": ("defective", "Defective pixel in band {band}"),
    "DTF": ("band", "Band {band} seen by this detector"),
}


def bits_for(family: str, group: str | None) -> tuple[Bit, ...]:
    """The bit table of a mask family; per-band families follow the group's bands."""
    if family in FIXED_BITS:
        return FIXED_BITS[family]
    if family in PER_BAND_BITS:
        prefix, meaning = PER_BAND_BITS[family]
        return tuple(Bit(i, f"{prefix}_{band.lower()}", meaning.format(band=band))
                     for i, band in enumerate(L2A_GROUPS.get(group or "R1", ())))
    return ()
