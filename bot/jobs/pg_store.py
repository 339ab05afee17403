"""The job store on PostgreSQL (``DATABASE_URL=postgresql://...``): the same behaviour as ``SqliteJobStore``, shared
by every replica of the app.

- Intake decides in one transaction holding the requester's advisory lock: two replicas taking the same Slack
  event (a retry, or the mention and message pair) or the same user's burst see each other's rows, so the dedup key
  makes one job and the per-user limit holds across replicas.
- Claims take ``FOR UPDATE SKIP LOCKED``: replicas claiming together get different jobs, never wait on each other.
- A new job NOTIFYs ``smart_resize_jobs``: an idle replica starts it at once instead of at its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from bot.jobs.model import Job
from bot.jobs.store import (
    _COLUMNS,
    LONGEST_WAIT_S,
    UNREADABLE_JOB,
    Admission,
    StaleJob,
    _changed,
    _new_row,
    _readable,
    asked_again,
    new_owner,
)
from bot.postgres import Listener, migrate, open_pool
from bot.write_deadline import write_deadline

if TYPE_CHECKING:
    import asyncpg

CHANNEL = "smart_resize_jobs"
OPEN = "state NOT IN ('done', 'failed', 'cancelled')"

_MIGRATIONS = [
    """
    CREATE TABLE jobs (
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
        not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION
    );
    CREATE INDEX jobs_open ON jobs (state, not_before);
    CREATE INDEX jobs_user ON jobs (user_id, created_at);
    CREATE INDEX jobs_updated ON jobs (updated_at);
    CREATE TABLE channel_settings (
        channel_id TEXT PRIMARY KEY,
        auto_sizes TEXT,
        updated_by TEXT,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE crop_maps (
        job_id TEXT PRIMARY KEY,
        picture BYTEA NOT NULL,
        saved_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX crop_maps_saved ON crop_maps (saved_at);
    """,
    # The Slack event that made each job, so its redelivery finds it (admit).
    """
    ALTER TABLE jobs ADD COLUMN event_id TEXT;
    CREATE INDEX jobs_event ON jobs (event_id);
    """,
    # A message's jobs, found together for its status reaction (in_thread).
    "CREATE INDEX jobs_thread ON jobs (channel_id, thread_ts)",
    # The events whose replies were sent (first_answer), so Slack sending one again does not repeat them.
    """
    CREATE TABLE answered_events (event_id TEXT PRIMARY KEY, answered_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX answered_events_at ON answered_events (answered_at);
    """,
]

_SAME_EVENT = "SELECT * FROM jobs WHERE event_id = $1 AND dedup_key IN ($2::text, $2::text || '#' || id)"
_INSERT = f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join(f'${n + 1}' for n in range(len(_COLUMNS)))})"  # noqa: S608


class PostgresJobStore:
    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.owner = new_owner()
        self.url = url
        self.pool = pool
        self._listener: Listener | None = None

    @classmethod
    async def open(cls, url: str) -> PostgresJobStore:
        pool = await open_pool(url)
        await migrate(pool, "jobs", _MIGRATIONS)
        return cls(url, pool)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        await self.pool.close()

    async def listen(self, wake: Callable[[], None]) -> None:
        """``wake`` on every job any replica admits."""
        self._listener = Listener(self.url, CHANNEL, wake)
        await self._listener.start()

    # --- jobs ---------------------------------------------------------------------------------------------------

    async def admit(self, job: Job, *, since: float, limit: int) -> Admission:
        deadline = write_deadline()
        if deadline is None:
            return await self._admit(job, since, limit, None)
        deciding = asyncio.ensure_future(self._admit(job, since, limit, deadline))
        try:
            return await asyncio.shield(deciding)
        except asyncio.CancelledError:
            # The caller stopped waiting (past the ack's deadline). Its waits for a connection and for locks ended at
            # the write deadline, before that; what is left is the write itself, whose outcome stands: cancelled now,
            # a COMMIT already sent could land behind an answer of "not stored, try again".
            return await deciding

    async def _admit(self, job: Job, since: float, limit: int, deadline: float | None) -> Admission:
        job, values = _new_row(job)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError("no time left to begin the write")
        async with self.pool.acquire(timeout=left) as db, db.transaction():
            if deadline is not None:  # the advisory locks below wait no longer than the deadline
                waits_ms = max(1, int((deadline - time.monotonic()) * 1000))
                await db.execute(f"SET LOCAL lock_timeout = {waits_ms}")
            # One requester's intake at a time, whichever replica Slack picked: see the module's docstring.
            await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"jobs:user:{job.user_id}")
            # And the request's own key: two people reacting to one message at once make one job, not an error.
            await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"jobs:key:{job.dedup_key}")
            if job.event_id is not None:  # Slack's redelivery: see SqliteJobStore.admit
                delivered = await db.fetchrow(_SAME_EVENT, job.event_id, job.dedup_key)
                if delivered is not None and (earlier := _readable(delivered)) is not None:
                    return Admission(earlier, new=False, recent=0)
            found = await db.fetchrow("SELECT * FROM jobs WHERE dedup_key = $1 FOR UPDATE", job.dedup_key)
            if found is not None:
                existing = _readable(found)
                if existing is not None and not asked_again(existing):
                    return Admission(existing, new=False, recent=0)
                await db.execute("UPDATE jobs SET dedup_key = dedup_key || '#' || id WHERE id = $1", found["id"])
            recent = int(
                await db.fetchval(
                    "SELECT COUNT(*) FROM jobs WHERE user_id = $1 AND created_at >= $2", job.user_id, since
                )
            )
            if recent >= limit:
                return Admission(None, new=False, recent=recent)
            await db.execute(_INSERT, *values)
            await db.execute("SELECT pg_notify($1, $2)", CHANNEL, job.id)  # sent when this commits
            return Admission(job, new=True, recent=recent)

    async def get(self, job_id: str) -> Job | None:
        row = await self.pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        return _readable(row) if row is not None else None

    async def update(self, job: Job, *, fenced: bool = True, **changes: Any) -> Job:
        updated, names, values = _changed(job, changes)
        assignments = ", ".join(f"{name} = ${n + 1}" for n, name in enumerate(names))
        at = len(names)
        fence = f" AND lease_owner = ${at + 3}" if fenced else ""
        written = await self.pool.fetchval(
            f"UPDATE jobs SET {assignments} WHERE id = ${at + 1} AND state = ${at + 2}{fence} RETURNING id",  # noqa: S608
            *values,
            job.id,
            job.state,
            *((self.owner,) if fenced else ()),
        )
        if written is None:
            raise StaleJob(job.id)
        return updated

    async def claim(self, now: float, limit: int, lease_s: float) -> list[Job]:
        rows = await self.pool.fetch(
            "UPDATE jobs SET lease_owner = $1, lease_until = $2 WHERE id IN (SELECT id FROM jobs WHERE "  # noqa: S608
            f"{OPEN} AND (not_before <= $3 OR not_before > $5) AND (lease_owner IS NULL OR lease_until < $3) "
            "ORDER BY created_at LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING *",
            self.owner,
            now + lease_s,
            now,
            limit,
            now + LONGEST_WAIT_S,  # past it: set by a clock that stepped back since (store.LONGEST_WAIT_S)
        )
        return await self._readable_rows(sorted(rows, key=lambda row: row["created_at"]))

    async def renew(self, job_ids: list[str], until: float) -> set[str]:
        if not job_ids:
            return set()
        rows = await self.pool.fetch(
            "UPDATE jobs SET lease_until = $1 WHERE id = ANY($2::text[]) AND lease_owner = $3 RETURNING id",
            until,
            job_ids,
            self.owner,
        )
        return {str(row["id"]) for row in rows}

    async def holder(self, job_id: str) -> str | None:
        value = await self.pool.fetchval("SELECT lease_owner FROM jobs WHERE id = $1", job_id)
        return str(value) if value is not None else None

    async def release(self, job_id: str) -> None:
        await self.pool.execute(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
            job_id,
            self.owner,
        )

    async def runnable(self, now: float, limit: int = 50) -> list[Job]:
        rows = await self.pool.fetch(
            f"SELECT * FROM jobs WHERE {OPEN} AND (not_before <= $1 OR not_before > $3) ORDER BY created_at LIMIT $2",  # noqa: S608
            now,
            limit,
            now + LONGEST_WAIT_S,
        )
        return await self._readable_rows(rows)

    async def _readable_rows(self, rows: list[Any]) -> list[Job]:
        jobs = []
        for row in rows:
            job = _readable(row)
            if job is None:  # as in SqliteJobStore: it fails alone
                await self.pool.execute(
                    "UPDATE jobs SET state = 'failed', error = $1 WHERE id = $2", UNREADABLE_JOB, row["id"]
                )
            else:
                jobs.append(job)
        return jobs

    async def next_wakeup(self, now: float) -> float | None:
        value = await self.pool.fetchval(
            "SELECT MIN(CASE WHEN lease_until > $2 THEN (CASE WHEN lease_owner = $1 THEN NULL ELSE lease_until END) "  # noqa: S608
            f"WHEN not_before > $3 THEN $2 ELSE not_before END) FROM jobs WHERE {OPEN}",
            self.owner,
            now,
            now + LONGEST_WAIT_S,
        )
        return float(value) if value is not None else None

    async def recent_for_user(self, user_id: str, limit: int = 10) -> list[Job]:
        rows = await self.pool.fetch(
            "SELECT * FROM jobs WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2", user_id, limit
        )
        return [job for row in rows if (job := _readable(row)) is not None]

    async def changed_since(self, since: float, limit: int = 500) -> list[Job]:
        rows = await self.pool.fetch(
            "SELECT * FROM jobs WHERE updated_at >= $1 ORDER BY updated_at DESC LIMIT $2", since, limit
        )
        return [job for row in rows if (job := _readable(row)) is not None]

    async def in_thread(self, channel_id: str, thread_ts: str) -> list[Job]:
        rows = await self.pool.fetch(
            "SELECT * FROM jobs WHERE channel_id = $1 AND thread_ts = $2", channel_id, thread_ts
        )
        return [job for row in rows if (job := _readable(row)) is not None]

    @contextlib.asynccontextmanager
    async def message_lock(self, channel_id: str, message_ts: str) -> AsyncIterator[None]:
        """One replica at a time changes a message's status reaction, or posts a crop map in its thread: two of its
        jobs finishing on two replicas at once would otherwise each put on what it saw, and leave both, and two
        clicks of Show crop map would each find none posted yet. (A connection per replica and such change.)"""
        key = f"jobs:message:{channel_id}:{message_ts}"
        async with self.pool.acquire() as db:
            await db.execute("SELECT pg_advisory_lock(hashtext($1))", key)
            try:
                yield
            finally:  # were this cut short, the pool's reset of the connection lets go of the lock too
                await db.execute("SELECT pg_advisory_unlock(hashtext($1))", key)

    async def set_status_reaction(self, job_id: str, reaction: str | None) -> None:
        await self.pool.execute("UPDATE jobs SET status_reaction = $1 WHERE id = $2", reaction, job_id)

    async def delete_finished_before(self, cutoff: float) -> int:
        rows = await self.pool.fetch(
            "DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND updated_at < $1 RETURNING id", cutoff
        )
        await self.pool.execute("DELETE FROM answered_events WHERE answered_at < $1", cutoff)
        return len(rows)

    async def first_answer(self, event_id: str, now: float) -> bool:
        value = await self.pool.fetchval(
            "INSERT INTO answered_events (event_id, answered_at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
            event_id,
            now,
        )
        return value is not None

    # --- channel settings ---------------------------------------------------------------------------------------

    async def set_auto_sizes(self, channel_id: str, sizes: list[str] | None, user_id: str) -> None:
        await self.pool.execute(
            "INSERT INTO channel_settings (channel_id, auto_sizes, updated_by, updated_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (channel_id) DO UPDATE SET auto_sizes = excluded.auto_sizes, "
            "updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            channel_id,
            json.dumps(sizes) if sizes is not None else None,
            user_id,
            time.time(),
        )

    async def auto_sizes(self, channel_id: str) -> list[str] | None:
        value = await self.pool.fetchval("SELECT auto_sizes FROM channel_settings WHERE channel_id = $1", channel_id)
        return list(json.loads(value)) if value is not None else None
