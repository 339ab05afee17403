"""The durable job store: one interface (``JobStore``), two implementations with the same behaviour: SQLite
(``SqliteJobStore``, the embedded default) and PostgreSQL (``bot.jobs.pg_store``, for several replicas).

An idempotent insert, and every state change written before the next step, so a committed state survives the
process crashing or being killed. Work is claimed with leases: a claim marks the job as this process's until
``lease_until``, renewed while it runs; a process that dies leaves its lease to run out, and then any process may
claim the job and carry it on at its stored step. A step is written only while the job is still this process's
(fencing), so a process that lost its lease cannot overwrite what the new owner did.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from bot.jobs.model import Job, JobSource
from bot.postgres import StoreUnavailable
from bot.slack.uploads import UploadRecord
from bot.spec import ResizeSpec
from bot.sqlite import Database, add_missing_column, add_missing_columns, run_statements

log = logging.getLogger(__name__)

_V1 = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    dedup_key TEXT NOT NULL UNIQUE,
    trigger TEXT NOT NULL,
    team_id TEXT,
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_ts TEXT,
    source TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    progress_ts TEXT,
    remote_id TEXT,
    response_url TEXT,
    error TEXT,
    upload TEXT,
    status_reaction TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (state, not_before);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs (user_id, created_at);
CREATE TABLE IF NOT EXISTS channel_settings (
    channel_id TEXT PRIMARY KEY,
    auto_sizes TEXT,
    updated_by TEXT,
    updated_at REAL NOT NULL
);
"""

_ANSWERED_EVENTS = """
CREATE TABLE IF NOT EXISTS answered_events (event_id TEXT PRIMARY KEY, answered_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS answered_events_at ON answered_events (answered_at);
"""

_RETIRE_STATES = frozenset({"failed", "cancelled"})  # asked again after these, it is a new try
# Keyed on Slack's trigger or view id, one per request: their key comes again only with the same request sent again
# (a replay within the signature's five minutes), never with a new ask, so it gets the job it made whatever its end.
_ONE_REQUEST_TRIGGERS = frozenset({"command", "shortcut", "modal"})


def asked_again(existing: Job) -> bool:
    """Whether a request with ``existing``'s key is a new try (it retires ``existing``), not a repeat of it."""
    return existing.state in _RETIRE_STATES and existing.trigger not in _ONE_REQUEST_TRIGGERS


_RETIRE = "UPDATE jobs SET dedup_key = dedup_key || '#' || id WHERE id = ? AND state IN ('failed', 'cancelled')"
# The job a delivery of this event made for this key, under the key or, once a new try retired it, under the key
# and its id (_RETIRE).
_SAME_EVENT = "SELECT * FROM jobs WHERE event_id = ? AND dedup_key IN (?, ? || '#' || id)"
_COUNT_SINCE = "SELECT COUNT(*) AS n FROM jobs WHERE user_id = ? AND created_at >= ?"


class StaleJob(Exception):
    """The stored job is no longer in the state it was read in, or no longer this process's: read it again."""


def store_or_network_out_of_reach(error: BaseException) -> bool:
    """The database out of reach (store_out_of_reach), or the network under it or beside it (a connection refused, a
    timeout): what a caller retries or answers "try again" to, with one line and no traceback."""
    return store_out_of_reach(error) or isinstance(error, (OSError, TimeoutError))


def store_out_of_reach(error: BaseException) -> bool:
    """The job database busy or gone for a moment (SQLite locked past its busy timeout, PostgreSQL restarting or
    failing over), as against a bug in a query: what is stored stands, and the same call works once it answers."""
    if isinstance(error, sqlite3.OperationalError):
        return True
    try:
        import asyncpg  # the postgres extra: an installation on SQLite alone never meets its errors
    except ImportError:
        return False
    # Opening a connection while PostgreSQL restarts, asyncpg raises the socket's own error (a refused connection,
    # a name that does not resolve). Every other network call beside the store goes through aiohttp, whose errors
    # are its own classes even where they are also ConnectionErrors: those are Slack's or a link's, not the store's.
    if isinstance(error, ConnectionError | socket.gaierror) and not isinstance(error, aiohttp.ClientError):
        return True
    return isinstance(
        error,
        asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError
        | asyncpg.exceptions.LockNotAvailableError,  # lock_timeout: another writer held it past a write's deadline
    )


