"""The app on the hosted backend: a real loopback server speaking the Smart Resize API contract."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.backends import SUBMIT_IN_FLIGHT
from bot.engine import Size
from bot.engine.prompts import focus_prompt
from bot.jobs.model import Job, JobSource
from bot.jobs.store import SqliteJobStore
from bot.smart_resize_api.contract import MAX_PROMPT_CHARS, SmartResizeRequest, Status
from bot.spec import ResizeSpec
from tests.factories import insert, make_job
from tests.images import astronaut, astronaut_heic, encode, scene_with_subject
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.harness import PACING, SHARED_ENGINE, eventually, running_app
from tests.smart_resize_api.fault_server import API_KEY, Fault, FaultServer, drop, respond


def _hosted(api: FaultServer) -> dict[str, str]:
    return {
        "SMART_RESIZE_BACKEND": "hosted",
        "PIXAZO_API_KEY": API_KEY,
        "PIXAZO_BASE_URL": api.base_url,
        # Result images are fetched through the SSRF guard; the stand-in CDN is on loopback.
        "FETCH_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
    }


@dataclass
class Outcome:
    uploads: list[dict[str, Any]]  # in the source message's thread
    notices: list[str]  # what the requester was told privately
    jobs: list[Job]


async def _resize_with(
    api: FaultServer,
    tmp_path: Path,
    command: str = "300x300",
    base_url: str | None = None,
    shared: tuple[bytes, str, str] | None = None,
) -> Outcome:
    """Share a photo (``shared``: its bytes, name and type), run ``command`` on the hosted backend against ``api``
    until idle; ``api`` is closed after."""
    env = _hosted(api) | ({"PIXAZO_BASE_URL": base_url} if base_url else {})
    if api.media_origin is not None:  # results on another host: through the SSRF guard, as a stranger's link
        del env["FETCH_ALLOW_PRIVATE_NETWORKS"]
    try:
        async with SlackEmulator() as slack:
            slack.add_channel("C1", members=("U1",))
            data, name, mimetype = shared or (astronaut(), "crew.jpg", "image/jpeg")
            message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(data, name, mimetype)])
            async with running_app(slack, tmp_path, **env) as app:
                await app.command(command)
                await app.services.runner.idle()
                jobs = await app.services.store.recent_for_user("U1")
            return Outcome(slack.uploads_in_thread("C1", message["ts"]), slack.ephemerals_for("U1"), jobs)
    finally:
        await api.close()


async def test_private_slack_image_goes_as_a_data_uri_and_results_land_in_the_thread(tmp_path: Path) -> None:
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    uploads = (await _resize_with(api, tmp_path, "300x300 600x200 --variants 2 --prompt 'keep face centered'")).uploads
    assert api.count("submit") == 1
    # The submit's answer was the first status read: the first poll waits the interval (2-3 s; shorter here).
    [submit, status_read] = [s for s in api.seen if s.route in ("submit", "status_get")]
    assert status_read.at - submit.at >= PACING.hosted_poll_interval[0]
    submitted = SmartResizeRequest.from_json(json.loads(next(s.body for s in api.seen if s.route == "submit")))
    assert submitted.image_url.startswith("data:image/jpeg;base64,")
    assert submitted.target_sizes == ["300x300", "600x200"]
    assert (submitted.num_images_per_size, submitted.prompt, submitted.output_format) == (
        2,
        "keep face centered",
        "jpeg",
    )
    # The key went to the API only; the Slack token never left for it.
    assert all("Authorization" not in s.headers for s in api.seen)
    assert [u["title"] for u in uploads] == ["300x300", "300x300 (alternative 2)", "600x200", "600x200 (alternative 2)"]
    assert all(Image.open(io.BytesIO(u["bytes"])).format == "PNG" for u in uploads)


async def test_an_iphone_heic_goes_to_the_service_as_an_upright_jpeg(tmp_path: Path) -> None:
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    outcome = await _resize_with(api, tmp_path, shared=(astronaut_heic(), "IMG_0042.HEIC", "image/heic"))
    assert [u["title"] for u in outcome.uploads] == ["300x300"]
    submitted = SmartResizeRequest.from_json(json.loads(next(s.body for s in api.seen if s.route == "submit")))
    header, encoded = submitted.image_url.split(",", 1)
    assert header == "data:image/jpeg;base64"  # the contract shows JPEG and PNG: no HEIC is sent to the service
    sent = Image.open(io.BytesIO(base64.b64decode(encoded)))
    upright = Image.open(io.BytesIO(astronaut())).convert("RGB").crop((0, 0, 384, 288))
    assert (sent.format, sent.size) == ("JPEG", (384, 288))  # turned as the phone showed it, at its own size
    assert np.abs(np.asarray(sent.convert("RGB"), float) - np.asarray(upright, float)).mean() < 4


async def test_a_prompt_of_the_full_length_keeps_its_mode_and_focus_words_within_the_apis_cap(tmp_path: Path) -> None:
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    words = ("keep the whole product and its label in view " * 30)[:MAX_PROMPT_CHARS].strip()
    words += "x" * (MAX_PROMPT_CHARS - len(words))  # exactly the most the app accepts
    outcome = await _resize_with(api, tmp_path, f"600x200 crop --focus 0.9,0.5 --prompt '{words}'")
    assert [u["title"] for u in outcome.uploads] == ["600x200"]  # delivered, not refused for its length
    submitted = SmartResizeRequest.from_json(json.loads(next(s.body for s in api.seen if s.route == "submit")))
    added = f"; crop to fill the frame; {focus_prompt((0.9, 0.5))}"
    assert len(submitted.prompt) <= MAX_PROMPT_CHARS and submitted.prompt.endswith(added)
    user_part = submitted.prompt.removesuffix(added)
    assert words.startswith(user_part) and len(user_part) > MAX_PROMPT_CHARS - len(added) - 50  # shortened, a little


async def test_a_service_answering_with_the_documents_output_block_delivers_too(tmp_path: Path) -> None:
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    api.result_shape = "images"  # {"images": [{"file_name", "content_type", "url"}], "description": ""}
    outcome = await _resize_with(api, tmp_path, "300x300 600x200")
    assert [u["title"] for u in outcome.uploads] == ["300x300", "600x200"]
    assert outcome.notices == []


async def test_a_submit_answered_with_the_documents_output_block_delivers_without_polling(tmp_path: Path) -> None:
    api = await FaultServer().start()
    api.submit_shape = "images"  # the document shows this block as the submit's answer too
    outcome = await _resize_with(api, tmp_path, "300x300 600x200")
    assert [u["title"] for u in outcome.uploads] == ["300x300", "600x200"]
    assert outcome.notices == []
    assert api.count("submit") == 1 and api.count("status_get") == api.count("status_post") == 0


async def test_a_result_host_that_fails_for_a_while_costs_a_retry_not_the_paid_job(tmp_path: Path) -> None:
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    # More failures than one download's retries: the job is tried again later, by its stored request id.
    api.script("media", *(respond(503) for _ in range(6)))
    outcome = await _resize_with(api, tmp_path)
    assert [u["title"] for u in outcome.uploads] == ["300x300"]
    assert outcome.notices == []
    assert api.count("submit") == 1  # polled again, not paid again
    assert api.count("media") == 7


async def test_results_on_a_private_host_the_service_named_are_refused_in_plain_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    api.media_origin = f"http://localhost:{api.port}"  # another origin than the API's, on loopback
    outcome = await _resize_with(api, tmp_path)
    [job], [notice] = outcome.jobs, outcome.notices
    assert job.state == "failed" and outcome.uploads == [] and api.count("media") == 0
    assert "FETCH_ALLOW_PRIVATE_NETWORKS" in notice and "Traceback" not in caplog.text


async def test_an_api_address_with_no_service_behind_it_is_the_admins_to_fix(tmp_path: Path) -> None:
    api = await FaultServer().start()
    outcome = await _resize_with(api, tmp_path, base_url=api.origin + "/smart-resize/v2")  # not /v1
    [job], [notice] = outcome.jobs, outcome.notices
    assert job.state == "failed" and api.jobs == {}
    assert "PIXAZO_BASE_URL" in notice and "start the resize again" not in notice


async def test_status_blips_are_retried_without_a_second_paid_submit(tmp_path: Path) -> None:
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    api.script("status_get", respond(503), respond(502))
    uploads = (await _resize_with(api, tmp_path)).uploads
    assert api.count("submit") == 1
    assert api.count("status_get") == 3
    assert [u["title"] for u in uploads] == ["300x300"]


async def test_a_garbled_poll_answer_polls_the_paid_job_again_instead_of_ending_it(tmp_path: Path) -> None:
    """A gateway's own JSON answered 200 to a status read: the service still has the job (and its charge), so the
    next attempt polls the same id again; ending the job there would have the requester pay for a second one."""
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    api.script("status_get", respond(200, {"message": "upstream timed out"}))  # a gateway's own JSON
    outcome = await _resize_with(api, tmp_path)
    assert api.count("submit") == 1
    assert api.count("status_get") == 2
    assert [u["title"] for u in outcome.uploads] == ["300x300"]
    assert outcome.notices == []
    assert [job.state for job in outcome.jobs] == ["done"]


async def test_a_paid_job_past_the_poll_deadline_is_polled_again_not_ended(tmp_path: Path) -> None:
    """Still PROCESSING when wait()'s deadline passes: the service goes on (and charges), so the job is tried again
    later on the same id, and delivered once, with one submit."""
    from bot.backends.hosted import HostedBackend

    api = await FaultServer().start()
    api.progression = [Status.PROCESSING] * 4 + [Status.COMPLETED]
    try:
        async with SlackEmulator() as slack:
            slack.add_channel("C1", members=("U1",))
            message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "crew.jpg")])
            async with running_app(slack, tmp_path, **_hosted(api)) as app:
                backend = app.services.backend
                assert isinstance(backend, HostedBackend)
                backend.client.deadline = 0.5  # two or three polls of the pacing's 0.2-0.3 s
                await app.command("300x300")
                await app.services.runner.idle()
                [job] = await app.services.store.recent_for_user("U1")
            uploads, notices = slack.uploads_in_thread("C1", message["ts"]), slack.ephemerals_for("U1")
    finally:
        await api.close()
    assert api.count("submit") == 1
    assert api.count("status_get") == 5
    assert [u["title"] for u in uploads] == ["300x300"]
    assert notices == [] and job.state == "done"


async def _left_by_a_crash(tmp_path: Path, file: dict[str, Any], message_ts: str, remote_id: str) -> Job:
    """A 300x300 job of ``file`` as a process killed while it was resizing leaves it: anchored, with ``remote_id``."""
    store = SqliteJobStore(tmp_path / "jobs.db")
    job, _ = await insert(
        store,
        make_job(
            f"upload:C1:{message_ts}:{file['id']}",
            source=JobSource.slack_file(file, message_ts),
            spec=ResizeSpec(sizes=(Size(300, 300),), output_format="png"),
            thread_ts=message_ts,
        ),
    )
    job = await store.update(job, state="anchored", remote_id=remote_id, fenced=False)
    await store.close()
    return job


async def test_after_a_restart_the_stored_request_is_polled_not_paid_again(tmp_path: Path) -> None:
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    try:
        async with SlackEmulator() as slack:
            slack.add_channel("C1", members=("U1",))
            file = slack.add_file(astronaut(), "crew.jpg")
            message = slack.post_user_message("C1", "U1", "", files=[file])
            remote_id = api.add_job(
                SmartResizeRequest(image_url="data:image/png;base64,AA==", target_sizes=["300x300"])
            )
            # What a process killed right after its submit was accepted leaves in the store.
            await _left_by_a_crash(tmp_path, file, message["ts"], remote_id)
            async with running_app(slack, tmp_path, **_hosted(api)) as app:
                await app.services.runner.idle()
            uploads = slack.uploads_in_thread("C1", message["ts"])
    finally:
        await api.close()
    assert api.count("submit") == 0  # no second paid job after the restart
    assert any(s.path.endswith(remote_id) for s in api.seen if s.route == "status_get")
    assert [u["title"] for u in uploads] == ["300x300"]


async def test_a_job_whose_process_died_mid_submit_is_submitted_again_and_delivered_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = await FaultServer().start()
    api.progression = [Status.COMPLETED]
    try:
        async with SlackEmulator() as slack:
            slack.add_channel("C1", members=("U1",))
            file = slack.add_file(astronaut(), "crew.jpg")
            message = slack.post_user_message("C1", "U1", "", files=[file])
            # What a process killed after sending its submit, before storing the answer, leaves in the store.
            job = await _left_by_a_crash(tmp_path, file, message["ts"], SUBMIT_IN_FLIGHT)
            async with running_app(slack, tmp_path, **_hosted(api)) as app:
                await app.services.runner.idle()
                [done] = await app.services.store.recent_for_user("U1")
            uploads = slack.uploads_in_thread("C1", message["ts"])
    finally:
        await api.close()
    assert [u["title"] for u in uploads] == ["300x300"]  # not dropped for want of an id
    assert api.count("submit") == 1 and done.remote_id in api.jobs  # the new request's id replaced the marker
    [warned] = [r for r in caplog.records if "mid-submit" in r.getMessage()]
    assert warned.levelname == "WARNING" and job.short_id in warned.getMessage() and warned.exc_info is None


async def test_hosted_failures_reach_the_user_in_plain_words(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    api = await FaultServer().start()
    api.script("submit", respond(402, {"error": "Payment required", "details": "No credits left"}))
    outcome = await _resize_with(api, tmp_path)
    [notice] = outcome.notices
    assert "credits" in notice
    assert "Traceback" not in notice
    # The operator hears of it at ERROR, with the job and what the service said, and no traceback.
    [logged] = [r for r in caplog.records if r.levelname == "ERROR" and outcome.jobs[0].short_id in r.getMessage()]
    assert "HTTP 402" in logged.getMessage() and "No credits left" in logged.getMessage()
    assert logged.exc_info is None


@pytest.mark.parametrize(
    "fault",
    [respond(503, accept=True), drop(accept=True), respond(200, '{"request_id": "smart-resize_', accept=True)],
    ids=["503", "dropped", "cut-short-200"],
)
async def test_a_submit_the_service_may_have_taken_is_never_sent_again(tmp_path: Path, fault: Fault) -> None:
    api = await FaultServer().start()
    api.script("submit", fault)  # the gateway failed after its backend accepted the job
    outcome = await _resize_with(api, tmp_path)
    [job], [notice] = outcome.jobs, outcome.notices
    assert api.count("submit") == 1 and len(api.jobs) == 1  # one paid job, however the runner retries
    assert job.state == "failed"
    assert "may still run" in notice and "wait a few minutes" in notice


async def test_a_completed_job_without_images_is_an_error_not_an_empty_delivery(tmp_path: Path) -> None:
    api = await FaultServer().start()
    empty = {"request_id": "", "status": "COMPLETED", "output": {"media_url": [], "media_type": "image/png"}}

    async def answer_empty() -> None:  # the status answer must name the job the submit created
        await eventually(lambda: bool(api.jobs))
        api.script("status_get", respond(200, {**empty, "request_id": next(iter(api.jobs))}))

    try:
        async with SlackEmulator() as slack:
            slack.add_channel("C1", members=("U1",))
            message = slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "crew.jpg")])
            async with running_app(slack, tmp_path, **_hosted(api)) as app:
                await asyncio.gather(app.command("300x300"), answer_empty())
                await app.services.runner.idle()
            uploads = slack.uploads_in_thread("C1", message["ts"])
            [notice] = slack.ephemerals_for("U1")
    finally:
        await api.close()
    assert uploads == []
    assert "Traceback" not in notice and "Smart Resize API" in notice


async def test_a_result_padded_with_empty_chunks_is_refused_without_being_walked(tmp_path: Path) -> None:
    """The result's size is read in the app's own process, on its event loop: a header of 200,000 empty private
    chunks (2.4 MB) is refused as not an image, as the engine refuses one, instead of Pillow stepping through them."""
    api = await FaultServer().start()
    image = encode(Image.new("RGB", (300, 300), "white"), "PNG")
    api.media_body = image[:33] + b"\x00\x00\x00\x00abCd\x78\x06\xe9\xb3" * 200_000 + image[33:]
    outcome = await _resize_with(api, tmp_path)
    assert outcome.uploads == []
    assert outcome.notices == ["The Smart Resize API returned something that isn't an image; please try again."]


async def test_hosted_backend_against_our_own_server(tmp_path: Path) -> None:
    uploads = await _through_our_own_server(tmp_path, "300x300 600x200")
    assert [(u["title"], Image.open(io.BytesIO(u["bytes"])).size) for u in uploads] == [
        ("300x300", (300, 300)),
        ("600x200", (600, 200)),
    ]


async def test_a_focal_point_reaches_our_own_server_as_words_and_frames_there(tmp_path: Path) -> None:
    from bot.engine import ResizeRequest, Size, resize

    # A wide scene with room to frame it two ways (auto would extend most photos at this size rather than crop).
    scene = encode(scene_with_subject(900, 400, (380, 120, 140, 160)), "JPEG")
    uploads = await _through_our_own_server(tmp_path, "400x300 --focus 0.95,0.5", image=scene)
    served = np.asarray(Image.open(io.BytesIO(uploads[0]["bytes"])).convert("RGB"), dtype=float)

    def engine(focus: tuple[float, float] | None) -> np.ndarray:
        request = ResizeRequest(sizes=(Size(400, 300),), output_format="jpeg", focus=focus)
        return np.asarray(Image.open(io.BytesIO(resize(scene, request).outputs[0].data)), dtype=float)

    # The server framed at the right, where the point is, not where the default framing goes.
    assert np.abs(served - engine((0.95, 0.5))).mean() < 3 < np.abs(served - engine(None)).mean()


async def test_a_mode_reaches_our_own_server_as_words_and_frames_there(tmp_path: Path) -> None:
    from bot.engine import ResizeRequest, Size, resize

    uploads = await _through_our_own_server(tmp_path, "600x200 crop")
    served = np.asarray(Image.open(io.BytesIO(uploads[0]["bytes"])).convert("RGB"), dtype=float)

    def engine(mode: str) -> np.ndarray:
        request = ResizeRequest(sizes=(Size(600, 200),), output_format="jpeg", mode=mode)  # type: ignore[arg-type]
        return np.asarray(Image.open(io.BytesIO(resize(astronaut(), request).outputs[0].data)), dtype=float)

    # Cropped there, as asked, where auto would have extended this wide size of a square photo.
    assert np.abs(served - engine("crop")).mean() < 3 < np.abs(served - engine("auto")).mean()
    assert "'crop to fill the frame'" in uploads[0]["message"]["text"]


async def _through_our_own_server(tmp_path: Path, command: str, image: bytes | None = None) -> list[dict[str, Any]]:
    from aiohttp.test_utils import TestServer

    from bot.config import ServerSettings
    from bot.smart_resize_api.server.app import PREFIX, SmartResizeServer

    settings = ServerSettings(keys=frozenset({"own-key"}), database_path=tmp_path / "api.db", workers=1)
    service = SmartResizeServer(settings, pool=SHARED_ENGINE.pool)
    api = TestServer(service.application(), host="127.0.0.1")
    await api.start_server()
    try:
        async with SlackEmulator() as slack:
            slack.add_channel("C1", members=("U1",))
            file = slack.add_file(image or astronaut(), "crew.jpg")
            message = slack.post_user_message("C1", "U1", "", files=[file])
            env = {
                "SMART_RESIZE_BACKEND": "hosted",
                "PIXAZO_API_KEY": "own-key",
                # On loopback, and no FETCH_ALLOW_PRIVATE_NETWORKS: results on the configured API's own origin are
                # fetched as its other calls are, not through the guard for links a stranger chose.
                "PIXAZO_BASE_URL": f"http://127.0.0.1:{api.port}{PREFIX}",
            }
            async with running_app(slack, tmp_path, **env) as app:
                await app.command(command)
                await app.services.runner.idle()
            return list(slack.uploads_in_thread("C1", message["ts"]))
    finally:
        await api.close()


async def test_a_source_too_large_for_the_gateway_points_the_admin_to_the_link_not_to_trying_again(
    tmp_path: Path,
) -> None:
    # A gateway whose body cap is under the image as a data URI (without PUBLIC_BASE_URL): trying again cannot help.
    api = await FaultServer().start()
    api.script("submit", respond(413, {"statusCode": 413, "message": "Request entity too large"}))
    outcome = await _resize_with(api, tmp_path)
    [job], [notice] = outcome.jobs, outcome.notices
    assert job.state == "failed" and api.count("submit") == 1
    assert "PUBLIC_BASE_URL" in notice and "try again later" not in notice
