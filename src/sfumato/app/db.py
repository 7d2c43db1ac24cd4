"""The app's record: uploads, jobs and per-image results in an embedded SQLite database.

Everything the page shows comes from here, so closing the page or restarting the server loses
nothing: finished jobs are shown again, and a job that was running is queued again and goes on from
the first image not yet done. One connection, guarded by a lock, serves the server's threads and the
worker (SQLite in WAL mode lets readers go on while the worker writes).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
ITEM_STATES = ("queued", "running", "done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,            -- the file name the browser sent: displayed only, never a path
    bytes   INTEGER NOT NULL,
    width   INTEGER NOT NULL,
    height  INTEGER NOT NULL,
    notes   TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id       TEXT PRIMARY KEY,
    mode     TEXT NOT NULL,
    speed    TEXT NOT NULL,
    options  TEXT NOT NULL,           -- JSON: the checked request (style, intensity, concepts, targets)
    status   TEXT NOT NULL,
    error    TEXT,
    created  REAL NOT NULL,
    started  REAL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS items (
    job_id    TEXT NOT NULL REFERENCES jobs(id),
    idx       INTEGER NOT NULL,
    upload_id TEXT NOT NULL REFERENCES uploads(id),
    name      TEXT NOT NULL,
    pixels    INTEGER NOT NULL,
    status    TEXT NOT NULL,
    seconds   REAL,
    report    TEXT,                   -- JSON: the engine's report (settings, effect, notes, warnings)
    error     TEXT,
    finished  REAL,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, created);
"""