_COLUMNS = [
    "id", "dedup_key", "trigger", "team_id", "channel_id", "user_id", "thread_ts", "source", "spec", "state",
    "progress_ts", "remote_id", "response_url", "error", "upload", "status_reaction", "attempts", "not_before",
    "created_at", "updated_at", "event_id",
]  # fmt: skip
_UPDATABLE = {"thread_ts", "source", "state", "progress_ts", "remote_id", "error", "upload", "attempts", "not_before"}
OPEN = "state NOT IN ('done', 'failed', 'cancelled')"
# The longest the runner ever tells a job to wait (its backoffs are capped at a minute). A not_before further ahead
# than this was set by a clock that has since stepped back (NTP, a VM resumed from a snapshot): such a job is due
# now, where it would wait for the step's size on top of its wait.
LONGEST_WAIT_S = 600.0
# A job is due at its not_before, or at once when that is past LONGEST_WAIT_S from now (the SQL's two parameters).
_DUE = "(not_before <= ? OR not_before > ?)"
_INSERT = f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"  # noqa: S608


@dataclass(frozen=True)
class Admission:
    job: Job | None  # the stored job (new, or the live one this repeats); None when refused by the rate limit
    new: bool
    recent: int  # the user's jobs in the window, not counting this one


class JobStore(Protocol):
    """What the app asks of its job store; both implementations pass the same tests (tests/jobs/test_store.py)."""

    owner: str  # this process, in the leases it takes

    async def close(self) -> None: ...
    async def admit(self, job: Job, *, since: float, limit: int) -> Admission: ...
    async def get(self, job_id: str) -> Job | None: ...
    async def update(self, job: Job, *, fenced: bool = True, **changes: Any) -> Job: ...
    async def claim(self, now: float, limit: int, lease_s: float) -> list[Job]: ...
    async def renew(self, job_ids: list[str], until: float) -> set[str]: ...
    async def release(self, job_id: str) -> None: ...
    async def holder(self, job_id: str) -> str | None: ...
    async def runnable(self, now: float, limit: int = 50) -> list[Job]: ...
    async def next_wakeup(self, now: float) -> float | None: ...
    async def recent_for_user(self, user_id: str, limit: int = 10) -> list[Job]: ...
    async def changed_since(self, since: float, limit: int = 500) -> list[Job]: ...
    async def in_thread(self, channel_id: str, thread_ts: str) -> list[Job]: ...
    def message_lock(self, channel_id: str, message_ts: str) -> contextlib.AbstractAsyncContextManager[None]: ...
    async def set_status_reaction(self, job_id: str, reaction: str | None) -> None: ...
    async def delete_finished_before(self, cutoff: float) -> int: ...
    async def first_answer(self, event_id: str, now: float) -> bool: ...
    async def set_auto_sizes(self, channel_id: str, sizes: list[str] | None, user_id: str) -> None: ...
    async def auto_sizes(self, channel_id: str) -> list[str] | None: ...
    async def listen(self, wake: Callable[[], None]) -> None: ...


