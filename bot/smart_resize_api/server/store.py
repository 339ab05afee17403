"""The API server's requests: one row each, in the same SQLite database the app keeps its jobs in.

The table is the queue. A worker claims a QUEUED row (QUEUED -> PROCESSING in one statement, so two workers never
take the same one), and what was accepted before a crash or restart is still there afterwards, however
many requests were waiting. A starting server puts PROCESSING rows back in the queue, so one server runs per
database file (the app beside it is fine: it has its own tables). Outputs live as files beside the database.

A request's body can hold its source image as a data URI (tens of MB): only a claim reads it, and it is encoded
and parsed off the event loop. Status reads take the small columns alone.

Every request belongs to a tenant (one per API key, see ``server.app.tenant_id``): reads name the tenant, so one key
can never see another's requests, and workers claim from the tenants in turn, so one tenant's burst does not make
everyone else wait behind it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.smart_resize_api.contract import SmartResizeRequest, Status
from bot.sqlite import Database, add_missing_column

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
_STATE_COLUMNS = "id, tenant, sync_mode, status, error, files, media_type, created_at, updated_at, completed_at"


def _upgrade(db: sqlite3.Connection) -> None:
    # Requests stored before tenants existed belong to none: no key can read them, and they expire with the TTL.
    add_missing_column(db, "api_requests", "tenant", "TEXT NOT NULL DEFAULT ''")
    add_missing_column(db, "api_requests", "claimed_at", "REAL")
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
    created_at: float
    updated_at: float
    completed_at: float | None


@dataclass(frozen=True)
class ClaimedRequest:
    id: str
    tenant: str
    request: SmartResizeRequest | None  # None: the stored body no longer reads
    attempts: int  # including this one: a request that keeps killing the server is not run forever


class RequestStore:
    def __init__(self, database: Path) -> None:
        self._db = Database(database, _SCHEMA, _upgrade)
        # Beside the database, named after it, so two databases in one folder keep their outputs apart.
        self.media_dir = database.with_name(f"{database.stem}-api-media")

    def close(self) -> None:
        self._db.close()

    async def add(self, request_id: str, tenant: str, request: SmartResizeRequest, now: float) -> None:
        body = await asyncio.to_thread(json.dumps, request.to_json())
        await self._db.run(
            "INSERT INTO api_requests (id, tenant, body, sync_mode, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 'QUEUED', ?, ?)",
            (request_id, tenant, body, int(request.sync_mode), now, now),
        )

    async def get(self, request_id: str, tenant: str | None) -> RequestState | None:
        """The tenant's request; None for an unknown id and for another tenant's alike. ``tenant`` None: whoever's
        it is (for media links, which are capabilities)."""
        rows = await self._db.run(
            f"SELECT {_STATE_COLUMNS} FROM api_requests WHERE id = ? AND tenant = coalesce(?, tenant)",  # noqa: S608
            (request_id, tenant),
        )
        return _state(rows[0]) if rows else None

    async def claim_next(self, now: float) -> ClaimedRequest | None:
        """A QUEUED request, now PROCESSING: the oldest of the tenant whose last claim is the longest ago (one that
        never had one first), so tenants take turns; None when nothing waits. A body that no longer reads (stored by
        an older release under other rules) comes back with ``request`` None, for the caller to end."""
        rows = await self._db.run(
            "UPDATE api_requests SET status = 'PROCESSING', attempts = attempts + 1, updated_at = ?, claimed_at = ? "
            "WHERE id = (SELECT id FROM api_requests AS q WHERE status = 'QUEUED' ORDER BY "
            "(SELECT MAX(p.claimed_at) FROM api_requests AS p WHERE p.tenant = q.tenant), created_at LIMIT 1) "
            "RETURNING id, tenant, body, attempts",
            (now, now),
        )
        if not rows:
            return None
        row = rows[0]
        try:
            request = await asyncio.to_thread(lambda: SmartResizeRequest.from_json(json.loads(row["body"])))
        except (ValueError, TypeError, KeyError, RecursionError):  # ContractError is a ValueError
            request = None
        return ClaimedRequest(row["id"], row["tenant"], request, row["attempts"])

    async def requeue_interrupted(self, now: float) -> Counter[str]:
        """At start: requests a stopped server was processing go back to the queue. Returns how many each tenant
        has queued."""
        await self._db.run(
            "UPDATE api_requests SET status = 'QUEUED', updated_at = ? WHERE status = 'PROCESSING'", (now,)
        )
        rows = await self._db.run(
            "SELECT tenant, COUNT(*) AS n FROM api_requests WHERE status = 'QUEUED' GROUP BY tenant"
        )
        return Counter({row["tenant"]: int(row["n"]) for row in rows})

    async def finish(
        self,
        request_id: str,
        status: Status,
        now: float,
        *,
        error: str | None = None,
        files: list[str] | None = None,
        media_type: str | None = None,
    ) -> None:
        await self._db.run(
            "UPDATE api_requests SET status = ?, error = ?, files = ?, media_type = ?, updated_at = ?, "
            "completed_at = ? WHERE id = ?",
            (status.value, error, json.dumps(files or []), media_type, now, now, request_id),
        )

    async def finished_before(self, cutoff: float) -> list[str]:
        rows = await self._db.run(
            "SELECT id FROM api_requests WHERE completed_at IS NOT NULL AND completed_at < ?", (cutoff,)
        )
        return [row["id"] for row in rows]

    async def delete(self, request_id: str) -> None:
        await self._db.run("DELETE FROM api_requests WHERE id = ?", (request_id,))


def _state(row: Any) -> RequestState:
    return RequestState(
        id=row["id"],
        tenant=row["tenant"],
        sync_mode=bool(row["sync_mode"]),
        status=Status(row["status"]),
        error=row["error"],
        files=json.loads(row["files"]) if row["files"] else [],
        media_type=row["media_type"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )
