"""SIGTERM and SIGINT stop ``serve()`` promptly in every phase of Socket Mode: real signals, sent to this process,
caught by the handlers ``serve()`` installs (and removes again on its way out)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from bot.__main__ import serve
from bot.config import load_settings
from bot.services import Pacing
from bot.smart_resize_api.retry import RetryPolicy
from tests.images import astronaut
from tests.slack.test_connection import QUICK, command, mention_event
from tests.slack_api.emulator import APP_TOKEN, BOT_USER, SlackEmulator
from tests.slack_api.harness import SHARED_ENGINE, app_env, eventually, free_port

SIGNALS = [signal.SIGTERM, signal.SIGINT]
# Slack failing for long: the reconnect loop is asleep in a 30 s backoff when the signal comes.
SLOW_RECONNECT = Pacing(
    share_poll_s=QUICK.share_poll_s,
    hosted_poll_interval=QUICK.hosted_poll_interval,
    reconnect=RetryPolicy(max_attempts=1_000_000, base_delay=30.0, max_delay=30.0),
    socket_heartbeat_s=1.0,
)


def start(slack: SlackEmulator, tmp_path: Path, pacing: Pacing = QUICK) -> asyncio.Task[int]:
    env = app_env(slack, tmp_path, SLACK_APP_TOKEN=APP_TOKEN, PORT=str(free_port()))
    env.pop("SLACK_SIGNING_SECRET")
    return asyncio.create_task(serve(load_settings(env), pacing=pacing, pool=SHARED_ENGINE.pool))


async def stopped_within(task: asyncio.Task[int], sig: signal.Signals, seconds: float) -> float:
    sent = time.monotonic()
    os.kill(os.getpid(), sig)
    assert await asyncio.wait_for(task, seconds + 5) == 0
    return time.monotonic() - sent


@pytest.mark.parametrize("sig", SIGNALS)
async def test_while_connecting(slack: SlackEmulator, tmp_path: Path, sig: signal.Signals) -> None:
    slack.answer_delay["apps.connections.open"] = 60.0  # Slack never answers the connect
    task = start(slack, tmp_path)
    await eventually(lambda: bool(slack.calls_to("apps.connections.open")), within=10)
    assert await stopped_within(task, sig, 2.0) < 2.0


@pytest.mark.parametrize("sig", SIGNALS)
async def test_while_connected(slack: SlackEmulator, tmp_path: Path, sig: signal.Signals) -> None:
    task = start(slack, tmp_path)
    await asyncio.wait_for(slack.socket_connected.wait(), 10)
    ack = await slack.send_envelope("slash_commands", command("help", slack.response_url()))
    assert "/resize" in ack["payload"]["text"]
    assert await stopped_within(task, sig, 2.0) < 2.0


@pytest.mark.parametrize("sig", SIGNALS)
async def test_while_reconnecting(
    slack: SlackEmulator, tmp_path: Path, sig: signal.Signals, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    task = start(slack, tmp_path, SLOW_RECONNECT)
    await asyncio.wait_for(slack.socket_connected.wait(), 10)
    await slack.disconnect("refresh_requested")
    # A socket that ended within seconds of opening: the link waits out a 30 s backoff before the next.
    await eventually(lambda: "reconnecting in" in caplog.text, within=10)
    assert await stopped_within(task, sig, 2.0) < 2.0
    assert len(slack.calls_to("apps.connections.open")) == 1


@pytest.mark.parametrize("sig", SIGNALS)
async def test_mid_job_the_job_is_finished_or_resumed_exactly_once(
    slack: SlackEmulator, tmp_path: Path, sig: signal.Signals
) -> None:
    slack.download_delay = 0.5  # the signal lands while the source is being fetched
    task = start(slack, tmp_path)
    await asyncio.wait_for(slack.socket_connected.wait(), 10)
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x200", files=[slack.add_file(astronaut())])
    await slack.send_envelope("events_api", mention_event(message, "EvSignal1"))
    await eventually(lambda: bool(slack.downloads), within=10)
    await stopped_within(task, sig, 20.0)  # running jobs get their grace to finish
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        [(state,)] = db.execute("SELECT state FROM jobs").fetchall()
    if state != "done":  # cut short: the next start resumes it
        slack.download_delay = 0.0
        again = start(slack, tmp_path)
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1, within=30)
        await stopped_within(again, signal.SIGTERM, 2.0)
    assert len(slack.uploads_in_thread("C1", message["ts"])) == 1


async def test_the_handlers_are_removed_after_serving(slack: SlackEmulator, tmp_path: Path) -> None:
    task = start(slack, tmp_path)
    await asyncio.wait_for(slack.socket_connected.wait(), 10)
    await stopped_within(task, signal.SIGTERM, 2.0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
