"""A STAC API (core, item-search, filter, query, sort, fields) over a static catalog.

Backed by stac-fastapi-geoparquet, which searches a stac-geoparquet file with rustac's
DuckDB. Two things are added here, in our own words:

- DuckDB's ``spatial`` extension is loaded from the ``rustac-duckdb-extensions`` wheel, so
  search works with no network (rustac would otherwise download it at start-up);
- the Query extension (``query={"eo:cloud_cover": {"lt": 20}}``, what pystac-client users
  write) is translated to the equivalent CQL2-JSON filter, which rustac evaluates.

Asset hrefs in the index are absolute paths of the catalog's COGs; responses rewrite them to
URLs under ``/catalog/`` of the same server, which serves the files with Range support, so
stackstac and odc-stac read the search results over HTTP from any machine.
"""

from __future__ import annotations

import json
import socket
import warnings
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fullmaja_stac.api_index import ApiIndex, build_index
from fullmaja_stac.consume import href_under
from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.stac.catalog import read_json
from fullmaja_stac.stac.constants import COLLECTION_ID

__all__ = ["ApiIndex", "ApiServer", "QueryError", "build_index", "create_app", "duckdb_client", "query_to_cql2"]

FILES_PREFIX = "/catalog"
INSTALL_HINT = "pip install 'fullmaja-stac[api]'"

# Query extension operators -> CQL2 (https://github.com/stac-api-extensions/query)
_COMPARISONS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_LIKE = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}


class QueryError(ValueError):
    """A Query-extension expression we cannot translate (the API answers 400)."""


