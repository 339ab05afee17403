"""The progress message's Cancel (requester only) and Show crop map buttons."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bot.engine import ResizeRequest, Size, resize
from bot.slack.messages import CANCEL_ACTION, CROP_INSTEAD_ACTION, CROP_MAP_ACTION
from tests.images import astronaut
from tests.slack_api.emulator import BOT_USER, SlackEmulator
from tests.slack_api.harness import eventually, running_app


def _progress_message(slack: SlackEmulator, thread_ts: str) -> dict[str, Any]:
    """The app's progress message in the thread: its post without files."""
    return next(m for m in slack.thread("C1", thread_ts) if m["user"] == BOT_USER and not m.get("files"))


def _job_ids(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as connection:
        return list(connection.execute("SELECT id, state FROM jobs"))


async def test_requester_cancels_and_nothing_is_posted(tmp_path: Path) -> None:
    async with SlackEmulator() as slack:
        slack.add_channel("C1", members=("U1", "U2"))
        message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
        slack.download_delay = 2.0  # the job is busy downloading when the button is pressed
        async with running_app(slack, tmp_path) as app:
            await app.command("300x300")
            await eventually(lambda: len(slack.downloads) == 1)
            [(job_id, state)] = _job_ids(tmp_path / "jobs.db")
            assert state == "anchored"
            progress = [m for m in slack.thread("C1", message["ts"]) if m["user"] == BOT_USER]
            assert progress[0]["blocks"][1]["elements"][0]["action_id"] == CANCEL_ACTION

            await app.block_action(CANCEL_ACTION, job_id, user="U2", thread_ts=message["ts"])
            await eventually(lambda: len(slack.ephemerals_for("U2")) == 1)
            assert "Only <@U1>" in slack.ephemerals_for("U2")[0]

            await app.block_action(CANCEL_ACTION, job_id, user="U1", thread_ts=message["ts"])
            await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
            await app.services.runner.idle()
        # Answered where the button was pressed: in the thread, beside the progress message.
        assert {e["thread_ts"] for e in slack.ephemerals} == {message["ts"]}
        assert _job_ids(tmp_path / "jobs.db") == [(job_id, "cancelled")]
        assert slack.uploads_in_thread("C1", message["ts"]) == []
        assert progress[0]["text"].startswith(":no_entry_sign: Cancelled by <@U1>")
        assert slack.reactions_on("C1", message["ts"]) == set()


async def test_crop_map_is_posted_once_on_request(tmp_path: Path) -> None:
    async with SlackEmulator() as slack:
        slack.add_channel("C1", members=("U1",))
        message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
        async with running_app(slack, tmp_path) as app:
            await app.command("300x300 600x200")
            await app.services.runner.idle()
            [(job_id, _)] = _job_ids(tmp_path / "jobs.db")
            done = _progress_message(slack, message["ts"])
            # 600x200 of a square photo is extended in auto mode: the crop is one click away.
            assert [e["action_id"] for e in done["blocks"][1]["elements"]] == [CROP_MAP_ACTION, CROP_INSTEAD_ACTION]
            await app.block_action(CROP_MAP_ACTION, job_id, user="U1")
            await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 3)
            await app.block_action(CROP_MAP_ACTION, job_id, user="U1", thread_ts=message["ts"])
            await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
        assert [e["thread_ts"] for e in slack.ephemerals] == [message["ts"]]  # "already in this thread", in it
        crop_map = [u for u in slack.uploads_in_thread("C1", message["ts"]) if u["name"] == "crop-map.jpg"]
        assert len(crop_map) == 1
        assert Image.open(io.BytesIO(crop_map[0]["bytes"])).size == (
            480,
            480,
        )  # a small source, enlarged to stay readable
        assert "already in this thread" in slack.ephemerals_for("U1")[0]


