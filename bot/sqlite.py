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
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bot.write_deadline import write_deadline

DEFAULT_DATABASE_URL = "sqlite:///data/smart-resize.db"

log = logging.getLogger(__name__)

T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000


def _journal_mode_wal(db: sqlite3.Connection) -> str:
    """Switch to WAL, waiting as long as the busy timeout while another process opening the same new file does the
    same: SQLite does not wait by itself for a journal-mode switch, it answers "database is locked" at once."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def add_missing_column(db: sqlite3.Connection, table: str, column: str, definition: str) -> None:
    """An in-place upgrade step: ``ALTER TABLE ... ADD COLUMN`` unless the column is already there."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if column not in present:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def add_missing_columns(db: sqlite3.Connection, table: str, **definitions: str) -> None:
    for column, definition in definitions.items():
        add_missing_column(db, table, column, definition)


def run_statements(db: sqlite3.Connection, script: str) -> None:
    """Each statement of ``script`` inside the open transaction (executescript would commit it first)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


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
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # the other process sharing the file may hold it
        mode = _journal_mode_wal(self._db)
        if str(mode).lower() != "wal":  # e.g. a network file system: still correct, but writers block readers
            log.warning("SQLite could not use WAL for %s (journal mode %s); keep it on a local disk", path, mode)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(schema)
        if upgrade is not None:
            upgrade(self._db)

    def migrate(self, component: str, steps: Sequence[Callable[[sqlite3.Connection], None]]) -> int:
        """Bring ``component``'s tables to version ``len(steps)``, each step after the stored version once, all in
        one write transaction: another process starting on the same file waits for it, then finds nothing to do.
        A file from before versions were stored is at version 0, so its steps must tolerate finding their work
        done (CREATE ... IF NOT EXISTS, add_missing_column)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            row = self._db.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
            current = int(row[0]) if row else 0
            if current > len(steps):
                raise RuntimeError(
                    f"{self.path} has {component} tables at version {current}, newer than this release knows "
                    f"({len(steps)}); run the newer release, or restore a backup from before it"
                )
            for step in steps[current:]:
                step(self._db)
            self._db.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, len(steps)),
            )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return len(steps)

    def execute_now(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """A statement at set-up, before the worker thread serves calls."""
        self._db.execute(sql, params)

    async def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        def work() -> list[sqlite3.Row]:
            return self._db.execute(sql, params).fetchall()

        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` as one write transaction in one worker-thread hop: all of it is committed, or none.

        For paths that must be fast and consistent together (intake before Slack's ack): one hop instead of one
        per statement, and no other writer (this process or another) in between. Inside
        bot.write_deadline.writes_begin_within, the wait for another writer is cut to what is left of its time.
        """
        deadline = write_deadline()

        def begin() -> None:
            if deadline is None:
                self._db.execute("BEGIN IMMEDIATE")
                return
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:  # queued behind other calls for all of it
                raise sqlite3.OperationalError("database is locked (no time left to begin the write)")
            self._db.execute(f"PRAGMA busy_timeout={left_ms}")
            try:
                self._db.execute("BEGIN IMMEDIATE")
            finally:
                self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

        def run() -> T:
            begin()
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

        started = self._thread.submit(run)
        try:
            return await asyncio.wrap_future(started)
        except asyncio.CancelledError:
            if deadline is None or started.cancel():  # not begun: nothing is written
                raise
            # Begun before its deadline, or about to find it has none left: what it does stands, so it is waited for
            # (briefly: only the write itself is left) and told, not left to land behind a caller told it did not.
            return await asyncio.wrap_future(started)

    def close(self) -> None:
        self._thread.shutdown(wait=True)  # lets queued calls finish first
        self._db.close()
