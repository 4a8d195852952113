"""fullmaja-stac: order, download and catalog MAJA Sentinel-2 L2A time series."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fullmaja-stac")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"


def __getattr__(name: str):
    """``from fullmaja_stac import load``, without importing odc-stac and xarray for the CLI."""
    if name == "load":
        from fullmaja_stac.analysis.load import load

        return load
    raise AttributeError(f"module 'fullmaja_stac' has no attribute {name!r}")
