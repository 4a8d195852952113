"""Using a catalog: items for stackstac and odc-stac (``consume``)."""

from fullmaja_stac.analysis.consume import odc_items, stackstac_items

__all__ = ["odc_items", "stackstac_items"]
