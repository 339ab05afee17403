"""The job runner inside the real app, against the Slack emulator: what it does when time, the database or Slack
misbehave."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from bot.engine import Size
from bot.jobs.model import Job, JobSource
from bot.jobs.runner import MAX_ATTEMPTS
from bot.jobs.store import SqliteJobStore
from bot.slack import SlackFileAccessDenied
from bot.smart_resize_api.retry import RetryPolicy
from bot.spec import ResizeSpec
from tests.factories import insert, make_job
from tests.images import astronaut, encode, photo
from tests.slack_api import emulator
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.harness import PACING, eventually, running_app
from tests.tcp_forwarder import forwarded


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
                not_before=time.time()
                + 300,  # held (a wait, under LONGEST_WAIT_S): the runner leaves it during the test
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
    held = time.time() + 300  # open, but not due (a wait, under LONGEST_WAIT_S): the runner leaves it alone
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


# Waits on Slack of milliseconds: an outage longer than a job's attempts would have lasted takes a fraction of a second.
QUICK_WAITS = replace(
    PACING, reconnect=RetryPolicy(max_attempts=1_000_000, base_delay=0.01, max_delay=0.05, jitter="decorrelated")
)


@contextlib.asynccontextmanager
async def _slack_out_of_reach(slack: SlackEmulator, _monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    await slack.go_offline()
    try:
        yield
    finally:
        await slack.come_back()


@contextlib.asynccontextmanager
async def _bot_token_refused(_slack: SlackEmulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    with monkeypatch.context() as revoked:  # Slack now wants another token (revoked, or rotated under the app)
        revoked.setattr(emulator, "BOT_TOKEN", "xoxb-test-2-reissued")
        yield


Outage = Callable[[SlackEmulator, pytest.MonkeyPatch], AbstractAsyncContextManager[None]]


def _waits(caplog: pytest.LogCaptureFixture, job: Job) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"job {job.short_id} waits: ")]


@pytest.mark.parametrize(
    ("outage", "state", "said"),
    [
        (_slack_out_of_reach, "accepted", "Slack is unreachable at 127.0.0.1:"),  # the thread's messages
        (_slack_out_of_reach, "anchored", "Slack is unreachable at 127.0.0.1:"),  # the file's download
        (_bot_token_refused, "accepted", "Slack refused SLACK_BOT_TOKEN (invalid_auth)"),
        # The file host answers a refused token with its sign-in page, as it answers a file the bot may not see.
        (_bot_token_refused, "anchored", "Slack refused SLACK_BOT_TOKEN (invalid_auth)"),
    ],
    ids=[
        "unreachable-while-posting",
        "unreachable-while-downloading",
        "token-refused-while-posting",
        "token-refused-while-downloading",
    ],
)
async def test_a_job_waits_for_slack_as_long_as_it_takes_and_is_posted_once(
    slack: SlackEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    outage: Outage,
    state: str,
    said: str,
) -> None:
    caplog.set_level(logging.INFO)
    file = slack.add_file(astronaut(), "team.jpg")
    message = slack.post_user_message("C1", "U1", "", files=[file])
    async with running_app(slack, tmp_path, pacing=QUICK_WAITS) as app:
        store = app.services.store
        # slack_sdk's own retry of a refused connection waits about a second first; on loopback none is needed.
        for handler in app.services.client.retry_handlers:
            monkeypatch.setattr(handler, "interval_calculator", FixedValueRetryIntervalCalculator(0.0))
        async with outage(slack, monkeypatch):
            source = JobSource.slack_file(file, message["ts"])
            job, _ = await insert(store, make_job(source=source, thread_ts=message["ts"], state=state))
            app.services.runner.wake()

            async def outlasted_its_attempts() -> bool:
                stored = await store.get(job.id)
                return stored is None or stored.finished or len(_waits(caplog, job)) > MAX_ATTEMPTS

            await eventually(outlasted_its_attempts, within=60)
            during = await store.get(job.id)
            assert during is not None and during.state == state and during.attempts == 0
        await app.services.runner.idle()
        done = await store.get(job.id)
    assert done is not None and done.state == "done" and done.attempts == 0
    assert [u["title"] for u in slack.uploads_in_thread("C1", message["ts"])] == ["100x100"]
    assert all(said in line and "; retrying in" in line for line in _waits(caplog, job))  # one plain line a wait
    assert not [r for r in caplog.records if r.exc_info] and "Traceback" not in caplog.text


async def test_a_file_the_bot_may_not_read_fails_the_job_in_one_sentence(slack: SlackEmulator, tmp_path: Path) -> None:
    file = slack.add_file(astronaut(), "team.jpg")
    message = slack.post_user_message("C1", "U1", "", files=[file])
    del slack.file_bytes[file["id"]]  # the file host answers with its sign-in page, though the token is good
    async with running_app(slack, tmp_path) as app:
        checks = len(slack.calls_to("auth.test"))  # the start-up check's
        source = JobSource.slack_file(file, message["ts"])
        job, _ = await insert(app.services.store, make_job(source=source, thread_ts=message["ts"], state="anchored"))
        app.services.runner.wake()
        await eventually(lambda: bool(slack.ephemerals_for(job.user_id)))
        await app.services.runner.idle()
        failed = await app.services.store.get(job.id)
    assert failed is not None and failed.state == "failed" and failed.attempts == 0
    assert slack.ephemerals_for(job.user_id) == [str(SlackFileAccessDenied())]
    assert len(slack.calls_to("auth.test")) == checks + 1  # one more: a refused token, or a file kept from the bot?


async def test_a_job_database_locked_mid_step_pauses_the_job_and_it_is_posted_once(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from bot import sqlite as sqlite_module

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_MS", 100)  # another writer outlasts it in a second, not in 5
    file = slack.add_file(astronaut(), "team.jpg")
    message = slack.post_user_message("C1", "U1", "", files=[file])
    slack.download_delay = 0.3
    async with running_app(slack, tmp_path) as app:
        store = app.services.store
        source = JobSource.slack_file(file, message["ts"])
        job, _ = await insert(store, make_job(source=source, thread_ts=message["ts"], state="anchored"))
        app.services.runner.wake()
        await eventually(lambda: bool(slack.downloads))
        # smart-resize serve shares the file (the README allows it) and holds its write lock past the busy timeout.
        other = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        await eventually(lambda: "job database is out of reach" in caplog.text, within=10)
        other.execute("ROLLBACK")
        other.close()
        await eventually(lambda: bool(slack.uploads_in_thread("C1", message["ts"])), within=30)
        await app.services.runner.idle()
        done = await store.get(job.id)
    assert done is not None and done.state == "done" and done.attempts == 0
    assert [u["title"] for u in slack.uploads_in_thread("C1", message["ts"])] == ["100x100"]
    assert not slack.ephemerals_for("U1")  # nothing to tell anyone
    assert not [r for r in caplog.records if r.exc_info] and "Traceback" not in caplog.text


async def test_a_refused_database_connection_mid_step_pauses_the_job_without_spending_an_attempt(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What asyncpg raises for the one call that opens a connection while PostgreSQL restarts (the socket's own
    # error; tests/slack/test_reactions.py meets it through a real cut server). Injected on one call so the database
    # is back by the next: the window in which it was charged as a failed attempt.
    caplog.set_level(logging.INFO)
    file = slack.add_file(astronaut(), "team.jpg")
    message = slack.post_user_message("C1", "U1", "", files=[file])
    async with running_app(slack, tmp_path) as app:
        store = app.services.store
        job, _ = await insert(
            store, make_job(source=JobSource.slack_file(file, message["ts"]), thread_ts=message["ts"], state="anchored")
        )
        real_get = store.get
        refused: list[bool] = []

        async def refused_once_after_the_download(job_id: str) -> Job | None:
            if slack.downloads and not refused:
                refused.append(True)
                raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
            return await real_get(job_id)

        monkeypatch.setattr(store, "get", refused_once_after_the_download)
        app.services.runner.wake()
        await eventually(lambda: bool(slack.uploads_in_thread("C1", message["ts"])), within=30)
        await app.services.runner.idle()
        done = await real_get(job.id)
    assert refused
    assert done is not None and done.state == "done" and done.attempts == 0
    assert len(slack.uploads_in_thread("C1", message["ts"])) == 1
    assert "job database is out of reach (ConnectionRefusedError" in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


async def test_postgresql_going_away_while_a_job_records_its_failure_is_one_line_and_the_job_ends_once(
    slack: SlackEmulator, tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    file = slack.add_file(b"these are meeting notes, not a photo", "notes.jpg")
    message = slack.post_user_message("C1", "U1", "", files=[file])
    slack.download_delay = 1.0
    forwarder = forwarded(postgres_url)
    async with forwarder as (url, server), running_app(slack, tmp_path, DATABASE_URL=url, JOB_LEASE_SECONDS="5") as app:
        store = app.services.store
        source = JobSource.slack_file(file, message["ts"])
        job, _ = await insert(store, make_job(source=source, thread_ts=message["ts"], state="anchored"))
        app.services.runner.wake()
        await eventually(lambda: bool(slack.downloads))
        await server.cut()  # the download ends in "not an image": recording that finds PostgreSQL gone
        await eventually(lambda: "job database is out of reach" in caplog.text, within=10)
        await server.open()
        await eventually(lambda: bool(slack.ephemerals_for("U1")), within=30)
        await app.services.runner.idle()
        failed = await store.get(job.id)
    assert failed is not None and failed.state == "failed"
    assert len(slack.ephemerals_for("U1")) == 1
    assert not [r for r in caplog.records if r.exc_info]
    assert "Traceback" not in caplog.text and "never retrieved" not in caplog.text


async def test_a_cancel_in_the_moment_a_failure_is_being_told_is_what_the_thread_ends_saying(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(b"notes, not a photo", "notes.jpg")])

    def progress() -> str:
        return next(m["text"] for m in slack.thread("C1", message["ts"]) if not m.get("files"))

    def telling_failure(params: dict[str, Any]) -> bool:
        return str(params.get("text", "")).startswith(":x:")

    async with running_app(slack, tmp_path) as app:
        slack.hold["chat.update"] = telling_failure
        await app.command("300x300")
        await eventually(lambda: any(telling_failure(p) for p in slack.calls_to("chat.update")))
        (job,) = await app.services.store.recent_for_user("U1")
        # Cancel pressed on another replica: it stores the job cancelled and says so; this one's task runs on.
        cancelled = await app.services.store.update(job, state="cancelled", fenced=False)
        assert cancelled.progress_ts is not None
        await app.services.client.chat_update(
            channel="C1", ts=cancelled.progress_ts, text=":no_entry_sign: Cancelled by <@U1> · _elsewhere_"
        )
        slack.release()  # the failure's edit lands after the Cancel's
        await app.services.runner.idle()
        stored = await app.services.store.get(job.id)
    assert stored is not None and stored.state == "cancelled"
    assert progress().startswith(":no_entry_sign: Cancelled by <@U1>")
    assert not slack.ephemerals_for("U1")


async def test_a_clock_step_forward_past_a_running_jobs_lease_does_not_stop_it_here(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # NTP stepping the clock, or a VM resumed after a pause: the wall clock is now past the leases this process
    # holds, so its next claim takes its own running job again. That job is still running here.
    caplog.set_level(logging.INFO)
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
    slack.download_delay = 1.0  # mid-download when the clock steps
    async with running_app(slack, tmp_path) as app:
        runner = app.services.runner
        await app.command("300x300")
        await eventually(lambda: bool(slack.downloads))
        runner.clock = lambda: time.time() + 2 * runner.config.lease_s
        runner.wake()
        await eventually(lambda: bool(slack.uploads_in_thread("C1", message["ts"])), within=30)
        await runner.idle()
        (job,) = await app.services.store.recent_for_user("U1")
    assert job.state == "done"
    assert len(slack.downloads) == 1  # not stopped and started over
    assert len(slack.uploads_in_thread("C1", message["ts"])) == 1
    assert "no longer this replica's" not in caplog.text


async def test_a_crop_map_that_cannot_be_kept_leaves_the_images_delivered_at_once(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Where the maps live can't be written (here a file in the folder's place; a full disk says ENOSPC): the map
    # is the Done message's extra, the images are what was asked for.
    (tmp_path / "crop-maps").write_bytes(b"not a folder")
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
    async with running_app(slack, tmp_path) as app:
        await app.command("300x300")
        await eventually(lambda: bool(slack.uploads_in_thread("C1", message["ts"])), within=10)
        await app.services.runner.idle()
        (job,) = await app.services.store.recent_for_user("U1")
    assert job.state == "done" and job.attempts == 0
    assert len(slack.downloads) == 1
    (progress,) = [m for m in slack.thread("C1", message["ts"]) if not m.get("files")]
    assert progress["text"].startswith(":white_check_mark: Done")
    assert len(progress["blocks"]) == 1  # no Show crop map button for a map that isn't there
    assert "could not keep the crop map" in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


def _progress_text(slack: SlackEmulator, thread_ts: str) -> str:
    return str(next(m["text"] for m in slack.thread("C1", thread_ts) if not m.get("files")))


@pytest.mark.parametrize("ending", ["done", "failed"])
async def test_slack_failing_when_a_job_says_how_it_ended_is_waited_out_and_the_thread_says_it(
    slack: SlackEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    # Slack answering 500 (past slack_sdk's own retries) to the one edit that says Done, or why it failed: a crash
    # there is put right by a restart, and so must a Slack that fails for a moment be, not left at "Uploading…".
    caplog.set_level(logging.INFO)
    image = astronaut() if ending == "done" else b"meeting notes, not a photo"
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(image, "a.jpg")])
    if ending == "done":
        slack.hold["files.completeUploadExternal"] = lambda _params: True  # the call before Done's edit
        before_the_edit = lambda: bool(slack.calls_to("files.completeUploadExternal"))  # noqa: E731
    else:
        slack.download_delay = 1.0  # the download before the edit that says why
        before_the_edit = lambda: bool(slack.downloads)  # noqa: E731
    async with running_app(slack, tmp_path, pacing=QUICK_WAITS) as app:
        for handler in app.services.client.retry_handlers:  # slack_sdk's own retries, at once on loopback
            monkeypatch.setattr(handler, "interval_calculator", FixedValueRetryIntervalCalculator(0.0))
        await app.command("300x300")
        await eventually(before_the_edit)
        for _ in range(3):  # the edit and slack_sdk's two retries of a 5xx
            slack.fail_next("chat.update", "internal_error", status=500)
        slack.release()
        await eventually(lambda: "waits: Slack at" in caplog.text, within=20)
        await app.services.runner.idle()
        (job,) = await app.services.store.recent_for_user("U1")
    assert job.state == ending and job.attempts == 0
    said = ":white_check_mark: Done" if ending == "done" else ":x: Couldn't resize"
    assert _progress_text(slack, message["ts"]).startswith(said)
    assert len(slack.uploads_in_thread("C1", message["ts"])) == (1 if ending == "done" else 0)
    assert len(slack.ephemerals_for("U1")) == (0 if ending == "done" else 1)
    assert not [r for r in caplog.records if r.exc_info]


async def test_the_progress_message_counts_what_it_uploads_in_words(slack: SlackEmulator, tmp_path: Path) -> None:
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
    async with running_app(slack, tmp_path) as app:
        await app.command("300x300")
        await eventually(lambda: bool(slack.uploads_in_thread("C1", message["ts"])))
        await app.services.runner.idle()
    uploading = [c["text"] for c in slack.calls_to("chat.update") if c["text"].startswith(":outbox_tray:")]
    assert [text.split(" · ")[0] for text in uploading] == [":outbox_tray: Uploading 1 image…"]


@pytest.mark.parametrize("where", ["here", "on another replica"])
async def test_a_cancel_while_the_progress_message_is_being_posted_leaves_it_saying_cancelled(
    slack: SlackEmulator, tmp_path: Path, where: str
) -> None:
    # Cancelled before the progress message's ts was stored, the Cancel had no message to edit, and the job's
    # "Resizing…" (with its Cancel button) stood in the thread for good. Here the Cancel stops the job's task
    # mid-post; on another replica the task runs on, and finds the job cancelled when it stores the ts.
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])

    def posting_progress(params: dict[str, Any]) -> bool:
        return str(params.get("text", "")).startswith(":hourglass_flowing_sand:")

    async with running_app(slack, tmp_path) as app:
        slack.hold["chat.postMessage"] = posting_progress
        await app.command("300x300")
        await eventually(lambda: any(posting_progress(p) for p in slack.calls_to("chat.postMessage")))
        (job,) = await app.services.store.recent_for_user("U1")
        if where == "here":
            answer = await app.services.runner.cancel(job.id, by_user="U1")
            assert answer == "Cancelled: nothing more will be posted for that request."
        else:
            await app.services.store.update(job, state="cancelled", fenced=False)
        slack.release()
        await app.services.runner.idle()
        stored = await app.services.store.get(job.id)
    assert stored is not None and stored.state == "cancelled"
    [progress] = [m for m in slack.thread("C1", message["ts"]) if m["ts"] != message["ts"]]
    assert progress["text"].startswith(":no_entry_sign: Cancelled by <@U1>"), progress["text"]
    assert not slack.uploads_in_thread("C1", message["ts"])


async def test_a_refusal_told_only_to_the_requester_waits_for_a_slack_that_cannot_take_it(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    # A link refused before it is announced has no message in the thread: the private word is the only word. It
    # was lost when Slack failed at that moment, the job stored failed all the same, and its requester never heard.
    slack.faults["chat.postEphemeral"] = [emulator.Fault("internal_error", status=500) for _ in range(3)]
    async with running_app(slack, tmp_path) as app:
        await app.command("500x500 http://169.254.169.254/latest/meta-data/iam.png")
        await eventually(lambda: bool(slack.ephemerals_for("U1")), within=30)
        await app.services.runner.idle()
        (job,) = await app.services.store.recent_for_user("U1")
    assert job.state == "failed"
    [notice] = slack.ephemerals_for("U1")
    assert "private or internal address" in notice
    assert not slack.faults["chat.postEphemeral"]  # every failure was met, and the job waited through them
