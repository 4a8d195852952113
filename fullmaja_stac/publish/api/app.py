"""A STAC API (core, collections, features, item search, filter, query, sort, fields) over a
static catalog, searched in the SQLite index of :mod:`fullmaja_stac.publish.api.index`.

Every request goes through :func:`fullmaja_stac.publish.api.search.parse_search`, which checks each
parameter and builds SQL from our own column names and bound values only. The index is
opened read-only, behind an SQLite authorizer that allows reading and our few functions and
nothing else, and every statement has a time limit: past it the request gets a 503 and the
server keeps answering. Every error a client sees is JSON ``{"code", "description"}`` with a
one-line description and no internal text.

Asset hrefs are rewritten to URLs under ``/catalog/`` of the same server, which serves the
catalog's files with Range support, so stackstac and odc-stac read search results over HTTP.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import orjson

from fullmaja_stac.publish.api.index import ApiIndex, build_index, queryables
from fullmaja_stac.publish.api.search import Search, SearchError, parse_search, query_to_cql2, shown
from fullmaja_stac.errors import FullMajaError

try:  # the [api] extra; endpoint annotations are resolved in this module's namespace
    from fastapi import Request
except ImportError:  # pragma: no cover - create_app says what to install
    Request = None  # type: ignore[assignment,misc]

__all__ = ["ApiIndex", "ApiServer", "SearchEngine", "SearchError", "build_index", "create_app", "query_to_cql2"]

FILES_PREFIX = "/catalog"
INSTALL_HINT = "in the fullmaja-stac checkout, pip install -e '.[api]' (the package is not on PyPI)"
QUERY_SECONDS = 5.0  # the time limit of one search
MAX_BODY = 1_000_000  # bytes of a POST body
GEOJSON = "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
STAC_API = "https://api.stacspec.org/v1.0.0"
CONFORMANCE = [
    f"{STAC_API}/core",
    f"{STAC_API}/collections",
    f"{STAC_API}/ogcapi-features",
    f"{STAC_API}/ogcapi-features#fields",
    f"{STAC_API}/ogcapi-features#query",
    f"{STAC_API}/ogcapi-features#sort",
    f"{STAC_API}/item-search",
    f"{STAC_API}/item-search#fields",
    f"{STAC_API}/item-search#filter",
    f"{STAC_API}/item-search#query",
    f"{STAC_API}/item-search#sort",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
]
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
JSON_SCHEMA_KIND = {"number": {"type": "number"}, "integer": {"type": "integer"}, "string": {"type": "string"},
                    "boolean": {"type": "boolean"}, "timestamp": {"type": "string", "format": "date-time"},
                    "geometry": {"$ref": "https://geojson.org/schema/Geometry.json"}}


class Unavailable(Exception):
    """A search that ran past its time limit (503)."""


# What a request may make the database do: read, and call these functions. The R*Tree module
# prepares (never runs: the file is open read-only, query_only is on) statements on its own
# shadow tables and reads the schema; those are the only other actions allowed.
_ALLOWED_FUNCTIONS = {"fm_spatial", "count", "like", "length"}
_RTREE_SHADOWS = {"items_box_node", "items_box_rowid", "items_box_parent"}


def _authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _ALLOWED_FUNCTIONS:
        return sqlite3.SQLITE_OK
    if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_DELETE) and arg1 in _RTREE_SHADOWS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


_RELATIONS = {"s_intersects": "intersects", "s_within": "within", "s_contains": "contains", "s_equals": "equals",
              "s_touches": "touches", "s_overlaps": "overlaps", "s_crosses": "crosses"}


class _GeometryCache(threading.local):
    def __init__(self) -> None:
        self.prepared: OrderedDict[bytes, Any] = OrderedDict()


_geometries = _GeometryCache()


def _spatial(op: str, item_wkb: bytes | None, query_wkb: bytes) -> int:
    """``fm_spatial(op, geometry, ?)``: the exact relation of an item's footprint to the
    query geometry (the query geometry is parsed and prepared once per thread)."""
    import shapely

    if item_wkb is None or op not in _RELATIONS:
        return 0
    query = _geometries.prepared.get(query_wkb)
    if query is None:
        query = shapely.from_wkb(query_wkb)
        shapely.prepare(query)
        _geometries.prepared[query_wkb] = query
        while len(_geometries.prepared) > 16:
            _geometries.prepared.popitem(last=False)
    item = shapely.from_wkb(item_wkb)
    relation = _RELATIONS[op]
    if relation in ("within", "contains"):  # item within query == query contains item
        return int(getattr(shapely, "contains" if relation == "within" else "within")(query, item))
    return int(getattr(shapely, relation)(query, item))


SANDBOX_LAYERS = ("read_only_file", "query_only", "no_attach", "no_extensions", "authorizer")


def sandbox_connection(path: Path, without: frozenset[str] = frozenset()) -> sqlite3.Connection:
    """A connection to the index that can only read, by several independent layers
    (:data:`SANDBOX_LAYERS`); ``without`` leaves some out, for the test that proves each
    layer refuses on its own what would otherwise succeed."""
    mode = "?mode=ro" if "read_only_file" not in without else ""
    db = sqlite3.connect(f"{Path(path).resolve().as_uri()}{mode}", uri=True, check_same_thread=False)
    db.execute("PRAGMA case_sensitive_like = ON")  # CQL2 like is case-sensitive
    if "query_only" not in without:
        db.execute("PRAGMA query_only = ON")
    db.execute("PRAGMA trusted_schema = OFF")
    if "no_extensions" not in without and hasattr(db, "enable_load_extension"):  # builds without it load none
        db.enable_load_extension(False)
    db.create_function("fm_spatial", 3, _spatial, deterministic=True)
    if "no_attach" not in without:
        db.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    db.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 2_000_000)
    db.setlimit(sqlite3.SQLITE_LIMIT_EXPR_DEPTH, 300)
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20_000)
    if "authorizer" not in without:
        db.set_authorizer(_authorizer)
    return db


class SearchEngine:
    """Sandboxed, read-only searches of one index; a connection per thread."""

    def __init__(self, path: Path, time_limit: float = QUERY_SECONDS) -> None:
        self.path = Path(path)
        self.time_limit = time_limit
        self._local = threading.local()
        db = self._connection()
        self.queryables = queryables(db)
        self.collection = orjson.loads(db.execute("SELECT value FROM meta WHERE key = 'collection'").fetchone()[0])
        self.collections = {self.collection["id"]}

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sandbox_connection(self.path)
            self._local.deadline = float("inf")
            db.set_progress_handler(lambda: int(time.monotonic() > self._local.deadline), 2000)
            self._local.db = db
        return db

    def _run(self, sql: str, params: list) -> list:
        db = self._connection()
        self._local.deadline = time.monotonic() + self.time_limit
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise Unavailable(f"the search took longer than {self.time_limit:g} s; narrow it "
                                  "(a bbox, a date range or a tile) and try again") from None
            raise
        finally:
            self._local.deadline = float("inf")

    def search(self, search: Search) -> tuple[list[tuple[str, bytes]], int]:
        """The page of (folder, compressed item) rows, and the number of items matched."""
        order = ", ".join([*search.order, "dt DESC", "id"])
        rows = self._run(f"SELECT folder, item FROM items WHERE {search.where_sql} ORDER BY {order} LIMIT ? OFFSET ?",
                         [*search.params, search.limit, search.offset])
        if search.offset == 0 and len(rows) < search.limit:
            return rows, len(rows)
        (matched,), = self._run(f"SELECT COUNT(*) FROM items WHERE {search.where_sql}", search.params)
        return rows, matched

    def item(self, item_id: str) -> tuple[str, bytes] | None:
        rows = self._run("SELECT folder, item FROM items WHERE id = ?", [item_id])
        return rows[0] if rows else None

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


# ----------------------------------------------------------------------------- responses


DEFAULT_FIELDS = ("type", "stac_version", "id", "geometry", "bbox", "links", "assets", "properties.datetime")
ALWAYS_FIELDS = ("type", "stac_version", "id", "links")  # kept with any include, so items stay items


def _pick(item: dict, search: Search) -> dict:
    """The Fields extension. Excludes alone apply to the whole item; includes (with the few
    fields an item needs) replace it, and an explicitly empty include means the default set.
    A path both included and excluded, or excluded above a more specific include, is kept."""
    if not search.fields:
        return item
    include, exclude = search.include, search.exclude
    if include is None and exclude:
        out = item
    else:
        out = {}
        for path in (*ALWAYS_FIELDS, *include) if include else DEFAULT_FIELDS:
            source, target, keys = item, out, path.split(".")
            for key in keys[:-1]:
                if not isinstance(source.get(key), dict):
                    break
                source, target = source[key], target.setdefault(key, {})
            else:
                if keys[-1] in source:
                    target[keys[-1]] = source[keys[-1]]
    for path in exclude:
        if any(kept == path or kept.startswith(path + ".") for kept in include or ()):
            continue
        target, keys = out, path.split(".")
        for key in keys[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target.pop(keys[-1], None)
    return out


def create_app(index: ApiIndex, browser: Path | None = None, title: str = "MAJA Sentinel-2 L2A",
               time_limit: float = QUERY_SECONDS, basemap: str | None = None):
    """The ASGI app: STAC API at ``/``, the catalog's files at ``/catalog/``, and a built
    STAC Browser pointed at the API under ``/browser/`` when ``browser`` is given."""
    try:
        from fastapi import FastAPI
        from starlette.middleware.cors import CORSMiddleware
    except ImportError as exc:
        raise FullMajaError(f"serve --api needs FastAPI ({exc.name} is missing): {INSTALL_HINT}") from None

    api = _StacApi(index, title, time_limit)
    app = FastAPI(title=title, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"],
                       expose_headers=["Content-Range", "Content-Length", "Accept-Ranges"])
    for add_routes in (api.add_errors, api.add_landing, api.add_collections, api.add_search, api.add_items):
        add_routes(app)
    api.add_files(app, browser, basemap)
    return app


def _response(body: bytes, status: int = 200, media_type: str = "application/json"):
    from fastapi.responses import Response

    return Response(body, status, media_type=media_type)


def error(status: int, code: str, description: str):
    """Every error a client sees: one line of JSON, no internal text."""
    return _response(orjson.dumps({"code": code, "description": description}), status)


def answer(doc: Any, media_type: str = "application/json"):
    return _response(orjson.dumps(doc), media_type=media_type)


def base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class _StacApi:
    """The routes of the STAC API, one method per family (errors, landing, collections,
    search, items, files), over one index; request checking is :mod:`.search`'s."""

    def __init__(self, index: ApiIndex, title: str, time_limit: float) -> None:
        self.catalog, self.title = index.catalog, title
        self.engine = SearchEngine(index.path, time_limit)
        self.collection_id = self.engine.collection["id"]

    # -- documents ------------------------------------------------------------------------
    def served_item(self, row: tuple[str, bytes], root: str) -> dict:
        folder, blob = row
        item = orjson.loads(zlib.decompress(blob))
        folder_url = f"{root}{FILES_PREFIX}/{quote(folder)}/"
        for asset in item.get("assets", {}).values():
            asset["href"] = urljoin(folder_url, asset["href"])
        item["collection"] = item.get("collection", self.collection_id)
        item["links"] = [
            {"rel": "self", "type": GEOJSON, "href": f"{root}/collections/{quote(item['collection'])}/items/{quote(item['id'])}"},
            {"rel": "parent", "type": "application/json", "href": f"{root}/collections/{quote(item['collection'])}"},
            {"rel": "collection", "type": "application/json", "href": f"{root}/collections/{quote(item['collection'])}"},
            {"rel": "root", "type": "application/json", "href": f"{root}/"},
        ]
        return item

    def collection_doc(self, root: str) -> dict:
        cid = self.collection_id
        doc = dict(self.engine.collection)
        doc["links"] = [
            {"rel": "self", "type": "application/json", "href": f"{root}/collections/{cid}"},
            {"rel": "parent", "type": "application/json", "href": f"{root}/"},
            {"rel": "root", "type": "application/json", "href": f"{root}/"},
            {"rel": "items", "type": GEOJSON, "href": f"{root}/collections/{cid}/items"},
            {"rel": QUERYABLES_REL, "type": "application/schema+json", "href": f"{root}/collections/{cid}/queryables"},
        ]
        return doc

    def queryables_doc(self, url: str) -> dict:
        props = {name: {**JSON_SCHEMA_KIND.get(q.kind, {}), "title": name} for name, q in sorted(self.engine.queryables.items())}
        return {"$schema": "https://json-schema.org/draft/2019-09/schema", "$id": url, "type": "object",
                "title": "Queryables", "properties": props, "additionalProperties": False}

    # -- errors ---------------------------------------------------------------------------
    def add_errors(self, app) -> None:
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException as StarletteHTTPException

        @app.exception_handler(SearchError)
        async def bad_request(request: Request, exc: SearchError):
            return error(400, "BadRequest", str(exc))

        @app.exception_handler(Unavailable)
        async def unavailable(request: Request, exc: Unavailable):
            return error(503, "ServiceUnavailable", str(exc))

        @app.exception_handler(RequestValidationError)
        async def invalid(request: Request, exc: RequestValidationError):
            return error(400, "BadRequest", "the request is not valid")

        @app.exception_handler(StarletteHTTPException)
        async def http_error(request: Request, exc: StarletteHTTPException):
            text = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "request refused")
            return error(exc.status_code, "NotFound" if exc.status_code == 404 else "BadRequest", text)

        @app.exception_handler(Exception)
        async def internal(request: Request, exc: Exception):  # never our internals to a client
            import logging

            logging.getLogger("fullmaja_stac.publish.api.app").exception("search failed")
            return error(500, "InternalError", "the server could not answer this request; it has been logged")

    # -- landing, API description, conformance ---------------------------------------------
    def add_landing(self, app) -> None:
        @app.get("/", include_in_schema=True, summary="Landing page")
        def landing(request: Request):
            root = base(request)
            links = [
                {"rel": "self", "type": "application/json", "href": f"{root}/"},
                {"rel": "root", "type": "application/json", "href": f"{root}/"},
                {"rel": "conformance", "type": "application/json", "href": f"{root}/conformance"},
                {"rel": "data", "type": "application/json", "href": f"{root}/collections"},
                {"rel": "child", "type": "application/json", "href": f"{root}/collections/{self.collection_id}"},
                {"rel": "search", "type": GEOJSON, "href": f"{root}/search", "method": "GET"},
                {"rel": "search", "type": GEOJSON, "href": f"{root}/search", "method": "POST"},
                {"rel": QUERYABLES_REL, "type": "application/schema+json", "href": f"{root}/queryables"},
                {"rel": "service-desc", "type": OPENAPI, "href": f"{root}/api"},
                {"rel": "service-doc", "type": "text/html", "href": f"{root}/api.html"},
            ]
            return answer({"type": "Catalog", "id": "fullmaja-stac", "stac_version": "1.1.0", "title": self.title,
                           "description": f"STAC API over the static STAC catalog in {self.catalog.name}",
                           "conformsTo": CONFORMANCE, "links": links})

        @app.get("/api", include_in_schema=False)
        def openapi():
            return _response(orjson.dumps(app.openapi()), media_type=OPENAPI)

        @app.get("/api.html", include_in_schema=False)
        def openapi_page():
            from fastapi.openapi.docs import get_swagger_ui_html

            return get_swagger_ui_html(openapi_url="/api", title=f"{self.title} - API")

        @app.get("/conformance", summary="Conformance classes")
        def conformance():
            return answer({"conformsTo": CONFORMANCE})

    # -- collections and queryables ------------------------------------------------------------
    def add_collections(self, app) -> None:
        @app.get("/collections", summary="Collections")
        def collections(request: Request):
            root = base(request)
            return answer({"collections": [self.collection_doc(root)], "links": [
                {"rel": "self", "type": "application/json", "href": f"{root}/collections"},
                {"rel": "root", "type": "application/json", "href": f"{root}/"},
                {"rel": "parent", "type": "application/json", "href": f"{root}/"}]})

        @app.get("/collections/{cid}", summary="One collection")
        def collection(cid: str, request: Request):
            if cid != self.collection_id:
                return error(404, "NotFound", "no such collection")
            return answer(self.collection_doc(base(request)))

        @app.get("/queryables", summary="Queryables")
        def all_queryables(request: Request):
            return answer(self.queryables_doc(f"{base(request)}/queryables"), "application/schema+json")

        @app.get("/collections/{cid}/queryables", summary="Queryables of a collection")
        def collection_queryables(cid: str, request: Request):
            if cid != self.collection_id:
                return error(404, "NotFound", "no such collection")
            return answer(self.queryables_doc(f"{base(request)}/collections/{cid}/queryables"), "application/schema+json")

    # -- search --------------------------------------------------------------------------------
    def run_search(self, params: dict, request: Request, url: str, post_body: dict | None):
        search = parse_search(params, self.engine.queryables, post=post_body is not None)
        rows, matched = self.engine.search(search)
        root = base(request)
        features = [_pick(self.served_item(row, root), search) for row in rows]
        links = [{"rel": "root", "type": "application/json", "href": f"{root}/"},
                 {"rel": "self", "type": GEOJSON, "href": str(request.url)}]
        if search.offset + len(rows) < matched:
            token = f"next:{search.offset + len(rows)}"
            if post_body is None:
                query = {k: v for k, v in request.query_params.items() if k != "token"}
                links.append({"rel": "next", "type": GEOJSON, "method": "GET",
                              "href": f"{url}?{urlencode({**query, 'token': token})}"})
            else:
                links.append({"rel": "next", "type": GEOJSON, "method": "POST", "href": url,
                              "body": {**post_body, "token": token}, "merge": False})
        return answer({"type": "FeatureCollection", "features": features, "links": links,
                       "numberMatched": matched, "numberReturned": len(features)}, GEOJSON)

    @staticmethod
    def get_params(request: Request) -> dict:
        params: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in params:
                raise SearchError(f"parameter {shown(key)} given twice")
            params[key] = value
        return params

    @staticmethod
    async def post_params(request: Request) -> dict:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise SearchError(f"the request body is larger than {MAX_BODY} bytes")
        try:
            params = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:  # also raised for nesting deeper than 1024
            raise SearchError("the request body is not valid JSON (or is nested too deeply)") from None
        if not isinstance(params, dict):
            raise SearchError("the request body must be a JSON object")
        return params

    def add_search(self, app) -> None:
        @app.get("/search", summary="Item search (GET)")
        def search_get(request: Request):
            return self.run_search(self.get_params(request), request, f"{base(request)}/search", None)

        @app.post("/search", summary="Item search (POST)")
        async def search_post(request: Request):
            from starlette.concurrency import run_in_threadpool

            params = await self.post_params(request)
            return await run_in_threadpool(self.run_search, params, request, f"{base(request)}/search", params)

    # -- items of the collection -----------------------------------------------------------------
    def add_items(self, app) -> None:
        @app.get("/collections/{cid}/items", summary="Items of a collection")
        def items(cid: str, request: Request):
            if cid != self.collection_id:
                return error(404, "NotFound", "no such collection")
            params = self.get_params(request)
            for name in ("collections", "ids", "intersects"):
                if name in params:
                    raise SearchError(f"{name} is a parameter of /search, not of /collections/{{id}}/items")
            params["collections"] = cid
            return self.run_search(params, request, f"{base(request)}/collections/{cid}/items", None)

        @app.get("/collections/{cid}/items/{item_id}", summary="One item")
        def item(cid: str, item_id: str, request: Request):
            row = self.engine.item(item_id) if cid == self.collection_id else None
            if row is None:
                return error(404, "NotFound", "no such item")
            return answer(self.served_item(row, base(request)), GEOJSON)

    # -- the catalog's files and STAC Browser ---------------------------------------------------
    def add_files(self, app, browser: Path | None, basemap: str | None) -> None:
        from starlette.staticfiles import StaticFiles

        app.mount(FILES_PREFIX, StaticFiles(directory=self.catalog), name="catalog-files")
        if browser is None:
            return
        from fullmaja_stac.publish.browser import BROWSER_PREFIX, browser_config

        @app.get(f"{BROWSER_PREFIX}config.js", include_in_schema=False)
        def browser_settings(request: Request):
            return _response(browser_config(self.catalog, str(request.base_url), basemap), media_type="text/javascript")

        app.mount(BROWSER_PREFIX.rstrip("/"), StaticFiles(directory=browser, html=True), name="browser")


