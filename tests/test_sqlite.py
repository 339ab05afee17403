"""The SQLite file every store shares: two processes opening a new one at the same moment, and a write that must
begin in time or not at all."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import sys
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from bot.sqlite import BUSY_TIMEOUT_MS, Database
from bot.write_deadline import writes_begin_within


def _open(path: Path, start: Barrier, said: Queue[str]) -> None:
    start.wait()
    try:
        Database(path, "CREATE TABLE IF NOT EXISTS t (x INTEGER);").close()
        said.put("ok")
    except sqlite3.OperationalError as error:
        said.put(str(error))


@pytest.mark.skipif(sys.platform != "linux", reason="forks: a spawned interpreter per process would take seconds")
def test_two_processes_opening_one_new_file_at_once_both_open_it(tmp_path: Path) -> None:
    # A restart overlapping the old process, or the app beside smart-resize serve on one file. Both switch the new
    # file to WAL at once, which SQLite answers with "database is locked" about one time in twenty.
    fork = multiprocessing.get_context("fork")
    outcomes = []
    for round_ in range(150):
        start, said = fork.Barrier(2), fork.Queue()
        both = [fork.Process(target=_open, args=(tmp_path / f"{round_}.db", start, said)) for _ in range(2)]
        for process in both:
            process.start()
        for process in both:
            process.join(30)
        outcomes += [said.get(timeout=5) for _ in both]
    assert set(outcomes) == {"ok"}, sorted(set(outcomes))


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM t").fetchone()[0])


async def test_a_write_that_cannot_begin_in_time_is_not_made_even_once_the_lock_is_free(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db", "CREATE TABLE t (x INTEGER);")
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.6, other.execute, "ROLLBACK")  # inside the 5 s busy timeout
    started = time.monotonic()
    with writes_begin_within(0.3), pytest.raises(sqlite3.OperationalError, match="locked"):
        await db.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    assert 0.25 < time.monotonic() - started < 0.55
    await asyncio.sleep(0.5)  # the lock is free by now
    assert _rows(tmp_path / "a.db") == 0
    # Outside the block the wait is the usual one, so the next write waits its turn and lands.
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.3, other.execute, "ROLLBACK")
    await db.transaction(lambda c: c.execute("INSERT INTO t VALUES (2)"))
    assert _rows(tmp_path / "a.db") == 1
    assert db._db.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
    other.close()
    db.close()


async def test_a_write_queued_past_its_time_does_not_begin(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db", "CREATE TABLE t (x INTEGER);")
    with writes_begin_within(0.0), pytest.raises(sqlite3.OperationalError, match="no time left"):
        await db.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    assert _rows(tmp_path / "a.db") == 0
    db.close()


async def test_a_write_begun_in_time_is_waited_for_and_reported_though_its_caller_stopped_waiting(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "a.db", "CREATE TABLE t (x INTEGER);")
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.2, other.execute, "ROLLBACK")

    def slow_insert(connection: sqlite3.Connection) -> str:
        connection.execute("INSERT INTO t VALUES (1)")
        time.sleep(0.4)  # a slow commit, or the event loop busy elsewhere: the caller's wait ends meanwhile
        return "stored"

    with writes_begin_within(1.0):
        async with asyncio.timeout(0.3):  # no TimeoutError: the write had begun, so its outcome is the answer
            assert await db.transaction(slow_insert) == "stored"
    assert _rows(tmp_path / "a.db") == 1
    other.close()
    db.close()


async def test_a_write_still_queued_when_its_caller_stops_waiting_is_never_made(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db", "CREATE TABLE t (x INTEGER);")

    def busy(connection: sqlite3.Connection) -> None:
        time.sleep(0.4)  # the database's one thread taken by another call

    first = asyncio.ensure_future(db.transaction(busy))
    await asyncio.sleep(0.05)
    with writes_begin_within(1.0), pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await db.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    await first
    assert _rows(tmp_path / "a.db") == 0
    db.close()
