"""STAC constants in one place: ids, schema URIs, media types, providers, licence."""

from __future__ import annotations

import pystac

COLLECTION_ID = "maja-s2-l2a"
COLLECTION_TITLE = "Sentinel-2 L2A surface reflectance, MAJA (THEIA MUSCATE format)"
COLLECTION_DESCRIPTION = (
    "Sentinel-2 Level-2A surface reflectances produced by the MAJA processor (CNES/CESBIO), "
    "with cloud, shadow, snow, water and saturation masks, aerosol optical thickness and water "
    "vapour, converted to Cloud-Optimized GeoTIFFs by fullmaja-stac. Reflectance = value x 0.0001 "
    "(raster:bands scale); FRE is slope-corrected (flat) reflectance, SRE the surface reflectance."
)
COMPOSITE_COLLECTION_ID = "maja-s2-l2a-composite"  # written by `fullmaja-stac composite`
COMPOSITE_TITLE = "Cloud-free composites of MAJA Sentinel-2 L2A"
ROOT_ID = "fullmaja-stac"
ROOT_TITLE = "MAJA Sentinel-2 L2A catalog"
ROOT_DESCRIPTION = "Static STAC catalog of MAJA Sentinel-2 L2A time series, written by fullmaja-stac."
KEYWORDS = ["sentinel-2", "maja", "theia", "muscate", "l2a", "surface reflectance", "cloud mask", "cog"]
LICENSE = "etalab-2.0"
LICENSE_URL = "https://www.etalab.gouv.fr/licence-ouverte-open-licence"

COG_MEDIA_TYPE = str(pystac.MediaType.COG)  # image/tiff; application=geotiff; profile=cloud-optimized
PROJECTION_V1_2 = "https://stac-extensions.github.io/projection/v1.2.0/schema.json"
PROCESSING_V1_2 = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"

PROVIDERS = [
    pystac.Provider("CNES", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR],
                    url="https://cnes.fr", description="MAJA L2A products of the THEIA land data centre"),
    pystac.Provider("CESBIO", roles=[pystac.ProviderRole.PROCESSOR], url="https://www.cesbio.cnrs.fr/maja/",
                    description="MAJA atmospheric correction and cloud detection"),
    pystac.Provider("ESA", roles=[pystac.ProviderRole.PRODUCER], url="https://sentinel.esa.int",
                    description="Copernicus Sentinel-2 Level-1C data"),
]

ROLE_BY_FAMILY = {
    "FRE": ["data", "reflectance"],
    "SRE": ["data", "reflectance"],
    "AOT": ["data"],
    "WVC": ["data"],
}
