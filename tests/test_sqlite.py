"""The SQLite file every store shares: two processes opening a new one at the same moment."""

from __future__ import annotations

import multiprocessing
import sqlite3
import sys
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from bot.sqlite import Database


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
