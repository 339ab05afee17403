"""Results confirmed by file id (bot.slack.uploads), against the emulator sharing uploads late or never, on a fake
clock so a minute-late share takes no time; and status reactions within Slack's tiers in a burst."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.slack.uploads import NEVER_SHARED, Outgoing, OutgoingFile, Uploader, UploadProgress, UploadRecord
from tests.images import astronaut, encode, photo
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.harness import FakeClock, eventually, running_app


def _share(slack: SlackEmulator, name: str = "team.jpg") -> dict:  # type: ignore[type-arg]
    return slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), name=name)])


@pytest.mark.parametrize("late_s", [0.0, 5.0, 20.0, 60.0])
async def test_a_late_share_is_waited_for_and_posts_one_set(
    slack: SlackEmulator, tmp_path: Path, late_s: float
) -> None:
    clock = FakeClock()
    slack.clock, slack.share_delay = clock, late_s
    message = _share(slack)
    async with running_app(slack, tmp_path, pacing=clock.pacing()) as app:
        await app.command("300x300 200x200")
        await app.services.runner.idle()
        job = (await app.services.store.recent_for_user("U1"))[0]
    assert sorted(u["title"] for u in slack.uploads_in_thread("C1", message["ts"])) == ["200x200", "300x300"]
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
    assert slack.deleted_files == []
    assert job.state == "done" and job.upload is not None and job.upload.complete
    assert not slack.ephemerals_for("U1")


async def test_a_share_that_never_comes_is_deleted_tried_once_more_then_said_in_one_sentence(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    clock = FakeClock()
    slack.clock, slack.share_delay = clock, None
    message = _share(slack)
    async with running_app(slack, tmp_path, pacing=clock.pacing()) as app:
        await app.command("300x300")
        await app.services.runner.idle()
        job = (await app.services.store.recent_for_user("U1"))[0]
    reserved = [call for call in slack.calls_to("files.getUploadURLExternal")]
    assert len(reserved) == 2 and len(slack.calls_to("files.completeUploadExternal")) == 2
    assert len(slack.deleted_files) == 2 and not slack.files.keys() & set(slack.deleted_files)
    assert slack.uploads_in_thread("C1", message["ts"]) == []
    assert slack.ephemerals_for("U1") == [NEVER_SHARED]
    assert job.state == "failed" and job.error == NEVER_SHARED
    # The second try went without alt text, and only after the first was deleted.
    assert reserved[0].get("alt_txt") and not reserved[1].get("alt_txt")


async def test_alt_text_that_stops_sharing_costs_one_deleted_upload_not_two_posts(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    clock = FakeClock()
    slack.clock = clock
    slack.alt_txt_breaks_sharing = True  # python-slack-sdk #1818
    message = _share(slack)
    async with running_app(slack, tmp_path, pacing=clock.pacing()) as app:
        await app.command("300x300")
        await app.services.runner.idle()
    uploads = slack.uploads_in_thread("C1", message["ts"])
    assert [(u["title"], u["alt_txt"]) for u in uploads] == [("300x300", None)]
    assert len(slack.deleted_files) == 1


class Crash(Exception):
    """The process dying at a chosen step: what was saved before it is all a restart has."""


class Run:
    """One run of an upload that may die at a step; ``stored`` is what it had saved, ``made`` whether it needed
    the images (a resumed upload Slack already has must not)."""

    def __init__(self, stored: list[UploadRecord], crash_at: str | None = None) -> None:
        self.stored = stored
        self.crash_at = crash_at
        self.made = False

    async def save(self, record: UploadRecord) -> None:
        self.stored.append(record)
        step = "complete" if record.complete else "reserved" if record.files else "empty"
        if step == self.crash_at:
            raise Crash(step)

    async def make(self) -> Outgoing:
        self.made = True
        return Outgoing((OutgoingFile(encode(photo(64, 48), "JPEG"), "a.jpg", "64x48", "alt"),), "here")

    async def upload(self, uploader: Uploader, thread_ts: str) -> None:
        progress = UploadProgress(self.stored[-1] if self.stored else None, self.save)
        await uploader.upload("C1", thread_ts, self.make, progress)


@pytest.mark.parametrize("crash_at", ["reserved", "complete"])
async def test_a_restart_carries_on_with_the_same_files(slack: SlackEmulator, tmp_path: Path, crash_at: str) -> None:
    clock = FakeClock()
    slack.clock, slack.share_delay = clock, 30.0
    thread_ts = _share(slack)["ts"]
    stored: list[UploadRecord] = []
    first, second = Run(stored, crash_at), Run(stored)
    async with running_app(slack, tmp_path, pacing=clock.pacing()) as app:
        uploader = app.services.delivery.uploader
        with pytest.raises(Crash):
            await first.upload(uploader, thread_ts)
        await second.upload(uploader, thread_ts)
    uploads = slack.uploads_in_thread("C1", thread_ts)
    assert len(uploads) == 1 and uploads[0]["id"] == stored[-1].files[0]
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
    # Reserved only: the bytes never reached Slack, so the restart dropped those ids and uploaded anew. Complete:
    # Slack had it, so the restart only waited for the share.
    assert second.made == (crash_at == "reserved")
    deleted = [call["file"] for call in slack.calls_to("files.delete")]
    assert deleted == (list(stored[0].files) if crash_at == "reserved" else [])


async def test_a_burst_of_50_uploads_in_an_auto_resize_channel_meets_no_429_from_reactions(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    # Slack's minute compressed to two seconds, for the emulator's tiers and the app's pacing alike.
    slack.rate_window_s = 2.0
    clock = FakeClock()
    async with running_app(slack, tmp_path, pacing=clock.pacing(rate_window_s=2.0), DEFAULT_SIZES="64x64") as app:
        await app.command("auto on 64x64", response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 1)
        messages = []
        for n in range(50):
            file = slack.add_file(encode(photo(96, 72, seed=n), "JPEG"), name=f"shot{n}.jpg")
            message = slack.post_user_message("C1", "U1", "", files=[file])
            messages.append(message)
            await app.event({**message, "channel": "C1", "channel_type": "channel"})
        await eventually(lambda: all(slack.uploads_in_thread("C1", m["ts"]) for m in messages), within=60)
        await app.services.runner.idle()
    assert not [method for method in slack.rate_limited if method.startswith("reactions.") or method == "chat.update"]
    assert all(slack.reactions_on("C1", m["ts"]) == {"white_check_mark"} for m in messages)
    assert all(len(slack.uploads_in_thread("C1", m["ts"])) == 1 for m in messages)
    # Only changes are made: never a remove of something that is not there.
    removed = slack.calls_to("reactions.remove")
    assert len(removed) <= 50 and all(call["name"] == "hourglass_flowing_sand" for call in removed)


async def test_a_job_changes_only_what_differs_on_its_source_message(slack: SlackEmulator, tmp_path: Path) -> None:
    message = _share(slack)
    async with running_app(slack, tmp_path) as app:
        await app.command("300x300")
        await app.services.runner.idle()
    added = [call["name"] for call in slack.calls_to("reactions.add")]
    removed = [call["name"] for call in slack.calls_to("reactions.remove")]
    assert added[-1] == "white_check_mark" and len(added) <= 2
    assert removed == (["hourglass_flowing_sand"] if len(added) == 2 else [])
    assert slack.reactions_on("C1", message["ts"]) == {"white_check_mark"}
