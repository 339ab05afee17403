"""The job runner inside the real app, against the Slack emulator: what it does when time or the database misbehave."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Size
from bot.jobs.model import Job, JobSource
from bot.jobs.store import SqliteJobStore
from bot.spec import ResizeSpec
from tests.factories import insert, make_job
from tests.images import astronaut, encode, photo
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.harness import eventually, running_app


def _latest_image_job(dedup_key: str, **fields: Any) -> Job:
    """A /resize job in C1 for U1 on the channel's latest image, as intake stores it."""
    defaults: dict[str, Any] = {"trigger": "command", "source": JobSource.latest(), "thread_ts": None}
    return make_job(dedup_key, **(defaults | {"spec": ResizeSpec(sizes=(Size(300, 300),))} | fields))


async def test_the_runner_outlives_a_failing_database_call(
    slack: SlackEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
    async with running_app(slack, tmp_path) as app:
        store = app.services.store
        real_next_wakeup = store.next_wakeup
        failed: list[bool] = []

        async def locked_once(now: float) -> float | None:
            if not failed:
                failed.append(True)
                raise sqlite3.OperationalError("database is locked")
            return await real_next_wakeup(now)

        monkeypatch.setattr(store, "next_wakeup", locked_once)
        await app.command("300x300")
        await eventually(lambda: len(slack.uploads_in_thread("C1", first["ts"])) == 1)
        assert failed  # the scheduler's bookkeeping failed once, after the first job started
        # A job accepted afterwards still runs: the loop went on.
        second = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "b.jpg")])
        await app.command("200x200")
        await eventually(lambda: len(slack.uploads_in_thread("C1", second["ts"])) == 1)
        await app.services.runner.idle()


async def test_the_latest_image_is_the_latest_when_asked_not_when_run(slack: SlackEmulator, tmp_path: Path) -> None:
    asked_about = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "asked.jpg")])
    # Accepted, then the process stopped before running it (or the runner was busy)...
    store = SqliteJobStore(tmp_path / "jobs.db")
    spec = ResizeSpec(sizes=(Size(300, 300),), output_format="jpeg")
    await insert(store, _latest_image_job("command:latest-1", spec=spec))
    await store.close()
    # ...and meanwhile someone shared another image.
    later = slack.post_user_message(
        "C1", "U1", "", files=[slack.add_file(encode(photo(640, 480), "PNG"), "later.png", "image/png")]
    )
    async with running_app(slack, tmp_path) as app:
        await app.services.runner.idle()
    assert [u["name"] for u in slack.uploads_in_thread("C1", asked_about["ts"])] == ["asked_300x300.jpg"]
    assert slack.uploads_in_thread("C1", later["ts"]) == []


async def test_cancel_is_refused_once_the_images_are_being_posted(slack: SlackEmulator, tmp_path: Path) -> None:
    async with running_app(slack, tmp_path) as app:
        job, _ = await insert(
            app.services.store,
            _latest_image_job(
                "command:posting-1",
                state="delivering",
                not_before=time.time() + 3600,  # held, so the runner does not pick it up during the test
            ),
        )
        answer = await app.services.runner.cancel(job.id, by_user="U1")
        stored = await app.services.store.get(job.id)
    assert answer == "Too late to cancel: the images are being posted to the thread now."
    assert stored is not None and stored.state == "delivering"


async def test_expired_crop_maps_are_deleted(slack: SlackEmulator, tmp_path: Path) -> None:
    maps = tmp_path / "crop-maps"  # beside the database, where the app keeps them
    maps.mkdir()
    expired, recent = maps / "old-job.jpg", maps / "new-job.jpg"
    for path in (expired, recent):
        path.write_bytes(b"\xff\xd8 a crop map")
    eight_days_ago = time.time() - 8 * 24 * 3600
    os.utime(expired, (eight_days_ago, eight_days_ago))
    async with running_app(slack, tmp_path):
        await eventually(lambda: not expired.exists())
    assert recent.exists()


