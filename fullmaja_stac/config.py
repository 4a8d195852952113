"""Settings from flags, environment and defaults, in one place.

| setting         | environment variable          | default                               |
|-----------------|-------------------------------|---------------------------------------|
| PEPS base URL   | ``FULLMAJA_STAC_PEPS_URL``    | ``https://peps.cnes.fr``              |
| state folder    | ``FULLMAJA_STAC_STATE_DIR``   | platformdirs' user state dir          |
| password file   | ``FULLMAJA_STAC_PEPS_AUTH``   | none (then env, then ~/.netrc)        |
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_state_path

APP_NAME = "fullmaja-stac"
PEPS_URL = "https://peps.cnes.fr"
ENV_PEPS_URL = "FULLMAJA_STAC_PEPS_URL"
ENV_STATE_DIR = "FULLMAJA_STAC_STATE_DIR"
ENV_AUTH_FILE = "FULLMAJA_STAC_PEPS_AUTH"
ENV_EMAIL = "PEPS_EMAIL"
ENV_PASSWORD = "PEPS_PASSWORD"

# FULL_MAJA timing as PEPS documented it: first product ≈ 1 h, then ≈ 25 min per date.
FIRST_PRODUCT_S = 3600
PER_DATE_S = 25 * 60
DOWNLOAD_CONCURRENCY = 3


def peps_url(flag: str | None = None) -> str:
    return (flag or os.environ.get(ENV_PEPS_URL) or PEPS_URL).rstrip("/")


def state_dir(flag: Path | None = None) -> Path:
    path = flag or (Path(os.environ[ENV_STATE_DIR]) if os.environ.get(ENV_STATE_DIR) else user_state_path(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path
