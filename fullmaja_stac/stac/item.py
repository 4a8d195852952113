"""MajaProduct + converted COGs → pystac.Item: the STAC stage of docs/ARCHITECTURE.md.

Projection is written as v1.2.0 with both ``proj:code`` and an integer ``proj:epsg``
(stackstac needs the latter; v2.0.0 forbids it), per asset ``proj:shape``/``proj:transform``
because R1 and R2 differ. The processing extension has no pystac class: its fields are plain
properties and its schema URI is declared here.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pystac
from pystac.extensions.classification import Bitfield, Classification, ClassificationExtension
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.grid import GridExtension
from pystac.extensions.mgrs import MgrsExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics
from pystac.extensions.sat import OrbitState, SatExtension
from pystac.extensions.view import ViewExtension

from fullmaja_stac import __version__
from fullmaja_stac.maja.bands import BY_MAJA_ID, REFLECTANCE_KINDS
from fullmaja_stac.maja.masks import MASK_FAMILIES, bits_for
from fullmaja_stac.maja.product import MajaProduct
from fullmaja_stac.stac.constants import (
    COG_MEDIA_TYPE, COLLECTION_ID, PROCESSING_V1_2, PROJECTION_V1_2, ROLE_BY_FAMILY,
)


@dataclass(frozen=True)
class CogAsset:
    """One converted raster, as the item describes it: what ingest hands to this stage (so
    that STAC building depends on the product model and these values only)."""

    key: str  # "red", "clm-r1", "visual"
    filename: str  # beside the item
    title: str
    family: str  # FRE, SRE, AOT, WVC, a mask family code, or "visual"
    raster: object | None  # the MajaProduct's RasterFile it came from (None for visual)
    nodata: float | None
    scale: float | None
    unit: str | None
    size: int
    checksum: str
    statistics: dict[str, float] | None = None

    @property
    def is_mask(self) -> bool:
        return self.family in MASK_FAMILIES


@dataclass(frozen=True)
class Provenance:
    """Where a product came from, when our downloader fetched it."""

    provider: str  # "peps", "geodes", "local"
    job_id: str | None = None  # the provider's id of the job (PEPS's FULL_MAJA job number)
    request: dict = field(default_factory=dict)
    remote_id: str | None = None  # the provider's id of the product (a GEODES URN); PEPS has none
    url: str | None = None
    local_job: int | None = None  # the job's number in our store: what `fullmaja-stac status` calls it

    def lineage(self) -> str:
        parts = [f"Downloaded from {self.provider.upper()}"]
        if self.local_job is not None:
            parts.append(f"fullmaja-stac job {self.local_job}")
        if self.job_id and self.provider == "peps":
            parts.append(f"PEPS FULL_MAJA job {self.job_id}")
        if self.request:
            parts.append("request " + ", ".join(f"{k}={v}" for k, v in sorted(self.request.items())))
        if self.remote_id:
            parts.append(f"{self.provider.upper()} item {self.remote_id}")
        return "; ".join(parts)


FACILITY = {
    "peps": "CNES PEPS, FULL_MAJA on-demand processing",
    "geodes": "CNES GEODES, THEIA MAJA archive",
}


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def build_item(
    product: MajaProduct,
    cogs: list[CogAsset],
    geometry: dict,
    bbox: list[float],
    extra_files: dict[str, tuple[str, int, str]],
    created: datetime,
    provenance: Provenance | None = None,
) -> pystac.Item:
    """Build the item from the product and its converted COGs (hrefs: file names beside it).

    ``extra_files`` maps "thumbnail"/"metadata" → (file name, size, checksum).
    """
    item = pystac.Item(
        id=product.id,
        geometry=geometry,
        bbox=bbox,
        datetime=product.acquired,
        properties={},
        collection=COLLECTION_ID,
    )
    props = item.properties
    # date first: STAC Browser sorts a year's items by title, and the platform first put every
    # Sentinel-2A before every Sentinel-2B
    props["title"] = f"{product.acquired:%Y-%m-%d %H:%M} {product.tile} {product.platform.title().replace('Sentinel2', 'Sentinel-2')}"
    props["platform"] = f"sentinel-2{product.platform[-1].lower()}"
    props["constellation"] = "sentinel-2"
    props["instruments"] = ["msi"]
    r1 = product.grids.get("R1")
    props["gsd"] = r1.resolution if r1 else min(g.resolution for g in product.grids.values())
    props["created"] = _iso(created)
    props["updated"] = _iso(created)

    eo = EOExtension.ext(item, add_if_missing=True)
    if product.cloud_percent is not None:
        eo.cloud_cover = product.cloud_percent
    if product.snow_percent is not None:
        eo.snow_cover = product.snow_percent

    GridExtension.ext(item, add_if_missing=True).code = f"MGRS-{product.tile}"
    mgrs = MgrsExtension.ext(item, add_if_missing=True)
    mgrs.utm_zone = int(product.tile[:2])
    mgrs.latitude_band = product.tile[2]
    mgrs.grid_square = product.tile[3:]

    sat = SatExtension.ext(item, add_if_missing=True)
    sat.orbit_state = OrbitState.DESCENDING
    if product.relative_orbit is not None:
        sat.relative_orbit = product.relative_orbit
    if product.absolute_orbit is not None:
        sat.absolute_orbit = product.absolute_orbit

    view = ViewExtension.ext(item, add_if_missing=True)
    if product.sun_azimuth is not None:
        view.sun_azimuth = product.sun_azimuth
    if product.sun_zenith is not None:
        view.sun_elevation = 90.0 - product.sun_zenith
    if product.mean_viewing_zenith is not None:
        view.incidence_angle = product.mean_viewing_zenith
    if product.mean_viewing_azimuth is not None:
        view.azimuth = product.mean_viewing_azimuth

    # Projection v1.2.0 by hand (see module docstring).
    item.stac_extensions.append(PROJECTION_V1_2)
    props["proj:epsg"] = product.epsg
    props["proj:code"] = f"EPSG:{product.epsg}"
    if r1:
        props["proj:bbox"] = list(r1.bounds)
        props["proj:shape"] = list(r1.shape)
        props["proj:transform"] = list(r1.transform)[:6]

    item.stac_extensions.append(PROCESSING_V1_2)
    props["processing:level"] = product.level
    software = {"fullmaja-stac": __version__}
    if product.maja_version:  # MAJA's own MUSCATE writer records none (docs/NOTES.md)
        software["MAJA"] = product.maja_version
    props["processing:software"] = software
    if product.product_version:
        props["processing:version"] = product.product_version
    props["processing:facility"] = FACILITY.get(provenance.provider if provenance else "", "THEIA MUSCATE (MAJA)")
    if product.produced:
        props["processing:datetime"] = _iso(product.produced)
    lineage = f"MAJA{' ' + product.maja_version if product.maja_version else ''} L2A product {product.id}"
    if product.valid is not None:
        lineage += f" ({'L2VALD' if product.valid else 'L2NOTV'})"
    if provenance:
        lineage += f". {provenance.lineage()}"
        # one name for one thing, as the CLI says it: "job 1 (PEPS id 1795…)"
        props["fullmaja:provider"] = provenance.provider
        if provenance.local_job is not None:
            props["fullmaja:job"] = provenance.local_job
        if provenance.job_id and provenance.provider == "peps":
            props["fullmaja:peps_job_id"] = provenance.job_id
        if provenance.remote_id and provenance.remote_id != provenance.job_id:
            props["fullmaja:remote_id"] = provenance.remote_id
    props["processing:lineage"] = lineage
    props.update(quality_properties(product.quality))

    RasterExtension.add_to(item)
    FileExtension.add_to(item)
    ClassificationExtension.add_to(item)
    for cog in cogs:
        (_add_visual_asset if cog.family == "visual" else _add_cog_asset)(item, product, cog)
    if "thumbnail" in extra_files:
        name, size, checksum = extra_files["thumbnail"]
        _add_file_asset(item, "thumbnail", name, pystac.MediaType.JPEG, "Quicklook (B4, B3, B2)", ["thumbnail"], size, checksum)
    if "metadata" in extra_files:
        name, size, checksum = extra_files["metadata"]
        _add_file_asset(item, "metadata", name, pystac.MediaType.XML, "MAJA metadata (MTD_ALL.xml)", ["metadata"], size, checksum)

    item.stac_extensions = sorted(set(item.stac_extensions))
    return item


QUALITY_PREFIX = "maja:"  # MAJA's own quality indices, as MAJA names them, in snake_case
QUALITY_IN_EO = {"CloudPercent", "SnowPercent"}  # already eo:cloud_cover and eo:snow_cover


def quality_properties(quality: dict[str, str]) -> dict[str, object]:
    """MTD QUALITY_INDEX values as item properties: ``RainDetected=False`` becomes
    ``maja:rain_detected: false``; numbers stay numbers."""
    out: dict[str, object] = {}
    for name, text in quality.items():
        if name in QUALITY_IN_EO or not name.isidentifier():
            continue
        key = QUALITY_PREFIX + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
        value: object = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            try:
                value = float(text)
            except ValueError:
                pass
        out[key] = value
    return out


def eo_band(info, spectral, description: str) -> Band:
    """``eo:bands`` entry of a reflectance band: wavelengths and solar irradiance from the
    MTD's Spectral_Band_Informations when it has them, our S2 table otherwise."""
    center, fwhm, solar = info.center_um, info.fwhm_um, None
    if spectral is not None:
        if spectral.central_nm:
            center = round(spectral.central_nm / 1000, 4)
        if spectral.min_nm and spectral.max_nm and spectral.max_nm > spectral.min_nm:
            fwhm = round((spectral.max_nm - spectral.min_nm) / 1000, 4)
        solar = spectral.solar_irradiance
    return Band.create(name=info.esa_id, common_name=info.common_name, description=description,
                       center_wavelength=center, full_width_half_max=fwhm, solar_illumination=solar)


def _add_file_asset(item, key, name, media_type, title, roles, size, checksum) -> pystac.Asset:
    asset = pystac.Asset(href=f"./{name}", media_type=media_type, title=title, roles=roles)
    item.add_asset(key, asset)
    file_ext = FileExtension.ext(asset)
    file_ext.size = size
    file_ext.checksum = checksum
    return asset


def _add_cog_asset(item: pystac.Item, product: MajaProduct, cog: CogAsset) -> None:
    raster = cog.raster
    group = raster.group
    grid = product.grids.get(group or "")
    roles = list(MASK_FAMILIES[cog.family].roles) if cog.is_mask else list(ROLE_BY_FAMILY[cog.family])
    asset = _add_file_asset(item, cog.key, cog.filename, COG_MEDIA_TYPE, cog.title, roles, cog.size, cog.checksum)
    if grid:
        asset.extra_fields.update(_grid_fields(grid))

    band = RasterBand.create(
        data_type=DataType(raster.dtype),
        nodata=cog.nodata,
        scale=cog.scale,
        offset=0.0 if cog.scale is not None else None,
        spatial_resolution=grid.resolution if grid else None,
        unit=cog.unit,
        statistics=Statistics.create(**cog.statistics) if cog.statistics else None,
    )
    RasterExtension.ext(asset).bands = [band]

    if cog.family in REFLECTANCE_KINDS and raster.band_id:
        info = BY_MAJA_ID.get(raster.band_id)
        if info:
            EOExtension.ext(asset).bands = [eo_band(info, product.spectral.get(raster.band_id), cog.title)]
    if cog.is_mask:
        ClassificationExtension.ext(asset).bitfields = _bitfields(cog.family, group)


