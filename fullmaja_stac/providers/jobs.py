"""Durable job store (sqlite3): every request, every status seen, every file downloaded.

One row per request keeps the parameters, the WPS id and URLs, so a reused log file never
loses a job; the status history answers "has this job moved lately?"; the files table lets
downloads skip what is complete by size and checksum, not by existence. WAL mode and
immediate transactions make two commands at once safe.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.providers.peps.wps import ACCEPTED, PENDING

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    base_url TEXT NOT NULL,
    remote_id TEXT,
    status_url TEXT,
    json_url TEXT,
    tile TEXT,
    orbit INTEGER,
    start_date TEXT,
    end_date TEXT,
    submitted_at TEXT NOT NULL,
    state TEXT NOT NULL,
    progress REAL,
    progress_changed_at TEXT,
    started_at TEXT,
    checked_at TEXT,
    message TEXT NOT NULL DEFAULT '',
    logs TEXT NOT NULL DEFAULT '[]',
    results TEXT NOT NULL DEFAULT '[]',
    result_info TEXT NOT NULL DEFAULT '{}',
    unprocessed INTEGER NOT NULL DEFAULT 0,
    resubmitted_from INTEGER REFERENCES jobs(id),
    log_file TEXT,
    UNIQUE (base_url, remote_id)
);
CREATE TABLE IF NOT EXISTS history (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    progress REAL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS files (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    md5 TEXT,
    downloaded_at TEXT NOT NULL,
    PRIMARY KEY (job_id, name)
);
"""


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds") if when else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass
class Job:
    id: int
    provider: str
    base_url: str
    remote_id: str | None
    status_url: str | None
    json_url: str | None
    tile: str | None
    orbit: int | None
    start_date: str | None
    end_date: str | None
    submitted_at: datetime
    state: str
    progress: float | None
    progress_changed_at: datetime | None
    started_at: datetime | None
    checked_at: datetime | None
    message: str
    logs: list[str]
    results: list[str]
    result_info: dict  # per result URL: what the provider published about it (GEODES: md5, size, online)
    unprocessed: int
    resubmitted_from: int | None
    log_file: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        d = dict(row)
        for key in ("submitted_at", "progress_changed_at", "started_at", "checked_at"):
            d[key] = _parse(d[key])
        d["logs"] = json.loads(d["logs"])
        d["results"] = json.loads(d["results"])
        d["result_info"] = json.loads(d["result_info"])
        return cls(**d)

    @property
    def request(self) -> dict:
        return {"tile": self.tile, "orbit": self.orbit, "start": self.start_date, "end": self.end_date}


@dataclass
class FileRecord:
    job_id: int
    name: str
    url: str
    path: str
    size: int
    sha256: str | None  # the digest computed while downloading: sha256, or the provider's MD5
    md5: str | None
    downloaded_at: datetime