def new_owner() -> str:
    """A lease owner id: the host and process, for an operator reading the table, and a random part, unique."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SqliteJobStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.owner = new_owner()
        try:
            self._db = Database(path, "")
            self._db.migrate("jobs", _MIGRATIONS)
            # One app process per SQLite file: whatever holds a lease here is this process's previous life, dead.
            # Its jobs resume at once, not a lease later. (Replicas share PostgreSQL, where leases run out instead.)
            self._db.execute_now("UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
        except (OSError, sqlite3.Error) as error:
            raise StoreUnavailable(
                f"Can't open the job database {path} (DATABASE_URL): {error}; point DATABASE_URL at a file in a folder "
                "this user may write to."
            ) from None

    async def close(self) -> None:
        self._db.close()

    async def listen(self, wake: Callable[[], None]) -> None:
        """Nothing to listen to: the process that admits a job wakes its own runner (intake does)."""

    # --- jobs ---------------------------------------------------------------------------------------------------

    async def admit(self, job: Job, *, since: float, limit: int) -> Admission:
        """Intake's decision, in one transaction: Slack's redelivery of the event that made a job gets that job,
        whatever its state; a repeat of a live job gets that job; a repeat of one that failed or was cancelled
        retires it (asking again is a new try); more than ``limit`` of the user's jobs created since ``since``
        refuses; anything else is inserted."""
        job, values = _new_row(job)

        def decide(db: sqlite3.Connection) -> Admission:
            if job.event_id is not None:
                delivered = db.execute(_SAME_EVENT, (job.event_id, job.dedup_key, job.dedup_key)).fetchone()
                if delivered is not None and (earlier := _readable(delivered)) is not None:
                    return Admission(earlier, new=False, recent=0)
            found = db.execute("SELECT * FROM jobs WHERE dedup_key = ?", (job.dedup_key,)).fetchone()
            if found is not None:
                existing = _from_row(found)
                if not asked_again(existing):
                    return Admission(existing, new=False, recent=0)
                db.execute(_RETIRE, (existing.id,))
            recent = int(db.execute(_COUNT_SINCE, (job.user_id, since)).fetchone()["n"])
            if recent >= limit:
                return Admission(None, new=False, recent=recent)
            db.execute(_INSERT, values)
            return Admission(job, new=True, recent=recent)

        return await self._db.transaction(decide)

    async def get(self, job_id: str) -> Job | None:
        rows = await self._db.run("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _from_row(rows[0]) if rows else None

    async def update(self, job: Job, *, fenced: bool = True, **changes: Any) -> Job:
        """Persist ``changes`` (a state step) and return the job as now stored.

        Only while the stored state is still ``job.state``: a step taken on what was read before Cancel (or any
        other writer) moved the job on raises StaleJob instead of undoing that move. ``fenced`` (the runner's
        steps): only while this process holds the job's lease (claim() first). Cancel is not fenced: whoever holds
        the job finds it cancelled at its next step.
        """
        updated, names, values = _changed(job, changes)
        assignments = ", ".join(f"{name} = ?" for name in names)
        fence = " AND lease_owner = ?" if fenced else ""
        written = await self._db.run(
            f"UPDATE jobs SET {assignments} WHERE id = ? AND state = ?{fence} RETURNING id",  # noqa: S608
            (*values, job.id, job.state, *((self.owner,) if fenced else ())),
        )
        if not written:
            raise StaleJob(job.id)
        return updated

    async def claim(self, now: float, limit: int, lease_s: float) -> list[Job]:
        """Up to ``limit`` runnable jobs, oldest first, now this process's until ``now + lease_s``: free ones, and ones
        whose lease ran out (their process died). The ones this process holds are running: renew() keeps them."""
        rows = await self._db.run(
            f"UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id IN (SELECT id FROM jobs WHERE {OPEN} "  # noqa: S608
            f"AND {_DUE} AND (lease_owner IS NULL OR lease_until < ?) ORDER BY created_at LIMIT ?) RETURNING *",
            (self.owner, now + lease_s, now, now + LONGEST_WAIT_S, now, limit),
        )
        return await self._readable_rows(sorted(rows, key=lambda row: row["created_at"]))

    async def renew(self, job_ids: list[str], until: float) -> set[str]:
        """Extend this process's leases; returns the ids still its own (the others were taken over)."""
        renewed: set[str] = set()
        for job_id in job_ids:
            rows = await self._db.run(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? RETURNING id",
                (until, job_id, self.owner),
            )
            renewed.update(row["id"] for row in rows)
        return renewed

    async def holder(self, job_id: str) -> str | None:
        """The process whose lease the job is under, if any."""
        rows = await self._db.run("SELECT lease_owner FROM jobs WHERE id = ?", (job_id,))
        return rows[0]["lease_owner"] if rows else None

    async def release(self, job_id: str) -> None:
        await self._db.run(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
            (job_id, self.owner),
        )

    async def changed_since(self, since: float, limit: int = 500) -> list[Job]:
        rows = await self._db.run(
            "SELECT * FROM jobs WHERE updated_at >= ? ORDER BY updated_at DESC LIMIT ?", (since, limit)
        )
        return [job for row in rows if (job := _readable(row)) is not None]

    async def in_thread(self, channel_id: str, thread_ts: str) -> list[Job]:
        """Every job whose results go to this thread: the jobs of one message share its status reaction."""
        rows = await self._db.run("SELECT * FROM jobs WHERE channel_id = ? AND thread_ts = ?", (channel_id, thread_ts))
        return [job for row in rows if (job := _readable(row)) is not None]

    @contextlib.asynccontextmanager
    async def message_lock(self, channel_id: str, message_ts: str) -> AsyncIterator[None]:
        """Held while a message's status reaction changes, or a crop map is posted in its thread. Nothing to hold
        here: one process per file, whose reactions worker changes one message at a time, and whose crop-map
        handler posts one map per job at a time."""
        yield

    async def set_status_reaction(self, job_id: str, reaction: str | None) -> None:
        """What is on the source message now: the reaction follows Slack, whatever step the job is at."""
        await self._db.run("UPDATE jobs SET status_reaction = ? WHERE id = ?", (reaction, job_id))

    async def runnable(self, now: float, limit: int = 50) -> list[Job]:
        rows = await self._db.run(
            f"SELECT * FROM jobs WHERE {OPEN} AND {_DUE} ORDER BY created_at LIMIT ?",  # noqa: S608
            (now, now + LONGEST_WAIT_S, limit),
        )
        return await self._readable_rows(rows)

    async def _readable_rows(self, rows: list[Any]) -> list[Job]:
        jobs = []
        for row in rows:
            job = _readable(row)
            if job is None:
                # A row no release of this app could have written (edited by hand, or by a newer release): it
                # must not stall every other job, nor be retried forever.
                await self._db.run(
                    "UPDATE jobs SET state = 'failed', error = ? WHERE id = ?", (UNREADABLE_JOB, row["id"])
                )
            else:
                jobs.append(job)
        return jobs

    async def next_wakeup(self, now: float) -> float | None:
        """When an open job next becomes claimable: its not_before, or when another process's lease runs out (the
        jobs this process holds are running here: they wake nothing)."""
        rows = await self._db.run(
            "SELECT MIN(CASE WHEN lease_until > ? THEN (CASE WHEN lease_owner = ? THEN NULL ELSE lease_until END) "  # noqa: S608
            f"WHEN not_before > ? THEN ? ELSE not_before END) AS t FROM jobs WHERE {OPEN}",
            (now, self.owner, now + LONGEST_WAIT_S, now),
        )
        value = rows[0]["t"] if rows else None
        return float(value) if value is not None else None

    async def recent_for_user(self, user_id: str, limit: int = 10) -> list[Job]:
        rows = await self._db.run(
            "SELECT * FROM jobs WHERE user_id = ? ORDER BY created_at DESC LIMIT ?", (user_id, limit)
        )
        return [job for row in rows if (job := _readable(row)) is not None]

    async def delete_finished_before(self, cutoff: float) -> int:
        """Delete finished jobs last changed before ``cutoff``, and the events answered before it (Slack sends an
        event again within minutes, not days); open jobs stay whatever their age. Returns how many jobs went."""
        deleted = await self._db.run(
            "DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND updated_at < ? RETURNING id",
            (cutoff,),
        )
        await self._db.run("DELETE FROM answered_events WHERE answered_at < ?", (cutoff,))
        return len(deleted)

    async def first_answer(self, event_id: str, now: float) -> bool:
        """True the first time an event's replies are about to be sent, recording that they are; False when a
        delivery of the same event (Slack sending it again, on this process or another) already sent them."""
        rows = await self._db.run(
            "INSERT INTO answered_events (event_id, answered_at) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING 1",
            (event_id, now),
        )
        return bool(rows)

    # --- channel settings ---------------------------------------------------------------------------------------

    async def set_auto_sizes(self, channel_id: str, sizes: list[str] | None, user_id: str) -> None:
        await self._db.run(
            "INSERT INTO channel_settings (channel_id, auto_sizes, updated_by, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(channel_id) DO UPDATE SET auto_sizes = excluded.auto_sizes, "
            "updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (channel_id, json.dumps(sizes) if sizes is not None else None, user_id, time.time()),
        )

    async def auto_sizes(self, channel_id: str) -> list[str] | None:
        rows = await self._db.run("SELECT auto_sizes FROM channel_settings WHERE channel_id = ?", (channel_id,))
        if not rows or rows[0]["auto_sizes"] is None:
            return None
        return list(json.loads(rows[0]["auto_sizes"]))