VISUAL_BANDS = ("B4", "B3", "B2")


def _add_visual_asset(item: pystac.Item, product: MajaProduct, cog: CogAsset) -> None:
    """An 8-bit true-colour COG, as Earth Search has: what viewers show without settings.
    It has eo:bands but no raster:bands, which stackstac refuses when they list three bands."""
    asset = _add_file_asset(item, cog.key, cog.filename, COG_MEDIA_TYPE, cog.title, ["visual"], cog.size, cog.checksum)
    grid = product.grids.get("R1")
    if grid:
        asset.extra_fields.update(_grid_fields(grid))
    EOExtension.ext(asset).bands = [eo_band(BY_MAJA_ID[b], product.spectral.get(b), BY_MAJA_ID[b].common_name)
                                    for b in VISUAL_BANDS]


def _grid_fields(grid) -> dict[str, object]:
    """An asset's projection fields and gsd, from the MTD grid it is on."""
    return {"proj:shape": list(grid.shape), "proj:transform": list(grid.transform)[:6], "gsd": grid.resolution}


def _bitfields(family: str, group: str | None) -> list[Bitfield]:
    return [
        Bitfield.create(
            offset=bit.number, length=1, name=bit.name, description=bit.description,
            classes=[Classification.create(0, name=f"not_{bit.name}", description=f"Not: {bit.description}"),
                     Classification.create(1, name=bit.name, description=bit.description)],
        )
        for bit in bits_for(family, group)
    ]
