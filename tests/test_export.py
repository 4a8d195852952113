"""stac-geoparquet export: every field survives the round trip; DuckDB reads the file."""

from __future__ import annotations

import json

import duckdb
from stac_geoparquet.arrow import stac_table_to_items
import pyarrow.parquet as pq

from fullmaja_stac.consume import stackstac_items
from fullmaja_stac.export import export_geoparquet


def test_geoparquet_round_trip_loses_no_field(catalog, tmp_path):
    target = tmp_path / "items.parquet"
    assert export_geoparquet(catalog, target) == 5
    back = {i["id"]: i for i in stac_table_to_items(pq.read_table(target))}
    for original in stackstac_items(catalog):
        got = back[original["id"]]
        assert got["properties"] == original["properties"]
        assert got["assets"] == original["assets"]
        assert got["bbox"] == original["bbox"] and got["stac_extensions"] == original["stac_extensions"]
        assert json.loads(json.dumps(got["geometry"])) == original["geometry"]

    query = f"""SELECT id, "eo:cloud_cover", "sat:relative_orbit" FROM '{target}' ORDER BY id"""
    rows = duckdb.sql(query).fetchall()
    assert len(rows) == 5 and all(r[2] == 51 for r in rows)
