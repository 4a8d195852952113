"""Search latency of ``serve --api`` over HTTP with pystac-client, at N items, side by side
with stac-fastapi-pgstac + pgstac loaded with the same items by ``publish pgstac`` (the
reference engine), in the same run.

Five typical searches, each asking for the first page (10 items, whole item bodies, and
``numberMatched``) as a user browsing results does: tile + date range, bbox + date range,
cloud cover < 20, one relative orbit, and a CQL2 combination. Each is repeated ``--repeat``
times after one warm-up; p50 and p95 are printed, and the ratio of ours to pgstac's. The
number matched by both engines is checked to be the same.

The catalog is made of copies of one real ingested item on 120 tiles (see bench_catalog.py).

    python benchmarks/bench_search.py [--sizes 10000 100000] [--repeat 30]
        [--pgstac-dsn postgresql://user:pass@127.0.0.1:5432/db]   # or FULLMAJA_STAC_TEST_PGDSN
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_catalog import TILES, _clones, _template, _timed, write_ours  # noqa: E402

from fullmaja_stac.publish.api.app import ApiServer, build_index  # noqa: E402
from fullmaja_stac.stac.catalog import tile_years  # noqa: E402


def searches(root: Path) -> dict[str, dict]:
    """The five typical searches, as pystac-client keyword arguments."""
    import json

    tile = TILES[0]
    west, south, east, north = json.loads(next(root.glob(f"maja-s2-l2a/{tile}/*/*/*.json")).read_text())["bbox"]
    return {
        "tile + dates": dict(query={"grid:code": {"eq": f"MGRS-{tile}"}}, datetime="2016-03-01T00:00:00Z/2016-09-01T00:00:00Z"),
        "bbox + dates": dict(bbox=[west - 0.1, south - 0.1, east + 0.1, north + 0.1],
                             datetime="2016-01-01T00:00:00Z/2016-12-31T23:59:59Z"),
        "cloud < 20": dict(query={"eo:cloud_cover": {"lt": 20}}),
        "orbit 51": dict(query={"sat:relative_orbit": {"eq": 51}}),
        "CQL2 combination": dict(filter={"op": "and", "args": [
            {"op": "<", "args": [{"property": "eo:cloud_cover"}, 30]},
            {"op": "=", "args": [{"property": "sat:relative_orbit"}, 8]},
            {"op": "t_intersects", "args": [{"property": "datetime"},
                                            {"interval": ["2016-01-01T00:00:00Z", "2016-06-30T23:59:59Z"]}]}]},
            filter_lang="cql2-json"),
    }


def first_pages(url: str, cases: dict[str, dict], repeat: int) -> dict[str, tuple[float, float, int]]:
    """p50, p95 (ms) and numberMatched of the first page of each search."""
    import pystac_client

    client = pystac_client.Client.open(url)
    out = {}
    for name, kwargs in cases.items():
        times, matched = [], None
        for n in range(repeat + 1):
            start = time.perf_counter()
            page = next(client.search(limit=10, **kwargs).pages_as_dicts())
            elapsed = time.perf_counter() - start
            matched = page.get("numberMatched", page.get("context", {}).get("matched"))
            assert len(page["features"]) == min(10, matched or 10), name
            if n:  # the first is a warm-up
                times.append(elapsed * 1000)
        times.sort()
        out[name] = (statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))], matched)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pgstac_server(dsn: str):
    """stac-fastapi-pgstac in a subprocess (its own process, as it would be deployed).

    pgstac counts matches (``numberMatched``) only with its ``context`` setting on (off by
    default since pgstac 0.9), and exactly only below its estimate thresholds; ours always
    counts exactly, so pgstac is asked to do the same work. Its cache of counts is emptied
    first: it would answer the counts of an earlier load."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgstac.pgstac_settings (name, value) VALUES ('context', 'on') "
                     "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value")
        # Above context_estimated_count / _cost (100 000 by default) pgstac answers the query
        # planner's estimate instead of counting: after a load, with the statistics of the
        # earlier 10 000 items, it said 2 000 where 20 000 matched. Ours counts exactly; so must it.
        for name in ("context_estimated_count", "context_estimated_cost"):
            conn.execute("INSERT INTO pgstac.pgstac_settings (name, value) VALUES (%s, '2000000000') "
                         "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value", (name,))
        # and no count cached from an earlier load: pgstac keeps them per filter in search_wheres
        # (context_stats_ttl, a day), and a load does not clear them
        conn.execute("DELETE FROM pgstac.searches")
        conn.execute("DELETE FROM pgstac.search_wheres")
    parts = urlsplit(dsn)
    port = _free_port()
    env = {**os.environ, "PGHOST": parts.hostname or "127.0.0.1", "PGPORT": str(parts.port or 5432),
           "PGUSER": parts.username or "", "PGPASSWORD": parts.password or "", "PGDATABASE": parts.path.lstrip("/"),
           "POSTGRES_HOST_READER": parts.hostname or "127.0.0.1", "POSTGRES_HOST_WRITER": parts.hostname or "127.0.0.1",
           "POSTGRES_PORT": str(parts.port or 5432), "POSTGRES_USER": parts.username or "",
           "POSTGRES_PASS": parts.password or "", "POSTGRES_DBNAME": parts.path.lstrip("/")}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "stac_fastapi.pgstac.app:create_app", "--factory", "--port", str(port),
                             "--log-level", "warning"], env=env)
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=2).ok:
                return proc, f"http://127.0.0.1:{port}"
        except requests.ConnectionError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("stac-fastapi-pgstac did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--pgstac-dsn", default=os.environ.get("FULLMAJA_STAC_TEST_PGDSN"))
    parser.add_argument("--work", type=Path, help="work folder (kept); default a temporary one, removed")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}, {os.cpu_count()} CPUs; first page of 10 items, p50 / p95 over {args.repeat} runs")
    try:
        template = _template(work)
        for n in args.sizes:
            root = work / f"catalog-{n}"
            if not (root / "catalog.json").exists():
                write_ours(root, _clones(template, n))
            build_s, index = _timed(build_index, root, work / "index")
            how = ("from scratch" if len(index.rebuilt) == len(tile_years(root)) else
                   f"an incremental update of a reused --work index: {len(index.rebuilt)} tile-years re-read")
            cases = searches(root)
            with ApiServer(index, port=0) as server:
                ours = first_pages(server.url, cases, args.repeat)
            theirs = {}
            if args.pgstac_dsn:
                from fullmaja_stac.publish.pgstac import publish_pgstac

                load_s, _ = _timed(publish_pgstac, root, args.pgstac_dsn, None, True, True)
                proc, url = pgstac_server(args.pgstac_dsn)
                try:
                    theirs = first_pages(url, cases, args.repeat)
                finally:
                    proc.terminate()
                    proc.wait(10)
                print(f"\n## {n} items (index built in {build_s:.1f} s, {how}; pgstac loaded in {load_s:.1f} s)")
            else:
                print(f"\n## {n} items (index built in {build_s:.1f} s, {how}; no --pgstac-dsn: ours only)")
            mismatched: list[str] = []
            print(f"{'search':<18} {'matched':>8} {'ours p50':>9} {'p95':>7} {'pgstac p50':>11} {'p95':>7} {'ours/pgstac':>12}")
            for name, (p50, p95, matched) in ours.items():
                line = f"{name:<18} {matched:>8} {p50:>8.1f}  {p95:>6.1f}"
                if name in theirs:
                    t50, t95, t_matched = theirs[name]
                    line += f" {t50:>10.1f}  {t95:>6.1f} {p50 / t50:>11.2f}x"
                    if t_matched != matched:
                        mismatched.append(f"{n} items, {name}: ours matched {matched}, pgstac {t_matched}")
                print(line)
            if mismatched:
                raise SystemExit("the two engines disagree, so the times compare different work:\n" + "\n".join(mismatched))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