# ----------------------------------------------------------------------------- server


HEAD_TIMEOUT = 10.0  # seconds from a connection's start (or its last answer) to a complete request head
MAX_WAITING = 256  # connections waiting for a request; beyond, the one that waited longest is closed
MAX_CONCURRENCY = MAX_WAITING + 200  # uvicorn's 503 limit counts open connections too
STOP_GRACE_SECONDS = 3  # what a request in flight gets to finish when the server stops


def _guarded_protocol():
    """uvicorn's h11 protocol, made so that idle clients cannot deny service: a connection
    must send a complete request head within ``HEAD_TIMEOUT`` of its start or of its last
    answer (uvicorn times out none before the first request, and a client sending a byte a
    second would reset its keep-alive timer), and at most ``MAX_WAITING`` connections may
    wait for a request at once (the oldest is closed for a new one), so that the capacity
    uvicorn counts in connections stays free for requests."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    waiting: dict[H11Protocol, float] = {}  # every server's connections waiting for a request head

    class GuardedH11Protocol(H11Protocol):
        _head_timer = None

        def _wait_for_head(self) -> None:
            self._cancel_head_timer()
            waiting[self] = time.monotonic()
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)
            if len(waiting) > MAX_WAITING:
                oldest = min(waiting, key=waiting.__getitem__)
                oldest._head_timed_out()

        def _cancel_head_timer(self) -> None:
            waiting.pop(self, None)
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._cancel_head_timer()
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._wait_for_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._cancel_head_timer()  # a whole request head arrived: it is served

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._wait_for_head()

        def connection_lost(self, exc) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

    return GuardedH11Protocol


def require_api_extra() -> None:
    """A one-line error naming the install command if the [api] extra is missing."""
    import importlib

    missing = []
    for name in ("fastapi", "uvicorn", "cql2"):
        try:
            importlib.import_module(name)  # imported anyway to serve
        except ImportError:
            missing.append(name)
    if missing:
        raise FullMajaError(f"serve --api needs {', '.join(missing)}: {INSTALL_HINT}")


class ApiServer:
    """uvicorn on a socket bound up front, so port 0 works and the URL is known at once."""

    def __init__(self, index: ApiIndex, host: str = "127.0.0.1", port: int = 8000, browser: Path | None = None,
                 time_limit: float = QUERY_SECONDS, basemap: str | None = None) -> None:
        try:
            import uvicorn
        except ImportError:
            raise FullMajaError(f"serve --api needs uvicorn: {INSTALL_HINT}") from None

        app = create_app(index, browser, time_limit=time_limit, basemap=basemap)
        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError as exc:
            self.socket.close()
            raise FullMajaError(f"cannot listen on {host}:{port} ({exc.strerror}); try another --port") from None
        self.host, self.port = host, self.socket.getsockname()[1]
        # timeout_graceful_shutdown: a stop waits this long for requests in flight, then cuts
        # them (uvicorn would otherwise wait for every connection, however long it takes)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", backlog=512,
                                timeout_keep_alive=15, limit_concurrency=MAX_CONCURRENCY, http=_guarded_protocol(),
                                timeout_graceful_shutdown=STOP_GRACE_SECONDS)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def browser_url(self) -> str:
        from fullmaja_stac.publish.browser import BROWSER_PREFIX

        return f"{self.url}{BROWSER_PREFIX}"

    def start(self) -> ApiServer:
        """Serve from a background thread; returns once it accepts requests.

        uvicorn outside the main thread leaves signals alone, so Ctrl-C reaches our
        ``serve_forever`` and stops the server cleanly instead of cancelling it mid-request.
        """
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                        name="stac-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise FullMajaError("the STAC API server did not start; see the messages above")
            time.sleep(0.02)
        return self

    def serve_forever(self) -> None:
        """Block until Ctrl-C (or the server stops by itself)."""
        if self._thread is None:
            self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving; bounded: requests in flight get STOP_GRACE_SECONDS, and a second call
        (Ctrl-C during the first) returns at once."""
        first = not self.server.should_exit
        self.server.should_exit = True
        if first and self._thread:
            self._thread.join(timeout=STOP_GRACE_SECONDS + 5)
        self.socket.close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
