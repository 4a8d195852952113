"""How the catalog scales: writing many items, re-ingesting nothing, adding a few to a big
catalog, and searching it. Every figure is a ratio to a baseline run in this process.

1. Items/s written by our catalog store (item JSON, year index/summary/catalog, tile catalogs,
   collection) for N small items, against pystac writing the same items the classic way
   (``Catalog.add_items`` + ``normalize_hrefs`` + ``save``). The items are copies of the item
   of one real ingested product with new ids, tiles and dates: this measures the catalog, not
   the COG conversion (see bench_ingest.py for that).
2. No-op re-ingest: ``ingest()`` of P real small products a second time, against the first.
3. Adding 10 items to catalogs of 1 000 and ``--big`` items: time per added item (the ratio
   of the two says whether the cost grows with the catalog) and which existing files were
   rewritten; and an ingest that adds nothing.
4. Search of the N-item catalog with ``serve --api``'s SQLite index, against a brute-force
   scan of the item JSON files with the same filter; then the index update after adding 10
   items, against building the index from scratch. (Latency over HTTP, beside pgstac, is
   bench_search.py's.)

    python benchmarks/bench_catalog.py [--sizes 1000 10000] [--products 50] [--big 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import zlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pystac

from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_product
from fullmaja_stac.stac.catalog import CatalogStore, placement
from fullmaja_stac.tiles import tile_ids

# a country-sized order: 120 tiles (the ESA grid's in UTM zones 30-32, bands T-U), two
# relative orbits with an acquisition every 5 days each: ~140 items per tile-year, so
# 100 000 items span 6 years
TILES = sorted(t for t in tile_ids() if t[:2] in ("30", "31", "32") and t[2] in "TU")[:120]
PER_TILE_YEAR = 140


def _template(work: Path) -> dict:
    """The item JSON of one real ingested product (size 24), to clone."""
    spec = plan_series("31TCJ", 51, date(2019, 3, 1), date(2019, 3, 10), seed=1, too_cloudy=set(), split=set())[0]
    zip_path = write_product(spec, work / "one", SynthOptions(size=24, seed=1))
    root = work / "one-catalog"
    assert ingest([zip_path], root, workers=1).ok
    return json.loads(next(root.glob("maja-s2-l2a/*/*/*/*.json")).read_text())


def _clones(template: dict, count: int, offset: int = 0):
    """``count`` distinct items: PER_TILE_YEAR per tile and year, over TILES then years."""
    base = datetime(2016, 1, 1, 10, 30, tzinfo=timezone.utc)
    template_bytes = orjson.dumps(template)
    for n in range(offset, offset + count):
        k = (n // PER_TILE_YEAR) % len(TILES)
        tile = TILES[k]
        year = base.year + n // (PER_TILE_YEAR * len(TILES))
        when = datetime(year, 1, 1, 10, 30, tzinfo=timezone.utc) + timedelta(days=(n % PER_TILE_YEAR) * 365 / PER_TILE_YEAR)
        item = orjson.loads(template_bytes)
        item_id = f"SENTINEL2A_{when:%Y%m%d-%H%M%S}-{n % 1000:03d}_L2A_T{tile}_C_V4-0"
        item["id"] = item_id
        item["properties"].update({"datetime": when.isoformat().replace("+00:00", "Z"), "grid:code": f"MGRS-{tile}",
                                   "eo:cloud_cover": float(n * 37 % 100), "sat:relative_orbit": 8 + 43 * (n % 2)})
        for key, asset in item["assets"].items():
            asset["href"] = f"./{item_id}_{key}.tif"
        # tiles 1 degree apart on a 12 x 10 layout, so that a bbox selects one tile
        dx, dy = k % 12, k // 12
        item["bbox"] = [v + (dx if i % 2 == 0 else dy) for i, v in enumerate(item["bbox"])]
        item["geometry"]["coordinates"] = [[[x + dx, y + dy] for x, y in ring] for ring in item["geometry"]["coordinates"]]
        yield tile, when, item


def _item(doc: dict) -> pystac.Item:
    """A pystac Item, as ingest's build_item hands one to the store (no migration, no copy)."""
    return pystac.Item.from_dict(doc, preserve_dict=False, migrate=False)


def write_ours(root: Path, items) -> int:
    """Our store's path in ingest: commit each item from a staging folder, flush once."""
    store = CatalogStore(root)
    count = 0
    with store.lock():
        store.ensure_root()
        for tile, when, doc in items:
            where = placement(doc["id"], tile, when)
            staging = store.staging_dir(where)
            staging.mkdir(parents=True, exist_ok=True)
            store.commit(where, _item(doc), staging)
            count += 1
        store.flush()
    return count


def write_pystac(root: Path, items) -> int:
    """The classic pystac way: build the whole tree in memory, save it."""
    catalog = pystac.Catalog("maja", "MAJA L2A")
    collection = pystac.Collection("maja-s2-l2a", "MAJA", pystac.Extent(
        pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])))
    catalog.add_child(collection)
    # the same tree as ours: collection -> one catalog per tile -> one per year -> items
    tiles: dict[str, pystac.Catalog] = {}
    years: dict[tuple[str, int], pystac.Catalog] = {}
    count = 0
    for tile, when, doc in items:
        if tile not in tiles:
            tiles[tile] = pystac.Catalog(tile, f"Tile {tile}")
            collection.add_child(tiles[tile])
        key = (tile, when.year)
        if key not in years:
            years[key] = pystac.Catalog(f"{tile}-{when.year}", f"{tile} {when.year}")
            tiles[tile].add_child(years[key])
        years[key].add_item(_item({**doc, "links": []}))
        count += 1
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return count


def _timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def bench_write(template: dict, sizes: list[int], work: Path, repeat: int = 3) -> None:
    print(f"\n## 1. items written per second (same tree for both; {repeat} interleaved rounds, medians)")
    for n in sizes:
        ours_runs, theirs_runs = [], []
        for round_ in range(repeat):
            ours, _ = _timed(write_ours, work / f"ours-{n}-{round_}", _clones(template, n))
            theirs, _ = _timed(write_pystac, work / f"pystac-{n}-{round_}", _clones(template, n))
            ours_runs.append(ours)
            theirs_runs.append(theirs)
            if round_ == repeat - 1:  # the last of ours is the catalog section 4 searches
                (work / f"ours-{n}-{round_}").rename(work / f"ours-{n}")
            shutil.rmtree(work / f"ours-{n}-{round_}", ignore_errors=True)
            shutil.rmtree(work / f"pystac-{n}-{round_}", ignore_errors=True)
        ours, theirs = statistics.median(ours_runs), statistics.median(theirs_runs)
        print(f"{n:>7} items: ours {n / ours:8.0f} items/s, pystac save {n / theirs:8.0f} items/s "
              f"-> ours/pystac throughput {theirs / ours:.2f}x")


def bench_noop(products: int, work: Path) -> None:
    print("\n## 2. no-op re-ingest of real products")
    specs = plan_series("31TCJ", 51, date(2017, 1, 1), date(2017, 12, 31), seed=2, too_cloudy=set(), split=set())
    specs += plan_series("31TCJ", 8, date(2017, 1, 1), date(2017, 12, 31), seed=2, too_cloudy=set(), split=set())
    zips = [write_product(s, work / "zips", SynthOptions(size=24, seed=2)) for s in specs[:products]]
    root = work / "noop-catalog"
    first, report = _timed(ingest, zips, root, 2)
    assert report.ok and len(report.added) == len(zips), report
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again, report = _timed(ingest, zips, root, 2)
    assert len(report.unchanged) == len(zips)
    changed = [p for p in root.rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns]
    print(f"{len(zips)} products (size 24): first ingest {first:.2f} s, no-op re-ingest {again:.3f} s "
          f"-> ratio {again / first:.3f} (goal <= 0.02); files rewritten by the no-op: {len(changed)}")


def _add_ten(template: dict, root: Path, offset: int) -> tuple[float, list[str]]:
    """Seconds to ingest 10 more items into ``root`` and the catalog files it rewrote."""
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.json")}
    seconds, _ = _timed(write_ours, root, _clones(template, 10, offset=offset))
    rewritten = [p for p in root.rglob("*.json") if before.get(p) != p.stat().st_mtime_ns]
    return seconds, sorted(p.name for p in rewritten if p in before)


