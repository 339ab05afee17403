"""The API server's requests in PostgreSQL (``DATABASE_URL=postgresql://...``): the rules of the SQLite store
(``store``), for several replicas of ``smart-resize serve`` on one database.

A claim takes its row ``FOR UPDATE SKIP LOCKED``: replicas claiming at the same moment each get a different request
and none waits on another's. A submit counts what waits under its tenant's advisory lock, so a burst spread over
replicas still stops at the tenant's share, and it NOTIFYs in the same transaction: idle workers on every replica
look as soon as it commits, not at their next poll. Times are the servers' clocks (as with SQLite), so replicas
need them in step (NTP): a lease is read by the replica that takes it over.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.postgres import Listener, StoreUnavailable, migrate, open_pool
from bot.smart_resize_api.contract import SmartResizeRequest, Status
from bot.smart_resize_api.server.store import (
    STATE_COLUMNS,
    ClaimedRequest,
    QueueLimits,
    Refused,
    RequestState,
    encode_body,
    read_claim,
    read_state,
)

if TYPE_CHECKING:
    import asyncpg

CHANNEL = "smart_resize_api_requests"  # a submit's NOTIFY: a request may be waiting
_MIGRATIONS = [
    """
    CREATE TABLE api_requests (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        body TEXT NOT NULL,
        sync_mode BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        lease_until DOUBLE PRECISION,
        claimed_at DOUBLE PRECISION,
        error TEXT,
        files TEXT,
        media_type TEXT,
        outputs_from INTEGER,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        completed_at DOUBLE PRECISION
    );
    CREATE INDEX api_requests_status ON api_requests (status, created_at);
    CREATE INDEX api_requests_tenant ON api_requests (tenant, status);
    CREATE INDEX api_requests_turns ON api_requests (tenant, claimed_at);
    CREATE INDEX api_requests_completed ON api_requests (completed_at);
    """,
    # What the engine noted about a finished request (the Output block's description).
    "ALTER TABLE api_requests ADD COLUMN description TEXT",
    # Claims handed back by a clean stop, which are not interruptions (store.ClaimedRequest.interruptions).
    "ALTER TABLE api_requests ADD COLUMN releases INTEGER NOT NULL DEFAULT 0",
]
_WAITING = "(status = 'QUEUED' OR (status = 'PROCESSING' AND lease_until < $1))"  # as in store._COUNT_WAITING
_THIS_CLAIM = "id = $2 AND status = 'PROCESSING' AND owner = $3 AND attempts = $4"


class PostgresRequestStore:
    def __init__(self, url: str, *, media_dir: Path, owner: str, lease_s: float = 60.0) -> None:
        self.url = url
        self.media_dir = media_dir
        self.owner = owner
        self.lease_s = lease_s
        self._opened: asyncpg.Pool | None = None
        self._listener: Listener | None = None
        # A tenant's submits here queue for its advisory lock one at a time, so a burst waits in this process and
        # holds one pool connection, not all of them (polls and claims need theirs meanwhile).
        self._submitting: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def _db(self) -> asyncpg.Pool:
        if self._opened is None:
            raise RuntimeError("the request store is not open")
        return self._opened

    async def open(self, wake: Callable[[], None]) -> None:
        import asyncpg

        try:
            self._opened = await open_pool(self.url)
            await migrate(self._opened, "api_requests", _MIGRATIONS)
            self._listener = Listener(self.url, CHANNEL, wake)
            await self._listener.start()
        except (OSError, ValueError, RuntimeError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            await self.close()
            raise StoreUnavailable(f"Can't open the request database on PostgreSQL (DATABASE_URL): {error}.") from None

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        pool, self._opened = self._opened, None
        if listener is not None:
            await listener.close()
        if pool is not None:
            await pool.close()

    async def add(
        self, request_id: str, tenant: str, request: SmartResizeRequest, now: float, limits: QueueLimits
    ) -> Refused | None:
        body = await encode_body(request)
        async with self._submitting[tenant], self._db.acquire() as connection, connection.transaction():
            # Per tenant: its submits take turns here (on whichever replica), so none slips past its share; other
            # tenants' submits go on meanwhile.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext('smart-resize:api-queue:' || $1))", tenant)
            everyone, mine = await connection.fetchrow(
                f"SELECT COUNT(*), COUNT(*) FILTER (WHERE tenant = $2) FROM api_requests WHERE {_WAITING}",  # noqa: S608
                now,
                tenant,
            )
            if everyone >= limits.size:
                return Refused(whole_queue=True, waiting=everyone)
            if mine >= limits.share:
                return Refused(whole_queue=False, waiting=mine)
            await connection.execute(
                "INSERT INTO api_requests (id, tenant, body, sync_mode, status, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, 'QUEUED', $5, $5)",
                request_id,
                tenant,
                body,
                request.sync_mode,
                now,
            )
            await connection.execute("SELECT pg_notify($1, '')", CHANNEL)  # sent when the transaction commits
        return None

    async def get(self, request_id: str, tenant: str | None) -> RequestState | None:
        row = await self._db.fetchrow(
            f"SELECT {STATE_COLUMNS} FROM api_requests WHERE id = $1 AND tenant = coalesce($2, tenant)",  # noqa: S608
            request_id,
            tenant,
        )
        return read_state(row) if row is not None else None

    async def claim_next(self, now: float) -> ClaimedRequest | None:
        row = await self._db.fetchrow(
            "WITH next AS (SELECT id FROM api_requests AS q "  # noqa: S608
            f"WHERE {_WAITING} ORDER BY "
            "(SELECT MAX(p.claimed_at) FROM api_requests AS p WHERE p.tenant = q.tenant) NULLS FIRST, created_at "
            "LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "UPDATE api_requests AS r SET status = 'PROCESSING', attempts = r.attempts + 1, owner = $2, "
            "lease_until = $3, updated_at = $1, claimed_at = $1 FROM next WHERE r.id = next.id "
            "RETURNING r.id, r.tenant, r.body, r.attempts, r.releases",
            now,
            self.owner,
            now + self.lease_s,
        )
        return await read_claim(row) if row is not None else None

    async def renew(self, claim: ClaimedRequest, now: float) -> bool:
        renewed = await self._db.fetchval(
            f"UPDATE api_requests SET lease_until = $1 WHERE {_THIS_CLAIM} RETURNING id",  # noqa: S608
            now + self.lease_s,
            claim.id,
            self.owner,
            claim.attempts,
        )
        return renewed is not None

    async def release(self, claim: ClaimedRequest, now: float) -> None:
        await self._db.execute(
            "WITH released AS (UPDATE api_requests SET owner = NULL, lease_until = 0, releases = releases + 1, "  # noqa: S608
            f"updated_at = $1 WHERE {_THIS_CLAIM} RETURNING id) SELECT pg_notify($5, '') FROM released",
            now,
            claim.id,
            self.owner,
            claim.attempts,
            CHANNEL,
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
        finished = await self._db.fetchval(
            "UPDATE api_requests SET status = $5, error = $6, files = $7, media_type = $8, description = $9, "  # noqa: S608
            "outputs_from = attempts, "
            f"lease_until = NULL, updated_at = $1, completed_at = $1 WHERE {_THIS_CLAIM} RETURNING id",
            now,
            claim.id,
            self.owner,
            claim.attempts,
            status.value,
            error,
            json.dumps(files or []),
            media_type,
            description,
        )
        return finished is not None

    async def finished_before(self, cutoff: float) -> list[str]:
        rows = await self._db.fetch(
            "SELECT id FROM api_requests WHERE completed_at IS NOT NULL AND completed_at < $1", cutoff
        )
        return [row["id"] for row in rows]

    async def delete(self, request_id: str) -> None:
        await self._db.execute("DELETE FROM api_requests WHERE id = $1", request_id)