def query_to_cql2(query: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The CQL2-JSON filter equivalent to a Query-extension object (all terms ANDed)."""
    terms: list[dict[str, Any]] = []
    if not isinstance(query, dict) or not query:
        raise QueryError("query must be an object such as {\"eo:cloud_cover\": {\"lt\": 20}}")
    for name, ops in query.items():
        if not isinstance(ops, dict) or not ops:
            raise QueryError(f"query on {name!r} must be an object of operators such as {{\"lt\": 20}}")
        prop = {"property": name}
        for op, value in ops.items():
            if op in _COMPARISONS:
                terms.append({"op": _COMPARISONS[op], "args": [prop, value]})
            elif op == "in":
                if not isinstance(value, list):
                    raise QueryError(f"query on {name!r}: 'in' needs a list")
                terms.append({"op": "in", "args": [prop, value]})
            elif op in _LIKE:
                escaped = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                terms.append({"op": "like", "args": [prop, _LIKE[op].format(escaped)]})
            else:
                known = ", ".join([*_COMPARISONS, "in", *_LIKE])
                raise QueryError(f"query on {name!r}: unknown operator {op!r} (known: {known})")
    return terms[0] if len(terms) == 1 else {"op": "and", "args": terms}


# ----------------------------------------------------------------------------- app


def duckdb_client():
    """rustac's DuckDB client with the spatial extension from the installed wheel (offline).

    ``rustac.DuckdbClient`` is the compiled class, whose constructor runs before any Python
    wrapper could add the bundled extension folder, so the folder is passed explicitly.
    """
    try:
        import rustac_duckdb_extensions
        from rustac.rustac import DuckdbClient
    except ImportError:
        raise FullMajaError(f"serve --api needs rustac and rustac-duckdb-extensions: {INSTALL_HINT}") from None
    folder = rustac_duckdb_extensions.extension_directory()
    from rustac import RustacError

    try:
        return DuckdbClient(extension_directory=str(folder), install_extensions=False, extensions=["spatial"])
    except RustacError as exc:
        raise FullMajaError(
            f"DuckDB could not load its spatial extension from {folder} ({exc}); rustac and "
            f"rustac-duckdb-extensions must be the pinned pair: {INSTALL_HINT}"
        ) from None


def create_app(index: ApiIndex, browser: Path | None = None, title: str = "MAJA Sentinel-2 L2A"):
    """The ASGI app: STAC API at ``/``, the catalog's files at ``/catalog/``, and a built
    STAC Browser pointed at the API under ``/browser/`` when ``browser`` is given."""
    # stac-fastapi 5 uses ORJSONResponse, which FastAPI now deprecates: not the user's concern
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    try:
        from fastapi import FastAPI, HTTPException, Response
        from stac_fastapi.api.app import StacApi
        from stac_fastapi.api.models import (
            create_get_request_model,
            create_post_request_model,
        )
        from stac_fastapi.extensions.core import QueryExtension
        from stac_fastapi.geoparquet import api as gp_api
        from stac_fastapi.geoparquet import models as gp_models
        from stac_fastapi.geoparquet.client import Client
        from stac_fastapi.geoparquet.search import FixedSearchGetRequest
        from stac_fastapi.types.search import BaseSearchPostRequest
        from starlette.middleware import Middleware
        from starlette.middleware.cors import CORSMiddleware
        from starlette.staticfiles import StaticFiles
    except ImportError as exc:
        raise FullMajaError(f"serve --api needs stac-fastapi-geoparquet ({exc.name} is missing): {INSTALL_HINT}") from None

    extensions = [*gp_models.EXTENSIONS, QueryExtension()]
    get_model = create_get_request_model(base_model=FixedSearchGetRequest, extensions=extensions)
    post_model = create_post_request_model(base_model=BaseSearchPostRequest, extensions=extensions)
    items_model = create_get_request_model(base_model=gp_models.ItemCollectionUri, extensions=extensions)
    catalog = index.catalog

    class MajaClient(Client):
        """stac-fastapi-geoparquet's client plus the Query extension and served asset hrefs."""

        def search(self, *, request, url, search, **kwargs):
            query = kwargs.pop("query", None) or getattr(search, "query", None)
            if query:
                try:
                    cql = query_to_cql2(json.loads(query) if isinstance(query, str) else query)
                except (QueryError, json.JSONDecodeError) as exc:
                    raise HTTPException(400, f"invalid query: {exc}") from None
                if kwargs.get("filter_expr") or getattr(search, "filter_expr", None):
                    raise HTTPException(400, "use either query or filter, not both")
                kwargs["filter_expr"], kwargs["filter_lang"] = cql, "cql2-json"
            if hasattr(search, "query"):
                search = search.model_copy(update={"query": None})
            return super().search(request=request, url=url, search=search, **kwargs)

        def item_with_links(self, item, request, collection):
            item = super().item_with_links(item, request, collection)
            for asset in item.get("assets", {}).values():
                asset["href"] = href_under(asset["href"], catalog, f"{str(request.base_url).rstrip('/')}{FILES_PREFIX}")
            return item

    settings = gp_api.Settings(
        _env_file=None,  # never pick up a .env from the user's working folder
        stac_fastapi_title=title,
        stac_fastapi_description=f"STAC API over the static catalog {catalog}",
        stac_fastapi_landing_id="fullmaja-stac",
    )
    collection = read_json(catalog / COLLECTION_ID / "collection.json", None)
    if collection is None:
        raise FullMajaError(f"{catalog}: no {COLLECTION_ID}/collection.json; the catalog is incomplete, re-run ingest")
    state = {"client": duckdb_client(), "collections": {collection["id"]: collection},
             "hrefs": {collection["id"]: index.pattern}}

    @asynccontextmanager
    async def lifespan(app):
        yield state  # becomes request.state, where stac-fastapi-geoparquet's client looks

    app = FastAPI(lifespan=lifespan, openapi_url=settings.openapi_url, docs_url=settings.docs_url)
    api = StacApi(
        settings=settings, client=MajaClient(), app=app, extensions=extensions,
        search_get_request_model=get_model, search_post_request_model=post_model,
        items_get_request_model=items_model,
        # no Brotli middleware: it would compress the COG range responses under /catalog
        middlewares=[Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST", "OPTIONS"],
                                allow_headers=["*"], expose_headers=["Content-Range", "Content-Length", "Accept-Ranges"])],
    )
    api.app.mount(FILES_PREFIX, StaticFiles(directory=catalog), name="catalog-files")
    if browser is not None:
        from fullmaja_stac.serve import BROWSER_PREFIX, browser_config

        def browser_settings(request):  # a plain Starlette endpoint: no FastAPI parameter parsing
            return Response(browser_config(catalog, str(request.base_url)), media_type="text/javascript")

        api.app.add_route(f"{BROWSER_PREFIX}config.js", browser_settings, include_in_schema=False)

        api.app.mount(BROWSER_PREFIX.rstrip("/"), StaticFiles(directory=browser, html=True), name="browser")
    return api.app


# ----------------------------------------------------------------------------- server


class ApiServer:
    """uvicorn on a socket bound up front, so port 0 works and the URL is known at once."""

    def __init__(self, index: ApiIndex, host: str = "127.0.0.1", port: int = 8000, browser: Path | None = None) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError as exc:
            self.socket.close()
            raise FullMajaError(f"cannot listen on {host}:{port} ({exc.strerror}); try another --port") from None
        self.host, self.port = host, self.socket.getsockname()[1]
        config = uvicorn.Config(create_app(index, browser), log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def browser_url(self) -> str:
        from fullmaja_stac.serve import BROWSER_PREFIX

        return f"{self.url}{BROWSER_PREFIX}"

    def start(self) -> ApiServer:
        """Serve from a background thread; returns once it accepts requests.

        uvicorn outside the main thread leaves signals alone, so Ctrl-C reaches our
        ``serve_forever`` and stops the server cleanly instead of cancelling it mid-lifespan.
        """
        import threading
        import time

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
        self.server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        self.socket.close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