def bench_big(template: dict, big: int, work: Path) -> None:
    print(f"\n## 3. adding 10 items to catalogs of 1000 and {big} items")
    costs = {}
    for size in (1000, big):
        root = work / f"big-{size}"
        build, _ = _timed(write_ours, root, _clones(template, size))
        added, rewritten = _add_ten(template, root, size)
        noop, _ = _timed(write_ours, root, [])
        costs[size] = added / 10
        print(f"{size:>7} items: built at {size / build:.0f} items/s; +10 items: {added / 10 * 1000:.1f} ms per added "
              f"item, existing files rewritten: {', '.join(rewritten)}; an ingest adding nothing (the collection "
              f"re-aggregated from every year summary): {noop * 1000:.0f} ms")
    print(f"cost per added item at {big} items / at 1000 items: {costs[big] / costs[1000]:.2f}x")
    shutil.rmtree(work / f"big-{big}", ignore_errors=True)


def bench_search(template: dict, n: int, work: Path) -> None:
    from fullmaja_stac.publish.api.app import SearchEngine, build_index
    from fullmaja_stac.publish.api.search import parse_search

    print(f"\n## 4. search index of {n} items (bbox of one tile, cloud < 20, orbit 51, one year)")
    root = work / f"ours-{n}"
    full_s, index = _timed(build_index, root, work / "api-index")
    query = {"eo:cloud_cover": {"lt": 20}, "sat:relative_orbit": {"eq": 51}}
    west, south, east, north = json.loads(next(root.glob(f"maja-s2-l2a/{TILES[0]}/*/*/*.json")).read_text())["bbox"]
    bbox = [west - 0.1, south - 0.1, east + 0.1, north + 0.1]  # one tile: the others are shifted
    interval = ("2016-01-01T00:00:00Z", "2016-12-31T23:59:59Z")

    def brute() -> set[str]:
        found = set()
        for path in root.glob("maja-s2-l2a/*/*/*/*.json"):
            item = json.loads(path.read_text())
            p, b = item["properties"], item["bbox"]
            if (p["eo:cloud_cover"] < 20 and p["sat:relative_orbit"] == 51 and interval[0] <= p["datetime"] <= interval[1]
                    and b[0] <= bbox[2] and b[2] >= bbox[0] and b[1] <= bbox[3] and b[3] >= bbox[1]):
                found.add(item["id"])
        return found

    engine = SearchEngine(index.path)

    def ours() -> set[str]:
        search = parse_search({"bbox": bbox, "datetime": "/".join(interval), "query": query, "limit": 10000},
                              engine.queryables, post=True)
        return {orjson.loads(zlib.decompress(blob))["id"] for _, blob in engine.search(search)[0]}

    brute_s, expected = min((_timed(brute) for _ in range(3)), key=lambda r: r[0])
    engine_s, got = min((_timed(ours) for _ in range(3)), key=lambda r: r[0])
    assert got == expected and expected, (len(got), len(expected))
    print(f"{len(expected)} matches. brute-force JSON scan {brute_s * 1000:.0f} ms; the index {engine_s * 1000:.1f} ms "
          f"-> {brute_s / engine_s:.0f}x faster (over HTTP: benchmarks/bench_search.py)")
    write_ours(root, _clones(template, 10, offset=n))
    update_s, update = _timed(build_index, root, work / "api-index")
    print(f"search index (serve --api): built from scratch in {full_s:.1f} s ({full_s / n * 1000:.1f} ms per item); "
          f"after adding 10 items, updated in {update_s:.2f} s ({len(update.rebuilt)} tile-year re-read) "
          f"-> {update_s / full_s:.3f} of a rebuild")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--products", type=int, default=50, help="real products for the no-op re-ingest")
    parser.add_argument("--big", type=int, default=100000, help="catalog size for adding 10 items (0: skip)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    print(f"work folder {work}, {os.cpu_count()} CPUs")
    try:
        template = _template(work)
        bench_write(template, args.sizes, work)
        bench_noop(args.products, work)
        bench_search(template, max(args.sizes), work)
        if args.big:
            bench_big(template, args.big, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
