"""Serve a catalog folder over HTTP with CORS and Range (COG reads), optionally with a built
STAC Browser under ``/browser/`` whose runtime ``config.js`` points at the catalog.
"""

from __future__ import annotations

import json
import mimetypes
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlparse

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.publish.browser import BROWSER_PREFIX, browser_config
from fullmaja_stac.publish.httpserver import IDLE_TIMEOUT, LoopbackServer, parse_range
from fullmaja_stac.trust.paths import inside

MEDIA_TYPES = {".json": "application/json", ".tif": "image/tiff", ".tiff": "image/tiff", ".jpg": "image/jpeg",
               ".xml": "application/xml", ".js": "text/javascript", ".css": "text/css", ".html": "text/html",
               ".svg": "image/svg+xml", ".png": "image/png", ".woff2": "font/woff2", ".ico": "image/x-icon"}


ALLOWED_METHODS = "GET, HEAD, OPTIONS"


class CatalogServer(LoopbackServer):
    def __init__(self, catalog: Path, port: int = 8000, host: str = "127.0.0.1", browser: Path | None = None,
                 idle_timeout: float = IDLE_TIMEOUT, basemap: str | None = None) -> None:
        self.basemap = basemap
        self.catalog = Path(catalog).resolve()
        if not (self.catalog / "catalog.json").exists():
            raise FullMajaError(f"{catalog}: no catalog.json here; run `fullmaja-stac ingest` or `fullmaja-stac demo` first")
        self.browser = browser.resolve() if browser else None
        try:
            super().__init__(type("Handler", (_Handler,), {"server_ref": self}), host, port, "catalog-server", idle_timeout)
        except OSError as exc:
            raise FullMajaError(f"cannot listen on {host}:{port} ({exc.strerror}); try another --port") from None

    @property
    def catalog_url(self) -> str:
        return f"{self.url}/catalog.json"

    @property
    def browser_url(self) -> str:
        return f"{self.url}{BROWSER_PREFIX}"


class _Handler(BaseHTTPRequestHandler):
    server_ref: CatalogServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Range, If-None-Match, Content-Type")
        self.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length, Accept-Ranges, ETag")

    def do_OPTIONS(self) -> None:  # noqa: N802 - stdlib name
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error the standard library would answer in HTML (an unknown method, a bad
        request line, headers too long) as our one-line JSON, like the API's."""
        if self.request_version == "HTTP/0.9":  # a request line that did not parse: answer with a status line anyway
            self.request_version = "HTTP/1.0"
        if code == HTTPStatus.NOT_IMPLEMENTED:  # a method we do not serve: POST, PUT, FOO …
            method = (self.command or "")[:20]
            self._error(405, f"method {method!r} is not allowed here; use {ALLOWED_METHODS}", {"Allow": ALLOWED_METHODS})
        else:
            self._error(code, (message or HTTPStatus(code).phrase)[:200])
        self.close_connection = True

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"code": HTTPStatus(status).phrase.replace(" ", ""), "description": message}).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self._cors()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _resolve(self, path: str) -> Path | bytes | None:
        srv = self.server_ref
        if path.startswith(BROWSER_PREFIX.rstrip("/")) and srv.browser is not None:
            rel = path[len(BROWSER_PREFIX):] if path.startswith(BROWSER_PREFIX) else ""
            if rel == "config.js":
                return browser_config(srv.catalog, srv.catalog_url, srv.basemap)
            base, rel = srv.browser, rel or "index.html"
        else:
            base, rel = srv.catalog, path.lstrip("/") or "catalog.json"
        target = inside(base, rel)
        try:
            return target if target is not None and target.is_file() else None
        except OSError:
            return None

    def do_GET(self) -> None:  # noqa: N802
        path = unquote(urlparse(self.path).path)
        if path == BROWSER_PREFIX.rstrip("/"):
            self.send_response(301)
            self.send_header("Location", BROWSER_PREFIX)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        target = self._resolve(path)
        if target is None and path == "/favicon.ico":  # browsers ask every site for one; we have none
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if target is None:
            self._error(404, f"not found: {path[:200]!r}" if not path.isprintable() else f"not found: {path[:200]}")
            return
        if isinstance(target, bytes):
            data, media = target, "text/javascript"
            total = len(data)
        else:
            total = target.stat().st_size
            media = MEDIA_TYPES.get(target.suffix.lower()) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            data = None
        wanted = parse_range(self.headers.get("Range"), total)
        if wanted is False:
            self.send_response(416)
            self._cors()
            self.send_header("Content-Range", f"bytes */{total}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        (start, end), status = (wanted, 206) if wanted else ((0, total - 1), 200)
        length = end - start + 1 if total else 0
        self.send_response(status)
        self._cors()
        self.send_header("Content-Type", media)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if self.command == "HEAD" or not length:
            return
        try:
            if data is not None:
                self.wfile.write(data[start:end + 1])
                return
            with open(target, "rb") as fh:
                fh.seek(start)
                remaining = length
                while remaining:
                    chunk = fh.read(min(1 << 20, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass


def open_server(catalog: Path, *, host: str = "127.0.0.1", port: int = 8000, browser: Path | None = None,
                api: bool = False, state_dir: Path | None = None, progress=None, basemap: str | None = None):
    """The server ``fullmaja-stac serve`` runs, started: the STAC API over an index kept in
    ``state_dir`` (``api``), or the static files. Returns it and one line that says where."""
    if api:
        from fullmaja_stac.publish.api.app import require_api_extra

        require_api_extra()  # before indexing: say what is missing first, not after a long index
        from fullmaja_stac.publish.api.app import ApiServer, build_index
        from fullmaja_stac.config import state_dir as resolve_state

        index = build_index(catalog, resolve_state(state_dir) / "api-index", progress=progress)
        server = ApiServer(index, host=host, port=port, browser=browser, basemap=basemap).start()
        count = len(index.rebuilt)
        state = f"{count} tile-year{'s' if count > 1 else ''} re-indexed" if count else "index up to date"
        return server, f"STAC API: {server.url}/ ({state} in {index.path})"
    server = CatalogServer(catalog, port=port, host=host, browser=browser, basemap=basemap).start()
    return server, f"catalog: {server.catalog_url}"