async def test_two_clicks_at_once_post_the_crop_map_once(tmp_path: Path) -> None:
    async with SlackEmulator() as slack:
        slack.add_channel("C1", members=("U1", "U2"))
        message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
        async with running_app(slack, tmp_path) as app:
            await app.command("300x300")
            await app.services.runner.idle()
            [(job_id, _)] = _job_ids(tmp_path / "jobs.db")
            slack.answer_delay["files.getUploadURLExternal"] = 0.5  # the first is still uploading when the second lands
            await asyncio.gather(
                app.block_action(CROP_MAP_ACTION, job_id, user="U1"),
                app.block_action(CROP_MAP_ACTION, job_id, user="U2"),
            )
            await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 2)
            await eventually(lambda: len(slack.ephemerals_for("U1") + slack.ephemerals_for("U2")) >= 1)
            await asyncio.sleep(0.5)
        crop_maps = [u for u in slack.uploads_in_thread("C1", message["ts"]) if u["name"] == "crop-map.jpg"]
        assert len(crop_maps) == 1
        assert len(slack.calls_to("files.completeUploadExternal")) == 2  # the results, and one crop map


async def test_crop_instead_makes_the_cropped_images_once_in_the_same_thread(tmp_path: Path) -> None:
    async with SlackEmulator() as slack:
        slack.add_channel("C1", members=("U1", "U2"))
        message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
        async with running_app(slack, tmp_path) as app:
            await app.command("600x200")
            await app.services.runner.idle()
            [(job_id, _)] = _job_ids(tmp_path / "jobs.db")
            [extended] = slack.uploads_in_thread("C1", message["ts"])
            slack.download_delay = 0.5  # the cropping job is still fetching the photo at the second click
            await app.block_action(CROP_INSTEAD_ACTION, job_id, user="U2")  # anyone in the thread may ask
            await app.block_action(CROP_INSTEAD_ACTION, job_id, user="U1")  # a second click: the same job
            await app.services.runner.idle()
            await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
            await app.block_action(CROP_INSTEAD_ACTION, job_id, user="U1")  # once the crops are posted
            await eventually(lambda: len(slack.ephemerals_for("U1")) == 2)
            await app.services.runner.idle()
        uploads = slack.uploads_in_thread("C1", message["ts"])
        assert len(uploads) == 2 and uploads[0]["id"] == extended["id"]
        cropped = np.asarray(Image.open(io.BytesIO(uploads[1]["bytes"])).convert("RGB"), dtype=float)
        request = ResizeRequest(sizes=(Size(600, 200),), mode="crop", output_format="jpeg")
        expected = np.asarray(Image.open(io.BytesIO(resize(astronaut(), request).outputs[0].data)), dtype=float)
        assert np.abs(cropped - expected).mean() < 1  # the engine's crop, not the extension again
        assert "Cropping instead" in slack.ephemerals_for("U2")[0]
        assert "Already on it" in slack.ephemerals_for("U1")[0]
        assert "already in this thread" in slack.ephemerals_for("U1")[1]
        assert len(_job_ids(tmp_path / "jobs.db")) == 2


async def test_no_crop_instead_where_every_size_was_cropped(tmp_path: Path) -> None:
    async with SlackEmulator() as slack:
        slack.add_channel("C1", members=("U1",))
        message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
        async with running_app(slack, tmp_path) as app:
            await app.command("300x300")  # a square of a square photo: nothing to extend
            await app.services.runner.idle()
            done = _progress_message(slack, message["ts"])
        assert [e["action_id"] for e in done["blocks"][1]["elements"]] == [CROP_MAP_ACTION]


async def test_two_clicks_of_show_crop_map_on_two_replicas_post_one_map(
    slack: SlackEmulator, tmp_path: Path, postgres_url: str
) -> None:
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "a.jpg")])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_app(slack, tmp_path / "a", DATABASE_URL=postgres_url) as one,
        running_app(slack, tmp_path / "b", DATABASE_URL=postgres_url) as other,
    ):
        await one.command("300x300")
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1, within=30)
        await one.services.runner.idle()
        await other.services.runner.idle()
        [job] = await one.services.store.recent_for_user("U1")
        await asyncio.gather(
            one.block_action(CROP_MAP_ACTION, job.id, user="U1"),
            other.block_action(CROP_MAP_ACTION, job.id, user="U2"),
        )
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 2)
        await eventually(lambda: len(slack.ephemerals_for("U1") + slack.ephemerals_for("U2")) == 1)
    crop_maps = [u for u in slack.uploads_in_thread("C1", message["ts"]) if u["name"] == "crop-map.jpg"]
    assert len(crop_maps) == 1
    [told] = slack.ephemerals_for("U1") + slack.ephemerals_for("U2")
    assert told == "The crop map is already in this thread."
