"""The app's link to Slack, through the real ``serve()`` against the emulator's Web API and websocket: token
checks at start-up, Slack out of reach, Socket Mode's disconnect messages, a dropped socket, redelivered
envelopes, and /readyz throughout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.__main__ import serve
from bot.config import load_settings
from bot.jobs.store import SqliteJobStore
from bot.services import Pacing
from bot.smart_resize_api.retry import RetryPolicy
from tests.factories import insert, make_job
from tests.images import astronaut
from tests.slack_api.emulator import APP_TOKEN, BOT_USER, TEAM, Fault, SlackEmulator
from tests.slack_api.harness import PACING, SHARED_ENGINE, app_env, eventually, free_port

# Reconnects in tens of milliseconds, so a test sees several without waiting seconds.
QUICK = Pacing(
    share_poll_s=PACING.share_poll_s,
    hosted_poll_interval=PACING.hosted_poll_interval,
    reconnect=RetryPolicy(max_attempts=1_000_000, base_delay=0.02, max_delay=0.1, jitter="decorrelated"),
    socket_heartbeat_s=1.0,
)


@contextlib.asynccontextmanager
async def serving(
    slack: SlackEmulator, tmp_path: Path, *, pacing: Pacing = QUICK, **extra: str
) -> AsyncIterator[tuple[int, asyncio.Task[int], asyncio.Event]]:
    """``serve()`` in Socket Mode on a free port; stopped (and its exit code checked as 0) on the way out."""
    port = free_port()
    env = app_env(slack, tmp_path, SLACK_APP_TOKEN=APP_TOKEN, PORT=str(port), **extra)
    env.pop("SLACK_SIGNING_SECRET")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(load_settings(env), stop=stop, pacing=pacing, pool=SHARED_ENGINE.pool))
    try:
        yield port, task, stop
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/readyz") as response:
        return response.status, await response.json()


async def ready(port: int) -> bool:
    try:
        status, _ = await readyz(port)
    except aiohttp.ClientConnectionError:
        return False
    return status == 200


def command(text: str, response_url: str) -> dict[str, Any]:
    return {
        "team_id": TEAM,
        "channel_id": "C1",
        "user_id": "U1",
        "command": "/resize",
        "text": text,
        "response_url": response_url,
        "trigger_id": f"trig-{time.monotonic_ns()}",
    }


def mention_event(message: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "team_id": TEAM,
        "api_app_id": "AEMU",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": {**message, "type": "app_mention", "channel": "C1"},
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


@pytest.mark.parametrize("reason", ["warning", "refresh_requested", "link_disabled"])
async def test_after_each_disconnect_message_it_reconnects_and_keeps_serving(
    slack: SlackEmulator, tmp_path: Path, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(slack, tmp_path) as (port, _, _):
        await asyncio.wait_for(slack.socket_connected.wait(), 10)
        await eventually(lambda: ready(port), within=10)
        await slack.disconnect(reason)
        await asyncio.wait_for(slack.socket_connected.wait(), 10)
        await eventually(lambda: slack.socket_opens == 2, within=5)
        ack = await slack.send_envelope("slash_commands", command("help", slack.response_url()))
        assert "/resize" in ack["payload"]["text"]
        await eventually(lambda: ready(port), within=5)
    assert slack.socket_opens == 2  # one reconnect, not a storm
    if reason == "link_disabled":
        assert "turn Socket Mode on" in caplog.text
    assert "Traceback" not in caplog.text


async def test_a_dropped_socket_reconnects_and_a_redelivered_event_makes_one_job(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(slack, tmp_path) as (port, _, _):
        await asyncio.wait_for(slack.socket_connected.wait(), 10)
        slack.drop_socket()
        await eventually(lambda: slack.socket_opens == 2, within=10)
        await asyncio.wait_for(slack.socket_connected.wait(), 10)

        # Slack sends the same event twice: once, and again in a new envelope on the next socket after a drop.
        message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x200", files=[slack.add_file(astronaut())])
        await slack.send_envelope("events_api", mention_event(message, "EvDrop1"))
        slack.drop_socket()
        await asyncio.wait_for(slack.socket_connected.wait(), 10)
        retry = mention_event(message, "EvDrop1")
        await slack.send_envelope("events_api", retry)
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1, within=30)
        await eventually(lambda: ready(port), within=5)
    assert len(slack.uploads_in_thread("C1", message["ts"])) == 1
    assert "Traceback" not in caplog.text


async def test_an_envelope_whose_ack_was_lost_is_acked_again_and_run_once(slack: SlackEmulator, tmp_path: Path) -> None:
    async with serving(slack, tmp_path):
        await asyncio.wait_for(slack.socket_connected.wait(), 10)
        message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 320x240", files=[slack.add_file(astronaut())])
        # The app acks, but Slack "never hears": it sends the same envelope again on a new socket.
        await slack.send_envelope("events_api", mention_event(message, "EvLost1"), envelope_id="env-lost")
        slack.unacked["env-lost"] = {
            "envelope_id": "env-lost",
            "type": "events_api",
            "payload": mention_event(message, "EvLost1"),
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        slack.drop_socket()
        await eventually(lambda: sum(a["envelope_id"] == "env-lost" for a in slack.acks) == 2, within=10)
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1, within=30)
    assert len(slack.uploads_in_thread("C1", message["ts"])) == 1
    assert not slack.unacked


async def test_slack_refusing_the_app_token_stops_the_start_with_one_line(
    slack: SlackEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = app_env(slack, tmp_path, SLACK_APP_TOKEN="xapp-1-A1-2-revoked", PORT=str(free_port()))
    store = SqliteJobStore(tmp_path / "jobs.db")
    waiting, _ = await insert(store, make_job())  # accepted before this start: not touched until both tokens are good
    await store.close()
    started = time.monotonic()
    code = await asyncio.wait_for(serve(load_settings(env), stop=asyncio.Event(), pacing=QUICK), 10)
    assert code == 2 and time.monotonic() - started < 10
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("Smart Resize can't start: Slack refused SLACK_APP_TOKEN (invalid_auth).")
    assert "connections:write" in line and "revoked" not in line
    store = SqliteJobStore(tmp_path / "jobs.db")
    untouched = await store.get(waiting.id)
    await store.close()
    assert untouched is not None and (untouched.state, untouched.attempts) == ("accepted", 0)
    assert [method for method, _ in slack.calls] == ["auth.test", "apps.connections.open"]


@pytest.mark.parametrize("code", ["missing_scope", "not_allowed_token_type"])
async def test_an_app_token_without_connections_write_stops_the_start_with_one_line(
    slack: SlackEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], code: str
) -> None:
    # An app-level token made without the connections:write scope: Slack answers missing_scope, and would forever;
    # it was retried every 30 s instead of the exit 2 the README promises.
    slack.faults["apps.connections.open"] = [Fault(code)] * 50
    env = app_env(slack, tmp_path, SLACK_APP_TOKEN=APP_TOKEN, PORT=str(free_port()))
    code_ = await asyncio.wait_for(serve(load_settings(env), stop=asyncio.Event(), pacing=QUICK), 10)
    assert code_ == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"Smart Resize can't start: Slack refused SLACK_APP_TOKEN ({code}). Create an app-level token (xapp-...) "
        "with the connections:write scope under Basic Information > App-Level Tokens at https://api.slack.com/apps "
        "and put it in .env."
    )
    assert [method for method, _ in slack.calls] == ["auth.test", "apps.connections.open"]


async def test_while_slack_is_unreachable_it_logs_one_line_per_retry_and_is_not_ready(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = free_port()  # nothing listens here
    caplog.set_level(logging.INFO)
    async with serving(slack, tmp_path, SLACK_API_URL=f"http://127.0.0.1:{closed}/api/") as (port, task, _):
        await eventually(lambda: caplog.text.count("retrying in") >= 3, within=10)
        status, body = await readyz(port)
        assert status == 503 and body["ready"] is False
        assert body["problem"].startswith(f"Slack is unreachable at 127.0.0.1:{closed} (ClientConnectorError")
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200  # alive: restarting it would not help
        assert not task.done()
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert all(r.getMessage().startswith(f"Slack is unreachable at 127.0.0.1:{closed}") for r in retries)
    assert all(r.exc_info is None for r in caplog.records)
    assert "Traceback" not in caplog.text


async def test_slack_failing_then_answering_it_connects_and_becomes_ready(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slack.faults["auth.test"] = [Fault("internal_error", status=200)] * 2
    slack.faults["apps.connections.open"] = [Fault("internal_error", status=200)]
    async with serving(slack, tmp_path) as (port, _, _):
        await eventually(lambda: ready(port), within=10)
        status, body = await readyz(port)
        assert status == 200 and body == {
            "ready": True,
            "slack_token_checked": True,
            "socket_connected": True,
            "socket_connects": 1,
        }
    assert caplog.text.count("refused auth.test (internal_error); retrying in") == 2
    assert caplog.text.count("refused apps.connections.open (internal_error); retrying in") == 1


async def test_in_http_mode_readyz_follows_slack(
    slack: SlackEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.slack import connection

    port = free_port()
    stop = asyncio.Event()
    settings = load_settings(app_env(slack, tmp_path, PORT=str(port)))
    task = asyncio.create_task(serve(settings, stop=stop, pacing=QUICK, pool=SHARED_ENGINE.pool))
    try:
        await eventually(lambda: ready(port), within=10)
        slack.faults["auth.test"] = [Fault("service_unavailable", status=200)]
        monkeypatch.setattr(connection, "READY_PROBE_S", 0.0)  # look again on every probe
        status, body = await readyz(port)
        assert status == 503 and "service_unavailable" in body["problem"]
        assert await ready(port)  # Slack answers again: ready again
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0


async def test_in_http_mode_requests_before_slack_is_reached_get_a_sentence_not_a_500(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from urllib.parse import urlencode

    from slack_sdk.signature import SignatureVerifier

    from bot.app import NOT_READY
    from tests.slack_api.harness import SIGNING_SECRET

    port = free_port()
    stop = asyncio.Event()
    unreachable = f"http://127.0.0.1:{free_port()}/api/"
    settings = load_settings(app_env(slack, tmp_path, PORT=str(port), SLACK_API_URL=unreachable))
    task = asyncio.create_task(serve(settings, stop=stop, pacing=QUICK, pool=SHARED_ENGINE.pool))

    async def signed(body: bytes, content_type: str) -> tuple[int, str]:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body),
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as response,
        ):
            return response.status, await response.text()

    try:
        await eventually(lambda: "retrying in" in caplog.text, within=10)
        form = urlencode({**command("help", slack.response_url()), "token": "legacy"})
        status, text = await signed(form.encode(), "application/x-www-form-urlencoded")
        assert status == 200 and NOT_READY in text
        message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x200", files=[slack.add_file(astronaut())])
        event = json.dumps(mention_event(message, "EvEarly1"))
        status, _ = await signed(event.encode(), "application/json")
        assert status == 503  # Slack sends the event again later
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0
    assert "Traceback" not in caplog.text
