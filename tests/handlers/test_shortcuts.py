"""The message shortcut, the `/resize` modal with a file input, and the modal's field validation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from handlers.common import FORM_TOO_SLOW
from tests.images import astronaut, astronaut_heic
from tests.slack_api.emulator import BOT_USER, SlackEmulator
from tests.slack_api.harness import eventually, form_values, running_app


async def test_shortcut_modal_resizes_into_the_message_thread(slack: SlackEmulator, tmp_path: Path) -> None:
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "shot.jpg")])
    async with running_app(slack, tmp_path) as app:
        await app.message_shortcut(message, user="U1")
        await eventually(lambda: len(slack.opened_views) == 1)
        view = slack.opened_views[0]
        assert [b["block_id"] for b in view["blocks"]] == ["presets", "sizes", "mode", "format", "variants", "prompt"]
        status, body = await app.submit_view(
            view, form_values(presets=["og-image"], sizes="300x300", output_format="webp", variants="2"), user="U1"
        )
        assert (status, body) == (200, "")
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 3)
        await app.submit_view(view, form_values(presets=["og-image"], sizes="300x300"), user="U1")  # double submit
        await app.services.runner.idle()
    uploads = slack.uploads_in_thread("C1", message["ts"])
    # 300x300 of a square photo: auto's one crop that keeps the whole subject; 1200x630: two extensions.
    assert sorted(u["title"] for u in uploads) == ["1200x630", "1200x630 (alternative 2)", "300x300"]
    assert {Image.open(io.BytesIO(u["bytes"])).format for u in uploads} == {"WEBP"}
    assert len(slack.calls_to("files.completeUploadExternal")) == 1


async def test_modal_field_errors_are_shown_on_the_fields(slack: SlackEmulator, tmp_path: Path) -> None:
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "shot.jpg")])
    async with running_app(slack, tmp_path, MAX_OUTPUTS_PER_REQUEST="4", MAX_OUTPUT_MEGAPIXELS="20") as app:
        await app.message_shortcut(message, user="U1")
        await eventually(lambda: len(slack.opened_views) == 1)
        view = slack.opened_views[0]
        _, bad_size = await app.submit_view(view, form_values(sizes="300 by 300"), user="U1")
        _, too_many = await app.submit_view(view, form_values(sizes="300x300 400x400 500x500", variants="2"), user="U1")
        _, too_big = await app.submit_view(view, form_values(sizes="4000x3000 4000x3000 3000x3000"), user="U1")
        _, too_long = await app.submit_view(view, form_values(sizes="300x300", prompt="keep it " * 200), user="U1")
        assert await app.services.store.recent_for_user("U1") == []
    bad = json.loads(bad_size)
    assert bad["response_action"] == "errors"
    assert "WIDTHxHEIGHT" in bad["errors"]["sizes"] or "size" in bad["errors"]["sizes"]
    assert "6 images (3 sizes x 2 variants); the limit is 4" in json.loads(too_many)["errors"]["variants"]
    assert json.loads(too_long)["errors"] == {"prompt": "The instructions have 1599 characters; keep them to 1000."}
    prompt_field = next(block for block in view["blocks"] if block.get("block_id") == "prompt")
    assert prompt_field["element"]["max_length"] == 1000  # Slack stops the typing there too
    assert json.loads(too_big)["errors"] == {
        "sizes": "That would make 21 megapixels of images in all; the limit is 20 per request, so ask for fewer or "
        "smaller sizes."
    }


async def test_shortcut_on_a_message_without_images_says_so(slack: SlackEmulator, tmp_path: Path) -> None:
    message = slack.post_user_message("C1", "U1", "no pictures here")
    async with running_app(slack, tmp_path) as app:
        await app.message_shortcut(message, user="U1")
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
    assert slack.opened_views == []
    assert "no image to resize" in slack.ephemerals_for("U1")[0]


@pytest.mark.parametrize(
    ("channel", "channel_name"),
    [("D0123DM", None), ("G0123MPIM", "mpdm-ann--bob--cai-1")],  # a group DM's id is a private channel's
    ids=["dm", "group-dm"],
)
async def test_shortcut_in_a_direct_message_says_where_to_use_it(
    slack: SlackEmulator, tmp_path: Path, channel: str, channel_name: str | None
) -> None:
    in_dm = {
        "type": "message",
        "user": "U2",
        "text": "",
        "ts": "1700000000.000100",
        "files": [slack.add_file(astronaut())],
    }
    async with running_app(slack, tmp_path) as app:
        await app.message_shortcut(
            in_dm, user="U1", channel=channel, channel_name=channel_name, response_url=slack.response_url()
        )
        await eventually(lambda: len(slack.responses) == 1)
        assert await app.services.store.recent_for_user("U1") == []
    assert slack.opened_views == []  # no form whose results would have nowhere to go
    assert "I can't work in direct messages" in slack.responses[0]["text"]


async def test_resize_without_arguments_opens_an_upload_modal(slack: SlackEmulator, tmp_path: Path) -> None:
    file = slack.add_file(astronaut(), "from-laptop.jpg")
    async with running_app(slack, tmp_path) as app:
        await app.command("")
        await eventually(lambda: len(slack.opened_views) == 1)
        view = slack.opened_views[0]
        assert view["blocks"][0]["element"]["type"] == "file_input"
        _, missing = await app.submit_view(view, form_values(upload=[]), user="U1")
        assert json.loads(missing)["errors"] == {"upload": "Attach an image to resize."}
        await app.submit_view(view, form_values(sizes="320x320", upload=[{"id": file["id"]}]), user="U1")
        await eventually(lambda: len(slack.calls_to("files.completeUploadExternal")) == 1)
        await app.services.runner.idle()
    anchors = [m for m in slack.channels["C1"].messages if m["user"] == BOT_USER and "thread_ts" not in m]
    assert len(anchors) == 1
    assert "an uploaded image" in anchors[0]["text"]
    assert [u["title"] for u in slack.uploads_in_thread("C1", anchors[0]["ts"])] == ["320x320"]


async def test_the_upload_form_takes_every_kind_of_image_the_engine_reads(slack: SlackEmulator, tmp_path: Path) -> None:
    # Slack's file input refuses, at the picker, any file whose extension is not listed: an iPhone's IMG_0042.HEIC
    # or a scanner's .tif could not be chosen, though the engine reads both.
    file = slack.add_file(astronaut_heic(), "IMG_0042.HEIC", "image/heic")
    async with running_app(slack, tmp_path) as app:
        await app.command("")
        await eventually(lambda: len(slack.opened_views) == 1)
        view = slack.opened_views[0]
        accepted = set(view["blocks"][0]["element"]["filetypes"])
        await app.submit_view(view, form_values(sizes="320x240", upload=[{"id": file["id"]}]), user="U1")
        await eventually(lambda: len(slack.calls_to("files.completeUploadExternal")) == 1)
        await app.services.runner.idle()
    assert {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif"} <= accepted
    assert file["name"].rsplit(".", 1)[1].lower() in accepted


INVITE = "I'm not in this channel yet: invite me with `/invite @Smart Resize`, then try again."


async def test_where_the_bot_is_not_in_the_channel_no_form_opens_and_it_says_to_invite_it(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    slack.add_channel("C2", members=("U1",), bot_member=False)
    message = {
        "type": "message",
        "user": "U1",
        "text": "",
        "ts": "1700000000.000100",
        "files": [slack.add_file(astronaut())],
    }
    async with running_app(slack, tmp_path) as app:
        await app.message_shortcut(message, user="U1", channel="C2", response_url=slack.response_url("shortcut"))
        await app.command("", channel="C2", response_url=slack.response_url("command"))
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 2)
    assert [response["text"] for response in slack.responses] == [INVITE, INVITE]
    assert slack.opened_views == []  # no form whose results would have nowhere to go


@pytest.mark.parametrize("opened_by", ["shortcut", "command"])
async def test_a_form_whose_job_fails_where_the_bot_is_not_tells_the_requester(
    slack: SlackEmulator, tmp_path: Path, opened_by: str
) -> None:
    file = slack.add_file(astronaut(), "shot.jpg")
    message = slack.post_user_message("C1", "U1", "", files=[file])
    async with running_app(slack, tmp_path) as app:
        if opened_by == "shortcut":
            await app.message_shortcut(message, user="U1", response_url=slack.response_url())
            values = form_values(sizes="300x300")
        else:
            await app.command("", response_url=slack.response_url())
            values = form_values(sizes="300x300", upload=[{"id": file["id"]}])
        await eventually(lambda: len(slack.opened_views) == 1)
        slack.channels["C1"].members.discard(BOT_USER)  # removed from the channel while the form was open
        await app.submit_view(slack.opened_views[0], values, user="U1")
        await eventually(lambda: len(slack.responses) == 1)
        await app.services.runner.idle()
        [job] = await app.services.store.recent_for_user("U1")
    assert job.state == "failed"
    assert slack.responses[0]["text"] == INVITE  # chat.postEphemeral can't reach them there: the response_url can


async def test_the_form_opens_when_slack_cannot_say_whether_the_bot_is_in_the_channel(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "shot.jpg")])
    slack.fail_next("conversations.info", "fatal_error")
    async with running_app(slack, tmp_path) as app:
        await app.message_shortcut(message, user="U1", response_url=slack.response_url())
        await eventually(lambda: len(slack.opened_views) == 1)  # a failed job still reaches them by response_url
    assert slack.responses == []


async def test_a_form_slack_will_not_open_is_said_in_one_sentence_with_no_traceback(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "shot.jpg")])
    async with running_app(slack, tmp_path) as app:
        slack.fail_next("views.open", "expired_trigger_id")  # the 3 s trigger ran out before the form was sent
        command_status, _ = await app.command("", response_url=slack.response_url("command"))
        slack.fail_next("views.open", "expired_trigger_id")
        shortcut_status, _ = await app.message_shortcut(message, user="U1", response_url=slack.response_url("menu"))
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 2)
    assert (command_status, shortcut_status) == (200, 200)
    assert slack.ephemerals_for("U1") == [FORM_TOO_SLOW, FORM_TOO_SLOW]
    assert caplog.text.count("did not open: Slack answered expired_trigger_id") == 2
    assert not [record for record in caplog.records if record.exc_info]


async def test_a_shortcut_on_an_image_and_a_pdf_says_it_left_the_pdf_out(slack: SlackEmulator, tmp_path: Path) -> None:
    image = slack.add_file(astronaut(), "crew.jpg")
    pdf = slack.add_file(b"%PDF-1.7 not an image", "brief.pdf", "application/pdf")
    message = slack.post_user_message("C1", "U1", "both", files=[image, pdf])
    async with running_app(slack, tmp_path) as app:
        await app.message_shortcut(message, user="U1")
        await eventually(lambda: len(slack.opened_views) == 1)
        await app.submit_view(slack.opened_views[0], form_values(sizes="300x300"), user="U1")
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
        await app.services.runner.idle()
    assert slack.ephemerals_for("U1") == [
        "I left out brief.pdf, which isn't an image (application/pdf); the image is being resized."
    ]
    assert [u["title"] for u in slack.uploads_in_thread("C1", message["ts"])] == ["300x300"]


async def test_the_shortcut_on_the_apps_own_results_points_to_the_original(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x300", files=[slack.add_file(astronaut())])
    async with running_app(slack, tmp_path) as app:
        await app.event({**message, "type": "app_mention", "channel": "C1"})
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
        [result] = slack.uploads_in_thread("C1", message["ts"])
        await app.message_shortcut(result["message"], user="U2", response_url=slack.response_url())
        await eventually(lambda: len(slack.ephemerals_for("U2")) == 1)
    assert slack.ephemerals_for("U2") == [
        "That's one of my own posts; use the shortcut on the original photo to resize it."
    ]
    assert not slack.opened_views
