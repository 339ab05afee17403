"""The app end to end over loopback: signed Slack requests in, real Web API calls out to the emulator."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from tests.images import astronaut, astronaut_heic, encode, photo, png_header_only
from tests.slack_api.emulator import BOT_USER, SlackEmulator
from tests.slack_api.harness import eventually, form_values, running_app


def _share(slack: SlackEmulator, text: str = "", data: bytes | None = None, name: str = "team.jpg") -> dict:  # type: ignore[type-arg]
    file = slack.add_file(data or astronaut(), name=name)
    return slack.post_user_message("C1", "U1", text, files=[file])


async def test_slash_command_resizes_the_latest_image_into_its_thread(slack: SlackEmulator, tmp_path: Path) -> None:
    message = _share(slack)
    async with running_app(slack, tmp_path) as app:
        started = time.monotonic()
        status, body = await app.command("1080x1080 og-image --format png")
        assert status == 200
        assert time.monotonic() - started < 1.0  # the ack does not wait for the work
        assert "resizing the latest image in this channel to 1080x1080, 1200x630" in body
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 2)
        await app.services.runner.idle()

    uploads = slack.uploads_in_thread("C1", message["ts"])
    assert [u["title"] for u in uploads] == ["1080x1080", "1200x630"]
    assert [u["name"] for u in uploads] == ["team_1080x1080.png", "team_1200x630.png"]
    for upload, size in zip(uploads, [(1080, 1080), (1200, 630)], strict=True):
        image = Image.open(io.BytesIO(upload["bytes"]))
        assert (image.format, image.size) == ("PNG", size)
        assert upload["alt_txt"].startswith("team resized to")
    # The token went with the download, to the emulator's file host only.
    assert [d["authorization"] for d in slack.downloads] == [f"Bearer {slack_token()}"]
    # One progress message in the thread, finished; the source message carries the done reaction.
    progress = [m for m in slack.thread("C1", message["ts"]) if m["user"] == BOT_USER and not m.get("files")]
    assert len(progress) == 1
    assert progress[0]["text"].startswith(":white_check_mark: Done: 1080x1080, 1200x630")
    assert slack.reactions_on("C1", message["ts"]) == {"white_check_mark"}


def slack_token() -> str:
    from tests.slack_api.emulator import BOT_TOKEN

    return BOT_TOKEN


async def test_a_heic_photo_from_an_iphone_comes_back_upright_as_jpeg(slack: SlackEmulator, tmp_path: Path) -> None:
    file = slack.add_file(astronaut_heic(), "IMG_0042.HEIC", "image/heic")
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 384x288", files=[file])
    async with running_app(slack, tmp_path) as app:
        await app.event({**message, "type": "app_mention", "channel": "C1"})
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
    [upload] = slack.uploads_in_thread("C1", message["ts"])
    assert upload["name"] == "IMG_0042_384x288.jpg"
    image = Image.open(io.BytesIO(upload["bytes"]))
    assert (image.format, image.size) == ("JPEG", (384, 288))
    # The photo as the phone shows it, whole: read on its side, a 4:3 output would be a crop or an extension of it.
    upright = Image.open(io.BytesIO(astronaut())).convert("RGB").crop((0, 0, 384, 288))
    difference = np.abs(np.asarray(image.convert("RGB"), np.float32) - np.asarray(upright, np.float32)).mean()
    assert difference < 5


async def test_mention_on_an_upload_resizes_each_image(slack: SlackEmulator, tmp_path: Path) -> None:
    first, second = (
        slack.add_file(astronaut(), "a.jpg"),
        slack.add_file(encode(photo(600, 400), "PNG"), "b.png", "image/png"),
    )
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 400x400 please", files=[first, second])
    async with running_app(slack, tmp_path) as app:
        status, _ = await app.event({**message, "type": "app_mention", "channel": "C1"})
        assert status == 200
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 2)
        await app.services.runner.idle()
    assert sorted(u["name"] for u in slack.uploads_in_thread("C1", message["ts"])) == ["a_400x400.jpg", "b_400x400.jpg"]


async def test_a_mention_says_what_it_left_out_and_never_guesses_sizes(slack: SlackEmulator, tmp_path: Path) -> None:
    unusable = _share(slack, f"<@{BOT_USER}> 99999x99999 please")
    partly = _share(slack, f"<@{BOT_USER}> 400x400 --variants 99")
    async with running_app(slack, tmp_path) as app:
        await app.event({**unusable, "type": "app_mention", "channel": "C1"})
        await app.event({**partly, "type": "app_mention", "channel": "C1"})
        await eventually(lambda: len(slack.uploads_in_thread("C1", partly["ts"])) == 1)
        await app.services.runner.idle()
        jobs = await app.services.store.recent_for_user("U1")
    nothing, left_out = sorted(slack.ephemerals_for("U1"), key=lambda text: "Nothing started" not in text)
    assert "99999x99999 is outside the supported range" in nothing and "Nothing started" in nothing
    assert "--variants takes a whole number" in left_out
    assert slack.uploads_in_thread("C1", unusable["ts"]) == []  # no job on default sizes the user never asked for
    assert [u["title"] for u in slack.uploads_in_thread("C1", partly["ts"])] == ["400x400"]
    assert len(jobs) == 1


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("1080x1080 instagrm-story", "I don't know the size or preset 'instagrm-story'. Did you mean"),
        ("1080x1080 --varients 2", "I don't know the option '--varients'."),
        ("20000x100", "20000x100 is outside the supported range"),
    ],
)
async def test_a_command_it_cannot_read_is_answered_with_one_pointer_to_the_help(
    slack: SlackEmulator, tmp_path: Path, text: str, answer: str
) -> None:
    async with running_app(slack, tmp_path) as app:
        status, body = await app.command(text)
        jobs = await app.services.store.recent_for_user("U1")
    assert status == 200 and jobs == []
    said = json.loads(body)["text"]
    assert said.startswith(answer) and said.count("/resize help") == 1, said


async def test_retried_and_duplicated_events_post_once(slack: SlackEmulator, tmp_path: Path) -> None:
    message = _share(slack, f"<@{BOT_USER}> 300x300")
    event = {**message, "type": "app_mention", "channel": "C1"}
    async with running_app(slack, tmp_path) as app:
        await app.event(event, event_id="Ev1")
        await app.event(event, event_id="Ev1", retry_num=1)  # Slack's retry of the same delivery
        await app.event(event, event_id="Ev2")  # the same message seen again under another event id
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) >= 1)
        await app.services.runner.idle()
    assert len(slack.uploads_in_thread("C1", message["ts"])) == 1
    assert len(slack.calls_to("files.completeUploadExternal")) == 1


async def test_an_event_sent_again_after_its_job_failed_starts_nothing(slack: SlackEmulator, tmp_path: Path) -> None:
    message = _share(slack, f"<@{BOT_USER}> 300x300", data=b"this is plain text pretending", name="fake.jpg")
    event = {**message, "type": "app_mention", "channel": "C1"}
    async with running_app(slack, tmp_path) as app:
        await app.event(event, event_id="Ev1")
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
        await app.services.runner.idle()
    # Restarted (or another replica): nothing in memory knows the event; Slack retries it, after a lost ack.
    async with running_app(slack, tmp_path) as app:
        answers = app.intake_answers()
        await app.event(event, event_id="Ev1", retry_num=1)
        await eventually(lambda: len(answers) == 1)
        await app.services.runner.idle()
        jobs = await app.services.store.recent_for_user("U1")
    assert answers == [False]  # the failed job, not a new one
    assert [job.state for job in jobs] == ["failed"]
    assert len(slack.ephemerals_for("U1")) == 1  # the failure was said once


async def test_a_mentions_answer_is_said_once_when_slack_sends_its_event_again(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handlers.common")
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x300")  # no image: the answer is the reply
    event = {**message, "type": "app_mention", "channel": "C1"}
    async with running_app(slack, tmp_path) as app:
        await app.event(event, event_id="Ev1")
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
        await app.event(event, event_id="Ev1", retry_num=1)  # the ack was late: Slack retries
        await eventually(lambda: caplog.text.count("Ev1 delivered again") == 1)
    async with running_app(slack, tmp_path) as app:  # restarted, or another replica on the same database
        await app.event(event, event_id="Ev1", retry_num=2)
        await eventually(lambda: caplog.text.count("Ev1 delivered again") == 2)
    [answer] = slack.ephemerals_for("U1")
    assert answer.startswith("Mention me in the message that shares the image or in its thread")


async def test_two_replicas_given_one_event_answer_it_once(
    slack: SlackEmulator, tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handlers.common")
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x300")
    event = {**message, "type": "app_mention", "channel": "C1"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_app(slack, tmp_path / "a", DATABASE_URL=postgres_url) as one,
        running_app(slack, tmp_path / "b", DATABASE_URL=postgres_url) as other,
    ):
        await asyncio.gather(one.event(event, event_id="Ev1"), other.event(event, event_id="Ev1", retry_num=1))
        await eventually(lambda: "Ev1 delivered again" in caplog.text)
    assert len(slack.ephemerals_for("U1")) == 1


async def test_link_gets_an_anchor_message_and_results_in_its_thread(slack: SlackEmulator, tmp_path: Path) -> None:
    image = encode(photo(800, 600), "JPEG", quality=90)

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/jpeg")

    site = web.Application()
    site.router.add_get("/p.jpg", serve)
    server = TestServer(site, host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}/p.jpg"
    try:
        async with running_app(slack, tmp_path, FETCH_ALLOW_PRIVATE_NETWORKS="127.0.0.1/32") as app:
            # Slack escapes < and > in command text; the link itself carries a channel ping.
            _status, body = await app.command(f"500x500 <{url}?x=&lt;!channel&gt;> --format webp")
            assert "this link" in body
            await app.services.runner.idle()
    finally:
        await server.close()
    anchors = [m for m in slack.channels["C1"].messages if m["user"] == BOT_USER and "thread_ts" not in m]
    assert len(anchors) == 1
    assert url in anchors[0]["text"]
    assert "<!channel>" not in anchors[0]["text"]  # the link is shown escaped: it can't ping the channel
    assert f"{url}?x=&lt;!channel&gt;" in anchors[0]["text"]
    uploads = slack.uploads_in_thread("C1", anchors[0]["ts"])
    assert [(u["title"], Image.open(io.BytesIO(u["bytes"])).format) for u in uploads] == [("500x500", "WEBP")]


async def test_a_link_served_without_an_image_type_is_resized_by_what_its_bytes_are(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    image, text = encode(photo(800, 600), "PNG"), b"<html>a page, not a photo</html>"

    async def unlabelled(request: web.Request) -> web.Response:  # as object stores serve files they don't know
        body = image if request.match_info["name"] == "photo" else text
        return web.Response(body=body, content_type="application/octet-stream")

    site = web.Application()
    site.router.add_get("/{name}", unlabelled)
    server = TestServer(site, host="127.0.0.1")
    await server.start_server()
    try:
        async with running_app(slack, tmp_path, FETCH_ALLOW_PRIVATE_NETWORKS="127.0.0.1/32") as app:
            await app.command(f"300x300 http://127.0.0.1:{server.port}/photo")
            await app.command(f"300x300 http://127.0.0.1:{server.port}/page", user="U2")
            await app.services.runner.idle()
            photo_job = (await app.services.store.recent_for_user("U1"))[0]
            page_job = (await app.services.store.recent_for_user("U2"))[0]
    finally:
        await server.close()
    assert (photo_job.state, page_job.state) == ("done", "failed")
    assert [u["title"] for u in slack.uploads_in_thread("C1", photo_job.thread_ts or "")] == ["300x300"]
    [refused] = slack.ephemerals_for("U2")
    assert refused.startswith("That link returned") and "not an image" in refused


async def test_private_link_is_refused_in_plain_words(slack: SlackEmulator, tmp_path: Path) -> None:
    async with running_app(slack, tmp_path) as app:
        await app.command("500x500 http://169.254.169.254/latest/meta-data/iam.png")
        await app.services.runner.idle()
    [notice] = slack.ephemerals_for("U1")
    assert "private or internal address" in notice and "FETCH_ALLOW_PRIVATE_NETWORKS" in notice
    assert "Traceback" not in notice
    assert slack.calls_to("chat.postMessage") == []  # said to the requester alone: the link is not announced


async def test_a_slack_file_redirected_to_a_private_address_is_refused(slack: SlackEmulator, tmp_path: Path) -> None:
    file = slack.add_file(astronaut(), "crew.jpg")
    slack.download_redirects[file["id"]] = "http://169.254.169.254/latest/meta-data/iam.png"
    slack.post_user_message("C1", "U1", "", files=[file])
    async with running_app(slack, tmp_path) as app:
        await app.command("500x500")
        await app.services.runner.idle()
    [notice] = slack.ephemerals_for("U1")
    assert "private or internal address" in notice  # off Slack's hosts, the SSRF guard vets the redirect


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10x10", "between 16 and 8192"),
        ("instagramm", "Did you mean"),
        ("500x500 --variants 99", "variants"),
        ("500x500 ftp://example.com/a.jpg", "http"),
    ],
)
async def test_bad_commands_get_one_private_sentence_and_no_job(
    slack: SlackEmulator, tmp_path: Path, text: str, words: str
) -> None:
    async with running_app(slack, tmp_path) as app:
        status, body = await app.command(text)
        assert status == 200
        assert words.lower() in body.lower()
        assert '"response_type":"ephemeral"' in body.replace(" ", "")
        assert await app.services.store.recent_for_user("U1") == []


async def test_in_a_direct_message_it_says_where_to_ask_instead(slack: SlackEmulator, tmp_path: Path) -> None:
    async with running_app(slack, tmp_path) as app:
        answers = [await app.command(text, channel="D0123DM") for text in ("1080x1080", "", "auto on")]
        _, help_body = await app.command("--help", channel="D0123DM")
        assert await app.services.store.recent_for_user("U1") == []
    assert all(status == 200 and "I can't work in direct messages" in body for status, body in answers)
    assert not slack.opened_views  # no form whose results would have nowhere to go
    assert "/resize" in help_body and "direct messages" not in help_body


async def test_help_answers_privately(slack: SlackEmulator, tmp_path: Path) -> None:
    async with running_app(slack, tmp_path) as app:
        _, body = await app.command("help")
    assert "instagram-story" in body
    assert "/resize" in body


async def test_no_image_in_the_channel_says_how_to_share_one(slack: SlackEmulator, tmp_path: Path) -> None:
    async with running_app(slack, tmp_path) as app:
        await app.command("500x500")
        await app.services.runner.idle()
    [notice] = slack.ephemerals_for("U1")
    assert "couldn't find an image shared in this channel" in notice


async def test_not_an_image_and_login_page_are_explained(slack: SlackEmulator, tmp_path: Path) -> None:
    pdf = slack.add_file(b"%PDF-1.7 not an image", "brief.pdf", "application/pdf")
    slack.post_user_message("C1", "U1", "", files=[pdf])
    text_as_image = _share(slack, data=b"this is plain text pretending", name="fake.jpg")
    async with running_app(slack, tmp_path) as app:
        await app.event({**text_as_image, "type": "app_mention", "channel": "C1", "text": f"<@{BOT_USER}>"})
        # Events are acked before their listener runs: wait for the outcome, not for the runner.
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
        await app.services.runner.idle()
    [notice] = slack.ephemerals_for("U1")
    assert "isn't an image I can read" in notice
    assert slack.reactions_on("C1", text_as_image["ts"]) == {"x"}


async def test_a_mention_on_a_file_that_is_not_an_image_names_it_as_a_job_would(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    pdf = slack.add_file(b"%PDF-1.7 not an image", "brief.pdf", "application/pdf")
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 1080x1080", files=[pdf])
    async with running_app(slack, tmp_path) as app:
        await app.event({**message, "type": "app_mention", "channel": "C1"})
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
        # The same file through the form: there the job finds out what it is (files.info), and refuses it.
        await app.command("")
        await eventually(lambda: len(slack.opened_views) == 1)
        await app.submit_view(slack.opened_views[0], form_values(upload=[{"id": pdf["id"]}]), user="U1")
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 2)
        await app.services.runner.idle()
        jobs = await app.services.store.recent_for_user("U1")
    mentioned, submitted = slack.ephemerals_for("U1")
    assert mentioned == (
        "brief.pdf isn't an image (application/pdf); share a JPEG, PNG, WebP, HEIC, AVIF, GIF, BMP or TIFF image."
    )
    assert submitted == mentioned  # one wording, whichever way the file came
    assert [job.trigger for job in jobs] == ["modal"]  # the mention started nothing


async def test_bot_not_in_channel_is_told_through_the_response_url(slack: SlackEmulator, tmp_path: Path) -> None:
    slack.add_channel("C2", members=("U1",), bot_member=False)
    async with running_app(slack, tmp_path) as app:
        await app.command("500x500", channel="C2", response_url=slack.response_url())
        await app.services.runner.idle()
    assert any("/invite @Smart Resize" in r["text"] for r in slack.responses)


async def test_missing_permission_is_explained(slack: SlackEmulator, tmp_path: Path) -> None:
    message = _share(slack)
    slack.scopes = {"chat:write", "channels:history", "reactions:write", "files:read"}  # no files:write
    async with running_app(slack, tmp_path) as app:
        await app.event({**message, "type": "app_mention", "channel": "C1", "text": f"<@{BOT_USER}> 300x300"})
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
        await app.services.runner.idle()
    [notice] = slack.ephemerals_for("U1")
    assert "missing a Slack permission (files:write)" in notice


async def test_rate_limit_per_user(slack: SlackEmulator, tmp_path: Path) -> None:
    _share(slack)
    async with running_app(slack, tmp_path, JOBS_PER_USER_PER_HOUR="1") as app:
        await app.command("300x300")
        _, body = await app.command("400x400")
        await app.services.runner.idle()
    assert "in the last hour" in body


async def test_unsigned_requests_are_rejected(slack: SlackEmulator, tmp_path: Path) -> None:
    async with running_app(slack, tmp_path) as app:
        status, _ = await app.post(b"command=/resize&text=1x1", "application/x-www-form-urlencoded", secret="wrong")
        async with app.session.get(f"{app.url}/healthz") as health:
            assert (health.status, (await health.json())["backend"]) == (200, "local")
    assert status == 401


async def test_huge_images_and_files_are_refused_in_plain_words(slack: SlackEmulator, tmp_path: Path) -> None:
    bomb = _share(slack, data=png_header_only(30000, 30000), name="poster.png")
    big = _share(slack, data=b"\xff\xd8" + b"\0" * (2 * 1024 * 1024), name="raw.jpg")
    async with running_app(slack, tmp_path, MAX_DOWNLOAD_MB="1") as app:
        for message in (bomb, big):
            await app.event({**message, "type": "app_mention", "channel": "C1", "text": f"<@{BOT_USER}> 300x300"})
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 2)
        await app.services.runner.idle()
    notices = sorted(slack.ephemerals_for("U1"))
    assert "larger than 1 MB" in notices[0]
    assert "30000x30000 (900 MP); the limit is 100 MP" in notices[1]
    assert [d["file_id"] for d in slack.downloads] == [bomb["files"][0]["id"]]  # the big file is never fetched


async def test_slack_connect_files_are_read_through_files_info_or_refused_in_one_sentence(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.user_errors import SLACK_CONNECT_DENIED

    shared = slack.add_file(astronaut(), "connect.jpg")
    checked = slack.post_user_message(
        "C1", "U1", f"<@{BOT_USER}> 300x300", files=[{"id": shared["id"], "file_access": "check_file_info"}]
    )
    denied = slack.post_user_message(
        "C1", "U1", f"<@{BOT_USER}> 300x300", files=[{"id": "FDENIED1", "file_access": "check_file_info"}]
    )
    hidden = slack.post_user_message(
        "C1", "U1", f"<@{BOT_USER}> 300x300", files=[{"id": "FHIDDEN1", "file_access": "access_denied"}]
    )
    slack.fail_next("files.info", "access_denied")  # the first files.info: FDENIED1's, or the shared file's
    async with running_app(slack, tmp_path) as app:
        await app.event({**denied, "type": "app_mention", "channel": "C1"})
        await app.services.runner.idle()
        await app.event({**checked, "type": "app_mention", "channel": "C1"})
        await app.event({**hidden, "type": "app_mention", "channel": "C1"})
        await app.services.runner.idle()
    assert [u["title"] for u in slack.uploads_in_thread("C1", checked["ts"])] == ["300x300"]
    assert slack.ephemerals_for("U1") == [SLACK_CONNECT_DENIED, SLACK_CONNECT_DENIED]
    assert [call["file"] for call in slack.calls_to("files.info")][:2] == ["FDENIED1", shared["id"]]
    assert "Traceback" not in caplog.text and all(r.exc_info is None for r in caplog.records)


async def test_a_file_slack_hides_or_gives_no_link_to_gets_one_sentence(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A free plan hides files past its history limit: Slack sends their id and ``mode: hidden_by_limit`` alone, in
    the event and from files.info. And a file files.info describes without a link to its bytes."""
    from bot.user_errors import HIDDEN_BY_PLAN, NO_DOWNLOAD

    slack.files["FOLD0001"] = {"id": "FOLD0001", "mode": "hidden_by_limit"}
    linkless = slack.add_file(astronaut(), "linkless.jpg")
    del slack.files[linkless["id"]]["url_private"], slack.files[linkless["id"]]["url_private_download"]
    hidden = slack.post_user_message(
        "C1", "U1", f"<@{BOT_USER}> 300x300", files=[{"id": "FOLD0001", "mode": "hidden_by_limit"}]
    )
    unlinked = slack.post_user_message(
        "C1", "U1", f"<@{BOT_USER}> 300x300", files=[{"id": linkless["id"], "file_access": "check_file_info"}]
    )
    async with running_app(slack, tmp_path) as app:
        await app.event({**hidden, "type": "app_mention", "channel": "C1"})
        await app.services.runner.idle()
        await app.event({**unlinked, "type": "app_mention", "channel": "C1"})
        await app.services.runner.idle()
    assert slack.ephemerals_for("U1") == [HIDDEN_BY_PLAN, NO_DOWNLOAD]
    assert not slack.downloads
    assert "Traceback" not in caplog.text and all(r.exc_info is None for r in caplog.records)


