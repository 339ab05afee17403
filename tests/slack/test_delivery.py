"""Delivery against the Slack emulator: finding our own posts, however busy the thread, and telling a requester
when Slack won't take the message."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from tests.images import astronaut
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.harness import running_app


async def test_a_result_in_a_thread_with_hundreds_of_replies_is_posted_once(tmp_path: Path) -> None:
    async with SlackEmulator() as slack:
        slack.add_channel("C1", members=("U1", "U2"))
        message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "team.jpg")])
        for n in range(260):  # more than one page of conversations.replies
            slack.post_user_message("C1", "U2", f"reply {n}", thread_ts=message["ts"])
        async with running_app(slack, tmp_path) as app:
            await app.command("300x300")
            await app.services.runner.idle()
        uploads = slack.uploads_in_thread("C1", message["ts"])
        pages = [call for name, call in slack.calls if name == "conversations.replies" and call.get("cursor")]
    assert [u["title"] for u in uploads] == ["300x300"]
    assert len(slack.calls_to("files.completeUploadExternal")) == 1  # shared once, seen as shared
    assert pages  # the check read past the first page to find it


async def test_find_own_post_reads_only_from_the_jobs_start(tmp_path: Path) -> None:
    async with SlackEmulator() as slack:
        slack.add_channel("C1", members=("U1",))
        async with running_app(slack, tmp_path) as app:
            delivery = app.services.delivery
            old = await delivery.post("C1", "earlier job · _job 1a2b3c4d_")
            assert await delivery.find_own_post("C1", "job 1a2b3c4d", since=time.time()) == old  # within the skew
            assert await delivery.find_own_post("C1", "job 1a2b3c4d", since=time.time() + 3600) is None
            assert await delivery.find_own_post("C1", "job ffffffff", since=time.time()) is None


async def test_a_dead_response_url_is_logged_not_raised(tmp_path: Path) -> None:
    async with SlackEmulator() as slack:
        slack.add_channel("C1", members=("U1",), bot_member=False)  # postEphemeral fails: not in the channel
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            dead_port = probe.getsockname()[1]  # nothing listens here once the probe closes
        async with running_app(slack, tmp_path) as app:
            await app.services.delivery.ephemeral("C1", "U1", "hello", response_url=f"http://127.0.0.1:{dead_port}/r")
        assert slack.calls_to("chat.postEphemeral")


async def test_an_ephemeral_with_slack_out_of_reach_is_logged_in_one_line_not_raised(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    async with running_app(slack, tmp_path) as app:
        await slack.go_offline()
        await app.services.delivery.ephemeral("C1", "U1", "hello", response_url=slack.response_url())
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.slack.delivery"]
    assert lines[0].startswith("could not tell U1 in the channel: Slack is unreachable (ClientConnectorError")
    assert lines[1:] == ["response_url failed: ClientConnectorError"]
    assert not [r for r in caplog.records if r.exc_info]