class JobStore:
    """The sqlite database in the state folder (``jobs.sqlite``)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "jobs.sqlite"
        # Switching to WAL (persistent in the file) may answer "locked" at once, without waiting
        # for the busy timeout, when another process opens the store at the same moment.
        for attempt in Retrying(stop=stop_after_delay(30), wait=wait_random(0.01, 0.2),
                                retry=retry_if_exception(_is_locked), reraise=True):
            with attempt, self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- jobs ----------------------------------------------------------------------------
    def add_job(self, provider: str, base_url: str, remote_id: str | None, status_url: str | None,
                request: dict | None, state: str, submitted_at: datetime | None = None,
                resubmitted_from: int | None = None, log_file: str | None = None, json_url: str | None = None) -> Job:
        request = request or {}
        when = submitted_at or utcnow()
        with self._write() as db:
            existing = db.execute("SELECT id FROM jobs WHERE base_url=? AND remote_id=?", (base_url, remote_id)).fetchone()
            if existing and remote_id is not None:
                return self._get(db, existing["id"])
            cur = db.execute(
                "INSERT INTO jobs (provider, base_url, remote_id, status_url, json_url, tile, orbit, start_date,"
                " end_date, submitted_at, state, resubmitted_from, log_file) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (provider, base_url, remote_id, status_url, json_url, request.get("tile"), request.get("orbit"),
                 request.get("start"), request.get("end"), _iso(when), state, resubmitted_from, log_file),
            )
            db.execute("INSERT INTO history (job_id, at, state) VALUES (?,?,?)", (cur.lastrowid, _iso(when), state))
            return self._get(db, cur.lastrowid)

    def _get(self, db: sqlite3.Connection, job_id: int) -> Job:
        row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise FullMajaError(f"no job {job_id} in the job store")
        return Job.from_row(row)

    def get(self, ref: str | int) -> Job:
        """A job by local id, or by the provider's id (WPS id)."""
        with self._connect() as db:
            row = None
            if str(ref).isdigit() and len(str(ref)) < 9:
                row = db.execute("SELECT * FROM jobs WHERE id=?", (int(ref),)).fetchone()
            if row is None:
                row = db.execute("SELECT * FROM jobs WHERE remote_id=? ORDER BY id DESC", (str(ref),)).fetchone()
            if row is None:
                raise FullMajaError(f"no job {ref!r} in the job store; `fullmaja-stac status` lists them")
            return Job.from_row(row)

    def all(self) -> list[Job]:
        with self._connect() as db:
            return [Job.from_row(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]

    def record_status(self, job_id: int, state: str, progress: float | None, message: str, logs: list[str],
                      results: list[str], unprocessed: int, json_url: str | None = None, at: datetime | None = None,
                      result_info: dict | None = None) -> Job:
        """Store a status seen now; remember when progress last moved and when it started."""
        when = at or utcnow()
        with self._write() as db:
            job = self._get(db, job_id)
            moved = progress is not None and progress != job.progress
            changed_at = _iso(when) if moved or job.progress_changed_at is None else _iso(job.progress_changed_at)
            started = job.started_at or (when if state not in (PENDING, ACCEPTED) else None)
            db.execute(
                "UPDATE jobs SET state=?, progress=?, progress_changed_at=?, started_at=?, checked_at=?, message=?,"
                " logs=?, results=?, result_info=COALESCE(?, result_info), unprocessed=?, json_url=COALESCE(?, json_url)"
                " WHERE id=?",
                (state, progress, changed_at, _iso(started), _iso(when), message, json.dumps(logs), json.dumps(results),
                 json.dumps(result_info) if result_info is not None else None, unprocessed, json_url, job_id),
            )
            if state != job.state or moved:
                db.execute("INSERT INTO history (job_id, at, state, progress, message) VALUES (?,?,?,?,?)",
                           (job_id, _iso(when), state, progress, message))
            return self._get(db, job_id)

    def forget(self, job_id: int) -> None:
        with self._write() as db:
            db.execute("UPDATE jobs SET resubmitted_from=NULL WHERE resubmitted_from=?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    # -- files ---------------------------------------------------------------------------
    def add_file(self, record: FileRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO files (job_id, name, url, path, size, sha256, md5, downloaded_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (record.job_id, record.name, record.url, record.path, record.size, record.sha256, record.md5,
                 _iso(record.downloaded_at)),
            )

    def files_at(self, path: str) -> FileRecord | None:
        """The latest record, from any job, of a file downloaded to ``path``."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM files WHERE path=? ORDER BY downloaded_at DESC LIMIT 1", (path,)).fetchone()
        return FileRecord(**{**dict(row), "downloaded_at": _parse(row["downloaded_at"])}) if row else None

    def files(self, job_id: int) -> dict[str, FileRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM files WHERE job_id=?", (job_id,))
            return {r["name"]: FileRecord(**{**dict(r), "downloaded_at": _parse(r["downloaded_at"])}) for r in rows}