async def test_an_external_file_gets_one_sentence(slack: SlackEmulator, tmp_path: Path) -> None:
    file = slack.add_file(astronaut(), "drive.jpg")
    slack.files[file["id"]].update(is_external=True, external_type="gdrive")
    message = slack.post_user_message(
        "C1", "U1", f"<@{BOT_USER}> 300x300", files=[{"id": file["id"], "file_access": "check_file_info"}]
    )
    async with running_app(slack, tmp_path) as app:
        await app.event({**message, "type": "app_mention", "channel": "C1"})
        await app.services.runner.idle()
    [notice] = slack.ephemerals_for("U1")
    assert notice.startswith("That image is a link to a file in Gdrive, not a file in Slack;")
    assert not slack.downloads


async def test_fill_is_asked_for_in_slack_and_the_comment_says_what_each_side_got(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    message = _share(slack)
    async with running_app(slack, tmp_path) as app:
        status, _ = await app.command("1500x300 --mode extend --fill blur")
        assert status == 200
        await app.services.runner.idle()
    [upload] = slack.uploads_in_thread("C1", message["ts"])
    assert "1500x300: extended left and right: a blurred reflection." in upload["message"]["text"]


async def test_a_mention_in_a_photos_thread_resizes_that_photo_into_it(slack: SlackEmulator, tmp_path: Path) -> None:
    photo_message = _share(slack)
    asked = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x300", thread_ts=photo_message["ts"])
    plain = slack.post_user_message("C1", "U1", "no photo here")
    unanswerable = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x300", thread_ts=plain["ts"])
    async with running_app(slack, tmp_path) as app:
        await app.event({**asked, "type": "app_mention", "channel": "C1"})
        await app.event({**unanswerable, "type": "app_mention", "channel": "C1"})
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 1)
        await app.services.runner.idle()
    assert [u["title"] for u in slack.uploads_in_thread("C1", photo_message["ts"])] == ["300x300"]
    assert slack.uploads_in_thread("C1", plain["ts"]) == []
    [answer] = slack.ephemerals_for("U1")
    assert answer.startswith("Mention me in the message that shares the image or in its thread")