async def test_finished_jobs_are_deleted_after_the_retention_period(slack: SlackEmulator, tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    held = time.time() + 3600  # open, but not due: the runner leaves it alone during the test
    await insert(store, _latest_image_job("command:open", state="anchored", not_before=held))
    for key, state in (("command:done", "done"), ("command:failed", "failed"), ("command:recent", "done")):
        await insert(store, _latest_image_job(key, state=state))
    await store.close()
    forty_days_ago = time.time() - 40 * 24 * 3600
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        db.execute("UPDATE jobs SET updated_at = ? WHERE dedup_key != 'command:recent'", (forty_days_ago,))

    def keys() -> list[str]:
        with sqlite3.connect(tmp_path / "jobs.db") as db:
            return sorted(row[0] for row in db.execute("SELECT dedup_key FROM jobs"))

    async with running_app(slack, tmp_path, JOB_RETENTION_DAYS="30"):
        await eventually(lambda: keys() == ["command:open", "command:recent"])


async def test_stop_is_prompt_when_it_lands_while_the_loop_is_scheduling(
    slack: SlackEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(slack, tmp_path) as app:
        runner, store = app.services.runner, app.services.store
        real_next_wakeup = store.next_wakeup
        scheduling, release = asyncio.Event(), asyncio.Event()

        async def held_next_wakeup(now: float) -> float | None:
            scheduling.set()
            await release.wait()
            return await real_next_wakeup(now)  # nothing queued: the loop would sleep 30 s

        monkeypatch.setattr(store, "next_wakeup", held_next_wakeup)
        runner.wake()
        await asyncio.wait_for(scheduling.wait(), timeout=5)
        stopping = asyncio.create_task(runner.stop())  # SIGTERM arrives mid-query...
        await asyncio.sleep(0.05)
        release.set()  # ...and the query returns after it
        await asyncio.wait_for(stopping, timeout=5)


async def test_a_runner_that_lost_its_lease_leaves_the_job_without_posting(
    slack: SlackEmulator, tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncpg

    caplog.set_level(logging.INFO)
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
    slack.download_delay = 1.0  # the job is mid-download when another replica takes it over
    async with running_app(slack, tmp_path, DATABASE_URL=postgres_url) as app:
        await app.command("300x300")
        await eventually(lambda: bool(slack.downloads))
        connection = await asyncpg.connect(postgres_url)
        try:  # as a replica that found this one's lease run out would have it
            await connection.execute("UPDATE jobs SET lease_owner = 'other:1:x', lease_until = 1e12")
        finally:
            await connection.close()
        await eventually(lambda: "no longer this replica's" in caplog.text, within=20)
        await asyncio.sleep(0.5)
    assert slack.calls_to("files.getUploadURLExternal") == []
    assert slack.uploads_in_thread("C1", message["ts"]) == []


async def test_a_renewal_that_finds_the_job_taken_over_stops_it_mid_step(
    slack: SlackEmulator, tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncpg

    caplog.set_level(logging.INFO)
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
    slack.download_delay = 6.0  # still downloading at the next renewal (every third of the 5 s lease)
    async with running_app(slack, tmp_path, DATABASE_URL=postgres_url, JOB_LEASE_SECONDS="5") as app:
        await app.command("300x300")
        await eventually(lambda: bool(slack.downloads))
        connection = await asyncpg.connect(postgres_url)
        try:
            await connection.execute("UPDATE jobs SET lease_owner = 'other:1:x', lease_until = 1e12")
        finally:
            await connection.close()
        await eventually(lambda: "stopping it here" in caplog.text, within=5)
        await eventually(lambda: not app.services.runner._active, within=5)  # nothing of it left running here
    assert slack.calls_to("files.getUploadURLExternal") == []
    assert slack.uploads_in_thread("C1", message["ts"]) == []
