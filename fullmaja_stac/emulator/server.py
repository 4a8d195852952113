"""A local PEPS (and GEODES): the FULL_MAJA WPS protocol and GEODES's STAC search on
127.0.0.1, serving synthetic MAJA products.

It speaks the same URLs and documents as PEPS (the reference scripts full_maja_process.py / full_maja_download.py; docs/NOTES.md), with HTTP Basic auth, a queue
of at most 10 running jobs, progress on a simulated clock (``speed`` emulated seconds per
real second), real MUSCATE zips for the passes of the requested tile and orbit, NOVALD names
for too-cloudy dates, ``unprocessed`` for split products, HTTP Range, and switchable faults.

GEODES side: ``POST /api/stac/search`` (``query`` filters, page numbers, at most 80 a page,
``context.matched``), items whose zip asset describes its size, online state and MD5,
``GET /api/download/<URN>/files/<md5>`` behind ``X-API-Key`` (a wrong key loops on redirects),
offline products. Items have the shape of GEODES's real answers (eodag's recorded search):
``datetime`` is the publication time, a day or more after ``start_datetime``/``end_datetime``
(the sensing time); ``platform`` is ``S2A``/``S2B``; ``grid:code`` is ``T31TCJ``; assets are
keyed by file name, the zip with roles ``data`` beside a quicklook with roles ``overview``.

Document layout is kept exactly as the reference scripts parse it: the ExecuteResponse start
tag on one line ending with ``statusLocation="…">``, and the ``wps:Reference`` on one line.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from pyproj import Transformer

from fullmaja_stac.config import FIRST_PRODUCT_S, PER_DATE_S
from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.publish.httpserver import LoopbackServer, parse_range
from fullmaja_stac.maja.synthetic import SynthOptions, plan_series, write_product

MAX_RUNNING = 10
DEMO_USER = ("demo@fullmaja.invalid", "demo-password")
FAULTS = {
    "stuck": "running jobs stop progressing at 40 % and never finish",
    "error": "jobs end in ERROR with a message and a log link",
    "canceled": "jobs end CANCELED (e.g. no DEM beyond 60° latitude)",
    "auth": "every request gets 401",
    "submit500": "job submission answers HTTP 500",
    "drop": "downloads are cut mid-body (first 2 attempts per file)",
    "truncate": "downloads announce the full length but send half (first 2 attempts per file)",
    "429": "the first 2 requests of each kind get 429 with Retry-After: 1",
    "500": "the first 2 status/download requests get HTTP 500",
    "slow": "downloads are sent in slow chunks",
    "html": "downloads answer an HTML error page (first 2 attempts per file)",
    "corrupt": "downloads send a body of the right length with one byte changed (first 2 attempts per file)",
    "oddstatus": "the status document's Reference has no .json suffix and PROCESSING_STATUS answers plain text",
}
GEODES_KEY = "demo-geodes-key"
GEODES_SERIES = (("31TCJ", 51), ("31TCJ", 8), ("31TCH", 51))  # what the emulated archive holds
GEODES_PERIOD = (date(2020, 1, 1), date(2020, 12, 31))
_DATAINPUT = re.compile(r"(\w+)=([^;]*)")


class EmulatedClock:
    """Simulated time: ``speed`` emulated seconds pass per real second; tests may advance it."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._origin = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


@dataclass
class _Job:
    id: str
    user: str
    tile: str
    orbit: int | None
    start: date
    end: date
    submitted: float
    specs: list = field(default_factory=list)
    started: float | None = None
    files: dict[str, Path] = field(default_factory=dict)
    novald: list[str] = field(default_factory=list)
    unprocessed: int = 0
    ready: bool = False
    writer: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def duration(self) -> float:
        return FIRST_PRODUCT_S + PER_DATE_S * max(0, len(self.specs) - 1)


