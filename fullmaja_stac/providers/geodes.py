"""GEODES (CNES): find and fetch the MAJA L2A products that already exist.

GEODES serves Theia's MAJA products through a STAC API. Search is a POST with a ``query``
object and page numbers (not the standard ``next`` token), at most 80 items a page, the total
in ``context.matched``. An item's MUSCATE name is ``properties.identifier``. Its
``properties.datetime`` is the *publication* time; the sensing time is ``start_datetime``
(eodag maps it so, and a recorded answer shows datetime a day after start_datetime). The zip
is the ``data`` asset, keyed and titled by its file name, whose description carries
``File size: N bytes``, ``Is online: true|false`` and ``Checksum MD5: <md5>``; we take it as
tolerantly as eodag (the first data asset that is not XML) and pyGeodes (a title ending in
``.zip``) do. Downloads need an ``X-API-Key`` header; a wrong key may show up as a redirect
loop, 429 means the quota is spent.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import urlparse

import msgspec
import requests
from platformdirs import user_config_path

from fullmaja_stac import config
from fullmaja_stac.config import APP_NAME
from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.providers.job_files import download_job
from fullmaja_stac.providers.jobs import Job, JobStore
from fullmaja_stac.providers.peps.auth import netrc_entry, warn_if_readable_by_others
from fullmaja_stac.providers.peps.client import make_session
from fullmaja_stac.providers.base import RemoteFile
from fullmaja_stac.trust.records import GeodesAsset, GeodesFeature, GeodesPage, RecordError, decode, http_url
from fullmaja_stac.trust.remote import Answer, RemoteLimitError, watched
from fullmaja_stac.trust.remote import fetch as fetch_document
from fullmaja_stac.trust.paths import name_problem, shown
from fullmaja_stac.tiles import normalize_tile

GEODES_URL = "https://geodes-portal.cnes.fr"
COLLECTION = "THEIA_REFLECTANCE_SENTINEL2_L2A"  # was MUSCATE_SENTINEL2_SENTINEL2_L2A until late 2025
ENV_URL, ENV_KEY, ENV_COLLECTION = "FULLMAJA_STAC_GEODES_URL", "GEODES_API_KEY", "FULLMAJA_STAC_GEODES_COLLECTION"
PAGE_LIMIT = 80
_SIZE = re.compile(r"File size:\s*(\d+)\s*bytes", re.I)
_ONLINE = re.compile(r"Is online:\s*(true|false)", re.I)
_MD5 = re.compile(r"Checksum MD5:\s*([0-9a-fA-F]{32})", re.I)


class GeodesError(FullMajaError):
    """GEODES refused or failed a request; one line that says what to do."""


def geodes_url(flag: str | None = None) -> str:
    return (flag or os.environ.get(ENV_URL) or GEODES_URL).rstrip("/")


def find_api_key(base_url: str) -> str | None:
    """``GEODES_API_KEY``, then the config file ``<config>/fullmaja-stac/geodes-api-key``,
    then the password of a ~/.netrc entry for the GEODES host."""
    if os.environ.get(ENV_KEY):
        return os.environ[ENV_KEY].strip()
    key_file = user_config_path(APP_NAME) / "geodes-api-key"
    if key_file.is_file():
        warn_if_readable_by_others(key_file, "GEODES API key")
        return key_file.read_text(encoding="utf-8").strip() or None
    entry = netrc_entry(urlparse(base_url).hostname or "")
    return entry[2] if entry and entry[2] else None


def require_api_key(base_url: str) -> str:
    key = find_api_key(base_url)
    if not key:
        raise GeodesError(f"no GEODES API key: set {ENV_KEY}, write it to "
                          f"{user_config_path(APP_NAME) / 'geodes-api-key'}, or add a ~/.netrc entry for "
                          f"{urlparse(base_url).hostname} (create a key in your GEODES account)")
    return key


@dataclass(frozen=True)
class GeodesProduct:
    urn: str
    name: str  # MUSCATE product name
    acquired: datetime | None
    cloud_cover: float | None
    relative_orbit: int | None
    tile: str | None
    version: str | None
    href: str | None
    size: int | None
    online: bool
    md5: str | None
    problem: str | None = None  # why there is nothing to download (no zip among the assets)

    @property
    def file_name(self) -> str:
        return f"{self.name}.zip"


def _is_xml(asset: GeodesAsset) -> bool:
    return "xml" in (asset.type or "").lower()


def zip_asset(assets: dict[str, GeodesAsset]) -> GeodesAsset | None:
    """The product's zip: a ``data`` asset that says it is a zip (type, key, title or href),
    else the first ``data`` asset that is not XML (eodag's rule), else any asset titled or
    keyed ``*.zip`` (pyGeodes's rule)."""
    def says_zip(key: str, a: GeodesAsset) -> bool:
        return (a.type or "").lower() in ("application/zip", "application/x-zip-compressed") or any(
            str(v).lower().split("?")[0].endswith(".zip") for v in (key, a.title or "", a.href or ""))

    entries = [(k, a) for k, a in assets.items() if a.href]
    data = [(k, a) for k, a in entries if "data" in a.roles]
    for candidates in ([a for k, a in data if says_zip(k, a)], [a for _, a in data if not _is_xml(a)],
                       [a for k, a in entries if says_zip(k, a)]):
        if candidates:
            return candidates[0]
    return None


def _seen(assets: dict[str, GeodesAsset]) -> str:
    return "; ".join(f"{shown(k, 40).strip(chr(39))} ({a.type or 'no type'}, roles {','.join(a.roles) or 'none'})"
                     for k, a in list(assets.items())[:6]) or "no asset at all"


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def parse_item(feature: GeodesFeature | dict) -> GeodesProduct:
    """One search result as a product; a raw dict is checked as a :class:`GeodesFeature`
    first. The name must be a safe file name and the zip's href an http(s) URL, or the
    product says why it cannot be fetched (``problem``)."""
    if isinstance(feature, dict):
        try:
            feature = msgspec.convert(feature, GeodesFeature)
        except msgspec.ValidationError as exc:
            raise GeodesError(f"a GEODES search result is not of the expected shape: {exc}") from None
    props = feature.properties
    name = props.identifier or feature.id
    data = zip_asset(feature.assets)
    text = (data.description if data else None) or ""
    size, online, md5 = _SIZE.search(text), _ONLINE.search(text), _MD5.search(text)
    # sensing time first: GEODES's `datetime` is when the product was published
    acquired = _when(props.start_datetime) or _when(props.end_datetime) or _when(props.datetime)
    version = re.search(r"_V(\d+-\d+)$", name)
    problem = None if data else f"no downloadable zip among its assets (seen: {_seen(feature.assets)})"
    href = data.href if data else None
    if problem is None and (bad := name_problem(name)) is not None:
        problem, href = f"its identifier {shown(name)} cannot be a file name: it {bad}", None
    if href is not None:
        try:
            http_url(href, "its zip's href")
        except RecordError as exc:
            problem, href = str(exc), None
    return GeodesProduct(
        urn=feature.id, name=name, acquired=acquired,
        cloud_cover=props.cloud_cover, relative_orbit=props.relative_orbit,
        tile=(props.grid_code or "").removeprefix("MGRS-").removeprefix("T") or None,
        version=version.group(1) if version else None,
        href=href, size=int(size.group(1)) if size else None,
        online=(online.group(1).lower() == "true") if online else True, md5=md5.group(1).lower() if md5 else None,
        problem=problem,
    )


def search_body(tile: str, orbit: int | None, start: date, end: date, max_cloud: float | None,
                collection: str, page: int, limit: int = PAGE_LIMIT) -> dict:
    query: dict = {
        "grid:code": {"eq": f"T{normalize_tile(tile)}"},
        "start_datetime": {"gte": f"{start:%Y-%m-%d}T00:00:00Z"},
        "end_datetime": {"lte": f"{end:%Y-%m-%d}T23:59:59Z"},
    }
    if orbit is not None:
        query["sat:relative_orbit"] = {"eq": orbit}
    if max_cloud is not None:
        query["eo:cloud_cover"] = {"lte": max_cloud}
    return {"collections": [collection], "query": query, "limit": limit, "page": page,
            "sortBy": [{"field": "start_datetime", "direction": "asc"}]}


REDIRECT_LOOP = "GEODES answered with a redirect loop: the API key is probably wrong"


def geodes_session(api_key: str | None, base_url: str) -> requests.Session:
    """Our retry policy, the key in ``X-API-Key`` for ``base_url``'s origin only (a zip or a
    redirect on another host gets no key), and few redirects (a bad key loops)."""
    session = make_session(None, base_url)
    session.max_redirects = 5
    if api_key:
        session.headers["X-API-Key"] = api_key
    return session


class GeodesClient:
    def __init__(self, base_url: str, api_key: str | None = None, collection: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.collection = collection or os.environ.get(ENV_COLLECTION) or COLLECTION
        self.use_key(api_key)

    def use_key(self, api_key: str | None) -> None:
        self.api_key = api_key
        self.session = geodes_session(api_key, self.base_url)

    def search(self, tile: str, orbit: int | None, start: date, end: date, max_cloud: float | None = None) -> list[GeodesProduct]:
        """Every matching product, following page numbers until ``context.matched`` is reached,
        a page is short or brings nothing new, or :data:`~fullmaja_stac.config.MAX_SEARCH_PAGES`
        pages were read (then it says so rather than loop)."""
        products: dict[str, GeodesProduct] = {}
        for page in range(1, config.MAX_SEARCH_PAGES + 1):
            body = search_body(tile, orbit, start, end, max_cloud, self.collection, page)
            url = f"{self.base_url}/api/stac/search"
            try:
                doc = decode(self._post(url, body), GeodesPage, f"GEODES's search page {page}")
            except RecordError as exc:
                raise GeodesError(str(exc)) from None
            before = len(products)
            for feature in doc.features:
                product = parse_item(feature)
                products.setdefault(product.urn or product.name, product)
            matched = doc.context.matched if doc.context else None
            if not doc.features or len(products) == before or (matched is not None and len(products) >= matched) \
                    or len(doc.features) < body["limit"]:
                return list(products.values())
        raise GeodesError(f"GEODES kept sending full pages: stopped after {config.MAX_SEARCH_PAGES} pages "
                          f"({len(products)} products); narrow the period or the filters")

    def _post(self, url: str, body: dict) -> bytes:
        try:
            response = fetch_document(self.session, "POST", url, json=body, what="GEODES's search answer")
        except requests.TooManyRedirects:
            raise GeodesError(REDIRECT_LOOP) from None
        except RemoteLimitError as exc:
            raise GeodesError(f"{url}: {exc}") from None
        except requests.RequestException as exc:
            raise GeodesError(f"cannot reach {url} ({type(exc).__name__})") from None
        return self._body(response, url)

    @staticmethod
    def _body(response: Answer, url: str) -> bytes:
        if response.status_code in (401, 403):
            raise GeodesError(f"GEODES refused the API key (HTTP {response.status_code})")
        if response.status_code == 429:
            raise GeodesError("GEODES quota spent (HTTP 429): try again later")
        if response.status_code == 400:
            raise GeodesError(f"GEODES rejected the request (HTTP 400): {shown(response.text[:200], 220)}; if the "
                              f"collection was renamed again, set {ENV_COLLECTION}")
        if response.status_code >= 400:
            raise GeodesError(f"GEODES answered HTTP {response.status_code} for {url}")
        return response.content

    def check_key(self, href: str) -> None:
        """Fail early, in one line, if the key is missing or wrong (before any download starts)."""
        if not self.api_key:
            raise GeodesError(f"no GEODES API key: set {ENV_KEY} (see `fullmaja-stac fetch --help`)")
        try:
            with watched(), self.session.get(href, stream=True, timeout=(10, 60)) as response:
                if response.status_code in (401, 403):  # the body is not read
                    raise GeodesError(f"GEODES refused the API key (HTTP {response.status_code})")
        except RemoteLimitError as exc:
            raise GeodesError(f"{urlparse(href).netloc}: {exc}") from None
        except requests.TooManyRedirects:
            raise GeodesError(REDIRECT_LOOP) from None
        except requests.RequestException as exc:
            raise GeodesError(f"cannot reach {urlparse(href).netloc} ({type(exc).__name__})") from None

def record_fetch(store: JobStore, client: GeodesClient, products: list[GeodesProduct], request: dict) -> Job:
    """A GEODES fetch as a job of the store: finished at once, its files known."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    job = store.add_job("geodes", client.base_url, f"geodes-{stamp}", None, request, "FINISHED")
    info = {p.href: {"name": p.file_name, "urn": p.urn, "md5": p.md5, "size": p.size, "online": p.online}
            for p in products if p.href}
    return store.record_status(job.id, "FINISHED", 100.0, f"{len(info)} products found on GEODES", [],
                               list(info), 0, result_info=info)


class GeodesProvider:
    """Files of a GEODES job, fetched with the X-API-Key header and checked against the MD5."""

    name = "geodes"

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url, self.api_key = base_url, api_key

    def session(self) -> requests.Session:
        return geodes_session(self.api_key, self.base_url)

    def files(self, job: Job) -> list[RemoteFile]:
        return [RemoteFile(meta["name"], url, meta.get("urn"), meta.get("md5"), meta.get("size"), meta.get("online", True))
                for url, meta in job.result_info.items()]


def search_existing(base_url: str, tile: str, orbit: int | None, start: date, end: date,
                    max_cloud: float | None = None, names: list[str] | None = None) -> tuple[GeodesClient, list[GeodesProduct]]:
    """The MAJA products GEODES already has for a tile, orbit and period (no key needed to
    search); with ``names``, only those, and a clear error for any that is not there."""
    client = GeodesClient(base_url, find_api_key(base_url))
    products = client.search(tile, orbit, start, end, max_cloud)
    if names:
        wanted = {n.removesuffix(".zip") for n in names}
        products = [p for p in products if p.name in wanted]
        missing = wanted - {p.name for p in products}
        if missing:
            raise GeodesError(f"not found on GEODES with these filters: {', '.join(sorted(missing))}")
    return client, products


def fetch(store: JobStore, client: GeodesClient, products: list[GeodesProduct], request: dict, out,
          observer=None):
    """Download existing products: check the key once (one line if it is missing or wrong),
    record the fetch as a job of the store, then download, resume and verify like any job."""
    if not products:
        raise GeodesError("GEODES has no product matching these filters")
    key = require_api_key(client.base_url)
    client.use_key(key)
    online = [p for p in products if p.online and p.href]
    if online:
        client.check_key(online[0].href)
    job = record_fetch(store, client, products, request)
    return download_job(store, GeodesProvider(client.base_url, key), job, out, observer)

