"""Export every item of a catalog to stac-geoparquet (readable by DuckDB, GeoPandas,
stac-geoparquet and rustac), with absolute asset hrefs so the file works from anywhere."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from fullmaja_stac.consume import stackstac_items
from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.stac.catalog import NEW_FILE_MODE


def export_geoparquet(catalog: Path, target: Path) -> int:
    """Write the items of ``catalog`` to ``target`` (atomically); returns how many."""
    try:
        import pyarrow.parquet  # noqa: F401 - stac-geoparquet's engine
        from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet
    except ImportError:
        raise FullMajaError("export needs stac-geoparquet: pip install stac-geoparquet") from None
    root = Path(catalog)
    if not (root / "catalog.json").exists():
        raise FullMajaError(f"{catalog}: no catalog.json here")
    items = stackstac_items(root)  # raw JSON (keeps proj:epsg), hrefs made absolute
    if not items:
        raise FullMajaError(f"{catalog}: the catalog has no item to export")
    for item in items:
        item["links"] = [link for link in item.get("links", []) if link.get("rel") not in ("root", "parent")]
    collection = json.loads((root / items[0]["collection"] / "collection.json").read_text(encoding="utf-8"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        to_parquet(parse_stac_items_to_arrow(items), tmp, collections={collection["id"]: collection})
        os.chmod(tmp, NEW_FILE_MODE)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return len(items)
