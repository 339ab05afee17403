"""Reactions, channel auto-resize and App Home, end to end through the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.uploads import AUTO_IS_A_COMMAND
from tests.images import astronaut, encode, photo
from tests.slack_api.emulator import BOT_USER, SlackEmulator
from tests.slack_api.harness import eventually, running_app


def _reaction(message: dict, user: str = "U2", name: str = "frame_with_picture") -> dict:  # type: ignore[type-arg]
    return {
        "type": "reaction_added",
        "user": user,
        "reaction": name,
        "item": {"type": "message", "channel": "C1", "ts": message["ts"]},
    }


async def test_reaction_resizes_into_the_thread_and_re_adding_repeats_nothing(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    message = slack.post_user_message("C1", "U1", "our new hire", files=[slack.add_file(astronaut(), "hire.jpg")])
    slack.post_user_message("C1", "U1", "a later message")  # the reacted message is not the newest
    async with running_app(slack, tmp_path, DEFAULT_SIZES="300x300") as app:
        await app.event(_reaction(message))
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
        await app.event({**_reaction(message), "type": "reaction_removed"})
        await app.event(_reaction(message))  # re-added
        await app.event(_reaction(message, name="tada"))  # other reactions are not requests
        await eventually(lambda: len(slack.calls_to("conversations.history")) >= 2)
        await app.services.runner.idle()
    assert [u["title"] for u in slack.uploads_in_thread("C1", message["ts"])] == ["300x300"]
    assert len(slack.calls_to("files.completeUploadExternal")) == 1


async def test_reacting_again_after_a_failure_tries_again(slack: SlackEmulator, tmp_path: Path) -> None:
    message = slack.post_user_message("C1", "U1", "our new hire", files=[slack.add_file(astronaut(), "hire.jpg")])
    slack.fail_next("chat.postMessage", "not_in_channel")  # e.g. the app was removed from the channel
    async with running_app(slack, tmp_path, DEFAULT_SIZES="300x300") as app:
        await app.event(_reaction(message))
        await eventually(lambda: len(slack.ephemerals_for("U2")) == 1)
        await app.services.runner.idle()
        assert "invite me" in slack.ephemerals_for("U2")[0]
        # Invited back, the person removes the reaction and adds it again.
        await app.event({**_reaction(message), "type": "reaction_removed"})
        await app.event(_reaction(message))
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
        jobs = await app.services.store.recent_for_user("U2")
    assert sorted(job.state for job in jobs) == ["done", "failed"]


async def test_a_mention_in_an_auto_resize_channel_gets_the_sizes_it_asks_for(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    async with running_app(slack, tmp_path) as app:
        await app.command("auto on 400x400", response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 1)
        message = slack.post_user_message(
            "C1", "U1", f"<@{BOT_USER}> 200x100", files=[slack.add_file(astronaut(), "launch.jpg")]
        )
        # Slack sends both; here the channel's upload event first, its job stored (it is, before the ack) before the
        # mention arrives.
        await app.event({**message, "channel": "C1", "channel_type": "channel"})
        await app.event({**message, "type": "app_mention", "channel": "C1"})
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
    assert [u["title"] for u in slack.uploads_in_thread("C1", message["ts"])] == ["200x100"]


async def test_a_mention_naming_no_sizes_in_an_auto_resize_channel_gets_the_channels_sizes_once(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    async with running_app(slack, tmp_path, DEFAULT_SIZES="300x300") as app:
        await app.command("auto on 400x400", response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 1)
        message = slack.post_user_message(
            "C1", "U1", f"<@{BOT_USER}> as a PNG please", files=[slack.add_file(astronaut(), "launch.jpg")]
        )
        await app.event({**message, "channel": "C1", "channel_type": "channel"})
        await app.event({**message, "type": "app_mention", "channel": "C1"})
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
    [upload] = slack.uploads_in_thread("C1", message["ts"])
    assert upload["title"] == "400x400"  # the channel's size, not the app's default
    assert upload["bytes"].startswith(b"\x89PNG")  # and what the mention did ask for stands


async def test_a_bare_mention_asking_for_variants_fits_them_to_the_channels_sizes(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    eight = " ".join(f"{100 + i}x100" for i in range(8))
    async with running_app(slack, tmp_path) as app:
        await app.command(f"auto on {eight}", response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 1)
        message = slack.post_user_message(
            "C1", "U1", f"<@{BOT_USER}> --variants 4", files=[slack.add_file(astronaut(), "launch.jpg")]
        )
        await app.event({**message, "type": "app_mention", "channel": "C1"})
        await app.services.runner.idle()
        [job] = await app.services.store.recent_for_user("U1")
    # 8 sizes x 4 variants is over the 20-image cap: 2 of each, and the requester told so (not a job that fails).
    assert (len(job.spec.sizes), job.spec.variants) == (8, 2)
    assert job.state == "done"
    assert [e["text"] for e in slack.ephemerals if e["user"] == "U1"] == [
        "That would make 32 images (8 sizes x 4 variants); the limit is 20 per request, so ask for fewer sizes or "
        "variants. I made 2 variants per size."
    ]


@pytest.mark.parametrize(
    ("channel_sizes", "made", "told"),
    [
        # 2 sizes x 6 variants fits the 20-image cap: made as asked, with nothing to say, though the app's 4
        # default sizes x 6 would not have fitted.
        ("200x200 300x300", (2, 6), []),
        # No auto-resize here: the 4 default sizes, and as many variants of each as fit.
        (
            None,
            (4, 5),
            [
                "That would make 24 images (4 sizes x 6 variants); the limit is 20 per request, so ask for "
                "fewer sizes or variants. I made 5 variants per size."
            ],
        ),
    ],
    ids=["auto-resize-channel", "plain-channel"],
)
async def test_a_bare_mention_asking_for_variants_makes_them_for_the_sizes_it_gets(
    slack: SlackEmulator, tmp_path: Path, channel_sizes: str | None, made: tuple[int, int], told: list[str]
) -> None:
    async with running_app(slack, tmp_path, DEFAULT_SIZES="100x100 120x120 140x140 160x160") as app:
        if channel_sizes is not None:
            await app.command(f"auto on {channel_sizes}", response_url=slack.response_url())
            await eventually(lambda: len(slack.responses) == 1)
        message = slack.post_user_message(
            "C1", "U1", f"<@{BOT_USER}> --variants 6", files=[slack.add_file(encode(photo(320, 240), "JPEG"), "a.jpg")]
        )
        await app.event({**message, "type": "app_mention", "channel": "C1"})
        await app.services.runner.idle()
        [job] = await app.services.store.recent_for_user("U1")
    assert (len(job.spec.sizes), job.spec.variants) == made
    assert job.state == "done"
    assert [e["text"] for e in slack.ephemerals if e["user"] == "U1"] == told


async def test_a_mention_asking_to_turn_auto_resize_on_is_pointed_to_the_command(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    async with running_app(slack, tmp_path) as app:
        message = slack.post_user_message(
            "C1", "U1", f"<@{BOT_USER}> auto on 300x300", files=[slack.add_file(astronaut(), "a.jpg")]
        )
        await app.event({**message, "type": "app_mention", "channel": "C1"})
        await eventually(lambda: bool(slack.ephemerals_for("U1")))
        await app.services.runner.idle()
        assert await app.services.store.recent_for_user("U1") == []
        assert await app.services.store.auto_sizes("C1") is None
    assert slack.ephemerals_for("U1") == [AUTO_IS_A_COMMAND]


async def test_auto_sizes_stored_under_higher_caps_are_fitted_to_todays(slack: SlackEmulator, tmp_path: Path) -> None:
    async with running_app(slack, tmp_path, MAX_OUTPUT_MEGAPIXELS="20") as app:
        # Saved when the cap was higher: 16 MP and 9 MP, 25 MP an upload.
        await app.services.store.set_auto_sizes("C1", ["4000x4000", "3000x3000"], "U1")
        shared = slack.post_user_message("C1", "U1", "launch", files=[slack.add_file(astronaut(), "launch.jpg")])
        await app.event({**shared, "channel": "C1", "channel_type": "channel"})
        await eventually(lambda: len(slack.uploads_in_thread("C1", shared["ts"])) == 1)
        await app.services.runner.idle()
        assert [u["title"] for u in slack.uploads_in_thread("C1", shared["ts"])] == ["4000x4000"]
        await app.services.store.set_auto_sizes("C1", ["8000x8000"], "U1")  # not one image of which fits
        other = slack.post_user_message("C1", "U2", "again", files=[slack.add_file(astronaut(), "again.jpg")])
        await app.event({**other, "channel": "C1", "channel_type": "channel"})
        await eventually(lambda: len(slack.ephemerals_for("U2")) == 1)
        assert await app.services.store.recent_for_user("U2") == []
    assert slack.ephemerals_for("U2") == [
        "That would make 64 megapixels of images in all; the limit is 20 per request, so ask for fewer or smaller "
        "sizes. This channel's auto-resize sizes are over it: a member can set smaller ones with "
        "`/resize auto on SIZES`."
    ]


async def test_a_reaction_on_an_auto_resized_image_repeats_nothing_unless_the_sizes_changed(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    async with running_app(slack, tmp_path) as app:
        await app.command("auto on 400x400", response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 1)
        message = slack.post_user_message("C1", "U1", "launch", files=[slack.add_file(astronaut(), "launch.jpg")])
        await app.event({**message, "channel": "C1", "channel_type": "channel"})
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
        answers = app.intake_answers()
        await app.event(_reaction(message))  # a teammate asks for the channel's sizes, which are in the thread
        await eventually(lambda: len(answers) == 1)
        await app.services.runner.idle()
        assert answers == [False]
        await app.command("auto on 300x300", response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 2)
        await app.event({**_reaction(message), "type": "reaction_removed"})
        await app.event(_reaction(message))  # the channel's new sizes: a new request
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 2)
        await app.services.runner.idle()
    assert answers == [False, True]
    assert [u["title"] for u in slack.uploads_in_thread("C1", message["ts"])] == ["400x400", "300x300"]


async def test_reaction_on_a_message_without_images_says_so(slack: SlackEmulator, tmp_path: Path) -> None:
    message = slack.post_user_message("C1", "U1", "just words")
    async with running_app(slack, tmp_path) as app:
        await app.event(_reaction(message))
        await eventually(lambda: len(slack.ephemerals_for("U2")) == 1)
    assert "no image to resize" in slack.ephemerals_for("U2")[0]


async def test_channel_auto_resize_on_show_off(slack: SlackEmulator, tmp_path: Path) -> None:
    async with running_app(slack, tmp_path) as app:
        await app.command("auto on 400x400 og-image", response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 1)
        assert "every image shared in this channel will come back as 400x400, 1200x630" in slack.responses[0]["text"]

        message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "launch.jpg")])
        await app.event({**message, "channel": "C1", "channel_type": "channel"})
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 2)
        # The same upload seen again as a mention of the same sizes is the same job.
        answers = app.intake_answers()
        await app.event({**message, "type": "app_mention", "channel": "C1", "text": f"<@{BOT_USER}> 400x400 og-image"})
        await eventually(lambda: len(answers) == 1)
        assert answers == [False]

        await app.command("auto", response_url=slack.response_url())
        await app.command("auto off", response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 3)
        later = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "later.jpg")])
        await app.event({**later, "channel": "C1", "channel_type": "channel"})
        await app.services.runner.idle()
    assert "Auto-resize is on here" in slack.responses[1]["text"]
    assert "now off" in slack.responses[2]["text"]
    assert sorted(u["title"] for u in slack.uploads_in_thread("C1", message["ts"])) == ["1200x630", "400x400"]
    assert slack.uploads_in_thread("C1", later["ts"]) == []
    assert len(slack.calls_to("files.completeUploadExternal")) == 1


async def test_only_channel_members_change_auto_resize(slack: SlackEmulator, tmp_path: Path) -> None:
    async with running_app(slack, tmp_path) as app:
        await app.command("auto on", user="U9", response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 1)
        assert await app.services.store.auto_sizes("C1") is None
    assert "Only members of this channel" in slack.responses[0]["text"]


async def test_app_home_lists_recent_jobs_and_how_to(slack: SlackEmulator, tmp_path: Path) -> None:
    slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "home.jpg")])
    async with running_app(slack, tmp_path) as app:
        await app.command("300x300")
        await app.services.runner.idle()
        await app.event({"type": "app_home_opened", "user": "U1", "tab": "home", "channel": "D1"})
        await eventually(lambda: "U1" in slack.home_views)
    text = str(slack.home_views["U1"])
    assert ":white_check_mark: done · 300x300 · <#C1>" in text
    assert "/resize auto on" in text
    assert "instagram-story" in text


@pytest.mark.parametrize("channel", ["C2", "G2"])
async def test_auto_resize_is_not_turned_on_where_the_bot_cannot_see_the_uploads(
    slack: SlackEmulator, tmp_path: Path, channel: str
) -> None:
    # A public channel (C2) lists its members to the bot from outside; a private one (G2) is hidden from it. Either
    # way the bot gets no upload events there, so "on" would be a promise nothing keeps.
    slack.add_channel(channel, members=("U1",), bot_member=False)
    async with running_app(slack, tmp_path) as app:
        await app.command("auto on", channel=channel, response_url=slack.response_url())
        await eventually(lambda: len(slack.responses) == 1)
        assert await app.services.store.auto_sizes(channel) is None
    [answer] = slack.ephemerals_for("U1")
    assert answer == "I'm not in this channel yet: invite me with `/invite @Smart Resize`, then try again."


async def test_a_reaction_in_a_thread_is_answered_in_that_thread(slack: SlackEmulator, tmp_path: Path) -> None:
    parent = slack.post_user_message("C1", "U1", "the launch")
    words = slack.post_user_message("C1", "U1", "no picture here", thread_ts=parent["ts"])
    mixed = slack.post_user_message(
        "C1",
        "U1",
        "photo and brief",
        files=[slack.add_file(astronaut(), "hire.jpg"), slack.add_file(b"%PDF-1.7", "brief.pdf", "application/pdf")],
        thread_ts=parent["ts"],
    )
    another = slack.post_user_message(
        "C1", "U1", "and another", files=[slack.add_file(astronaut(), "two.jpg")], thread_ts=parent["ts"]
    )
    async with running_app(slack, tmp_path, DEFAULT_SIZES="300x300", JOBS_PER_USER_PER_HOUR="1") as app:
        await app.event(_reaction(words))
        await eventually(lambda: len(slack.ephemerals) == 1)
        await app.event(_reaction(mixed))
        await eventually(lambda: len(slack.ephemerals) == 2)
        await app.event(_reaction(another))  # over the hourly limit: refused
        await eventually(lambda: len(slack.ephemerals) == 3)
        await app.services.runner.idle()
    assert [(e["text"].split(";")[0], e["thread_ts"]) for e in slack.ephemerals] == [
        ("That message has no image to resize", parent["ts"]),
        ("I left out brief.pdf, which isn't an image (application/pdf)", parent["ts"]),
        ("You've started 1 resize jobs in the last hour, the most allowed", parent["ts"]),
    ]
    assert [u["title"] for u in slack.uploads_in_thread("C1", parent["ts"])] == ["300x300"]


async def test_a_reaction_on_the_apps_own_results_points_to_the_original(slack: SlackEmulator, tmp_path: Path) -> None:
    message = slack.post_user_message("C1", "U1", "our new hire", files=[slack.add_file(astronaut(), "hire.jpg")])
    async with running_app(slack, tmp_path, DEFAULT_SIZES="300x300") as app:
        await app.event(_reaction(message))
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
        [result] = slack.uploads_in_thread("C1", message["ts"])
        # Someone in the thread reacts to the results rather than to the photo: a 300x300 made again from a 300x300.
        await app.event(_reaction(result["message"]))
        await eventually(lambda: len(slack.ephemerals_for("U2")) == 1)
        await app.services.runner.idle()
        jobs = await app.services.store.recent_for_user("U2")
    assert slack.ephemerals == [
        {
            "channel": "C1",
            "user": "U2",
            "text": "That's one of my own posts; add :frame_with_picture: to the original photo to resize it.",
            "thread_ts": message["ts"],
        }
    ]
    assert len(jobs) == 1 and len(slack.uploads_in_thread("C1", message["ts"])) == 1
