"""The API server's requests: one row each, and the table is the queue. In SQLite here (the same file the app keeps
its jobs in), or in PostgreSQL (``pg_store``) for several replicas on one database: the same rules either way,
behind ``RequestStore``.

A claim is a lease. A worker takes a QUEUED request, or a PROCESSING one whose lease ran out (its server died), in
one step, so two workers never hold the same one; it renews the lease while it works, and its finish counts only if
the request is still its claim. A server that stalled past its lease and was taken over therefore cannot overwrite
the result of the one that took over, and each claim writes its outputs to a folder of its own for the same reason.
What was accepted survives crashes and restarts, however many requests were waiting: it is in the table.

A request's body can hold its source image as a data URI (tens of MB): only a claim reads it, and it is encoded
and parsed off the event loop. Status reads take the small columns alone.

Every request belongs to a tenant (one per API key, see ``server.app.tenant_id``): reads name the tenant, so one key
can never see another's requests, and workers claim from the tenants in turn, so one tenant's burst does not make
everyone else wait behind it. The queue's limits are counted in the table inside each submit, so they hold however
many servers share it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.postgres import StoreUnavailable
from bot.smart_resize_api.contract import SmartResizeRequest, Status
from bot.sqlite import Database, add_missing_column

if TYPE_CHECKING:
    from bot.config import ServerSettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_requests (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    sync_mode INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    files TEXT,
    media_type TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    completed_at REAL
);
CREATE INDEX IF NOT EXISTS api_requests_status ON api_requests (status, created_at);
CREATE INDEX IF NOT EXISTS api_requests_completed ON api_requests (completed_at);
"""
STATE_COLUMNS = (
    "id, tenant, sync_mode, status, error, files, media_type, outputs_from, description, created_at, updated_at, "
    "completed_at"
)


def _upgrade(db: sqlite3.Connection) -> None:
    # Requests stored before tenants existed belong to none: no key can read them, and they expire with the TTL.
    add_missing_column(db, "api_requests", "tenant", "TEXT NOT NULL DEFAULT ''")
    add_missing_column(db, "api_requests", "claimed_at", "REAL")
    # A PROCESSING row from before leases has none (NULL): its server has stopped, so it may be claimed at once.
    add_missing_column(db, "api_requests", "owner", "TEXT")
    add_missing_column(db, "api_requests", "lease_until", "REAL")
    # Outputs finished before claims had folders of their own (NULL) are in the request's folder itself.
    add_missing_column(db, "api_requests", "outputs_from", "INTEGER")
    add_missing_column(db, "api_requests", "description", "TEXT")
    # Claims handed back by a clean stop: not interruptions (``ClaimedRequest.interruptions``).
    add_missing_column(db, "api_requests", "releases", "INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX IF NOT EXISTS api_requests_tenant ON api_requests (tenant, status)")
    db.execute("CREATE INDEX IF NOT EXISTS api_requests_turns ON api_requests (tenant, claimed_at)")


@dataclass(frozen=True)
class RequestState:
    """Everything a status answer needs, without the request body."""

    id: str
    tenant: str
    sync_mode: bool
    status: Status
    error: str | None
    files: list[str]
    media_type: str | None
    description: str | None  # the engine's notes on a COMPLETED request
    outputs_from: int | None  # the claim (its attempt) that wrote the files; None: an earlier release did
    created_at: float
    updated_at: float
    completed_at: float | None


@dataclass(frozen=True)
class ClaimedRequest:
    id: str
    tenant: str
    request: SmartResizeRequest | None  # None: the stored body no longer reads
    # Every claim, including this one, counts one up, so the count names this claim: renewals and the finish go
    # through only while it is still the latest (and its outputs have a folder of their own).
    attempts: int
    # Earlier claims that ended in neither a finish nor a release: their server died (or lost its lease), so a
    # request that keeps killing servers is not run forever. A clean stop's release is not one.
    interruptions: int = 0


@dataclass(frozen=True)
class QueueLimits:
    size: int  # requests waiting, of every tenant together
    share: int  # requests waiting of one tenant


@dataclass(frozen=True)
class Refused:
    """A submit the queue has no room for."""

    whole_queue: bool  # the queue is full; else the tenant has its share waiting
    waiting: int  # how many: in the whole queue, or the tenant's


