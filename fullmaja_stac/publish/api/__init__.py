"""The STAC API over a static catalog: request checking (``search``), the SQLite index
(``index``) and the FastAPI application and server (``app``)."""
