"""The PostgreSQL layer under both stores when ``DATABASE_URL=postgresql://...``: one asyncpg pool per process,
and versioned migrations applied at start-up under a lock, so replicas starting together apply each step once.

asyncpg, not psycopg: it is made for asyncio (no thread hop per query), keeps prepared statements per connection,
and has LISTEN/NOTIFY on a connection of its own; it is an optional extra (``.[postgres]``) so the README's SQLite
set-up installs nothing it does not use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

Migration = str  # one step: SQL run in the migrating transaction


class StoreUnavailable(Exception):
    """The database can't be opened: ``str()`` is the sentence for the operator."""


def unavailable(what: str, error: BaseException) -> StoreUnavailable:
    """One sentence for a database out of reach at start-up (its error names the host, never the password)."""
    return StoreUnavailable(f"Can't open {what} on PostgreSQL (DATABASE_URL): {error}.")


# What opening a pool can raise when the server is down, refuses the login, or the URL is wrong.
def open_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (OSError, ValueError, RuntimeError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def open_pool(url: str, *, min_size: int = 0, max_size: int = 10) -> asyncpg.Pool:
    import asyncpg

    # timeout: a database that does not answer ends the start in 10 s with one line, not a minute's wait.
    # min_size 0: no floor of idle connections for asyncpg to restore, which it logs with a traceback each time while
    # PostgreSQL restarts. Released connections are still kept for reuse (up to five idle minutes).
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=30, timeout=10)
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool, component: str, steps: Sequence[Migration]) -> int:
    """Bring ``component``'s tables to ``len(steps)``: every step after the stored version runs, in order, in one
    transaction holding an advisory lock, so a replica starting at the same moment waits and then finds nothing to
    do. Returns the version now stored."""
    async with pool.acquire() as connection, connection.transaction():
        # One lock for every component: they share schema_versions, and two CREATE TABLE IF NOT EXISTS at once (the
        # app and smart-resize serve starting together on one database) can both try to create it.
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext('smart-resize:migrations'))")
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        current = await connection.fetchval("SELECT version FROM schema_versions WHERE component = $1", component)
        current = int(current or 0)
        if current > len(steps):
            raise RuntimeError(
                f"the {component} tables are at version {current}, newer than this release knows ({len(steps)}); "
                "run the newer release, or restore a backup from before it"
            )
        for version in range(current + 1, len(steps) + 1):
            await connection.execute(steps[version - 1])
            log.info("%s tables migrated to version %d", component, version)
        await connection.execute(
            "INSERT INTO schema_versions (component, version) VALUES ($1, $2) "
            "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            component,
            len(steps),
        )
        return len(steps)


class Listener:
    """LISTEN on one channel on a connection of its own; ``on_notify`` runs for every NOTIFY (a wake-up). A
    connection lost (PostgreSQL restarted, a failover) is opened again, with backoff; meanwhile the callers' own
    slow polls still find the work."""

    def __init__(self, url: str, channel: str, on_notify: Callable[[], Any]) -> None:
        self.url = url
        self.channel = channel
        self.on_notify = on_notify
        self._connection: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        import asyncpg

        self._connection = await asyncpg.connect(self.url)
        await self._connection.add_listener(self.channel, lambda *_: self.on_notify())
        self._connection.add_termination_listener(self._lost)

    def _lost(self, _connection: object) -> None:
        if not self._closed and self._reconnecting is None:
            self._reconnecting = asyncio.create_task(self._reconnect(), name=f"listen-{self.channel}")

    async def _reconnect(self) -> None:
        delay = 0.5
        while not self._closed:
            try:
                await self.start()
            except Exception as error:  # any failure to reconnect: try again
                log.warning("LISTEN %s: PostgreSQL out of reach (%s); retrying in %.0f s", self.channel, error, delay)
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
            else:
                log.info("LISTEN %s: connected again", self.channel)
                self.on_notify()  # whatever was notified meanwhile was missed: look now
                break
        self._reconnecting = None

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()
