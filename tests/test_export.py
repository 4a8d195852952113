"""stac-geoparquet export: every field survives the round trip; DuckDB reads the file."""

from __future__ import annotations

import json
import os

import duckdb
from stac_geoparquet.arrow import stac_table_to_items
import pyarrow.parquet as pq

from fullmaja_stac.publish.export import export_geoparquet


def written_items(catalog) -> list[dict]:
    """The item files as ingest wrote them, each asset href made absolute here with the
    standard library alone (not with the reader the exporter itself uses)."""
    out = []
    for path in sorted(catalog.glob("maja-s2-l2a/*/*/*/*.json")):
        item = json.loads(path.read_text(encoding="utf-8"))
        for asset in item["assets"].values():
            asset["href"] = os.path.normpath(os.path.join(path.parent.resolve(), asset["href"]))
        out.append(item)
    assert len(out) == 5
    return out


def test_geoparquet_round_trip_loses_no_field(catalog, tmp_path):
    target = tmp_path / "items.parquet"
    assert export_geoparquet(catalog, target) == 5
    back = {i["id"]: i for i in stac_table_to_items(pq.read_table(target))}
    assert set(back) == {i["id"] for i in written_items(catalog)}
    for original in written_items(catalog):
        got = back[original["id"]]
        assert got["properties"] == original["properties"]
        assert got["assets"] == original["assets"]
        assert got["bbox"] == original["bbox"] and got["stac_extensions"] == original["stac_extensions"]
        assert json.loads(json.dumps(got["geometry"])) == original["geometry"]

    query = f"""SELECT id, "eo:cloud_cover", "sat:relative_orbit" FROM '{target}' ORDER BY id"""
    rows = duckdb.sql(query).fetchall()
    assert len(rows) == 5 and all(r[2] == 51 for r in rows)
