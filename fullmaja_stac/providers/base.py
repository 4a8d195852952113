"""Where products come from, behind one interface: PEPS FULL_MAJA jobs and GEODES searches.

A provider turns a job of the store into the files to fetch (URL, expected checksum and
size when it publishes them, whether the file is online) and gives the HTTP session that
carries its credentials. ``job_files.download_job`` does the rest the same way for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import requests

from fullmaja_stac.providers.jobs import Job


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    remote_id: str | None = None  # the provider's id of the product (GEODES item URN)
    md5: str | None = None
    size: int | None = None
    online: bool = True
    too_cloudy: bool = False  # PEPS NOVALD: a date MAJA did not produce


class Provider(Protocol):
    name: str

    def session(self) -> requests.Session: ...

    def files(self, job: Job) -> list[RemoteFile]: ...


class PepsProvider:
    """PEPS FULL_MAJA: results are URLs; a name with NOVALD is a date too cloudy to produce."""

    name = "peps"

    def __init__(self, credentials, base_url: str) -> None:
        self.credentials, self.base_url = credentials, base_url

    def session(self) -> requests.Session:
        """Credentials for the PEPS origin only: a result URL on another host gets none."""
        from fullmaja_stac.providers.peps.client import make_session

        return make_session(self.credentials, self.base_url)

    def files(self, job: Job) -> list[RemoteFile]:
        """One file per result URL, named by its last path segment as given (a name that
        cannot be a file name, such as ``.``, is refused where it would become a path)."""
        out = []
        for url in job.results:
            name = urlsplit(url).path.rsplit("/", 1)[-1]
            out.append(RemoteFile(name, url, job.remote_id, too_cloudy=is_too_cloudy(name)))
        return out


TOO_CLOUDY_MARK = "NOVALD"  # in the name of a PEPS result MAJA did not produce (> 90 % cloud)


def is_too_cloudy(name_or_url: str) -> bool:
    return TOO_CLOUDY_MARK in name_or_url.rsplit("/", 1)[-1]