class PepsEmulator(LoopbackServer):
    """Run with ``with PepsEmulator() as emu: emu.url``; or ``start()`` / ``stop()``."""

    def __init__(self, port: int = 0, speed: float = 3600.0, size: int = 120, seed: int = 0,
                 faults: set[str] | None = None, users: dict[str, str] | None = None,
                 data_dir: Path | None = None, host: str = "127.0.0.1") -> None:
        unknown = set(faults or ()) - set(FAULTS)
        if unknown:
            raise FullMajaError(f"unknown emulator fault(s) {', '.join(sorted(unknown))}; known: {', '.join(FAULTS)}")
        self.clock = EmulatedClock(speed)
        self.size, self.seed = size, seed
        self.faults = set(faults or ())
        self.users = dict(users or dict([DEMO_USER]))
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="fullmaja-emulator-"))
        self.jobs: dict[str, _Job] = {}
        self.lock = threading.RLock()
        self.attempts: dict[str, int] = {}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers) for tests
        self._last_id = 0
        self.geodes_keys = {GEODES_KEY}
        self._geodes: list[dict] | None = None
        super().__init__(type("Handler", (_Handler,), {"emulator": self}), host, port, "peps-emulator")

    def stop(self) -> None:
        super().stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- job model -----------------------------------------------------------------------
    def new_job_id(self) -> str:
        with self.lock:  # pywps 3 uses int(time * 100)
            value = max(int(time.time() * 100), self._last_id + 1)
            self._last_id = value
            return str(value)

    def submit(self, user: str, inputs: dict[str, str]) -> _Job:
        try:
            tile = inputs["tileid"]
            start = date.fromisoformat(inputs["startDate"])
            end = date.fromisoformat(inputs["completionDate"])
            orbit = int(inputs["relativeOrbitNumber"]) if inputs.get("relativeOrbitNumber") else None
        except (KeyError, ValueError) as exc:
            raise ValueError(f"bad datainputs: {exc}") from None
        specs = plan_series(tile, orbit or 51, start, end, seed=self.seed)
        job = _Job(self.new_job_id(), user, tile, orbit, start, end, self.clock.now(), specs)
        with self.lock:
            self.jobs[job.id] = job
        return job

    def _schedule(self, now: float) -> None:
        """First in, first out: a job starts when submitted or when one of 10 slots frees."""
        slots: list[float] = []  # end times of the jobs holding a slot
        for job in sorted(self.jobs.values(), key=lambda j: (j.submitted, j.id)):
            if len(slots) < MAX_RUNNING:
                start = job.submitted
            else:
                start = max(job.submitted, heapq.heappop(slots))
            if start > now:
                job.started = None  # this one and every later one still wait
                for later in self.jobs.values():
                    if (later.submitted, later.id) > (job.submitted, job.id):
                        later.started = None
                return
            job.started = start
            heapq.heappush(slots, float("inf") if "stuck" in self.faults else start + job.duration)

    def state(self, job: _Job) -> tuple[str, float, str]:
        """(job_status, percent, message) at the emulated now."""
        with self.lock:
            self._schedule(self.clock.now())
            if job.started is None:
                return "PENDING", 0.0, "Waiting for a processing slot (at most 10 FULL_MAJA jobs run at once)"
            fraction = min(1.0, (self.clock.now() - job.started) / job.duration)
            if "stuck" in self.faults:
                return "STALLED", round(min(fraction, 0.40) * 100, 1), "Process started"
            if fraction < 1.0:
                return "STALLED", round(min(99.0, fraction * 100 * 1.15), 1), "Process started"
            if "error" in self.faults:
                return "ERROR", 100.0, "MAJA failed: not enough valid L1C dates to initialise the time series"
            if "canceled" in self.faults:
                return "CANCELED", 0.0, "Job canceled: no DEM available for this tile (beyond +/-60 degrees latitude)"
            if not job.ready:  # write the products in the background; report FINISHED once they exist
                if job.writer is None:
                    job.writer = threading.Thread(target=self.ensure_products, args=(job,), daemon=True)
                    job.writer.start()
                return "STALLED", 99.0, "Writing products"
            return "FINISHED", 100.0, "Process finished"

    def ensure_products(self, job: _Job) -> None:
        """Write the job's products the first time they are asked for (under the job's own
        lock, so status requests of other jobs are not held up)."""
        with job.lock:
            if job.ready:
                return
            out = self.data_dir / job.id
            for spec in job.specs:
                name = spec.product_id(SynthOptions(size=self.size, seed=self.seed))
                if spec.too_cloudy:
                    job.novald.append(f"{name}_NOVALD.zip")
                elif spec.split:
                    job.unprocessed += 1
                else:
                    path = write_product(spec, out, SynthOptions(size=self.size, seed=self.seed))
                    job.files[path.name] = path
            job.ready = True

    # -- GEODES archive --------------------------------------------------------------------
    def geodes_archive(self) -> list[dict]:
        """Every product of the emulated archive (too-cloudy dates were never produced)."""
        with self.lock:
            if self._geodes is None:
                entries = []
                for tile, orbit in GEODES_SERIES:
                    for spec in plan_series(tile, orbit, *GEODES_PERIOD, seed=self.seed):
                        if spec.too_cloudy:
                            continue
                        name = spec.product_id(SynthOptions(size=self.size, seed=self.seed))
                        urn = f"URN:FEATURE:DATA:gdh:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"
                        online = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10 != 0  # ~10 % on tape
                        entries.append({"urn": urn, "name": name, "spec": spec, "tile": tile, "orbit": orbit,
                                        "cloud": round(spec.cloud_fraction * 100, 1), "online": online, "path": None})
                self._geodes = sorted(entries, key=lambda e: e["spec"].acquired)
            return self._geodes

    def geodes_file(self, entry: dict) -> Path:
        with self.lock:
            if entry["path"] is None:
                entry["path"] = write_product(entry["spec"], self.data_dir / "geodes", SynthOptions(size=self.size, seed=self.seed))
            return entry["path"]

    def fault_once(self, name: str, key: str, times: int = 2) -> bool:
        """True for the first ``times`` calls with this fault and key."""
        if name not in self.faults:
            return False
        with self.lock:
            seen = self.attempts.get(f"{name}:{key}", 0)
            self.attempts[f"{name}:{key}"] = seen + 1
            return seen < times


