"""kill -9 the real app process mid-job, start it again: the job finishes, and nothing is posted twice."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.images import astronaut
from tests.slack_api.emulator import BOT_USER, SlackEmulator
from tests.slack_api.harness import AppProcess, RunningApp, app_env, eventually


def _states(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT state FROM jobs")]


def _saying(prefix: str) -> Callable[[dict[str, Any]], bool]:
    """A chat.update call whose text starts with ``prefix``."""
    return lambda params: str(params.get("text", "")).startswith(prefix)


_says_done, _says_failed = _saying(":white_check_mark:"), _saying(":x:")


# after_upload_before_done: posted, the app never heard back. while_saying_done: the progress message is being
# changed to Done when the process dies; a restart must still leave it saying Done, not "Uploading…".
@pytest.mark.parametrize("crash_point", ["downloading", "after_upload_before_done", "while_saying_done"])
async def test_kill_9_mid_job_then_restart_delivers_exactly_once(tmp_path: Path, crash_point: str) -> None:
    async with SlackEmulator() as slack, aiohttp.ClientSession() as session:
        slack.add_channel("C1", members=("U1",))
        file = slack.add_file(astronaut(), "crew.jpg")
        message = slack.post_user_message("C1", "U1", "", files=[file])
        env = app_env(slack, tmp_path)
        app = AppProcess(env, tmp_path)
        sender = RunningApp(f"http://127.0.0.1:{app.port}", services=None, session=session)  # type: ignore[arg-type]
        try:
            await app.start()
            if crash_point == "downloading":
                slack.download_delay = 30  # the job is stuck mid-download when the process dies
            elif crash_point == "after_upload_before_done":
                slack.answer_delay["files.completeUploadExternal"] = 30  # posted, but the app never hears back
            else:
                slack.hold["chat.update"] = _says_done
            status, _ = await sender.command("300x300 600x200")
            assert status == 200
            if crash_point == "downloading":
                await eventually(lambda: len(slack.downloads) == 1)
            elif crash_point == "after_upload_before_done":
                await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 2)
            else:
                await eventually(lambda: any(_says_done(params) for params in slack.calls_to("chat.update")))
            app.kill9()
            assert _states(tmp_path / "jobs.db") == ["anchored" if crash_point == "downloading" else "delivering"]

            slack.download_delay = 0
            slack.answer_delay.clear()
            slack.release()
            await app.start()
            await eventually(lambda: _states(tmp_path / "jobs.db") == ["done"], within=60)
        finally:
            await app.stop()

        uploads = slack.uploads_in_thread("C1", message["ts"])
        assert sorted(u["title"] for u in uploads) == ["300x300", "600x200"]
        assert len(slack.calls_to("files.completeUploadExternal")) == 1  # found, not re-posted, after a crash
        bot_posts = [m for m in slack.thread("C1", message["ts"]) if m["user"] == BOT_USER and not m.get("files")]
        assert len(bot_posts) == 1  # one progress message, reused after the restart
        assert bot_posts[0]["text"].startswith(":white_check_mark: Done")
        assert slack.reactions_on("C1", message["ts"]) == {"white_check_mark"}


async def test_kill_9_while_saying_a_job_failed_then_restart_still_says_why(tmp_path: Path) -> None:
    async with SlackEmulator() as slack, aiohttp.ClientSession() as session:
        slack.add_channel("C1", members=("U1",))
        file = slack.add_file(b"meeting notes, not a photo", "notes.jpg")
        message = slack.post_user_message("C1", "U1", "", files=[file])
        app = AppProcess(app_env(slack, tmp_path), tmp_path)
        sender = RunningApp(f"http://127.0.0.1:{app.port}", services=None, session=session)  # type: ignore[arg-type]
        try:
            await app.start()
            slack.hold["chat.update"] = _says_failed  # the thread is being told when the process dies
            status, _ = await sender.command("300x300")
            assert status == 200
            await eventually(lambda: any(_says_failed(params) for params in slack.calls_to("chat.update")))
            app.kill9()
            assert _states(tmp_path / "jobs.db") != ["failed"]  # not stored failed before the thread is told
            slack.release()
            await app.start()
            await eventually(lambda: _states(tmp_path / "jobs.db") == ["failed"], within=60)
            await eventually(lambda: bool(slack.ephemerals_for("U1")))
        finally:
            await app.stop()

        bot_posts = [m for m in slack.thread("C1", message["ts"]) if m["user"] == BOT_USER and not m.get("files")]
        assert len(bot_posts) == 1
        assert bot_posts[0]["text"].startswith(":x: Couldn't resize:")
        assert len(slack.ephemerals_for("U1")) == 1
