"""fullmaja-stac: order, download and catalog MAJA Sentinel-2 L2A time series."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fullmaja-stac")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
