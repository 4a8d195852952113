"""The FULL_MAJA WPS protocol: build requests, parse ExecuteResponse XML and status JSON.

Documents are parsed as XML (defusedxml, DTDs refused), not sliced line by line like the
reference scripts; the emulator keeps the line layout those scripts depend on.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date

import defusedxml
import defusedxml.ElementTree as SafeET

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.trust.records import PepsStatus, RecordError, count, decode, http_url, resto_error
from fullmaja_stac.tiles import tile_grid

WPS_NS = "http://www.opengis.net/wps/1.0.0"
OWS_NS = "http://www.opengis.net/ows/1.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
EARLIEST = date(2016, 4, 1)
MIN_DAYS, MAX_DAYS = 55, 366
JOB_ID = re.compile(r"pywps-(\d+)\.xml")

# job_status values of the PROCESSING_STATUS JSON; STALLED is PEPS's name for "running".
PENDING, RUNNING, FINISHED, ERROR, CANCELED = "PENDING", "STALLED", "FINISHED", "ERROR", "CANCELED"
ACCEPTED = "ACCEPTED"  # submitted, no status JSON yet
TERMINAL = {FINISHED, ERROR, CANCELED}


class PepsError(FullMajaError):
    """The service answered with an error (HTTP status, resto JSON error, WPS exception)."""


@dataclass(frozen=True)
class MajaRequest:
    tile: str  # "36TWQ"
    orbit: int | None
    start: date
    end: date

    def datainputs(self) -> str:
        parts = [f"startDate={self.start:%Y-%m-%d}", f"completionDate={self.end:%Y-%m-%d}", f"tileid={self.tile}"]
        if self.orbit is not None:
            parts.append(f"relativeOrbitNumber={self.orbit}")
        return ";".join(parts)

    def as_dict(self) -> dict:
        return {"tile": self.tile, "orbit": self.orbit, "start": f"{self.start:%Y-%m-%d}", "end": f"{self.end:%Y-%m-%d}"}


def make_request(tile: str, orbit: int | None, start: date, end: date) -> MajaRequest:
    """Validate like the reference client, with messages that say what to change."""
    name = tile_grid(tile).tile  # the tile table ships with the package: an unknown tile is said here, not by PEPS
    if orbit is not None and not 1 <= orbit <= 143:
        raise FullMajaError(f"--orbit {orbit}: a relative orbit is between 1 and 143")
    if start < EARLIEST:
        raise FullMajaError(f"--start {start}: FULL_MAJA only processes dates after {EARLIEST}")
    if end <= start:
        raise FullMajaError(f"--end {end} is not after --start {start}; give the first day, then the last")
    days = (end - start).days
    if days < MIN_DAYS or days > MAX_DAYS:
        raise FullMajaError(
            f"the period {start} → {end} is {days} days; FULL_MAJA takes 2 to 12 months ({MIN_DAYS} to {MAX_DAYS} days)"
        )
    return MajaRequest(name, orbit, start, end)


def execute_params(request: MajaRequest) -> dict[str, str]:
    return {
        "request": "execute", "service": "WPS", "version": "1.0.0", "identifier": "FULL_MAJA",
        "datainputs": request.datainputs(), "status": "true", "storeExecuteResponse": "true",
    }


def processing_status_params(job_id: str) -> dict[str, str]:
    return {
        "request": "execute", "service": "WPS", "version": "1.0.0", "identifier": "PROCESSING_STATUS",
        "datainputs": f"wps_id={job_id}", "status": "false", "storeExecuteResponse": "false",
    }


@dataclass(frozen=True)
class ExecuteResponse:
    status_location: str | None
    job_id: str | None
    wps_state: str  # accepted, started, paused, succeeded, failed
    percent: int | None
    message: str
    json_url: str | None


def parse_execute_response(data: bytes, source: str = "PEPS") -> ExecuteResponse:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (ET.ParseError, defusedxml.DefusedXmlException) as exc:
        snippet = data[:120].decode("utf-8", "replace").strip()
        raise PepsError(f"{source}: the answer is not a WPS document ({exc}): {snippet!r}") from None
    if root.tag.endswith("ExceptionReport"):
        text = " ".join(t.text.strip() for t in root.iter(f"{{{OWS_NS}}}ExceptionText") if t.text)
        raise PepsError(f"{source}: WPS exception: {text or 'no message'}")
    if root.tag != f"{{{WPS_NS}}}ExecuteResponse":
        raise PepsError(f"{source}: expected a wps:ExecuteResponse, got <{root.tag}>")
    location = root.get("statusLocation")
    m = JOB_ID.search(location or "")
    state, percent, message = "accepted", None, ""
    status = root.find(f"{{{WPS_NS}}}Status")
    if status is not None:
        for child in status:
            tag = child.tag.split("}", 1)[-1]
            message = (child.text or "").strip()
            if tag == "ProcessAccepted":
                state = "accepted"
            elif tag in ("ProcessStarted", "ProcessPaused"):
                state = "started" if tag == "ProcessStarted" else "paused"
                value = child.get("percentCompleted")
                percent = int(value) if value and value.isdigit() else None
            elif tag == "ProcessSucceeded":
                state = "succeeded"
            elif tag == "ProcessFailed":
                state = "failed"
                texts = [t.text.strip() for t in child.iter(f"{{{OWS_NS}}}ExceptionText") if t.text]
                message = "; ".join(texts) or message
    # the status document: any wps:Reference, as the reference client takes it (a .json one first)
    hrefs = [h for h in (ref.get("href") or ref.get(f"{{{XLINK_NS}}}href") for ref in root.iter(f"{{{WPS_NS}}}Reference")) if h]
    json_url = next((h for h in hrefs if h.split("?", 1)[0].endswith(".json")), hrefs[0] if hrefs else None)
    return ExecuteResponse(location, m.group(1) if m else None, state, percent, message, json_url)


@dataclass
class JobStatus:
    state: str
    progress: float | None = None
    results: list[str] = field(default_factory=list)
    unprocessed: int = 0
    logs: list[str] = field(default_factory=list)
    message: str = ""


def parse_status_json(data: bytes, source: str = "PEPS") -> JobStatus:
    """The status JSON as a typed record (:mod:`fullmaja_stac.trust.records`): a resto error is
    said as such, a document of another shape says where; result URLs must be http(s) and
    are listed once each (a URL listed 5 000 times is one file)."""
    error = resto_error(data)
    if error is not None:
        raise PepsError(f"{source}: {error.ErrorMessage or 'error'} (code {error.ErrorCode})")
    try:
        info = decode(data, PepsStatus, f"{source}: the job status").USER_INFO
        results = list(dict.fromkeys(http_url(u, "a result URL") for u in info.results or []))
        logs = [http_url(u, "a log URL") for u in info.logs or []]
        unprocessed = count(info.unprocessed, "unprocessed")
    except RecordError as exc:
        raise PepsError(str(exc)) from None
    progress = info.process
    try:
        value = float(str(progress).strip().rstrip("%")) if progress not in (None, "") else None
    except ValueError:
        value = None
    if value is not None and not 0.0 <= value <= 100.0:
        value = None
    return JobStatus(
        state=info.job_status.upper(),
        progress=value,
        results=results,
        unprocessed=unprocessed,
        logs=logs,
        message=info.message or "",
    )


def error_message(status_code: int, body: bytes, url: str) -> str:
    """One line for an HTTP error from PEPS: resto JSON, WPS exception or the status."""
    if status_code == 401:
        return "PEPS refused the credentials (401): check the email and password"
    error = resto_error(body)
    if error is not None:
        return f"PEPS error {error.ErrorCode if error.ErrorCode is not None else status_code}: " \
               f"{error.ErrorMessage or ''} ({url})"
    return f"PEPS answered HTTP {status_code} for {url}"
