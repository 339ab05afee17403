"""The SQLite layer under both durable stores: the app's jobs and the API server's requests.

WAL mode with ``synchronous=NORMAL``: a committed change survives the process crashing or being killed (only an OS
crash or power cut can lose the last commits; FULL would put a disk sync in front of every Slack ack). WAL also lets
the app and ``smart-resize serve`` share one file. Each call runs in the database's own worker thread, so the
event loop never waits on the disk. One thread, not asyncio's shared pool: one connection serves one call at a
time anyway, and a pool's threads queueing for it only pass the GIL back and forth with the event loop (the
app's ack p99 under load was lower in alternating runs, though within a noisy machine's spread: bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "sqlite:///data/smart-resize.db"

log = logging.getLogger(__name__)

T = TypeVar("T")


def add_missing_column(db: sqlite3.Connection, table: str, column: str, definition: str) -> None:
    """An in-place upgrade step: ``ALTER TABLE ... ADD COLUMN`` unless the column is already there."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if column not in present:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def is_postgres_url(database_url: str) -> bool:
    return database_url.startswith(("postgresql://", "postgres://"))


def sqlite_path(database_url: str) -> Path:
    """The file a ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` URL names (ValueError otherwise)."""
    if not database_url.startswith("sqlite:///") or database_url == "sqlite:///":
        scheme = urlsplit(database_url).scheme or database_url
        raise ValueError(
            f"DATABASE_URL scheme {scheme!r} is not supported; use sqlite:///path/to/file.db (the default is "
            f"{DEFAULT_DATABASE_URL}) or postgresql://user:password@host/database."
        )
    return Path(database_url.removeprefix("sqlite:///"))


class Database:
    def __init__(self, path: Path, schema: str, upgrade: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """``schema`` creates what is missing; ``upgrade`` then brings a file an earlier release wrote up to date."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # After set-up here, the connection is used only on this thread (so no lock): calls run one at a time.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{path.name}")
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # e.g. a network file system: still correct, but writers block readers
            log.warning("SQLite could not use WAL for %s (journal mode %s); keep it on a local disk", path, mode)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")  # the other process sharing the file may hold the lock
        self._db.executescript(schema)
        if upgrade is not None:
            upgrade(self._db)

    async def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        def work() -> list[sqlite3.Row]:
            return self._db.execute(sql, params).fetchall()

        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` as one write transaction in one worker-thread hop: all of it is committed, or none.

        For paths that must be fast and consistent together (intake before Slack's ack): one hop instead of one
        per statement, and no other writer (this process or another) in between.
        """

        def run() -> T:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT can leave the transaction open (every later BEGIN would fail), and after some
                # errors SQLite has already rolled back: roll back only what is open, and keep the first error.
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
            return result

        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    def close(self) -> None:
        self._thread.shutdown(wait=True)  # lets queued calls finish first
        self._db.close()
