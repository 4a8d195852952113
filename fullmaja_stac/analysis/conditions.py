"""What a masked pixel is, per item, read from the item's own ``classification:bitfields``.

A condition names bitfields of one mask family (CLM, MG2, EDG, SAT); the bit numbers come
from each item's mask asset, never from here, so an item whose writer ordered a mask's bits
differently is still read right. The names are the ones our STAC stage writes
(:mod:`fullmaja_stac.maja.masks`).

Where MAJA's formats disagree:

- CLM: MAJA's native format orders the bits differently from MUSCATE; the item's bitfields
  say which order its asset has, so nothing is assumed here.
- MG2 bits 4 and 5: MAJA 4.2's MUSCATE writer puts hidden areas on bit 4 and topographic
  shadows on bit 5, the MTD's own list the other way round. ``topographic_shadow`` therefore
  masks both bits (topographic shadow and hidden surface) together: right either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import pystac

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.trust.records import RecordError, mask_bitfields


class LoadError(FullMajaError):
    """A load that cannot be done as asked: the message says which item, band or argument."""


@dataclass(frozen=True)
class Condition:
    family: str  # the asset key prefix: "clm", "mg2", "edg", "sat"
    bitfields: tuple[str, ...]  # names in the asset's classification:bitfields, OR-ed
    description: str
    required: bool = True  # an item whose mask lacks these bitfields cannot be masked


CLM_CLOUDS = ("all_clouds", "clouds_mono_temporal", "clouds_multi_temporal", "thinnest_clouds")
CONDITIONS: dict[str, Condition] = {
    "clouds": Condition("clm", CLM_CLOUDS, "clouds, the thinnest included (CLM bits 1-4)"),
    "cloud_shadows": Condition("clm", ("cloud_shadows", "outside_cloud_shadows"),
                               "shadows of clouds in and outside the image (CLM bits 5-6)"),
    "cirrus": Condition("clm", ("high_clouds",), "high clouds seen at 1.38 µm (CLM bit 7)"),
    "water": Condition("mg2", ("water",), "water (MG2 bit 0)"),
    "snow": Condition("mg2", ("snow",), "snow (MG2 bit 2)"),
    "topographic_shadow": Condition("mg2", ("topographic_shadow", "hidden_surface"),
                                    "topographic shadow and hidden surface (MG2 bits 4-5, together)"),
    "edge": Condition("edg", ("no_data",), "outside the swath or no data (EDG)"),
    # the saturation bit of each band is found by the band's name (see saturation_bitfield)
    "saturation": Condition("sat", (), "the band's own saturation bit (SAT)"),
}
# "clear": no data gap, no saturation of the band, and CLM = 0 (its summary bit 0 included,
# so a CLM whose summary disagrees with its detail bits is still masked).
CLM_SUMMARY = Condition("clm", ("all_clouds_and_shadows",), "CLM summary bit 0", required=False)
CLEAR = ("edge", "saturation", "clouds", "cloud_shadows", "cirrus")


def resolve(mask: str | tuple[str, ...] | list[str] | set[str]) -> list[Condition]:
    """The conditions a ``mask=`` argument asks for."""
    if isinstance(mask, str):
        if mask == "none":
            return []
        names = [mask]
    else:
        names = list(mask)
    unknown = [name for name in names if name not in CONDITIONS and name != "clear"]
    if unknown:
        raise LoadError(f"unknown mask condition {', '.join(map(repr, unknown))}: use 'clear', 'none' or a "
                        f"list of {', '.join(CONDITIONS)} (with 'clear' in it to add to it, e.g. clear,snow)")
    # "clear" in a list stands for its conditions, so that clear + snow is ["clear", "snow"]
    expanded = [n for name in names for n in ((*CLEAR, "clear-summary") if name == "clear" else (name,))]
    return [CLM_SUMMARY if name == "clear-summary" else CONDITIONS[name] for name in dict.fromkeys(expanded)]


def band_code(asset: pystac.Asset) -> str | None:
    """``b4`` for an asset whose eo:bands name is B04 or B4, ``b8a`` for B8A."""
    bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    name = bands[0].get("name") if bands else None
    if not name or not name.upper().startswith("B"):
        return None
    return "b" + name[1:].lstrip("0").lower()


def bit_value(item: pystac.Item, key: str, names: tuple[str, ...], required: bool = True) -> int:
    """The OR of the bits that ``names`` have in asset ``key``'s classification:bitfields."""
    try:
        fields = mask_bitfields(item.assets[key].extra_fields.get("classification:bitfields"),
                                f"item {item.id}: asset {key!r}")
    except RecordError as exc:
        raise LoadError(f"{exc}; the item is damaged") from None
    value = 0
    for field in fields:
        if field.name in names:
            value |= ((1 << field.length) - 1) << field.offset
    if required and not value:
        raise LoadError(f"item {item.id}: asset {key!r} has no classification:bitfields named "
                        f"{' or '.join(names)}; cannot mask it (mask='none' loads without masking)")
    return value


def saturation_bitfield(item: pystac.Item, band: str) -> str:
    """The name of a band's saturation bitfield (``saturated_b4``)."""
    code = band_code(item.assets[band])
    if code is None:
        raise LoadError(f"item {item.id}: asset {band!r} has no eo:bands name (B02…); its saturation bit "
                        "cannot be found")
    return f"saturated_{code}"
