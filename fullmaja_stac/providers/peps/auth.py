"""PEPS credentials: the reference scripts' password file, environment variables, ~/.netrc.

The password never reaches a log, an error message or a repr.
"""

from __future__ import annotations

import netrc
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from fullmaja_stac.config import ENV_AUTH_FILE, ENV_EMAIL, ENV_PASSWORD, ENV_PEPS_URL
from fullmaja_stac.errors import FullMajaError, warn_line


def warn_if_readable_by_others(path: Path, what: str = "secret") -> None:
    """One plain warning line when a file holding a secret can be read by other users; the
    same rule for the PEPS password file, the GEODES key file and ~/.netrc."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warn_line(f"{path} holds a {what} and is readable by other users; run: chmod 600 {path}")


def netrc_entry(host: str) -> tuple[str, str, str] | None:
    """The ~/.netrc entry for ``host``, warning (not failing silently) when the file is too
    open or malformed."""
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not path.is_file():
        return None
    warn_if_readable_by_others(path, "password")
    try:
        return netrc.netrc(str(path)).authenticators(host)
    except netrc.NetrcParseError as exc:
        warn_line(f"{path} is ignored: {exc.msg} (line {exc.lineno})")
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str = field(repr=False)
    source: str = ""

    def as_auth(self) -> tuple[str, str]:
        return (self.email, self.password)


def read_password_file(path: Path) -> Credentials:
    """First line ``email password`` (one space), as ``full_maja_process.py -a peps.txt``."""
    try:
        mode = path.stat().st_mode
        first = path.read_text(encoding="utf-8").splitlines()[0].strip() if path.stat().st_size else ""
    except FileNotFoundError:
        raise FullMajaError(f"{path}: password file not found") from None
    except OSError as exc:
        raise FullMajaError(f"{path}: cannot read the password file ({exc.strerror})") from None
    parts = first.split()
    if len(parts) != 2:
        raise FullMajaError(f"{path}: the first line must be 'email password' separated by one space")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warn_if_readable_by_others(path, "password")
    return Credentials(parts[0], parts[1], f"password file {path}")


def find_credentials(base_url: str, password_file: Path | None = None) -> Credentials | None:
    """Password file (flag or env), then PEPS_EMAIL/PEPS_PASSWORD, then ~/.netrc for the host."""
    file = password_file or (Path(os.environ[ENV_AUTH_FILE]) if os.environ.get(ENV_AUTH_FILE) else None)
    if file is not None:
        return read_password_file(Path(file))
    if os.environ.get(ENV_EMAIL) and os.environ.get(ENV_PASSWORD):
        return Credentials(os.environ[ENV_EMAIL], os.environ[ENV_PASSWORD], "environment")
    host = urlparse(base_url).hostname or ""
    for url in (base_url, os.environ.get(ENV_PEPS_URL, "")):  # user:password@ written into the URL
        parts = urlparse(url)
        if parts.hostname == host and parts.username and parts.password:
            return Credentials(unquote(parts.username), unquote(parts.password), "the PEPS URL")
    entry = netrc_entry(host)
    if entry and entry[0] and entry[2]:
        return Credentials(entry[0], entry[2], f"~/.netrc ({host})")
    return None


def require_credentials(base_url: str, password_file: Path | None = None) -> Credentials:
    creds = find_credentials(base_url, password_file)
    if creds is None:
        raise FullMajaError(
            f"no PEPS credentials for {base_url}: pass --auth FILE ('email password' on one line), "
            f"set {ENV_EMAIL} and {ENV_PASSWORD}, or add a ~/.netrc entry for its host"
        )
    return creds
