"""Using a catalog: items for stackstac and odc-stac (``consume``), the cloud-masked loader
(``load``), per-pixel time series and monthly composites. ``load`` needs the ``analysis``
extra (odc-stac, xarray), imported only when it is called."""

from fullmaja_stac.analysis.consume import odc_items, stackstac_items

__all__ = ["load", "odc_items", "stackstac_items"]


def __getattr__(name: str):
    if name == "load":
        from fullmaja_stac.analysis.load import load

        return load
    raise AttributeError(f"module 'fullmaja_stac.analysis' has no attribute {name!r}")
