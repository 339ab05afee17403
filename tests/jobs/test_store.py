"""The job store on real SQLite files: idempotent inserts and state that survives closing and reopening."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.engine import Size
from bot.jobs.model import Job, JobSource
from bot.jobs.store import JobStore, StaleJob
from bot.spec import ResizeSpec
from bot.sqlite import Database
from tests.factories import insert, make_job


def _job(key: str = "upload:C1:1.0:F1", user: str = "U1") -> Job:
    return make_job(key, user_id=user)


async def test_insert_is_idempotent_on_the_dedup_key(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    first, new = await insert(store, _job())
    again, new_again = await insert(store, _job())
    assert new and not new_again
    assert again.id == first.id
    other, other_new = await insert(store, _job("upload:C1:1.0:F2"))
    assert other_new and other.id != first.id
    store.close()


async def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = JobStore(path)
    job, _ = await insert(store, _job())
    job = await store.update(job, state="anchored", progress_ts="2.0", remote_id="smart-resize_1")
    store.close()

    reopened = JobStore(path)
    stored = await reopened.get(job.id)
    assert stored is not None
    assert (stored.state, stored.progress_ts, stored.remote_id) == ("anchored", "2.0", "smart-resize_1")
    assert stored.source == JobSource.slack_file({"id": "F1"}, None)
    assert stored.spec == job.spec
    assert [j.id for j in await reopened.runnable(now=stored.updated_at + 1)] == [job.id]
    reopened.close()


async def test_finished_and_deferred_jobs_are_not_runnable(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    done, _ = await insert(store, _job("a"))
    await store.update(done, state="done")
    later, _ = await insert(store, _job("b"))
    later = await store.update(later, not_before=later.created_at + 100)
    assert await store.runnable(now=later.created_at + 1) == []
    assert [j.id for j in await store.runnable(now=later.created_at + 101)] == [later.id]
    assert await store.next_wakeup() == later.not_before
    store.close()


async def test_counts_and_recent_jobs_per_user(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    for index in range(3):
        await insert(store, _job(f"k{index}", user="U1"))
    await insert(store, _job("other", user="U2"))
    probe = await store.admit(_job("probe", user="U1"), since=0, limit=3)
    assert (probe.job, probe.recent) == (None, 3)
    assert len(await store.recent_for_user("U1", limit=2)) == 2
    store.close()


async def test_unknown_fields_cannot_be_updated(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job, _ = await insert(store, _job())
    try:
        await store.update(job, dedup_key="x")
    except ValueError as error:
        assert "dedup_key" in str(error)
    else:
        raise AssertionError("dedup_key must not be updatable")
    store.close()


async def test_a_step_taken_on_a_stale_read_cannot_undo_a_cancel(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job, _ = await insert(store, _job())
    runners_view = await store.update(job, state="anchored")  # what the runner read before resizing
    await store.update(runners_view, state="cancelled")  # the requester pressed Cancel meanwhile
    with pytest.raises(StaleJob):
        await store.update(runners_view, state="delivering")
    with pytest.raises(StaleJob):
        await store.update(runners_view, progress_ts="9.0")
    stored = await store.get(job.id)
    assert stored is not None and stored.state == "cancelled" and stored.progress_ts is None
    store.close()


async def test_admit_returns_a_live_repeat_and_retries_a_failed_one(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    first = await store.admit(_job(), since=0, limit=10)
    assert first.new and first.job is not None
    repeat = await store.admit(_job(), since=0, limit=10)
    assert not repeat.new and repeat.job is not None and repeat.job.id == first.job.id

    await store.update(first.job, state="failed", error="boom")
    again = await store.admit(_job(), since=0, limit=10)
    assert again.new and again.job is not None and again.job.id != first.job.id
    old = await store.get(first.job.id)
    assert old is not None and old.state == "failed"  # kept, under a retired key
    assert old.dedup_key != again.job.dedup_key == _job().dedup_key
    store.close()


async def test_admit_refuses_over_the_limit_and_stores_nothing(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    for index in range(2):
        assert (await store.admit(_job(f"k{index}"), since=0, limit=2)).new
    refused = await store.admit(_job("k2"), since=0, limit=2)
    assert (refused.job, refused.new, refused.recent) == (None, False, 2)
    assert sorted(job.dedup_key for job in await store.recent_for_user("U1")) == ["k0", "k1"]
    assert (await store.admit(_job("k2", user="U2"), since=0, limit=2)).new  # the limit is per user
    store.close()


async def test_admit_holds_the_limit_under_a_burst_from_two_connections(tmp_path: Path) -> None:
    # Two stores on one file: two connections, each on its own thread. Count and insert are one transaction
    # (BEGIN IMMEDIATE), so requests from both cannot all read "4 so far" and all get in.
    stores = [JobStore(tmp_path / "jobs.db"), JobStore(tmp_path / "jobs.db")]
    admissions = await asyncio.gather(*(stores[n % 2].admit(_job(f"burst{n}"), since=0, limit=5) for n in range(40)))
    assert sum(a.new for a in admissions) == 5
    assert (await stores[0].admit(_job("probe"), since=0, limit=100)).recent == 5
    for store in stores:
        store.close()


async def test_a_failed_commit_is_rolled_back_and_the_next_transaction_works(tmp_path: Path) -> None:
    schema = """
        PRAGMA foreign_keys = ON;
        CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
    """
    database = Database(tmp_path / "t.db", schema)

    def orphan(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO child VALUES (7)")  # checked only at COMMIT, which then fails

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await database.transaction(orphan)

    def family(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO parent VALUES (7)")
        db.execute("INSERT INTO child VALUES (7)")
        return int(db.execute("SELECT COUNT(*) FROM child").fetchone()[0])

    assert await database.transaction(family) == 1  # the orphan is gone and BEGIN works again
    database.close()


async def test_a_failing_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    database = Database(tmp_path / "t.db", "CREATE TABLE IF NOT EXISTS t (x INTEGER);")

    def insert_then_fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("half way")

    with pytest.raises(RuntimeError, match="half way"):
        await database.transaction(insert_then_fail)
    assert await database.transaction(lambda db: db.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 0
    database.close()


async def test_jobs_stored_by_an_earlier_version_are_read_in_place(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    JobStore(path).close()  # the schema, as every version has it
    with sqlite3.connect(path) as db:  # a row as the previous release wrote it: unversioned spec, sizes as pairs
        db.execute(
            "INSERT INTO jobs (id, dedup_key, trigger, channel_id, user_id, thread_ts, source, spec, state, "
            "created_at, updated_at) VALUES ('old', 'k', 'command', 'C1', 'U1', NULL, ?, ?, 'accepted', 1, 1)",
            ('{"kind": "url", "url": "https://e.com/a.jpg"}', '{"sizes": [[300, 200]], "output_format": "png"}'),
        )
    store = JobStore(path)
    job = await store.get("old")
    store.close()
    assert job is not None and job.source == JobSource.link("https://e.com/a.jpg")
    assert job.spec == ResizeSpec(sizes=(Size(300, 200),), output_format="png")


async def test_an_unreadable_row_fails_alone_and_never_stalls_the_others(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    good, _ = await insert(store, _job("good"))
    bad, _ = await insert(store, _job("bad"))
    store.close()
    with sqlite3.connect(tmp_path / "jobs.db") as db:  # as a newer release, or a hand edit, might leave it
        db.execute("UPDATE jobs SET spec = ? WHERE id = ?", ('{"version": 99, "sizes": []}', bad.id))
    store = JobStore(tmp_path / "jobs.db")
    assert [job.id for job in await store.runnable(now=good.created_at + 1)] == [good.id]
    assert [job.id for job in await store.recent_for_user("U1")] == [good.id]
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        state, error = db.execute("SELECT state, error FROM jobs WHERE id = ?", (bad.id,)).fetchone()
    store.close()
    assert state == "failed" and "could not be read" in error