def new_id() -> str:
    """A random id for uploads and jobs: unguessable, and safe as a file name."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Upload:
    """An uploaded image that passed the checks; its files live under ``uploads/<id>/``."""

    id: str
    name: str
    bytes: int
    width: int
    height: int
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "bytes": self.bytes,
            "width": self.width,
            "height": self.height,
            "notes": list(self.notes),
        }


class Store:
    """The database. Methods return plain dicts and lists, ready to be sent as JSON."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")  # outside a transaction, as SQLite requires
        self._conn.execute("PRAGMA foreign_keys=ON")
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} was written by a newer sfumato (schema {version}); upgrade sfumato "
                "or start the app with another --data-dir"
            )
        self._conn.executescript(_SCHEMA)  # idempotent (IF NOT EXISTS); executescript commits itself
        self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock: readers never see half of a multi-row change."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- uploads

    def add_upload(self, upload: Upload) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO uploads (id, name, bytes, width, height, notes, created) VALUES (?,?,?,?,?,?,?)",
                (
                    upload.id,
                    upload.name,
                    upload.bytes,
                    upload.width,
                    upload.height,
                    json.dumps(list(upload.notes)),
                    time.time(),
                ),
            )

    def get_upload(self, upload_id: str) -> Upload | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM uploads WHERE id=?", (upload_id,)).fetchone()
        if row is None:
            return None
        return Upload(
            row["id"], row["name"], row["bytes"], row["width"], row["height"], tuple(json.loads(row["notes"]))
        )

    # -- jobs

    def create_job(self, mode: str, speed: str, options: dict[str, Any], images: Sequence[Upload]) -> str:
        """Record a queued job with one item per image, in the order given."""
        job_id = new_id()
        with self._tx() as c:
            c.execute(
                "INSERT INTO jobs (id, mode, speed, options, status, created) VALUES (?,?,?,?,?,?)",
                (job_id, mode, speed, json.dumps(options), "queued", time.time()),
            )
            c.executemany(
                "INSERT INTO items (job_id, idx, upload_id, name, pixels, status) VALUES (?,?,?,?,?,?)",
                [(job_id, i, u.id, u.name, u.width * u.height, "queued") for i, u in enumerate(images)],
            )
        return job_id

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job with its options and items (reports decoded), or None."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return None
            items = self._conn.execute(
                "SELECT * FROM items WHERE job_id=? ORDER BY idx", (job_id,)
            ).fetchall()
        job = _job_dict(row)
        job["items"] = [_item_dict(r) for r in items]
        return job

    def list_jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, with per-status item counts instead of the items."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM jobs ORDER BY created DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
            counts = self._conn.execute(
                "SELECT job_id, status, COUNT(*) AS n FROM items GROUP BY job_id, status"
            ).fetchall()
        by_job: dict[str, dict[str, int]] = {}
        for r in counts:
            by_job.setdefault(r["job_id"], {})[r["status"]] = r["n"]
        jobs = []
        for row in rows:
            job = _job_dict(row)
            job["counts"] = by_job.get(row["id"], {})
            job["total"] = sum(job["counts"].values())
            jobs.append(job)
        return jobs

    def next_job(self) -> str | None:
        """The oldest job still to run (a job left running by a stopped server comes first)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id FROM jobs WHERE status IN ('running', 'queued') "
                "ORDER BY status = 'queued', created, rowid LIMIT 1"
            ).fetchone()
        return None if row is None else row["id"]

    def set_job(self, job_id: str, status: str, error: str | None = None) -> None:
        if status not in JOB_STATES:
            raise ValueError(f"unknown job status {status!r}")
        now = time.time()
        with self._tx() as c:
            if status == "running":
                c.execute(
                    "UPDATE jobs SET status=?, started=COALESCE(started, ?) WHERE id=?", (status, now, job_id)
                )
            elif status == "queued":
                c.execute("UPDATE jobs SET status=? WHERE id=?", (status, job_id))
            else:
                c.execute(
                    "UPDATE jobs SET status=?, error=?, finished=? WHERE id=?", (status, error, now, job_id)
                )

    def set_item(
        self,
        job_id: str,
        idx: int,
        status: str,
        *,
        seconds: float | None = None,
        report: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        if status not in ITEM_STATES:
            raise ValueError(f"unknown item status {status!r}")
        finished = time.time() if status in ("done", "failed") else None
        with self._tx() as c:
            c.execute(
                "UPDATE items SET status=?, seconds=?, report=?, error=?, finished=? "
                "WHERE job_id=? AND idx=?",
                (
                    status,
                    seconds,
                    None if report is None else json.dumps(report),
                    error,
                    finished,
                    job_id,
                    idx,
                ),
            )

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job: images not yet done are left out. False if already over."""
        with self._tx() as c:
            row = c.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None or row["status"] not in ("queued", "running"):
                return False
            c.execute("UPDATE jobs SET status='cancelled', finished=? WHERE id=?", (time.time(), job_id))
            c.execute(
                "UPDATE items SET status='cancelled' WHERE job_id=? AND status IN ('queued', 'running')",
                (job_id,),
            )
        return True

    def rerun_job(self, job_id: str) -> int:
        """Queue the cancelled and failed images of a finished job again; returns how many.

        Images already done keep their results; the job goes back in the queue and is run from its
        first image not done, as after a restart.
        """
        with self._tx() as c:
            row = c.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None or row["status"] in ("queued", "running"):
                return 0
            n = c.execute(
                "UPDATE items SET status='queued', error=NULL, seconds=NULL, finished=NULL "
                "WHERE job_id=? AND status IN ('cancelled', 'failed')",
                (job_id,),
            ).rowcount
            if n:
                c.execute("UPDATE jobs SET status='queued', error=NULL, finished=NULL WHERE id=?", (job_id,))
        return n

    def delete_job(self, job_id: str) -> list[str] | None:
        """Forget a job that is not running; returns the uploads no other job uses (for the caller to
        delete with their files), or None when there is no such job or it is still queued or running.

        Uploads not in any job (chosen but never started) are kept: the page may still hold them.
        """
        with self._tx() as c:
            row = c.execute("SELECT status, options FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None or row["status"] in ("queued", "running"):
                return None
            mine = {
                r["upload_id"] for r in c.execute("SELECT upload_id FROM items WHERE job_id=?", (job_id,))
            }
            mine |= {t["id"] for t in json.loads(row["options"]).get("targets", [])}
            c.execute("DELETE FROM items WHERE job_id=?", (job_id,))
            c.execute("DELETE FROM jobs WHERE id=?", (job_id,))
            used = {r["upload_id"] for r in c.execute("SELECT upload_id FROM items")}
            for other in c.execute("SELECT options FROM jobs"):
                used |= {t["id"] for t in json.loads(other["options"]).get("targets", [])}
            orphans = sorted(mine - used)
            c.executemany("DELETE FROM uploads WHERE id=?", [(u,) for u in orphans])
        return orphans

    def latest_job(self) -> dict[str, Any] | None:
        """The job the home page opens with: the running or queued one, else the newest."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id FROM jobs ORDER BY status NOT IN ('running', 'queued'), created DESC, rowid DESC "
                "LIMIT 1"
            ).fetchone()
        return None if row is None else self.get_job(row["id"])

    def requeue_interrupted(self) -> int:
        """After a restart: jobs and images that were running go back in the queue; returns the jobs."""
        with self._tx() as c:
            c.execute("UPDATE items SET status='queued' WHERE status='running'")
            return c.execute("UPDATE jobs SET status='queued' WHERE status='running'").rowcount

    def seconds_per_pixel(self, speed: str, mode: str) -> float | None:
        """Measured seconds per pixel of finished images at this speed and mode, for time-left estimates."""
        with self._lock:
            row = self._conn.execute(
                "SELECT SUM(i.seconds) AS s, SUM(i.pixels) AS p FROM items i JOIN jobs j ON j.id = i.job_id "
                "WHERE i.status='done' AND i.seconds IS NOT NULL AND j.speed=? AND j.mode=?",
                (speed, mode),
            ).fetchone()
        if row is None or not row["p"]:
            return None
        return float(row["s"]) / float(row["p"])


def _job_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "mode": row["mode"],
        "speed": row["speed"],
        "options": json.loads(row["options"]),
        "status": row["status"],
        "error": row["error"],
        "created": row["created"],
        "started": row["started"],
        "finished": row["finished"],
    }


def _item_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "idx": row["idx"],
        "upload_id": row["upload_id"],
        "name": row["name"],
        "pixels": row["pixels"],
        "status": row["status"],
        "seconds": row["seconds"],
        "report": None if row["report"] is None else json.loads(row["report"]),
        "error": row["error"],
        "finished": row["finished"],
    }
