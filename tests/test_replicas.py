"""Three app replicas (separate ``python -m bot`` processes, HTTP mode) on one PostgreSQL database: Slack's retries
land on different replicas, one replica is killed with kill -9 mid-job, and still every job is delivered exactly
once to its thread and no hosted-API request is paid twice (but for a kill in the instant a submit is out)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.images import encode, photo
from tests.slack_api.emulator import BOT_USER, SlackEmulator
from tests.slack_api.harness import OWN_API_KEY, AppProcess, RunningApp, app_env, eventually, own_api

JOBS = 30


async def holds_a_job(database_url: str, replica: AppProcess) -> bool:
    """Whether the replica holds an open job (a lease owner names its process id)."""
    import asyncpg

    assert replica.process is not None
    connection = await asyncpg.connect(database_url)
    try:
        held = await connection.fetchval(
            "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('done', 'failed', 'cancelled') AND lease_owner LIKE $1",
            f"%:{replica.process.pid}:%",
        )
    finally:
        await connection.close()
    return bool(held)


def mention(slack: SlackEmulator, n: int) -> dict[str, Any]:
    file = slack.add_file(encode(photo(160, 120, seed=n), "JPEG"), name=f"shot{n}.jpg")
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 64x64", files=[file])
    return {**message, "type": "app_mention", "channel": "C1"}


async def test_three_replicas_one_killed_mid_job_deliver_every_job_exactly_once(
    slack: SlackEmulator, tmp_path: Path, postgres_url: str
) -> None:
    async with own_api(tmp_path) as api, aiohttp.ClientSession() as session:
        env = app_env(
            slack,
            tmp_path,
            DATABASE_URL=postgres_url,
            JOB_LEASE_SECONDS="5",  # the dead replica's jobs are taken over within seconds
            JOBS_PER_USER_PER_HOUR="1000",
            SMART_RESIZE_BACKEND="hosted",
            PIXAZO_API_KEY=OWN_API_KEY,
            PIXAZO_BASE_URL=f"http://127.0.0.1:{api.server.port}/smart-resize/v1",
            FETCH_ALLOW_PRIVATE_NETWORKS="127.0.0.1/32",
        )
        replicas = [AppProcess(env, tmp_path, log_name=f"replica{n}.log") for n in range(3)]
        await asyncio.gather(*(replica.start() for replica in replicas))
        senders = [RunningApp(replica.url, services=None, session=session) for replica in replicas]  # type: ignore[arg-type]
        slack.download_delay = 0.3  # each job spends a while fetching its source: the kill lands mid-job
        try:
            events = [mention(slack, n) for n in range(JOBS)]
            for n, event in enumerate(events):
                # Each event to one replica, Slack's retry of it to the next, and for every third the
                # message event of the same upload to the third (the mention/message pair).
                await senders[n % 3].event(event, event_id=f"Ev{n}")
                await senders[(n + 1) % 3].event(event, event_id=f"Ev{n}", retry_num=1)
                if n % 3 == 0:
                    await senders[(n + 2) % 3].event(
                        {**event, "type": "message", "channel_type": "channel"}, event_id=f"EvMsg{n}"
                    )
            victim = replicas[0]
            await eventually(lambda: holds_a_job(postgres_url, victim), within=30)
            victim.kill9()  # mid-job: it holds at least one
            started = time.monotonic()
            await eventually(lambda: all(len(slack.uploads_in_thread("C1", e["ts"])) >= 1 for e in events), within=90)
            taken_over_in = time.monotonic() - started
            await asyncio.sleep(1.0)  # anything that would post twice has had time to
        finally:
            for replica in replicas:
                await replica.stop()
        per_thread = [len(slack.uploads_in_thread("C1", e["ts"])) for e in events]
        assert per_thread == [1] * JOBS, per_thread
        with sqlite3.connect(api.database) as db:
            submitted = [json.loads(body)["target_sizes"] for (body,) in db.execute("SELECT body FROM api_requests")]
        # One paid request per job, the killed replica's included. Only a kill between a submit leaving and its
        # id being stored can cost a second (the API takes no idempotency key); the survivor that resubmits says so.
        resubmitted = sum(r.log.read_text().count("stopped mid-submit") for r in replicas[1:])
        assert JOBS <= len(submitted) <= JOBS + resubmitted, (len(submitted), resubmitted)
        assert taken_over_in < 60
        for replica in replicas[1:]:
            assert "Traceback" not in replica.log.read_text()