class RequestStore(Protocol):
    """What the server needs of its queue; ``SqliteRequestStore`` and ``PostgresRequestStore`` behave alike (the
    store tests run on both)."""

    media_dir: Path
    owner: str  # this server's name in the claims it holds

    async def open(self, wake: Callable[[], None]) -> None:
        """Connect, and bring the tables up to date. ``wake`` is called when another server may have queued a
        request (with PostgreSQL: on its NOTIFY), so idle workers look at once."""

    async def close(self) -> None: ...

    async def add(
        self, request_id: str, tenant: str, request: SmartResizeRequest, now: float, limits: QueueLimits
    ) -> Refused | None:
        """Queue the request unless the queue, or the tenant's share of it, is full (None: queued)."""

    async def get(self, request_id: str, tenant: str | None) -> RequestState | None:
        """The tenant's request; None for an unknown id and for another tenant's alike. ``tenant`` None: whoever's
        it is (for media links, which are capabilities)."""

    async def claim_next(self, now: float) -> ClaimedRequest | None:
        """A waiting request, now PROCESSING under this server's lease: the oldest of the tenant whose last claim
        is the longest ago (one that never had one first), so tenants take turns; None when nothing waits. A body
        that no longer reads (stored by an older release under other rules) comes back with ``request`` None, for
        the caller to end."""

    async def renew(self, claim: ClaimedRequest, now: float) -> bool:
        """Extend the lease; False when the request is no longer this claim (another server took it over)."""

    async def release(self, claim: ClaimedRequest, now: float) -> None:
        """Hand the request back (a clean stop), for another server to take at once: its lease ends now, and the
        claim is not counted as an interruption. It stays PROCESSING, so pollers never see it go back to QUEUED."""

    async def finish(
        self,
        claim: ClaimedRequest,
        status: Status,
        now: float,
        *,
        error: str | None = None,
        files: list[str] | None = None,
        media_type: str | None = None,
        description: str = "",
    ) -> bool:
        """Record the outcome; False, and nothing changed, when the request is no longer this claim."""

    async def finished_before(self, cutoff: float) -> list[str]: ...

    async def delete(self, request_id: str) -> None: ...


def request_store(config: ServerSettings, owner: str) -> RequestStore:
    """PostgreSQL when DATABASE_URL names it, else the SQLite file."""
    if config.postgres_url is not None:
        from bot.smart_resize_api.server.pg_store import PostgresRequestStore

        if config.media_dir is None:
            raise StoreUnavailable("With PostgreSQL, set SMART_RESIZE_MEDIA_DIR to a directory every replica shares.")
        return PostgresRequestStore(
            config.postgres_url, media_dir=config.media_dir, owner=owner, lease_s=config.lease_s
        )
    return SqliteRequestStore(config.database_path, owner=owner, lease_s=config.lease_s, media_dir=config.media_dir)


def outputs_path(media_dir: Path, request_id: str, outputs_from: int | None) -> Path:
    """The folder of one claim's outputs (see ``RequestState.outputs_from``)."""
    folder = media_dir / request_id
    return folder if outputs_from is None else folder / f"attempt-{outputs_from}"


async def encode_body(request: SmartResizeRequest) -> str:
    return await asyncio.to_thread(json.dumps, request.to_json())


async def read_claim(row: Any) -> ClaimedRequest:
    try:
        request = await asyncio.to_thread(lambda: SmartResizeRequest.from_json(json.loads(row["body"])))
    except (ValueError, TypeError, KeyError, RecursionError):  # ContractError is a ValueError
        request = None
    attempts = row["attempts"]
    return ClaimedRequest(row["id"], row["tenant"], request, attempts, interruptions=attempts - 1 - row["releases"])


