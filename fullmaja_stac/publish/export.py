"""Export every item of a catalog to stac-geoparquet (readable by DuckDB, GeoPandas,
stac-geoparquet and rustac), with absolute asset hrefs so the file works from anywhere."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from fullmaja_stac.analysis.consume import stackstac_items
from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.jsonio import NEW_FILE_MODE


def _writer():
    try:
        import pyarrow.parquet  # noqa: F401 - stac-geoparquet's engine
        from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet
    except ImportError:
        raise FullMajaError("export needs stac-geoparquet: pip install 'fullmaja-stac[parquet]'") from None
    return parse_stac_items_to_arrow, to_parquet


def write_geoparquet(items: list[dict], collection: dict, target: Path) -> None:
    """Write item dicts to ``target`` as stac-geoparquet, atomically (temp file, rename)."""
    parse, _ = _writer()
    for item in items:
        item["links"] = [link for link in item.get("links", []) if link.get("rel") not in ("root", "parent")]
    write_table(parse(items), collection, target)


def write_table(table, collection: dict, target: Path) -> None:
    """Write Arrow stac-geoparquet rows (a table or batch reader) to ``target``, atomically."""
    _, to_parquet = _writer()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        to_parquet(table, tmp, collections={collection["id"]: collection})
        os.chmod(tmp, NEW_FILE_MODE)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def merge_geoparquet(parts: list[Path], collection: dict, target: Path) -> None:
    """Concatenate stac-geoparquet files (their schemas unified) into one, atomically.

    One file searches far faster than many: an item of ~45 assets is ~800 parquet columns,
    and every file's footer must be read and its schema unified before DuckDB can filter."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(part) for part in parts], promote_options="permissive")
    write_table(table.combine_chunks(), collection, target)  # one row group, not one per part


def export_geoparquet(catalog: Path, target: Path) -> int:
    """Write the items of ``catalog`` to ``target`` (atomically); returns how many."""
    _writer()  # say what is missing before reading the catalog
    root = Path(catalog)
    if not (root / "catalog.json").exists():
        raise FullMajaError(f"{catalog}: no catalog.json here")
    items = stackstac_items(root)  # raw JSON (keeps proj:epsg), hrefs made absolute
    if not items:
        raise FullMajaError(f"{catalog}: the catalog has no item to export")
    collection = json.loads((root / items[0]["collection"] / "collection.json").read_text(encoding="utf-8"))
    write_geoparquet(items, collection, target)
    return len(items)
