"""HTTP client for PEPS FULL_MAJA: submit a request, refresh a job's status.

Status calls are idempotent GETs and are retried (urllib3 Retry: connection errors, 429 with
Retry-After, 5xx, with backoff). Submitting creates a job, so it is retried only when the
server cannot have created one: connection refused, 429 or 503 (asked to come back later),
never after a 500 or a read timeout.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
import urllib3
from urllib3.util.retry import Retry

from fullmaja_stac import __version__
from fullmaja_stac.config import ENV_INSECURE_HOSTS, insecure_hosts
from fullmaja_stac.errors import warn_line, without_userinfo
from fullmaja_stac.providers.peps.auth import Credentials
from fullmaja_stac.trust.remote import OriginBoundSession, RemoteLimitError, WatchedAdapter, fetch
from fullmaja_stac.providers.peps.wps import (
    ACCEPTED, ERROR, RUNNING, ExecuteResponse, JobStatus, MajaRequest, PepsError, error_message, execute_params,
    parse_execute_response, parse_status_json, processing_status_params,
)

RETRY_STATUS = (429, 500, 502, 503, 504)
SUBMIT_RETRY_STATUS = (429, 503)


class _Session(OriginBoundSession):
    """A session whose credentials go only to their own origin (:mod:`fullmaja_stac.trust.remote`),
    and that skips TLS verification for the hosts the user named, and only those."""

    insecure: frozenset[str] = frozenset()

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        host = (urlsplit(url).hostname or "").lower()
        if host in self.insecure:
            settings["verify"] = False
            if host not in _WARNED:
                _WARNED.add(host)
                warn_line(f"TLS certificate checks are off for {host} ({ENV_INSECURE_HOSTS}): anyone on the network "
                          "path could read the credentials sent there")
        return settings


_WARNED: set[str] = set()


def make_session(credentials: Credentials | None, origin_url: str | None = None, retries: int = 5,
                 backoff: float = 0.5, idempotent: bool = True) -> requests.Session:
    """A session with Basic auth for ``origin_url``'s origin only, every read watched
    (:mod:`fullmaja_stac.trust.remote`), and retries (fewer for a request that is not idempotent).
    Certificates are checked except for the hosts in ``FULLMAJA_STAC_INSECURE_HOSTS``."""
    if credentials is not None and origin_url is None:
        raise ValueError("credentials need the origin they belong to (origin_url)")
    session = _Session()
    if origin_url is not None:
        session.bind_credentials(origin_url)
    session.insecure = insecure_hosts()
    if session.insecure:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # we say it once, in one line
    session.headers["User-Agent"] = f"fullmaja-stac/{__version__}"
    if credentials is not None:
        session.auth = credentials.as_auth()
    retry = Retry(total=retries, connect=retries, read=retries if idempotent else 0, status=retries,
                  backoff_factor=backoff, status_forcelist=RETRY_STATUS if idempotent else SUBMIT_RETRY_STATUS,
                  allowed_methods=frozenset({"GET", "HEAD"}), respect_retry_after_header=True, raise_on_status=False)
    adapter = WatchedAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class PepsClient:
    def __init__(self, base_url: str, credentials: Credentials | None, session: requests.Session | None = None) -> None:
        self.base_url = without_userinfo(base_url).rstrip("/")  # credentials travel as auth, never in URLs
        self.session = session or make_session(credentials, self.base_url)
        self._submit_session = make_session(credentials, self.base_url, retries=3, idempotent=False)

    def _get(self, url: str, params: dict | None = None, session: requests.Session | None = None) -> bytes:
        """A document from PEPS, read whole under :data:`~fullmaja_stac.config.DOCUMENT_LIMITS`."""
        try:
            response = fetch(session or self.session, "GET", url, params=params, what=f"PEPS's answer for {url.split('?')[0]}")
        except RemoteLimitError as exc:
            raise PepsError(f"{url.split('?')[0]}: {exc}") from None
        except requests.RequestException as exc:
            raise PepsError(f"cannot reach {url.split('?')[0]} ({type(exc).__name__}: {exc})") from None
        if response.status_code >= 400:
            raise PepsError(error_message(response.status_code, response.content, url.split("?")[0]))
        return response.content

    def submit(self, request: MajaRequest) -> tuple[ExecuteResponse, bytes]:
        """Send the WPS Execute; returns the parsed answer and its raw bytes (the log file)."""
        raw = self._get(f"{self.base_url}/resto/wps", execute_params(request), session=self._submit_session)
        answer = parse_execute_response(raw, "FULL_MAJA submission")
        if not answer.status_location or not answer.job_id:
            raise PepsError("PEPS accepted the request but gave no statusLocation with a pywps-<id>.xml job id")
        return answer, raw

    def refresh(self, status_url: str, job_id: str, json_url: str | None = None) -> tuple[JobStatus, str | None]:
        """Status XML, then PROCESSING_STATUS (refreshes the server), then the JSON."""
        answer = parse_execute_response(self._get(status_url), status_url)
        json_url = answer.json_url or json_url
        if answer.wps_state == "failed":
            return JobStatus(ERROR, message=answer.message or "WPS process failed"), json_url
        if json_url is None:
            state = ACCEPTED if answer.wps_state == "accepted" else RUNNING
            return JobStatus(state, progress=answer.percent, message=answer.message), None
        # refreshes the server's state; like the reference client, its answer's shape is not relied on
        self._get(f"{self.base_url}/resto/wps", processing_status_params(job_id))
        return parse_status_json(self._get(json_url), json_url), json_url
