"""The job store on real SQLite files: idempotent inserts and state that survives closing and reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.jobs.store import Job, JobStore, StaleJob


def _job(key: str = "upload:C1:1.0:F1", user: str = "U1") -> Job:
    return Job(
        id="",
        dedup_key=key,
        trigger="mention",
        channel_id="C1",
        user_id=user,
        source={"kind": "slack_file", "file": {"id": "F1"}},
        spec={"sizes": [[100, 100]]},
        thread_ts="1.0",
    )


async def test_insert_is_idempotent_on_the_dedup_key(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    first, new = await store.insert(_job())
    again, new_again = await store.insert(_job())
    assert new and not new_again
    assert again.id == first.id
    other, other_new = await store.insert(_job("upload:C1:1.0:F2"))
    assert other_new and other.id != first.id
    store.close()


async def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = JobStore(path)
    job, _ = await store.insert(_job())
    job = await store.update(job, state="anchored", progress_ts="2.0", remote_id="smart-resize_1")
    store.close()

    reopened = JobStore(path)
    stored = await reopened.get(job.id)
    assert stored is not None
    assert (stored.state, stored.progress_ts, stored.remote_id) == ("anchored", "2.0", "smart-resize_1")
    assert stored.source == {"kind": "slack_file", "file": {"id": "F1"}}
    assert [j.id for j in await reopened.runnable(now=stored.updated_at + 1)] == [job.id]
    reopened.close()


async def test_finished_and_deferred_jobs_are_not_runnable(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    done, _ = await store.insert(_job("a"))
    await store.update(done, state="done")
    later, _ = await store.insert(_job("b"))
    later = await store.update(later, not_before=later.created_at + 100)
    assert await store.runnable(now=later.created_at + 1) == []
    assert [j.id for j in await store.runnable(now=later.created_at + 101)] == [later.id]
    assert await store.next_wakeup() == later.not_before
    store.close()


async def test_counts_and_recent_jobs_per_user(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    for index in range(3):
        await store.insert(_job(f"k{index}", user="U1"))
    await store.insert(_job("other", user="U2"))
    assert await store.count_since("U1", 0) == 3
    assert len(await store.recent_for_user("U1", limit=2)) == 2
    store.close()


async def test_unknown_fields_cannot_be_updated(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job, _ = await store.insert(_job())
    try:
        await store.update(job, dedup_key="x")
    except ValueError as error:
        assert "dedup_key" in str(error)
    else:
        raise AssertionError("dedup_key must not be updatable")
    store.close()


async def test_a_step_taken_on_a_stale_read_cannot_undo_a_cancel(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job, _ = await store.insert(_job())
    runners_view = await store.update(job, state="anchored")  # what the runner read before resizing
    await store.update(runners_view, state="cancelled")  # the requester pressed Cancel meanwhile
    with pytest.raises(StaleJob):
        await store.update(runners_view, state="delivering")
    with pytest.raises(StaleJob):
        await store.update(runners_view, progress_ts="9.0")
    stored = await store.get(job.id)
    assert stored is not None and stored.state == "cancelled" and stored.progress_ts is None
    store.close()
