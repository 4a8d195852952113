"""Which STAC asset each raster of a product becomes, and how it must be converted.

One plan per output COG: every COG is single-band (stackstac refuses multi-band assets), so
the two-band ATB file gives an ``aot`` and a ``wvc`` asset per resolution.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from fullmaja_stac.maja.bands import BY_MAJA_ID, REFLECTANCE_KINDS
from fullmaja_stac.maja.masks import MASK_FAMILIES
from fullmaja_stac.maja.product import MajaProduct, RasterFile

REFLECTANCE, ATB, MASK = "reflectance", "atb", "mask"
TITLE_BY_FAMILY = {
    "FRE": "Flat reflectance (slope-corrected)",
    "SRE": "Surface reflectance",
    "AOT": "Aerosol optical thickness",
    "WVC": "Water vapour content",
}
UNIT_BY_FAMILY = {"WVC": "g/cm^2"}


@dataclass(frozen=True)
class AssetPlan:
    key: str  # "red", "red-sre", "aot-r1", "clm-r2", "dtf-r1-d04"
    raster: RasterFile
    band_index: int  # 1-based band of the source file
    kind: str  # REFLECTANCE, ATB or MASK
    family: str  # FRE, SRE, AOT, WVC, CLM, MG2, SAT, EDG, IAB, DFP, DTF
    filename: str  # COG file name beside the item
    nodata: float | None
    scale: float | None
    resampling: str  # overview resampling: average for measurements, nearest for flags

    @property
    def title(self) -> str:
        """What the asset is, in words: the STAC title and the GeoTIFF band description."""
        raster, group = self.raster, self.raster.group
        if self.kind == MASK:
            family = MASK_FAMILIES[self.family]
            return f"{family.title}{f' {group}' if group else ''}{f' detector {raster.detector}' if raster.detector else ''}"
        title = TITLE_BY_FAMILY[self.family]
        if raster.band_id:
            title += f" {raster.band_id}"
        if self.family in ("AOT", "WVC") and group:
            title += f" {group}"
        return title

    @property
    def unit(self) -> str | None:
        return UNIT_BY_FAMILY.get(self.family)


def plan_assets(product: MajaProduct) -> list[AssetPlan]:
    """The COG assets of a product, in a stable order."""
    plans: list[AssetPlan] = []
    groups_of: dict[str, set[str]] = {}
    for r in product.rasters:
        if r.group:
            groups_of.setdefault(r.kind, set()).add(r.group)

    def suffix(kind: str, group: str | None) -> str:
        return f"-{group.lower()}" if group and len(groups_of.get(kind, ())) > 1 else ""

    refl_nodata = product.reflectance_nodata
    for r in product.rasters:
        stem = r.path.rsplit("/", 1)[-1].removesuffix(".tif").removesuffix(".TIF")
        if r.kind in REFLECTANCE_KINDS and r.band_id:
            band = BY_MAJA_ID.get(r.band_id)
            base = band.asset_key if band else r.band_id.lower()
            key = base if r.kind == "FRE" else f"{base}-sre"
            plans.append(AssetPlan(key, r, 1, REFLECTANCE, r.kind, f"{stem}.tif", refl_nodata,
                                   1.0 / product.reflectance_quantification, "average"))
        elif r.kind == "ATB":
            for name, quant, special in (("aot", product.aot_quantification, "aerosol_optical_thickness_nodata"),
                                         ("wvc", product.wvc_quantification, "water_vapor_content_nodata")):
                index = product.atb_bands[name]
                if index > r.count:
                    continue
                plans.append(AssetPlan(f"{name}{suffix('ATB', r.group)}", r, index, ATB, name.upper(),
                                       f"{stem}_{name.upper()}.tif", product.special_values.get(special, 0.0),
                                       1.0 / quant, "average"))
        elif r.kind in MASK_FAMILIES:  # detector footprints: one asset per detector
            det = f"-d{r.detector}" if r.kind == "DTF" and r.detector else ""
            plans.append(AssetPlan(f"{r.kind.lower()}{suffix(r.kind, r.group)}{det}", r, 1, MASK, r.kind,
                                   f"{stem}.tif", None, None, "nearest"))
    counts = Counter(p.key for p in plans)
    # Two files claiming one key: keep both, disambiguated by the end of their file name.
    return [p if counts[p.key] == 1 else _rekey(p) for p in plans]


def _rekey(plan: AssetPlan) -> AssetPlan:
    return replace(plan, key=f"{plan.key}-{plan.filename.removesuffix('.tif').rsplit('_', 1)[-1].lower()}")