def _execute_response(emu: PepsEmulator, job: _Job, identifier: str, status_xml: str, outputs: str = "") -> bytes:
    location = f"{emu.url}/wps/outputs/pywps-{job.id}.xml"
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<wps:ExecuteResponse xmlns:wps="http://www.opengis.net/wps/1.0.0" '
        'xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.opengis.net/wps/1.0.0 http://schemas.opengis.net/wps/1.0.0/wpsExecute_response.xsd" '
        'service="WPS" version="1.0.0" xml:lang="en-CA" '
        f'serviceInstance="{emu.url}/cgi-bin/pywps.cgi?service=WPS&amp;request=GetCapabilities&amp;version=1.0.0" '
        f'statusLocation="{location}">\n'
        '    <wps:Process wps:processVersion="1.0">\n'
        f"        <ows:Identifier>{identifier}</ows:Identifier>\n"
        f"        <ows:Title>{identifier}</ows:Title>\n"
        "    </wps:Process>\n"
        f'    <wps:Status creationTime="{created}">\n'
        f"        {status_xml}\n"
        "    </wps:Status>\n"
        f"{outputs}"
        "</wps:ExecuteResponse>\n"
    ).encode("utf-8")


def _status_outputs(emu: PepsEmulator, job: _Job) -> str:
    href = f"{emu.url}/wps/outputs/status?job={job.id}" if "oddstatus" in emu.faults else f"{emu.url}/wps/outputs/{job.id}.json"
    return (
        "    <wps:ProcessOutputs>\n"
        "        <wps:Output>\n"
        "            <ows:Identifier>status</ows:Identifier>\n"
        "            <ows:Title>Processing status</ows:Title>\n"
        f'            <wps:Reference href="{href}" mimeType="application/json"/>\n'
        "        </wps:Output>\n"
        "    </wps:ProcessOutputs>\n"
    )


