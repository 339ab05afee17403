"""The hosted service fetches a private Slack image from a signed, expiring link the app serves (PUBLIC_BASE_URL)."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from bot.jobs.model import Job, JobSource
from bot.jobs.source_links import SourceLinks
from tests.factories import insert, make_job
from tests.images import astronaut, astronaut_heic
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.harness import RunningApp, free_port, own_api, running_app
from tests.smart_resize_api.fault_server import API_KEY, FaultServer, respond


async def _held_job(app: RunningApp, message: dict[str, object]) -> Job:
    """A job on the shared file that the runner leaves alone during the test: only its link is looked at."""
    file = message["files"][0]  # type: ignore[index]
    source = JobSource.slack_file(file, str(message["ts"]))
    job, _ = await insert(app.services.store, make_job("k1", source=source, not_before=time.time() + 300))
    return job


def _share(slack: SlackEmulator) -> dict[str, object]:
    return slack.post_user_message("C1", "U1", "", files=[slack.add_file(astronaut(), "crew.jpg")])


async def test_our_own_server_fetches_the_link_not_a_data_uri(slack: SlackEmulator, tmp_path: Path) -> None:
    message = _share(slack)
    port = free_port()
    async with own_api(tmp_path) as api, running_app(slack, tmp_path, port=port, **api.hosted_env(port)) as app:
        await app.command("300x300")
        await app.services.runner.idle()
        [image_url] = api.submitted_image_urls()
    assert [u["title"] for u in slack.uploads_in_thread("C1", message["ts"])] == ["300x300"]
    assert image_url.startswith(f"http://127.0.0.1:{port}/sources/")  # a link it fetched, not a data URI


async def test_a_link_serves_only_its_open_job_until_it_expires(slack: SlackEmulator, tmp_path: Path) -> None:
    message = _share(slack)
    file = message["files"][0]  # type: ignore[index]
    port = free_port()
    env = {"PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    async with running_app(slack, tmp_path, port=port, **env) as app:
        job = await _held_job(app, message)
        links = app.services.links
        assert links is not None
        link = links.link(job.id)
        async with aiohttp.ClientSession() as session:
            async with session.get(link) as response:  # re-fetched from Slack: nothing was held in memory
                assert (response.status, response.content_type) == (200, "image/jpeg")
                assert await response.read() == astronaut()
                assert response.headers["Cache-Control"] == "no-store"
            expired = SourceLinks(links.base_url, app.services.settings.source_link_key, ttl_s=-1).link(job.id)
            tampered = link[:-2] + ("AA" if not link.endswith("AA") else "BB")
            for bad in (expired, tampered, link.replace(job.id, "0" * 32), f"http://127.0.0.1:{port}/sources/x"):
                async with session.get(bad) as response:
                    assert response.status == 404
            await app.services.store.update(job, state="done", fenced=False)
            async with session.get(link) as response:  # the job is over: so is its link
                assert response.status == 404
    assert slack.downloads and all(d["file_id"] == file["id"] for d in slack.downloads)  # type: ignore[index]


async def test_a_link_whose_image_slack_cannot_give_now_answers_503_in_one_log_line(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    message = _share(slack)
    port = free_port()
    async with running_app(slack, tmp_path, port=port, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}") as app:
        job = await _held_job(app, message)
        assert app.services.links is not None
        link = app.services.links.link(job.id)
        await slack.go_offline()  # Slack's file host out of reach, and the image not in memory (a restart, say)
        try:
            async with aiohttp.ClientSession() as session, session.get(link) as response:
                status, retry_after = response.status, response.headers.get("Retry-After")
        finally:
            await slack.come_back()
    assert (status, retry_after) == (503, "5")  # the service fetching it may try again; the link is good
    assert f"source link for job {job.short_id}: not served now: Slack is unreachable at" in caplog.text
    assert not [record for record in caplog.records if record.exc_info]


async def test_a_restart_keeps_serving_the_links_it_handed_out(slack: SlackEmulator, tmp_path: Path) -> None:
    message = _share(slack)
    port = free_port()
    env = {"PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    async with running_app(slack, tmp_path, port=port, **env) as app:
        job = await _held_job(app, message)
        assert app.services.links is not None
        link = app.services.links.link(job.id)
    async with (
        running_app(slack, tmp_path, port=port, **env),
        aiohttp.ClientSession() as session,
        session.get(link) as response,  # a new process, the same key: the token still checks out
    ):
        assert response.status == 200 and await response.read() == astronaut()


@pytest.mark.parametrize("public", [True, False], ids=["link", "data-uri"])
async def test_a_service_that_refuses_the_image_gets_the_admin_one_setting(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, public: bool
) -> None:
    api = await FaultServer().start()
    api.script("submit", respond(400, {"error": "Invalid image_url", "details": "image_url could not be fetched"}))
    _share(slack)
    port = free_port()
    env = {
        "SMART_RESIZE_BACKEND": "hosted",
        "PIXAZO_API_KEY": API_KEY,
        "PIXAZO_BASE_URL": api.base_url,
        **({"PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"} if public else {}),
    }
    try:
        async with running_app(slack, tmp_path, port=port, **env) as app:
            await app.command("300x300")
            await app.services.runner.idle()
    finally:
        await api.close()
    [notice] = slack.ephemerals_for("U1")
    assert "PUBLIC_BASE_URL" in notice and "Traceback" not in notice
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert ("reachable from the internet" if public else "set PUBLIC_BASE_URL so it gets a link") in logged
    sent = api.seen[0].body.decode()
    assert (f"http://127.0.0.1:{port}/sources/" in sent) is public and ("data:image/jpeg" in sent) is not public


async def test_a_heic_is_served_by_its_link_as_the_jpeg_the_hosted_service_reads(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    message = slack.post_user_message(
        "C1", "U1", "", files=[slack.add_file(astronaut_heic(), "IMG_0042.HEIC", "image/heic")]
    )
    port = free_port()
    async with own_api(tmp_path) as api, running_app(slack, tmp_path, port=port, **api.hosted_env(port)) as app:
        job = await _held_job(app, message)  # not in memory: the link fetches it from Slack again, as after a restart
        assert app.services.links is not None
        async with aiohttp.ClientSession() as session, session.get(app.services.links.link(job.id)) as response:
            status, content_type, body = response.status, response.content_type, await response.read()
    assert (status, content_type) == (200, "image/jpeg")
    assert body[:3] == b"\xff\xd8\xff" and len(body) > 1000
