"""``python -m bot`` in Socket Mode, end to end: the real ``serve()`` connects to the emulator's websocket, acks
envelopes over it, and posts results through the Web API, with no signing secret and no public URL."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from bot.__main__ import serve
from bot.config import load_settings
from tests.images import astronaut
from tests.slack_api.emulator import APP_TOKEN, BOT_USER, TEAM, SlackEmulator
from tests.slack_api.harness import PACING, app_env, eventually, free_port, own_api


async def test_socket_mode_acks_over_the_websocket_and_posts_results(slack: SlackEmulator, tmp_path: Path) -> None:
    port = free_port()
    env = app_env(slack, tmp_path, SLACK_APP_TOKEN=APP_TOKEN, PORT=str(port))
    del env["SLACK_SIGNING_SECRET"]  # Socket Mode needs none
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(load_settings(env), stop=stop))
    try:
        await asyncio.wait_for(slack.socket_connected.wait(), 15)
        assert slack.calls_to("apps.connections.open")  # with the app token: the emulator refuses the bot token

        async def healthy() -> bool:
            try:
                async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as r:
                    return bool((await r.json())["mode"] == "socket")
            except aiohttp.ClientConnectionError:
                return False

        await eventually(healthy, within=10)

        shared = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "team.jpg")])
        started = time.monotonic()
        ack = await slack.send_envelope(
            "slash_commands",
            {
                "team_id": TEAM,
                "channel_id": "C1",
                "user_id": "U1",
                "command": "/resize",
                "text": "640x640",
                "response_url": slack.response_url(),
                "trigger_id": uuid.uuid4().hex,
            },
        )
        assert time.monotonic() - started < 3.0
        assert "resizing the latest image in this channel to 640x640" in ack["payload"]["text"]
        await eventually(lambda: len(slack.uploads_in_thread("C1", shared["ts"])) == 1)

        mentioned = slack.post_user_message(
            "C1", "U1", f"<@{BOT_USER}> 300x200", files=[slack.add_file(astronaut(), "b.jpg")]
        )
        ack = await slack.send_envelope(
            "events_api",
            {
                "team_id": TEAM,
                "api_app_id": "AEMU",
                "type": "event_callback",
                "event_id": "EvSocket1",
                "event_time": int(time.time()),
                "event": {**mentioned, "type": "app_mention", "channel": "C1"},
                "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
            },
        )
        assert "payload" not in ack  # events are acked with the envelope id alone
        await eventually(lambda: len(slack.uploads_in_thread("C1", mentioned["ts"])) == 1)
    finally:
        stop.set()
        await asyncio.wait_for(serving, 30)
    assert [u["name"] for u in slack.uploads_in_thread("C1", shared["ts"])] == ["team_640x640.jpg"]
    assert [u["name"] for u in slack.uploads_in_thread("C1", mentioned["ts"])] == ["b_300x200.jpg"]


async def test_in_socket_mode_the_source_links_are_served_on_port(slack: SlackEmulator, tmp_path: Path) -> None:
    # The hosted backend, against our own API server: it can only finish by fetching the link from the app.
    port = free_port()
    async with own_api(tmp_path) as api:
        env = app_env(slack, tmp_path, SLACK_APP_TOKEN=APP_TOKEN, PORT=str(port), **api.hosted_env(port))
        del env["SLACK_SIGNING_SECRET"]
        stop = asyncio.Event()
        serving = asyncio.create_task(serve(load_settings(env), stop=stop, pacing=PACING))
        try:
            await asyncio.wait_for(slack.socket_connected.wait(), 15)
            shared = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "team.jpg")])
            command = {
                "team_id": TEAM,
                "channel_id": "C1",
                "user_id": "U1",
                "command": "/resize",
                "text": "200x200",
                "response_url": slack.response_url(),
                "trigger_id": uuid.uuid4().hex,
            }
            await slack.send_envelope("slash_commands", command)
            await eventually(lambda: len(slack.uploads_in_thread("C1", shared["ts"])) == 1, within=30)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 30)
        [image_url] = api.submitted_image_urls()
    assert image_url.startswith(f"http://127.0.0.1:{port}/sources/")


async def test_a_token_slack_refuses_stops_the_start_with_one_line(
    slack: SlackEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = app_env(slack, tmp_path, SLACK_BOT_TOKEN="xoxb-1-2-revoked", PORT=str(free_port()))
    started = time.monotonic()
    code = await asyncio.wait_for(serve(load_settings(env), stop=asyncio.Event(), pacing=PACING), 10)
    assert code == 2 and time.monotonic() - started < 10
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("Smart Resize can't start: Slack refused SLACK_BOT_TOKEN (invalid_auth).")
    assert "xoxb-1-2-revoked" not in line
