"""Status reactions (bot.slack.reactions) on a real store, SQLite and PostgreSQL, against the emulator: what one
message shows while its jobs run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.jobs.model import Job, JobSource, State
from bot.jobs.pg_store import PostgresJobStore
from bot.jobs.store import JobStore, SqliteJobStore
from bot.slack.reactions import StatusReactions
from tests.factories import insert, make_job
from tests.images import astronaut, portrait
from tests.slack_api.emulator import BOT_TOKEN, SlackEmulator
from tests.slack_api.harness import eventually
from tests.tcp_forwarder import forwarded


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[JobStore]:
    if database_url.startswith("sqlite:///"):
        opened: JobStore = SqliteJobStore(Path(database_url.removeprefix("sqlite:///")))
    else:
        opened = await PostgresJobStore.open(database_url)
    yield opened
    await opened.close()


@pytest.fixture
async def reactions(slack: SlackEmulator, store: JobStore) -> AsyncIterator[StatusReactions]:
    worker = StatusReactions(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url), store)
    worker.start()
    yield worker
    await worker.stop()


async def _jobs_of_one_message(slack: SlackEmulator, store: JobStore) -> tuple[str, list[Job]]:
    """Two images shared in one message, a job each, as a mention of it stores them, claimed as the runner does."""
    files = [slack.add_file(astronaut(), "a.jpg"), slack.add_file(portrait(), "b.jpg")]
    ts = slack.post_user_message("C1", "U1", "", files=files)["ts"]
    jobs = [
        (await insert(store, make_job(f"upload:C1:{ts}:{f['id']}", source=JobSource.slack_file(f, ts), thread_ts=ts)))[
            0
        ]
        for f in files
    ]
    await store.claim(time.time() + 1, 10, lease_s=3600)
    return ts, jobs


@pytest.mark.parametrize(("last", "shown"), [("done", "white_check_mark"), ("failed", "x")])
async def test_a_message_shows_done_only_once_all_its_jobs_are(
    slack: SlackEmulator, store: JobStore, reactions: StatusReactions, last: State, shown: str
) -> None:
    ts, (first, second) = await _jobs_of_one_message(slack, store)

    async def step(job: Job, state: State) -> Job:
        job = await store.update(job, state=state)
        reactions.changed(job)
        await reactions.settled()
        return job

    first, second = await step(first, "anchored"), await step(second, "anchored")
    assert slack.reactions_on("C1", ts) == {"hourglass_flowing_sand"}
    first = await step(first, "done")
    assert slack.reactions_on("C1", ts) == {"hourglass_flowing_sand"}  # the other image is still being made
    await step(second, last)
    assert slack.reactions_on("C1", ts) == {shown}
    # One reaction for the message: put on once, changed once.
    assert [call["name"] for call in slack.calls_to("reactions.add")] == ["hourglass_flowing_sand", shown]
    assert [call["name"] for call in slack.calls_to("reactions.remove")] == ["hourglass_flowing_sand"]


async def test_a_failed_image_shows_once_the_others_have_finished(
    slack: SlackEmulator, store: JobStore, reactions: StatusReactions
) -> None:
    ts, (first, second) = await _jobs_of_one_message(slack, store)
    first, second = await store.update(first, state="failed"), await store.update(second, state="anchored")
    reactions.changed(first)
    reactions.changed(second)
    await reactions.settled()
    assert slack.reactions_on("C1", ts) == {"hourglass_flowing_sand"}
    reactions.changed(await store.update(second, state="done"))
    await reactions.settled()
    assert slack.reactions_on("C1", ts) == {"x"}


async def test_a_reaction_left_behind_at_a_stop_is_put_right_for_the_whole_message(
    slack: SlackEmulator, store: JobStore, reactions: StatusReactions
) -> None:
    ts, jobs = await _jobs_of_one_message(slack, store)
    for job in jobs:  # both finished while nothing was watching (the process stopped first)
        await store.update(job, state="done")
    await reactions.catch_up(since=0)
    await reactions.settled()
    assert slack.reactions_on("C1", ts) == {"white_check_mark"}
    assert len(slack.calls_to("reactions.add")) == 1


async def test_postgresql_restarting_skips_a_reaction_in_one_line_and_the_next_change_puts_it_right(
    slack: SlackEmulator, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with forwarded(postgres_url) as (url, server):
        store = await PostgresJobStore.open(url)
        worker = StatusReactions(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url), store)
        worker.start()
        try:
            ts, (first, second) = await _jobs_of_one_message(slack, store)
            first = await store.update(first, state="anchored")
            await server.cut()
            with pytest.raises(asyncpg.PostgresConnectionError):  # the pool's open connection, found gone
                await store.get(first.id)
            # From now on each new connection is refused: asyncpg raises the socket's own ConnectionRefusedError.
            worker.changed(first)
            await worker.settled()
            assert slack.reactions_on("C1", ts) == set()
            skipped = [r for r in caplog.records if "status reaction" in r.getMessage()]
            assert [r.getMessage() for r in skipped] == [
                f"status reaction for job {first.id[:8]} skipped: the job database is out of reach"
            ]
            assert not [r for r in caplog.records if r.exc_info]
            await server.open()
            worker.changed(await store.update(second, state="anchored"))
            await worker.settled()
            assert slack.reactions_on("C1", ts) == {"hourglass_flowing_sand"}
        finally:
            await worker.stop()
            await store.close()


@pytest.mark.parametrize("outage", ["internal_error", "unreachable"])
async def test_slack_failing_a_reaction_for_a_moment_is_tried_again_without_waiting_for_a_restart(
    slack: SlackEmulator, store: JobStore, outage: str
) -> None:
    worker = StatusReactions(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url), store, retry_s=0.2)
    worker.start()
    try:
        ts, jobs = await _jobs_of_one_message(slack, store)
        for job in jobs:  # the message's last change: no later one would put it right
            await store.update(job, state="done")
        if outage == "unreachable":
            await slack.go_offline()
        else:
            slack.fail_next("reactions.add", "internal_error", status=500)
        worker.changed(jobs[0])
        await worker.settled()
        assert slack.reactions_on("C1", ts) == set()
        if outage == "unreachable":
            await slack.come_back()
        await eventually(lambda: slack.reactions_on("C1", ts) == {"white_check_mark"}, within=5)
        slack.fail_next("reactions.add", "message_not_found")  # Slack's answer for good: not tried again
        other_ts, others = await _jobs_of_one_message(slack, store)
        worker.changed(await store.update(others[0], state="anchored"))
        await worker.settled()
        await asyncio.sleep(0.6)
        assert [c["timestamp"] for c in slack.calls_to("reactions.add")].count(other_ts) == 1
    finally:
        await worker.stop()
