"""Publishing a catalog: the static file server and STAC Browser (``serve``, ``httpserver``,
``browser``), pgstac (``pgstac``) and stac-geoparquet (``export``)."""
