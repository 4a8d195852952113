"""Settings from flags, environment and defaults, in one place.

| setting         | environment variable          | default                               |
|-----------------|-------------------------------|---------------------------------------|
| PEPS base URL   | ``FULLMAJA_STAC_PEPS_URL``    | ``https://peps.cnes.fr``              |
| state folder    | ``FULLMAJA_STAC_STATE_DIR``   | platformdirs' user state dir          |
| password file   | ``FULLMAJA_STAC_PEPS_AUTH``   | none (then env, then ~/.netrc)        |
| hosts whose TLS certificate is not checked | ``FULLMAJA_STAC_INSECURE_HOSTS`` (comma-separated; ``--insecure`` adds the PEPS host) | none |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_state_path

APP_NAME = "fullmaja-stac"
PEPS_URL = "https://peps.cnes.fr"
ENV_PEPS_URL = "FULLMAJA_STAC_PEPS_URL"
ENV_STATE_DIR = "FULLMAJA_STAC_STATE_DIR"
ENV_AUTH_FILE = "FULLMAJA_STAC_PEPS_AUTH"
ENV_INSECURE_HOSTS = "FULLMAJA_STAC_INSECURE_HOSTS"
ENV_EMAIL = "PEPS_EMAIL"
ENV_PASSWORD = "PEPS_PASSWORD"

# FULL_MAJA timing as PEPS documented it: first product ≈ 1 h, then ≈ 25 min per date.
FIRST_PRODUCT_S = 3600
PER_DATE_S = 25 * 60
DOWNLOAD_CONCURRENCY = 3


@dataclass(frozen=True)
class NetLimits:
    """What one network read may take (:mod:`fullmaja_stac.trust.remote` enforces it): the whole
    answer within ``total_s``, never ``stall_s`` without a chunk, at most ``max_bytes``
    (decompressed; None: no cap)."""

    total_s: float
    stall_s: float
    max_bytes: int | None
    connect_s: float = 10.0


# A search page, a status document, an ExecuteResponse: small, and quick or not at all.
DOCUMENT_LIMITS = NetLimits(total_s=120.0, stall_s=60.0, max_bytes=32 * 1024 * 1024)
# A product zip (about 1 GB at full size): each attempt may take hours on a slow line, but
# never two minutes without a 64 KiB chunk (~550 B/s); the cap is the announced size when
# the provider gives one (see providers.download).
DOWNLOAD_LIMITS = NetLimits(total_s=6 * 3600.0, stall_s=120.0, max_bytes=8 * 1024 ** 3)
# GEODES search: 80 products a page; a tile's year is about 150 products per orbit.
MAX_SEARCH_PAGES = 50


def peps_url(flag: str | None = None) -> str:
    return (flag or os.environ.get(ENV_PEPS_URL) or PEPS_URL).rstrip("/")


def state_dir(flag: Path | None = None) -> Path:
    path = flag or (Path(os.environ[ENV_STATE_DIR]) if os.environ.get(ENV_STATE_DIR) else user_state_path(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def insecure_hosts() -> frozenset[str]:
    """Hosts whose TLS certificate is not checked: only those named, never a blanket switch
    (the reference scripts turned checks off for PEPS, whose certificate was a known problem)."""
    return frozenset(h.strip().lower() for h in os.environ.get(ENV_INSECURE_HOSTS, "").split(",") if h.strip())


def allow_insecure(url: str) -> str:
    """Add ``url``'s host to the hosts whose certificate is not checked (this process)."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if host:
        os.environ[ENV_INSECURE_HOSTS] = ",".join(sorted(insecure_hosts() | {host}))
    return host