async def test_a_mention_with_an_image_and_other_files_says_which_it_left_out(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    photo_file = slack.add_file(astronaut(), "team.jpg")
    pdf = slack.add_file(b"%PDF-1.7 not an image", "brief.pdf", "application/pdf")
    notes = slack.add_file(b"minutes", "notes.txt", "text/plain")
    one = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x300", files=[photo_file, pdf])
    two = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 400x400", files=[photo_file, pdf, notes])
    async with running_app(slack, tmp_path) as app:
        await app.event({**one, "type": "app_mention", "channel": "C1"})
        await app.event({**two, "type": "app_mention", "channel": "C1"})
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 2)
        await app.services.runner.idle()
    assert [u["title"] for u in slack.uploads_in_thread("C1", one["ts"])] == ["300x300"]
    assert sorted(slack.ephemerals_for("U1")) == [
        "I left out brief.pdf and notes.txt, which aren't images; the image is being resized.",
        "I left out brief.pdf, which isn't an image (application/pdf); the image is being resized.",
    ]


@pytest.mark.parametrize(
    "link",
    [
        "https://files.slack.com/files-pri/T0123-F0456/photo.jpg",  # a file's download link
        "<https://acme.slack.com/files/U1/F0456/photo.jpg|photo.jpg>",  # "Copy link to file", as Slack sends it
        "https://acme.slack.com/archives/C1/p1700000000000100",  # a message's permalink
        "https://ACME.enterprise.slack.com./files/U1/F0456/photo.jpg",
    ],
)
async def test_a_link_into_slack_is_pointed_to_the_shortcut_not_fetched_as_a_web_page(
    slack: SlackEmulator, tmp_path: Path, link: str
) -> None:
    from handlers.commands import SLACK_LINK

    async with running_app(slack, tmp_path) as app:
        status, body = await app.command(f"500x500 {link}")
        jobs = await app.services.store.recent_for_user("U1")
    # Fetched without the token, Slack answers its sign-in page: 'not an image', after an anchor in the channel.
    assert (status, json.loads(body)["text"], jobs) == (200, SLACK_LINK, [])
    assert slack.calls_to("chat.postMessage") == []


async def test_in_a_group_dm_it_says_where_to_ask_instead(slack: SlackEmulator, tmp_path: Path) -> None:
    # A group DM's id starts as a private channel's does; Slack names it mpdm-...: the app has no scope there (no
    # mpim:history), so a job would fail after "On it" with a sentence asking an admin for a permission.
    group = {"channel": "G0123MPIM", "channel_name": "mpdm-ann--bob--cai-1"}
    async with running_app(slack, tmp_path) as app:
        answers = [await app.command(text, **group) for text in ("1080x1080", "", "auto on")]
        jobs = await app.services.store.recent_for_user("U1")
    assert [json.loads(body)["text"].split(":")[0] for _, body in answers] == ["I can't work in direct messages"] * 3
    assert jobs == [] and not slack.opened_views