class _Handler(BaseHTTPRequestHandler):
    emulator: PepsEmulator
    protocol_version = "HTTP/1.1"
    server_version = "PEPS-emulator/1.0"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- plumbing ------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to tell it

    def _json(self, status: int, doc: dict) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json")

    def _user(self) -> str | None:
        emu = self.emulator
        header = self.headers.get("Authorization", "")
        if "auth" in emu.faults or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user if emu.users.get(user) == password else None

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self.do_GET()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        emu = self.emulator
        url = urlparse(self.path)
        emu.requests.append((self.command, self.path, dict(self.headers)))
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": "the body is not JSON"})
            return
        if emu.fault_once("429", "geodes-" + url.path):
            self._send(429, b'{"error":"quota exceeded"}', "application/json", {"Retry-After": "1"})
        elif url.path == "/api/stac/search":
            self._geodes_search(body)
        else:
            self._json(404, {"error": f"Not found: {url.path}"})

    def _geodes_search(self, body: dict) -> None:
        emu = self.emulator
        if body.get("collections") not in (None, ["THEIA_REFLECTANCE_SENTINEL2_L2A"]):
            self._json(400, {"code": 400, "description": f"Unknown collection(s) {body.get('collections')}"})
            return
        query = body.get("query") or {}

        def keep(e: dict) -> bool:
            when = e["spec"].acquired.strftime("%Y-%m-%dT%H:%M:%SZ")
            tests = {
                "grid:code": lambda op, v: f"T{e['tile']}" == v,
                "sat:relative_orbit": lambda op, v: e["orbit"] == v,
                "eo:cloud_cover": lambda op, v: {"lte": e["cloud"] <= v, "lt": e["cloud"] < v,
                                                 "gte": e["cloud"] >= v, "gt": e["cloud"] > v, "eq": e["cloud"] == v}[op],
                "start_datetime": lambda op, v: when >= v if op == "gte" else when <= v,
                "end_datetime": lambda op, v: when <= v if op == "lte" else when >= v,
            }
            return all(tests[field](op, value) for field, cond in query.items() if field in tests
                       for op, value in cond.items())

        matched = [e for e in emu.geodes_archive() if keep(e)]
        limit = max(1, min(int(body.get("limit") or 20), 80))
        page = max(1, int(body.get("page") or 1))
        chunk = matched[(page - 1) * limit: page * limit]
        features = [self._geodes_item(e) for e in chunk]
        items = f"{emu.url}/api/stac/collections/THEIA_REFLECTANCE_SENTINEL2_L2A/items"
        links = [{"rel": "self", "href": f"{items}?limit={limit}&page={page}", "type": "application/json"}]
        if page * limit < len(matched):
            links.append({"rel": "next", "href": f"{items}?limit={limit}&page={page + 1}", "type": "application/json"})
        self._json(200, {"type": "FeatureCollection", "features": features, "links": links,
                         "context": {"matched": len(matched), "returned": len(features), "limit": limit}})

    def _geodes_landing(self) -> None:
        """Enough of a STAC API landing page for pystac-client to find the search endpoint."""
        base = f"{self.emulator.url}/api/stac"
        self._json(200, {
            "type": "Catalog", "id": "geodes", "stac_version": "1.0.0",
            "description": "GEODES STAC API (emulated by fullmaja-stac)",
            "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
                           "https://api.stacspec.org/v1.0.0-rc.1/item-search#query"],
            "links": [{"rel": "self", "href": base, "type": "application/json"},
                      {"rel": "root", "href": base, "type": "application/json"},
                      {"rel": "search", "href": f"{base}/search", "type": "application/geo+json", "method": "POST"}],
        })

    def _geodes_item(self, e: dict) -> dict:
        emu = self.emulator
        path = emu.geodes_file(e)
        data = path.read_bytes()
        md5 = hashlib.md5(data).hexdigest()  # noqa: S324 - what GEODES publishes
        spec = e["spec"]
        sensed = spec.acquired.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        published = (spec.acquired + timedelta(days=1, hours=15, minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        to_ll = Transformer.from_crs(spec.grid.epsg, 4326, always_xy=True)
        extent = self.emulator.size * 10
        ring = [to_ll.transform(x, y) for x, y in ((spec.grid.ulx, spec.grid.uly), (spec.grid.ulx + extent, spec.grid.uly),
                                                   (spec.grid.ulx + extent, spec.grid.uly - extent),
                                                   (spec.grid.ulx, spec.grid.uly - extent), (spec.grid.ulx, spec.grid.uly))]
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        base = f"{emu.url}/api/stac"
        return {
            "type": "Feature", "stac_version": "1.0.0-beta.2", "id": e["urn"], "collection": "THEIA_REFLECTANCE_SENTINEL2_L2A",
            "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
            "bbox": [min(lons), min(lats), max(lons), max(lats)],
            "properties": {"identifier": e["name"], "datetime": published, "start_datetime": sensed,
                           "end_datetime": sensed, "eo:cloud_cover": e["cloud"], "sat:relative_orbit": e["orbit"],
                           "grid:code": f"T{e['tile']}", "platform": f"S2{spec.platform[-1]}", "instrument": "MSI",
                           "processing:level": "L2A", "latest": True,
                           "endpoint_url": f"https://s3.datalake.invalid/theia/{e['name']}.zip"},
            "assets": {
                f"{e['name']}_QKL_ALL.jpg": {
                    "href": f"{emu.url}/api/quicklook/{e['urn']}/files/0", "type": "image/jpeg", "roles": ["overview"],
                    "title": f"{e['name']}_QKL_ALL.jpg",
                    "description": "File size: 18684 bytes\n\nIs reference: false\n\nIs online: true\n\nDatatype: QUICKLOOK_SD"},
                path.name: {
                    "href": f"{emu.url}/api/download/{e['urn']}/files/{md5}", "type": "application/zip", "roles": ["data"],
                    "title": path.name,
                    "description": f"File size: {len(data)} bytes\n\nIs reference: false\n\nIs online: "
                                   f"{'true' if e['online'] else 'false'}\n\nDatatype: RAWDATA\n\nChecksum MD5: {md5}"},
            },
            "links": [{"rel": "root", "href": base, "type": "application/json"},
                      {"rel": "collection", "href": f"{base}/collections/THEIA_REFLECTANCE_SENTINEL2_L2A",
                       "type": "application/json"}],
        }

    def _geodes_download(self, urn: str) -> None:
        emu = self.emulator
        key = self.headers.get("X-API-Key")
        if not key:
            self._json(401, {"error": "Missing X-API-Key header"})
            return
        if key not in emu.geodes_keys:  # what GEODES does with a bad key: send you round in circles
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        entry = next((e for e in emu.geodes_archive() if e["urn"] == urn), None)
        if entry is None:
            self._json(404, {"error": f"Unknown product {urn}"})
        elif not entry["online"]:
            self._json(409, {"error": "Product is offline"})
        else:
            self._serve_file(emu.geodes_file(entry))

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        emu = self.emulator
        url = urlparse(self.path)
        emu.requests.append((self.command, self.path, dict(self.headers)))
        if url.path in ("/api/stac", "/api/stac/"):
            self._geodes_landing()
            return
        if re.fullmatch(r"/api/stac/collections/[^/]+/items", url.path):
            # where GEODES's `next` links point: the collection's items, the search's filters lost
            params = parse_qs(url.query)
            self._geodes_search({"limit": (params.get("limit") or ["20"])[0], "page": (params.get("page") or ["1"])[0]})
            return
        if m := re.fullmatch(r"/api/download/([^/]+)/files/([0-9a-f]+)", url.path):
            if emu.fault_once("429", "download") or emu.fault_once("500", "download"):
                code = 429 if "429" in emu.faults else 500
                self._send(code, b'{"error":"try again"}', "application/json", {"Retry-After": "1"})
                return
            self._geodes_download(m.group(1))
            return
        user = self._user()
        if user is None:
            self._send(401, b'{"ErrorCode":401,"ErrorMessage":"Unauthorized"}', "application/json",
                       {"WWW-Authenticate": 'Basic realm="PEPS"'})
            return
        kind = "wps" if url.path == "/resto/wps" else "download" if url.path.startswith("/cgi-bin/") else "status"
        if emu.fault_once("429", kind):
            self._send(429, b'{"ErrorCode":429,"ErrorMessage":"Too many requests"}', "application/json",
                       {"Retry-After": "1"})
            return
        if kind != "wps" and emu.fault_once("500", kind):
            self._send(500, b"<html><body>Internal Server Error</body></html>", "text/html")
            return
        if url.path == "/resto/wps":
            self._wps(user, parse_qs(url.query))
        elif m := re.fullmatch(r"/wps/outputs/pywps-(\d+)\.xml", url.path):
            self._status_xml(user, m.group(1))
        elif m := re.fullmatch(r"/wps/outputs/(\d+)\.json", url.path):
            self._status_json(user, m.group(1))
        elif url.path == "/wps/outputs/status" and "oddstatus" in self.emulator.faults:
            self._status_json(user, (parse_qs(url.query).get("job") or [""])[0])
        elif m := re.fullmatch(r"/wps/outputs/(\d+)\.log", url.path):
            self._send(200, f"job {m.group(1)}: see message\n".encode(), "text/plain")
        elif m := re.fullmatch(r"/cgi-bin/mapcache_results/maja/(\d+)/([\w.-]+\.zip)", url.path):
            self._download(user, m.group(1), m.group(2))
        else:
            self._json(404, {"ErrorCode": 404, "ErrorMessage": f"Not found: {url.path}"})

    def _job(self, user: str, job_id: str) -> _Job | None:
        job = self.emulator.jobs.get(job_id)
        if job is None or job.user != user:
            self._json(404, {"ErrorCode": 404, "ErrorMessage": f"Unknown job {job_id}"})
            return None
        return job

    # -- endpoints -----------------------------------------------------------------------
    def _wps(self, user: str, query: dict[str, list[str]]) -> None:
        emu = self.emulator
        q = {k.lower(): v[0] for k, v in query.items()}
        identifier = q.get("identifier", "")
        inputs = dict(_DATAINPUT.findall(q.get("datainputs", "")))
        if identifier == "FULL_MAJA":
            if emu.fault_once("submit500", "submit", times=10**9):
                self._send(500, b"<html><body>500 Internal Server Error</body></html>", "text/html")
                return
            try:
                job = emu.submit(user, inputs)
            except (ValueError, FullMajaError) as exc:
                self._json(400, {"ErrorCode": 400, "ErrorMessage": str(exc)})
                return
            body = _execute_response(emu, job, "FULL_MAJA", "<wps:ProcessAccepted>Process FULL_MAJA accepted</wps:ProcessAccepted>")
            self._send(200, body, "text/xml")
        elif identifier == "PROCESSING_STATUS":
            job = self._job(user, inputs.get("wps_id", ""))
            if job is not None and "oddstatus" in emu.faults:
                self._send(200, b"status refreshed\n", "text/plain")
            elif job is not None:
                status, _, _ = emu.state(job)
                body = _execute_response(emu, job, "PROCESSING_STATUS",
                                         f"<wps:ProcessSucceeded>Status refreshed: {status}</wps:ProcessSucceeded>")
                self._send(200, body, "text/xml")
        else:
            self._json(400, {"ErrorCode": 400, "ErrorMessage": f"Unknown process {identifier!r}"})

    def _status_xml(self, user: str, job_id: str) -> None:
        job = self._job(user, job_id)
        if job is None:
            return
        status, percent, _ = self.emulator.state(job)
        if status == "PENDING":
            xml = "<wps:ProcessAccepted>Process FULL_MAJA accepted</wps:ProcessAccepted>"
        elif status == "STALLED":
            xml = f'<wps:ProcessStarted percentCompleted="{int(percent)}">Process started</wps:ProcessStarted>'
        else:
            xml = "<wps:ProcessSucceeded>PyWPS Process FULL_MAJA successfully calculated</wps:ProcessSucceeded>"
        self._send(200, _execute_response(self.emulator, job, "FULL_MAJA", xml, _status_outputs(self.emulator, job)), "text/xml")

    def _status_json(self, user: str, job_id: str) -> None:
        emu = self.emulator
        job = self._job(user, job_id)
        if job is None:
            return
        status, percent, message = emu.state(job)
        info: dict = {"job_status": status, "process": f"{percent:g}%", "results": [], "unprocessed": 0,
                      "logs": [], "message": message}
        if status == "FINISHED":
            emu.ensure_products(job)
            base = f"{emu.url}/cgi-bin/mapcache_results/maja/{job.id}"
            info["results"] = [f"{base}/{name}" for name in sorted([*job.files, *job.novald])]
            info["unprocessed"] = job.unprocessed
        elif status in ("ERROR", "CANCELED"):
            info["logs"] = [f"{emu.url}/wps/outputs/{job.id}.log"]
        self._json(200, {"USER_INFO": info})

    def _download(self, user: str, job_id: str, name: str) -> None:
        emu = self.emulator
        job = self._job(user, job_id)
        if job is None:
            return
        emu.ensure_products(job)
        path = job.files.get(name)
        if path is None:
            self._json(404, {"ErrorCode": 404, "ErrorMessage": f"No product {name} in job {job_id}"})
            return
        self._serve_file(path)

    def _serve_file(self, path: Path) -> None:
        """A zip with Range support and the download faults."""
        emu = self.emulator
        name = path.name
        if emu.fault_once("html", name):
            self._send(200, b"<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>", "text/html")
            return
        data = path.read_bytes()
        total = len(data)
        wanted = parse_range(self.headers.get("Range"), total)
        if wanted is False:
            self._send(416, b"", "application/zip", {"Content-Range": f"bytes */{total}"})
            return
        (start, end), status = (wanted, 206) if wanted else ((0, total - 1), 200)
        body = data[start:end + 1]
        if body and emu.fault_once("corrupt", name):
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1:]
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", formatdate(path.stat().st_mtime, usegmt=True))
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = emu.fault_once("drop", name) or emu.fault_once("truncate", name)
        limit = len(body) // 2 if cut else len(body)
        chunk = 64 * 1024
        try:
            for offset in range(0, limit, chunk):
                self.wfile.write(body[offset:min(offset + chunk, limit)])
                if "slow" in emu.faults:
                    time.sleep(0.01)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        if cut:  # close without sending the rest: the client sees a short body
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
