"""A request that makes jobs is acked only once its job is stored: with the SQLite file held by another writer, an
event gets a 503 (in Socket Mode no ack) and Slack's redelivery makes exactly one job; a command or form is told in
time to try again. One plain log line each, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.__main__ import serve
from bot.config import load_settings
from handlers.commands import TRY_AGAIN
from handlers.shortcuts import SUBMIT_AGAIN
from tests.images import astronaut
from tests.slack_api.emulator import APP_TOKEN, BOT_USER, TEAM, SlackEmulator
from tests.slack_api.harness import app_env, eventually, form_values, free_port, running_app


@contextlib.contextmanager
def another_writer(db: Path) -> Iterator[None]:
    """Another process's write transaction on the jobs file, held past the app's deadline for storing a job."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def _jobs(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("surface", ["app_mention", "reaction_added", "file_share"])
async def test_an_event_not_stored_is_not_acked_and_its_redelivery_makes_one_job(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, surface: str
) -> None:
    caplog.set_level(logging.INFO)
    text = f"<@{BOT_USER}> 64x64" if surface == "app_mention" else ""
    message = slack.post_user_message("C1", "U1", text, files=[slack.add_file(astronaut(), "a.jpg")])
    async with running_app(slack, tmp_path) as app:
        events = {
            "app_mention": {**message, "type": "app_mention", "channel": "C1"},
            "reaction_added": {
                "type": "reaction_added",
                "user": "U1",
                "reaction": app.services.settings.resize_reaction,
                "item": {"type": "message", "channel": "C1", "ts": message["ts"]},
            },
            "file_share": {**message, "type": "message", "subtype": "file_share", "channel": "C1"},
        }
        await app.services.store.set_auto_sizes("C1", ["64x64"], "U1")  # for the upload; the reaction's sizes too
        with another_writer(tmp_path / "jobs.db"):
            started = time.monotonic()
            status, _ = await app.event(events[surface], event_id="EvLocked")
            assert time.monotonic() - started < 3.0  # inside Slack's 3 s: it is told, not left to time out
        assert status == 503  # Slack sends it again; a 200 here would lose the request for good
        status, _ = await app.event(events[surface], event_id="EvLocked", retry_num=1)  # Slack's redelivery
        assert status == 200
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
    assert _jobs(tmp_path / "jobs.db") == 1
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
    refused = [r.getMessage() for r in caplog.records if "not acknowledged" in r.getMessage()]
    kind = surface.replace("file_share", "message")
    # Locked when the intake's own write waited; past the deadline when a background write held the thread first.
    assert len(refused) == 1 and refused[0] in [
        f"event EvLocked ({kind}) not acknowledged, so Slack sends it again: its job could not be stored ({why})"
        for why in ("OperationalError: database is locked", "not stored within 2 s")
    ], refused
    _no_traceback(caplog)


async def test_a_command_or_form_not_stored_is_told_to_try_again_in_time(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
    async with running_app(slack, tmp_path) as app:
        await app.message_shortcut(message, user="U1")
        await eventually(lambda: len(slack.opened_views) == 1)
        with another_writer(tmp_path / "jobs.db"):
            started = time.monotonic()
            command = await app.command("64x64")
            form = await app.submit_view(slack.opened_views[0], form_values(sizes="64x64"), user="U1")
            assert time.monotonic() - started < 6.0  # each inside Slack's 3 s
    assert command[0] == 200 and json.loads(command[1])["text"] == TRY_AGAIN
    assert form[0] == 200 and json.loads(form[1]) == {"response_action": "errors", "errors": {"presets": SUBMIT_AGAIN}}
    _no_traceback(caplog)


async def test_a_command_told_to_try_again_left_nothing_behind_so_retyped_it_makes_one_job(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
    db = tmp_path / "jobs.db"
    async with running_app(slack, tmp_path) as app:
        # The runner's start-up writes done first, so that the one waiting for the lock is the command's own.
        await eventually(lambda: app.services.runner._pruned_at > 0)
        await app.services.store.get("none")
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        released = asyncio.Event()

        def release() -> None:
            other.execute("ROLLBACK")
            released.set()

        # Let go past the app's deadline but well inside SQLite's own busy timeout (5 s), where a write still
        # waiting for the lock would take it and land after the requester was told to try again.
        asyncio.get_running_loop().call_later(2.6, release)
        status, body = await app.command("64x64")
        assert status == 200 and json.loads(body)["text"] == TRY_AGAIN
        await released.wait()
        await app.services.store.get("none")  # queued behind any write still waiting on the store's thread
        assert _jobs(db) == 0
        await app.command("64x64")  # retyped, as the answer asked
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
        other.close()
    assert _jobs(db) == 1
    assert len(slack.calls_to("files.completeUploadExternal")) == 1


async def test_in_socket_mode_an_event_not_stored_is_not_acked(slack: SlackEmulator, tmp_path: Path) -> None:
    env = app_env(slack, tmp_path, SLACK_APP_TOKEN=APP_TOKEN, PORT=str(free_port()))
    del env["SLACK_SIGNING_SECRET"]  # Socket Mode needs none
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(load_settings(env), stop=stop))
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 64x64", files=[slack.add_file(astronaut(), "a.jpg")])
    payload = {
        "team_id": TEAM,
        "api_app_id": "AEMU",
        "type": "event_callback",
        "event_id": "EvSocketLocked",
        "event_time": int(time.time()),
        "event": {**message, "type": "app_mention", "channel": "C1"},
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }
    try:
        await asyncio.wait_for(slack.socket_connected.wait(), 15)
        with another_writer(tmp_path / "jobs.db"), pytest.raises(TimeoutError):
            await slack.send_envelope("events_api", payload, within=3.0)
        await slack.send_envelope("events_api", payload)  # Slack's redelivery, in an envelope of its own
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
    finally:
        stop.set()
        await asyncio.wait_for(serving, 30)
    assert _jobs(tmp_path / "jobs.db") == 1