def read_state(row: Any) -> RequestState:
    return RequestState(
        id=row["id"],
        tenant=row["tenant"],
        sync_mode=bool(row["sync_mode"]),
        status=Status(row["status"]),
        error=row["error"],
        files=json.loads(row["files"]) if row["files"] else [],
        media_type=row["media_type"],
        outputs_from=row["outputs_from"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )


# Waiting: queued, or claimed by a server whose lease ran out (it died: the request will run again).
_COUNT_WAITING = (
    "SELECT COUNT(*), COUNT(*) FILTER (WHERE tenant = ?) FROM api_requests "
    "WHERE status = 'QUEUED' OR (status = 'PROCESSING' AND coalesce(lease_until, 0) < ?)"
)
_THIS_CLAIM = "id = ? AND status = 'PROCESSING' AND owner = ? AND attempts = ?"


class SqliteRequestStore:
    def __init__(self, database: Path, *, owner: str, lease_s: float = 60.0, media_dir: Path | None = None) -> None:
        self.path = database
        self.owner = owner
        self.lease_s = lease_s
        # By default beside the database, named after it, so two databases in one folder keep their outputs apart.
        self.media_dir = media_dir or database.with_name(f"{database.stem}-api-media")
        self._opened: Database | None = None

    @property
    def _db(self) -> Database:
        if self._opened is None:
            raise RuntimeError("the request store is not open")
        return self._opened

    async def open(self, wake: Callable[[], None]) -> None:
        # ``wake`` goes unused: SQLite has no notifications; servers on one file find each other's requests by polling.
        try:
            self._opened = Database(self.path, _SCHEMA, _upgrade)
            # One server per SQLite file: a lease found here is this server's previous life, dead. Its requests
            # run again at once, not a lease later (replicas share PostgreSQL, where leases run out instead).
            self._opened.execute_now("UPDATE api_requests SET lease_until = 0 WHERE status = 'PROCESSING'")
        except (OSError, sqlite3.Error) as error:
            raise StoreUnavailable(f"Can't open the SQLite database {self.path}: {error}.") from None

    async def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    async def add(
        self, request_id: str, tenant: str, request: SmartResizeRequest, now: float, limits: QueueLimits
    ) -> Refused | None:
        body = await encode_body(request)

        def admit(db: sqlite3.Connection) -> Refused | None:
            everyone, mine = db.execute(_COUNT_WAITING, (tenant, now)).fetchone()
            if everyone >= limits.size:
                return Refused(whole_queue=True, waiting=everyone)
            if mine >= limits.share:
                return Refused(whole_queue=False, waiting=mine)
            db.execute(
                "INSERT INTO api_requests (id, tenant, body, sync_mode, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'QUEUED', ?, ?)",
                (request_id, tenant, body, int(request.sync_mode), now, now),
            )
            return None

        # One write transaction: the count and the insert see no other submit in between, from any process.
        return await self._db.transaction(admit)

    async def get(self, request_id: str, tenant: str | None) -> RequestState | None:
        rows = await self._db.run(
            f"SELECT {STATE_COLUMNS} FROM api_requests WHERE id = ? AND tenant = coalesce(?, tenant)",  # noqa: S608
            (request_id, tenant),
        )
        return read_state(rows[0]) if rows else None

    async def claim_next(self, now: float) -> ClaimedRequest | None:
        # One statement: SQLite runs it under its write lock, so no other worker (of any process) takes the row.
        rows = await self._db.run(
            "UPDATE api_requests SET status = 'PROCESSING', attempts = attempts + 1, owner = ?, lease_until = ?, "
            "updated_at = ?, claimed_at = ? "
            "WHERE id = (SELECT id FROM api_requests AS q "
            "WHERE status = 'QUEUED' OR (status = 'PROCESSING' AND coalesce(lease_until, 0) < ?) ORDER BY "
            "(SELECT MAX(p.claimed_at) FROM api_requests AS p WHERE p.tenant = q.tenant), created_at LIMIT 1) "
            "RETURNING id, tenant, body, attempts, releases",
            (self.owner, now + self.lease_s, now, now, now),
        )
        return await read_claim(rows[0]) if rows else None

    async def renew(self, claim: ClaimedRequest, now: float) -> bool:
        rows = await self._db.run(
            f"UPDATE api_requests SET lease_until = ? WHERE {_THIS_CLAIM} RETURNING id",  # noqa: S608
            (now + self.lease_s, claim.id, self.owner, claim.attempts),
        )
        return bool(rows)

    async def release(self, claim: ClaimedRequest, now: float) -> None:
        await self._db.run(
            "UPDATE api_requests SET owner = NULL, lease_until = 0, releases = releases + 1, "  # noqa: S608
            f"updated_at = ? WHERE {_THIS_CLAIM}",
            (now, claim.id, self.owner, claim.attempts),
        )

    async def finish(
        self,
        claim: ClaimedRequest,
        status: Status,
        now: float,
        *,
        error: str | None = None,
        files: list[str] | None = None,
        media_type: str | None = None,
        description: str = "",
    ) -> bool:
        rows = await self._db.run(
            "UPDATE api_requests SET status = ?, error = ?, files = ?, media_type = ?, description = ?, "  # noqa: S608
            "outputs_from = attempts, "
            f"lease_until = NULL, updated_at = ?, completed_at = ? WHERE {_THIS_CLAIM} RETURNING id",
            (
                status.value,
                error,
                json.dumps(files or []),
                media_type,
                description,
                now,
                now,
                claim.id,
                self.owner,
                claim.attempts,
            ),
        )
        return bool(rows)

    async def finished_before(self, cutoff: float) -> list[str]:
        rows = await self._db.run(
            "SELECT id FROM api_requests WHERE completed_at IS NOT NULL AND completed_at < ?", (cutoff,)
        )
        return [row["id"] for row in rows]

    async def delete(self, request_id: str) -> None:
        await self._db.run("DELETE FROM api_requests WHERE id = ?", (request_id,))
