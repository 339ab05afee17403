"""Each API key is a tenant: its requests, statuses and media are its own, and so are its rate and queue share."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.config import ServerSettings
from bot.smart_resize_api.client import SmartResizeClient
from bot.smart_resize_api.contract import KEY_HEADER, REQUEST_NOT_FOUND, SmartResizeRequest, Status
from bot.smart_resize_api.errors import JobFailed, NotFound
from bot.smart_resize_api.server.app import PREFIX, SmartResizeServer, SubmitRate, tenant_id, uuid7
from bot.smart_resize_api.server.store import QueueLimits
from bot.sqlite import is_postgres_url, sqlite_path
from tests.images import encode, photo
from tests.slack_api.harness import SHARED_ENGINE
from tests.smart_resize_api.server.databases import opened, settings_for

ALICE, BOB = "key-of-alice", "key-of-bob"
SOURCE = "data:image/png;base64," + base64.b64encode(encode(photo(120, 90), "PNG")).decode()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[str]:
    settings = ServerSettings(keys=frozenset({ALICE, BOB}), database_path=tmp_path / "api.db", workers=1)
    server = TestServer(SmartResizeServer(settings, pool=SHARED_ENGINE.pool).application(), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


def _client(session: aiohttp.ClientSession, origin: str, key: str) -> SmartResizeClient:
    return SmartResizeClient(session, key, f"{origin}{PREFIX}", poll_interval=(0.05, 0.1))


async def _answer(
    session: aiohttp.ClientSession, method: str, url: str, key: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {KEY_HEADER: key} if key is not None else {}
    async with session.request(method, url, json=body, headers=headers) as response:
        is_json = response.content_type == "application/json"
        return response.status, await response.json() if is_json else await response.read()


async def test_another_keys_request_is_not_found_on_every_route(api: str) -> None:
    async with aiohttp.ClientSession() as session:
        alice = _client(session, api, ALICE)
        job = await alice.submit(SmartResizeRequest(SOURCE, ["64x64"]))
        done = await alice.wait(job)
        [media] = done.media_urls
        rid = done.request_id
        not_found = (404, REQUEST_NOT_FOUND.to_json())
        routes = [
            ("GET", f"{api}/v2/requests/status/{rid}", None),
            ("POST", f"{api}/v2/requests/status/{rid}", None),
            ("POST", f"{api}{PREFIX}/smart-resize-request-result", {"request_id": rid}),
            ("POST", f"{api}/smart-resize-request-result", {"request_id": rid}),
            ("GET", media, None),
        ]
        for method, url, body in routes:
            # The owner sees it; the other key gets exactly what an unknown id gets.
            owner_status, _ = await _answer(session, method, url, ALICE, body)
            assert owner_status == 200, url
            assert await _answer(session, method, url, BOB, body) == not_found, url
            unknown = url.replace(rid, "smart-resize_00000000-0000-7000-8000-000000000000")
            unknown_body = {"request_id": "smart-resize_00000000-0000-7000-8000-000000000000"} if body else None
            assert await _answer(session, method, unknown, BOB, unknown_body) == not_found, url
        # A media link is a capability, like a CDN URL: no key fetches it; a wrong key does not.
        assert (await _answer(session, "GET", media, None))[0] == 200
        assert (await _answer(session, "GET", media, "not-a-key"))[0] == 401


async def test_the_client_of_another_key_gets_not_found(api: str) -> None:
    async with aiohttp.ClientSession() as session:
        job = await _client(session, api, ALICE).submit(SmartResizeRequest(SOURCE, ["64x64"]))
        with pytest.raises(NotFound) as caught:
            await _client(session, api, BOB).status(job.request_id, max_attempts=1)
    assert caught.value.error == "Resource not found" and "request_id" in (caught.value.details or "")


async def test_completed_answers_carry_both_shapes_of_the_document(api: str) -> None:
    async with aiohttp.ClientSession() as session:
        alice = _client(session, api, ALICE)
        job = await alice.submit(SmartResizeRequest(SOURCE, ["64x64", "32x48"], output_format="webp"))
        done = await alice.wait(job)
        status, body = await _answer(session, "GET", f"{api}/v2/requests/status/{done.request_id}", ALICE)
    assert status == 200 and body["status"] == "COMPLETED"
    urls = body["output"]["media_url"]
    assert body["output"]["media_type"] == "image/webp" and len(urls) == 2
    assert body["images"] == [
        {"file_name": "output_64x64_0.webp", "content_type": "image/webp", "url": urls[0]},
        {"file_name": "output_32x48_0.webp", "content_type": "image/webp", "url": urls[1]},
    ]
    # The engine's notes, size by size (this small synthetic photo is extended rather than cropped).
    assert body["description"].startswith("64x64: ") and " 32x48: " in body["description"]


async def test_one_tenants_burst_is_refused_for_that_tenant_only(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(
        database_url, tmp_path, keys=frozenset({ALICE, BOB}), workers=1, queue_size=4, requests_per_minute=60
    )
    service = SmartResizeServer(settings, pool=SHARED_ENGINE.pool)
    server = TestServer(service.application(), host="127.0.0.1")
    await server.start_server()
    gate, working = asyncio.Event(), asyncio.Event()
    real_process = service._process

    async def held(claimed: Any) -> None:  # the worker waits, so the queue fills as it would under load
        working.set()
        await gate.wait()
        await real_process(claimed)

    service._process = held  # type: ignore[method-assign]
    origin = f"http://127.0.0.1:{server.port}"
    body = {"image_url": SOURCE, "target_sizes": ["64x64"]}
    try:
        async with aiohttp.ClientSession() as session:
            submit = f"{origin}{PREFIX}/smart-resize-request"
            burst = [await _answer(session, "POST", submit, ALICE, body)]
            await asyncio.wait_for(working.wait(), 10)  # however slow the machine, the first is claimed first
            burst += [await _answer(session, "POST", submit, ALICE, body) for _ in range(4)]
            # One is being worked on; a share is half the queue of 4: two wait; the rest are refused.
            assert [status for status, _ in burst] == [200, 200, 200, 429, 429]
            assert "share of the queue" in burst[-1][1]["details"]
            # Bob is not held up by Alice's burst.
            assert (await _answer(session, "POST", submit, BOB, body))[0] == 200
            gate.set()
    finally:
        await server.close()


def test_the_rate_is_per_tenant_with_a_burst_then_a_steady_pace() -> None:
    now = [0.0]
    rate = SubmitRate(per_minute=3, clock=lambda: now[0])
    assert [rate.take("alice") for _ in range(3)] == [None, None, None]
    wait = rate.take("alice")
    assert wait == pytest.approx(20.0)  # one token every 20 s
    assert rate.take("bob") is None  # another tenant has its own bucket
    now[0] += 20.0
    assert rate.take("alice") is None
    assert rate.take("alice") == pytest.approx(20.0)


async def test_a_rate_limited_key_gets_429_with_retry_after(tmp_path: Path) -> None:
    settings = ServerSettings(keys=frozenset({ALICE, BOB}), database_path=tmp_path / "r.db", requests_per_minute=2)
    server = TestServer(SmartResizeServer(settings, pool=SHARED_ENGINE.pool).application(), host="127.0.0.1")
    await server.start_server()
    submit = f"http://127.0.0.1:{server.port}{PREFIX}/smart-resize-request"
    try:
        async with aiohttp.ClientSession() as session:
            body = {"image_url": SOURCE, "target_sizes": ["64x64"]}
            for _ in range(2):
                assert (await _answer(session, "POST", submit, ALICE, body))[0] == 200
            async with session.post(submit, json=body, headers={KEY_HEADER: ALICE}) as response:
                assert response.status == 429
                assert 25 <= int(response.headers["Retry-After"]) <= 30
                assert "2 requests a minute" in (await response.json())["details"]
            assert (await _answer(session, "POST", submit, BOB, body))[0] == 200
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("target_sizes", ["1x1"], ("Invalid target_sizes", "between 16 and 8192")),
        ("target_sizes", ["9000x9000"], ("Invalid target_sizes", "between 16 and 8192")),
        ("image_url", "http://127.0.0.1:9/a.png", ("Invalid image_url", "FETCH_ALLOW_PRIVATE_NETWORKS")),
        ("image_url", "http://169.254.169.254/latest", ("Invalid image_url", "private or internal address")),
        ("image_url", "http://localhost:9/a.png", ("Invalid image_url", "private or internal address")),
        ("num_images_per_size", 10, ("Too many images", "the limit is 20 per request")),
        ("output_format", "gif", ("Invalid output_format", "Allowed: jpeg, png, webp")),
        ("seed", "7", ("Invalid seed", "between 0 and")),
    ],
)
async def test_what_cannot_run_is_refused_at_submit(
    api: str, field: str, value: object, expected: tuple[str, str]
) -> None:
    body = {"image_url": SOURCE, "target_sizes": ["64x64", "100x100", "200x100"], field: value}
    async with aiohttp.ClientSession() as session:
        status, answer = await _answer(session, "POST", f"{api}{PREFIX}/smart-resize-request", ALICE, body)
    assert status == 400 and set(answer) == {"error", "details"}
    assert answer["error"] == expected[0] and expected[1] in answer["details"]
    assert "Slack" not in answer["details"]


async def test_safety_tolerance_is_taken_as_text_or_as_a_number(api: str) -> None:
    async with aiohttp.ClientSession() as session:
        for value in ("5", 5):
            body = {"image_url": SOURCE, "target_sizes": ["64x64"], "safety_tolerance": value}
            status, answer = await _answer(session, "POST", f"{api}{PREFIX}/smart-resize-request", ALICE, body)
            assert status == 200 and answer["status"] == "QUEUED"


def test_request_ids_are_uuid7_in_the_documents_form() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == 50
    stamps = [i.int >> 80 for i in ids]
    assert stamps == sorted(stamps)  # time-ordered, to the millisecond


async def test_submitted_ids_look_like_the_seeds(api: str) -> None:
    async with aiohttp.ClientSession() as session:
        job = await _client(session, api, ALICE).submit(SmartResizeRequest(SOURCE, ["64x64"]))
    prefix, _, value = job.request_id.partition("_")
    assert prefix == "smart-resize" and uuid.UUID(value).version == 7
    assert job.status is Status.QUEUED


async def _rewrite_bodies(database_url: str, body: str) -> None:
    """Every stored body replaced, as a release with other rules would have stored it."""
    if is_postgres_url(database_url):
        import asyncpg

        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute("UPDATE api_requests SET body = $1", body)
        finally:
            await connection.close()
        return
    with sqlite3.connect(sqlite_path(database_url)) as connection:
        connection.execute("UPDATE api_requests SET body = ?", (body,))


async def test_a_stored_request_that_no_longer_reads_ends_alone_and_frees_its_place(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path, keys=frozenset({ALICE}), queue_size=1, queue_per_key=1)
    async with opened(settings, "an older release") as [store]:
        old = SmartResizeRequest(SOURCE, ["64x64"])
        await store.add("smart-resize_old", tenant_id(ALICE), old, 1.0, QueueLimits(size=1, share=1))
    await _rewrite_bodies(database_url, '{"image_url": "data:,", "target_sizes": ["8x8"]}')
    server = TestServer(SmartResizeServer(settings, pool=SHARED_ENGINE.pool).application(), host="127.0.0.1")
    await server.start_server()
    origin = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as session:
            alice = _client(session, origin, ALICE)
            with pytest.raises(JobFailed) as failed:
                await alice.wait("smart-resize_old")
            assert failed.value.job_status is Status.ERROR
            # Its place in the queue (the key's only one) is free again: a new request is taken and runs.
            done = await alice.wait(await alice.submit(SmartResizeRequest(SOURCE, ["64x64"])))
            assert done.status is Status.COMPLETED
    finally:
        await server.close()


async def _raw(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    answer = await reader.read(4096)
    writer.close()
    return answer


async def test_headers_no_client_should_send_are_refused_not_a_500(tmp_path: Path) -> None:
    keyed = TestServer(
        SmartResizeServer(ServerSettings(keys=frozenset({ALICE}), database_path=tmp_path / "k.db")).application(),
        host="127.0.0.1",
    )
    keyless_settings = ServerSettings(database_path=tmp_path / "n.db")
    keyless = TestServer(SmartResizeServer(keyless_settings).application(), host="127.0.0.1")
    await keyed.start_server()
    await keyless.start_server()
    try:
        # A key that is not UTF-8, and Hosts that are not hosts: each a refusal, never a server error.
        head = b"GET /v2/requests/status/x HTTP/1.1\r\nHost: a\r\nOcp-Apim-Subscription-Key: \xff\xfe\r\n\r\n"
        bad_key = await _raw(keyed.port, head)
        assert bad_key.startswith(b"HTTP/1.1 401")
        for host in (b"x:y", b"h:99999"):
            answer = await _raw(keyless.port, b"GET /v2/requests/status/x HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 403"), answer[:40]
        async with aiohttp.ClientSession() as session:
            body = {"image_url": "http://a..b/x.png", "target_sizes": ["64x64"]}
            submit = f"http://127.0.0.1:{keyed.port}{PREFIX}/smart-resize-request"
            status, answer = await _answer(session, "POST", submit, ALICE, body)
        assert (status, answer["error"]) == (400, "Invalid image_url")
    finally:
        await keyed.close()
        await keyless.close()
