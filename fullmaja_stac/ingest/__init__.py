"""Products → COGs → items, in parallel: which COG each raster becomes (``assets``), the
conversion (``cog``), the valid-data footprint (``footprint``) and the run (``run``).

``from fullmaja_stac.ingest import ingest`` works; the run is imported only when asked for,
so that a worker process that imports ``fullmaja_stac.ingest.cog`` loads no more than it needs.
"""

_RUN_NAMES = ("ingest", "IngestReport", "IngestObserver", "find_products")


def __getattr__(name: str):
    if name in _RUN_NAMES:
        from fullmaja_stac.ingest import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_RUN_NAMES)