def _add_event_ids(db: sqlite3.Connection) -> None:
    add_missing_column(db, "jobs", "event_id", "TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS jobs_event ON jobs (event_id)")


# Each step runs once per file, in order (bot.sqlite.Database.migrate); each also works on a file an earlier release
# made before steps were counted, so such a file is upgraded in place.
_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    lambda db: run_statements(db, _V1),
    # Uploads tracked by file id, and the status reaction the job put on.
    lambda db: add_missing_columns(db, "jobs", upload="TEXT", status_reaction="TEXT"),
    # Leases: which process holds an open job, and until when.
    lambda db: add_missing_columns(db, "jobs", lease_owner="TEXT", lease_until="REAL"),
    # The Slack event that made each job, so its redelivery finds it (admit).
    _add_event_ids,
    # A message's jobs, found together for its status reaction (in_thread).
    lambda db: run_statements(db, "CREATE INDEX IF NOT EXISTS jobs_thread ON jobs (channel_id, thread_ts)"),
    # The events whose replies were sent (first_answer), so Slack sending one again does not repeat them.
    lambda db: run_statements(db, _ANSWERED_EVENTS),
]


def _changed(job: Job, changes: dict[str, Any]) -> tuple[Job, list[str], list[Any]]:
    """The job with ``changes`` made, the columns they touch (and updated_at), and those columns' stored values."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    updated = replace(job, **changes, updated_at=time.time())
    row = _to_row(updated)
    names = [*changes, "updated_at"]
    return updated, names, [row[name] for name in names]


def _new_row(job: Job) -> tuple[Job, tuple[Any, ...]]:
    """The job as it is first stored (id, timestamps) and its values in ``_COLUMNS`` order, for ``_INSERT``."""
    now = time.time()
    job = replace(job, id=job.id or uuid.uuid4().hex, created_at=now, updated_at=now)
    row = _to_row(job)
    return job, tuple(row[c] for c in _COLUMNS)


def _to_row(job: Job) -> dict[str, Any]:
    row = {name: getattr(job, name) for name in _COLUMNS}
    row["source"] = json.dumps(job.source.to_json())
    row["spec"] = json.dumps(job.spec.to_json())
    row["upload"] = json.dumps(job.upload.to_json()) if job.upload is not None else None
    return row


UNREADABLE_JOB = "This job's stored request could not be read; please ask again."


def _readable(row: sqlite3.Row) -> Job | None:
    """The row as a job, or None (logged) when its stored source or spec cannot be read."""
    try:
        return _from_row(row)
    except (ValueError, KeyError, TypeError) as error:
        log.error("job %s has an unreadable stored request (%s: %s)", row["id"], type(error).__name__, error)
        return None


def _from_row(row: sqlite3.Row) -> Job:
    values = {name: row[name] for name in _COLUMNS}
    values["source"] = JobSource.from_json(json.loads(values["source"]))
    values["spec"] = ResizeSpec.from_json(json.loads(values["spec"]))
    values["upload"] = UploadRecord.from_json(json.loads(values["upload"])) if values["upload"] else None
    return Job(**values)
