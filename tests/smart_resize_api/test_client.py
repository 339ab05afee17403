"""SmartResizeClient end to end over loopback against FaultServer, and the retry policy on its own.

Time is faked (``FakeTime``): backoff and poll waits are recorded instead of slept, so the tests assert the exact
delays the policy chose. Per-call HTTP timeouts stay real and short, to exercise genuinely slow answers.
"""

from __future__ import annotations

import base64
import json
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.smart_resize_api.client import Downloaded, SmartResizeClient, Timeouts
from bot.smart_resize_api.contract import KEY_HEADER, SmartResizeRequest, Status, StatusResponse
from bot.smart_resize_api.errors import (
    ApiStatusError,
    BadRequest,
    DownloadError,
    DownloadTooLarge,
    DownloadWrongType,
    Forbidden,
    JobFailed,
    JobTimedOut,
    MalformedResponse,
    NotFound,
    PaymentRequired,
    RateLimited,
    ServerError,
    SmartResizeError,
    TransportError,
    Unauthorized,
)
from bot.smart_resize_api.retry import (
    Failure,
    FailureInfo,
    Operation,
    RetryPolicy,
    call_with_retries,
    compute_delay,
    is_retryable,
    parse_retry_after,
    transport_failure,
)
from bot.user_errors import user_message
from tests.smart_resize_api.fault_server import (
    API_KEY,
    APIM_401,
    FaultServer,
    drop,
    png_bytes,
    respond,
    slow,
)

POLICY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, max_retry_after=30.0)
IMAGE = "https://images.example/source.jpeg"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    running = await FaultServer().start()
    yield running
    await running.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def make_client(
    session: aiohttp.ClientSession, base_url: str, fake: FakeTime, *, api_key: str = API_KEY, **options: Any
) -> SmartResizeClient:
    settings: dict[str, Any] = {
        "retry": POLICY,
        "timeouts": Timeouts(connect=1.0, submit=0.4, status=0.4, download=0.4),
        "sleep": fake.sleep,
        "clock": fake.clock,
        "rand": random.Random(1234).random,
    }
    return SmartResizeClient(session, api_key, base_url, **(settings | options))


@pytest.fixture
def client(session: aiohttp.ClientSession, server: FaultServer, fake: FakeTime) -> SmartResizeClient:
    return make_client(session, server.base_url, fake)


def request(**options: Any) -> SmartResizeRequest:
    return SmartResizeRequest(IMAGE, ["1024x1024", "1920x1080"], **options)


@dataclass(frozen=True)
class Ran:
    request_id: str
    status: StatusResponse
    images: list[Downloaded]


async def run(client: SmartResizeClient, api_request: SmartResizeRequest) -> Ran:
    """What an app does with the client: submit, wait, download every image in the service's order."""
    handle = await client.submit(api_request)
    final = await client.wait(handle)
    images = [await client.download(url, request_id=handle.request_id) for url in final.media_urls]
    return Ran(handle.request_id, final, images)


def assert_backoff_bounds(sleeps: list[float], policy: RetryPolicy = POLICY) -> None:
    for retry, delay in enumerate(sleeps):
        assert 0 <= delay <= min(policy.max_delay, policy.base_delay * 2**retry), (retry, delay)


# --- the happy path ---------------------------------------------------------------------------------------------


async def test_run_submits_once_polls_to_completion_and_downloads_every_image(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    result = await run(client, request(num_images_per_size=2, seed=7))

    assert result.request_id in server.jobs
    assert server.count("submit") == 1
    assert server.count("status_get") == 3  # QUEUED, PROCESSING, COMPLETED
    assert server.count("media") == 4  # 2 sizes x 2 variants
    assert [image.data for image in result.images] == [server.media_body] * 4
    assert {image.content_type for image in result.images} == {"image/png"}
    assert result.status.status is Status.COMPLETED
    assert client.status_route == "get"
    # A wait before each of the three polls (the submit's answer was the first status read), each 2-3 s as the
    # contract asks, each ending on the 0.25 s poll grid.
    assert len(fake.sleeps) == 3 and all(2.0 <= s <= 3.0 for s in fake.sleeps)
    wake_ups = [1000.0 + sum(fake.sleeps[: i + 1]) for i in range(3)]  # FakeTime starts at 1000 and only sleeps
    assert all((wake / 0.25) == pytest.approx(round(wake / 0.25)) for wake in wake_ups)

    submit = next(s for s in server.seen if s.route == "submit")
    assert submit.headers["Content-Type"] == "application/json"
    assert submit.headers["Cache-Control"] == "no-cache"
    assert submit.headers[KEY_HEADER] == API_KEY
    assert SmartResizeRequest.from_json(json.loads(submit.body)) == request(num_images_per_size=2, seed=7)


async def test_key_goes_only_to_the_api_origin(
    session: aiohttp.ClientSession, server: FaultServer, fake: FakeTime
) -> None:
    cdn = await FaultServer().start()
    try:
        server.media_origin = cdn.origin
        server.polling_origin = cdn.origin  # a polling URL elsewhere must not be followed with the key
        client = make_client(session, server.base_url, fake)
        result = await run(client, request())
        assert len(result.images) == 2
        assert cdn.count("media") == 2 and server.count("media") == 0
        assert cdn.count("status_get") == 0 and server.count("status_get") == 3
        assert all(KEY_HEADER not in seen.headers for seen in cdn.seen)
        assert all(seen.headers.get(KEY_HEADER) == API_KEY for seen in server.seen)
    finally:
        await cdn.close()


async def test_key_is_never_shown(client: SmartResizeClient, server: FaultServer, fake: FakeTime) -> None:
    assert API_KEY not in repr(client) and "***" in repr(client)
    server.script("submit", respond(401, APIM_401))
    with pytest.raises(Unauthorized) as caught:
        await client.submit(request())
    assert API_KEY not in str(caught.value) and API_KEY not in user_message(caught.value)


# --- retries: submit ----------------------------------------------------------------------------------------------


async def test_submit_retries_429_and_honours_retry_after(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    busy = {"error": "Too Many Requests", "details": "Rate limit exceeded"}
    server.script("submit", respond(429, busy, {"Retry-After": "7"}), respond(429, busy, {"retry-after-ms": "1500"}))
    handle = await client.submit(request())
    assert handle.request_id in server.jobs and handle.status is Status.QUEUED
    assert server.count("submit") == 3
    # What the server asked, and at most a tenth more: clients told the same moment do not all come back in it.
    assert 7.0 <= fake.sleeps[0] <= 7.7 and 1.5 <= fake.sleeps[1] <= 1.65
    assert len(server.jobs) == 1


async def test_retry_after_is_capped_and_http_dates_are_read(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    in_ten_seconds = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    server.script(
        "submit",
        respond(429, None, {"Retry-After": "3600"}),
        respond(429, None, {"Retry-After": in_ten_seconds}),
    )
    await client.submit(request())
    assert POLICY.max_retry_after <= fake.sleeps[0] <= 1.1 * POLICY.max_retry_after
    assert 8.0 <= fake.sleeps[1] <= 11.0


async def test_submit_gives_up_after_max_attempts_of_429(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    server.script("submit", *[respond(429, {"error": "Too Many Requests", "details": "slow down"})] * 5)
    with pytest.raises(RateLimited) as caught:
        await client.submit(request())
    assert server.count("submit") == POLICY.max_attempts
    assert len(fake.sleeps) == POLICY.max_attempts - 1
    assert_backoff_bounds(fake.sleeps)
    assert caught.value.status_code == 429 and caught.value.request_id is None
    assert not server.jobs


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (respond(500, {"error": "Internal Server Error", "details": "boom"}, accept=True), ServerError),
        (respond(502, "<html>Bad Gateway</html>", accept=True), ServerError),
        (respond(503, None, {"Retry-After": "1"}, accept=True), ServerError),
        (drop(accept=True), TransportError),
        (slow(1.0), TransportError),  # our 0.4 s timeout fires after the request went out
    ],
    ids=["500", "502", "503-retry-after", "dropped", "read-timeout"],
)
async def test_submit_is_never_repeated_once_the_service_may_have_it(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime, fault: Any, expected: type[SmartResizeError]
) -> None:
    server.script("submit", fault)
    with pytest.raises(expected) as caught:
        await client.submit(request())
    assert type(caught.value) is expected
    assert server.count("submit") == 1
    assert fake.sleeps == []
    if fault.accept:
        assert len(server.jobs) == 1  # the service did take it: one paid job, not two
    if isinstance(caught.value, TransportError):
        assert caught.value.failure is Failure.AFTER_SENT
        assert "may still run" in user_message(caught.value)


async def test_submit_is_retried_when_the_connection_is_refused(fake: FakeTime) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    attempts: list[str] = []
    trace = aiohttp.TraceConfig()

    async def on_start(_session: Any, _context: Any, params: aiohttp.TraceRequestStartParams) -> None:
        attempts.append(str(params.url))

    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = make_client(session, f"http://127.0.0.1:{closed_port}/smart-resize/v1", fake)
        with pytest.raises(TransportError) as caught:
            await client.submit(request())
    assert caught.value.failure is Failure.NOT_SENT
    assert len(attempts) == POLICY.max_attempts
    assert all(url.endswith("/smart-resize/v1/smart-resize-request") for url in attempts)
    assert len(fake.sleeps) == POLICY.max_attempts - 1
    assert_backoff_bounds(fake.sleeps)
    assert "couldn't reach" in user_message(caught.value)


# --- retries: reads -----------------------------------------------------------------------------------------------


async def test_status_retries_a_burst_of_5xx(client: SmartResizeClient, server: FaultServer, fake: FakeTime) -> None:
    request_id = server.add_job(request())
    server.script("status_get", respond(502, "bad gateway"), respond(503, None), respond(500, {"error": "x"}))
    answer = await client.status(request_id)
    assert answer.request_id == request_id and answer.status is Status.QUEUED
    assert server.count("status_get") == 4
    assert len(fake.sleeps) == 3
    assert_backoff_bounds(fake.sleeps)


async def test_status_gives_up_after_max_attempts(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    request_id = server.add_job(request())
    server.script("status_get", *[respond(503, {"error": "Service Unavailable", "details": "try later"})] * 6)
    with pytest.raises(ServerError) as caught:
        await client.status(request_id)
    assert server.count("status_get") == POLICY.max_attempts
    assert (caught.value.request_id, caught.value.status_code) == (request_id, 503)
    assert (caught.value.error, caught.value.details) == ("Service Unavailable", "try later")


async def test_status_retries_with_decorrelated_jitter(
    session: aiohttp.ClientSession, server: FaultServer, fake: FakeTime
) -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=4.0, jitter="decorrelated")
    client = make_client(session, server.base_url, fake, retry=policy)
    request_id = server.add_job(request())
    server.script("status_get", *[respond(500)] * 5)
    await client.status(request_id)
    assert len(fake.sleeps) == 5
    previous = policy.base_delay
    for delay in fake.sleeps:
        assert policy.base_delay <= delay <= min(policy.max_delay, 3 * previous)
        previous = delay


async def test_a_slow_status_answer_times_out_and_is_retried(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    request_id = server.add_job(request())
    server.script("status_get", slow(1.0))
    answer = await client.status(request_id)
    assert answer.status is Status.QUEUED
    assert server.count("status_get") == 2
    assert len(fake.sleeps) == 1


async def test_a_dropped_connection_on_the_result_route_is_retried(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    server.get_route_missing = 404
    request_id = server.add_job(request())
    server.script("status_post", drop())
    answer = await client.status(request_id)
    assert answer.request_id == request_id
    assert server.count("status_post") == 2
    assert len(fake.sleeps) == 1


async def test_wait_rides_out_an_outage_longer_than_max_attempts(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    handle = await client.submit(request())
    server.script("status_get", *[respond(503)] * (POLICY.max_attempts + 3))
    final = await client.wait(handle)
    assert final.status is Status.COMPLETED
    assert server.count("status_get") == POLICY.max_attempts + 3 + 3


# --- status route fallback ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [404, 405])
async def test_wait_falls_back_to_the_post_result_route_and_remembers_it(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime, missing: int
) -> None:
    server.get_route_missing = missing
    handle = await client.submit(request())
    final = await client.wait(handle)
    assert final.status is Status.COMPLETED
    assert server.count("status_get") == 1
    assert server.count("status_post") == 3
    assert client.status_route == "post"
    posts = [s for s in server.seen if s.route == "status_post"]
    assert {s.body for s in posts} == {f'{{"request_id": "{handle.request_id}"}}'.encode()}
    assert all(s.headers["Content-Type"] == "application/json" and s.headers[KEY_HEADER] == API_KEY for s in posts)


async def test_an_unknown_job_is_not_found_on_both_routes(client: SmartResizeClient, server: FaultServer) -> None:
    with pytest.raises(NotFound) as caught:
        await client.status("smart-resize_missing")
    assert caught.value.request_id == "smart-resize_missing"
    assert (caught.value.error, caught.value.details) == (
        "Resource not found",
        "The requested endpoint does not exist",
    )
    assert (server.count("status_get"), server.count("status_post")) == (1, 1)
    assert client.status_route is None


async def test_once_get_works_a_404_is_final(client: SmartResizeClient, server: FaultServer) -> None:
    await client.status(server.add_job(request()))
    with pytest.raises(NotFound):
        await client.status("smart-resize_missing")
    assert server.count("status_post") == 0


# --- malformed answers and job outcomes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["{not json", "[]", {"request_id": "other-job", "status": "QUEUED"}, {"status": "DONE"}, ""],
    ids=["invalid-json", "array", "other-request-id", "bad-status", "empty"],
)
async def test_malformed_status_answers(client: SmartResizeClient, server: FaultServer, body: Any) -> None:
    request_id = server.add_job(request())
    server.script("status_get", respond(200, body))
    with pytest.raises(MalformedResponse) as caught:
        await client.status(request_id)
    assert caught.value.request_id == request_id
    assert server.count("status_get") == 1


async def test_malformed_submit_answer_is_not_resubmitted(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    server.script("submit", respond(200, "<html>maintenance</html>", accept=True))
    with pytest.raises(MalformedResponse):
        await client.submit(request())
    assert server.count("submit") == 1 and len(server.jobs) == 1 and fake.sleeps == []


@pytest.mark.parametrize(("final", "charged"), [(Status.FAILED, None), (Status.ERROR, False)])
async def test_failed_and_error_jobs(
    client: SmartResizeClient, server: FaultServer, final: Status, charged: bool | None
) -> None:
    server.progression = [Status.QUEUED, Status.PROCESSING, final]
    server.job_error = "Content policy violation"
    handle = await client.submit(request())
    with pytest.raises(JobFailed) as caught:
        await client.wait(handle)
    error = caught.value
    assert (error.request_id, error.job_status, error.error) == (handle.request_id, final, "Content policy violation")
    assert error.charged is charged
    if final is Status.ERROR:
        assert "did not charge" in user_message(error)
    else:
        assert "(Content policy violation)" in user_message(error)
    assert server.count("media") == 0


async def test_wait_reads_at_once_given_only_an_id_and_an_interval_after_a_submit(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    resumed = await client.submit(request())
    await client.wait(resumed.request_id)  # as after a restart: nothing is known of the job, so ask now
    assert len(fake.sleeps) == server.count("status_get") - 1

    fake.sleeps.clear()
    polls_before = server.count("status_get")
    await client.wait(await client.submit(request()))  # the submit's answer was a status read already
    assert len(fake.sleeps) == server.count("status_get") - polls_before


async def test_wait_stops_at_the_deadline(client: SmartResizeClient, server: FaultServer, fake: FakeTime) -> None:
    server.progression = [Status.PROCESSING]
    handle = await client.submit(request())
    started = fake.now
    with pytest.raises(JobTimedOut) as caught:
        await client.wait(handle, deadline=10.0)
    assert caught.value.request_id == handle.request_id
    assert caught.value.last_status is Status.PROCESSING and caught.value.timeout_s == 10.0
    assert fake.now - started == pytest.approx(10.0)
    assert 4 <= server.count("status_get") <= 6
    assert all(0 < s <= 3.0 for s in fake.sleeps)
    assert "10 seconds" in user_message(caught.value)


# --- HTTP errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "Invalid target_sizes format", "details": "Each item ... 'widthxheight'"}, BadRequest),
        (401, APIM_401, Unauthorized),
        (402, {"error": "Payment Required", "details": "Insufficient credits"}, PaymentRequired),
        (403, {"error": "Forbidden", "details": "Subscription inactive"}, Forbidden),
        (404, {"error": "Resource not found", "details": "The requested endpoint does not exist"}, NotFound),
        (418, "teapot", ApiStatusError),
        (301, "", ApiStatusError),  # redirects are not followed: the key must not travel with them
    ],
)
async def test_http_errors_map_to_one_class_each(
    client: SmartResizeClient,
    server: FaultServer,
    fake: FakeTime,
    status: int,
    body: Any,
    expected: type[ApiStatusError],
) -> None:
    server.script("submit", respond(status, body, {"Location": "https://elsewhere.example/"} if status == 301 else {}))
    with pytest.raises(ApiStatusError) as caught:
        await client.submit(request())
    assert type(caught.value) is expected
    error = body.get("error") if isinstance(body, dict) else None
    details = body.get("details", body.get("message")) if isinstance(body, dict) else None
    assert (caught.value.status_code, caught.value.error, caught.value.details) == (status, error, details)
    assert server.count("submit") == 1 and fake.sleeps == []


async def test_a_wrong_key_is_unauthorized(session: aiohttp.ClientSession, server: FaultServer, fake: FakeTime) -> None:
    client = make_client(session, server.base_url, fake, api_key="wrong-key")
    with pytest.raises(Unauthorized) as caught:
        await client.submit(request())
    assert caught.value.status_code == 401
    assert "API key" in user_message(caught.value)


# --- downloads ------------------------------------------------------------------------------------------------------


async def test_download_refuses_a_wrong_content_type(client: SmartResizeClient, server: FaultServer) -> None:
    server.media_content_type = "text/html"
    with pytest.raises(DownloadWrongType) as caught:
        await client.download(f"{server.origin}/media/job/a.png", request_id="job")
    assert (caught.value.content_type, caught.value.request_id) == ("text/html", "job")
    assert server.count("media") == 1


@pytest.mark.parametrize("declares_length", [True, False], ids=["content-length", "chunked"])
async def test_download_caps_the_size(client: SmartResizeClient, server: FaultServer, declares_length: bool) -> None:
    server.media_body = png_bytes(400, 400) + b"\0" * 200_000
    server.media_declares_length = declares_length
    url = f"{server.origin}/media/job/a.png"
    with pytest.raises(DownloadTooLarge) as caught:
        await client.download(url, max_bytes=100_000)
    assert caught.value.limit_bytes == 100_000
    fetched = await client.download(url, max_bytes=len(server.media_body))
    assert fetched.data == server.media_body


async def test_download_retries_5xx_but_not_404(client: SmartResizeClient, server: FaultServer, fake: FakeTime) -> None:
    url = f"{server.origin}/media/job/a.png"
    server.script("media", respond(503), respond(429, None, {"Retry-After": "2"}))
    data, content_type = await client.download(url)
    assert (data, content_type) == (server.media_body, "image/png")
    assert server.count("media") == 3
    assert 2.0 <= fake.sleeps[1] <= 2.2
    server.script("media", respond(404, "gone"))
    with pytest.raises(DownloadError) as caught:
        await client.download(url, request_id="job")
    assert (caught.value.status_code, caught.value.request_id) == (404, "job")
    assert server.count("media") == 4


async def test_a_result_in_the_documents_output_block_shape_is_read(
    client: SmartResizeClient, server: FaultServer
) -> None:
    # {"images": [{"file_name", "content_type", "url"}], "description": ""}, with no status at all.
    server.result_shape = "images"
    result = await run(client, request(num_images_per_size=2))
    assert result.status.status is Status.COMPLETED and result.status.output is None
    assert len(result.status.media_urls) == 4 and result.status.media_type == "image/png"
    assert [image.data for image in result.images] == [server.media_body] * 4


async def test_a_completed_output_without_media_type_is_still_the_result(
    client: SmartResizeClient, server: FaultServer
) -> None:
    # Paid for: the block's URLs are usable, so a missing media_type must not throw the result away.
    server.output_says_media_type = False
    result = await run(client, request(num_images_per_size=2))
    assert result.status.status is Status.COMPLETED and result.status.media_type == "image/png"  # from .png
    assert [image.data for image in result.images] == [server.media_body] * 4  # two sizes, two of each


async def test_a_completed_status_with_images_but_no_output_is_read() -> None:
    body = {
        "request_id": "r1",
        "status": "COMPLETED",
        "images": [{"file_name": "a.webp", "content_type": "image/webp", "url": "https://cdn.example/a.webp"}],
        "description": "",
    }
    answer = StatusResponse.from_json(body)
    assert answer.media_urls == ["https://cdn.example/a.webp"] and answer.media_type == "image/webp"


async def test_sync_mode_results_arrive_as_data_uris(client: SmartResizeClient, server: FaultServer) -> None:
    result = await run(client, request(sync_mode=True))
    assert [image.data for image in result.images] == [server.media_body] * 2
    assert server.count("media") == 0


async def test_data_uri_limits(client: SmartResizeClient) -> None:
    payload = base64.b64encode(b"\x89PNG" + b"\0" * 300).decode()
    data, content_type = await client.download(f"data:image/png;base64,{payload}")
    assert (len(data), content_type) == (304, "image/png")
    with pytest.raises(DownloadTooLarge):
        await client.download(f"data:image/png;base64,{payload}", max_bytes=100)
    with pytest.raises(DownloadWrongType):
        await client.download(f"data:text/html;base64,{payload}")
    with pytest.raises(DownloadError):
        await client.download("data:image/png;base64,@@not-base64@@")


async def test_download_refuses_non_http_urls(client: SmartResizeClient) -> None:
    with pytest.raises(DownloadError):
        await client.download("file:///etc/passwd")


# --- the retry policy on its own ----------------------------------------------------------------------------------


def test_only_failures_that_cannot_duplicate_a_job_retry_a_submit() -> None:
    assert {f for f in Failure if is_retryable(Operation.SUBMIT, f)} == {Failure.RATE_LIMITED, Failure.NOT_SENT}
    assert {f for f in Failure if is_retryable(Operation.READ, f)} == set(Failure)


def test_transport_failures_are_classified() -> None:
    assert transport_failure(aiohttp.ConnectionTimeoutError()) is Failure.NOT_SENT
    assert transport_failure(aiohttp.SocketTimeoutError()) is Failure.AFTER_SENT
    assert transport_failure(aiohttp.ServerDisconnectedError()) is Failure.AFTER_SENT
    assert transport_failure(aiohttp.ClientPayloadError("cut")) is Failure.AFTER_SENT
    assert transport_failure(TimeoutError()) is Failure.AFTER_SENT
    assert transport_failure(ValueError()) is None


@given(
    now=st.floats(0, 1e7),
    draw=st.floats(0, 1, exclude_max=True),
    low=st.floats(0.1, 10),
    width=st.floats(0, 5),
    grid=st.just(0.0) | st.floats(0.001, 2),
)
def test_poll_delays_stay_in_the_interval_and_end_on_the_grid(
    now: float, draw: float, low: float, width: float, grid: float
) -> None:
    # _next_poll_delay does no I/O: the client needs no open session.
    client = SmartResizeClient(
        cast(aiohttp.ClientSession, None),
        API_KEY,
        "http://127.0.0.1:1/v1",
        poll_interval=(low, low + width),
        poll_grid=grid,
        clock=lambda: now,
        rand=lambda: draw,
    )
    delay = client._next_poll_delay()
    assert low - 1e-6 <= delay <= low + width + 1e-6
    window = client.poll_interval[1] - client.poll_interval[0]
    if grid and grid <= window:
        wake = (now + delay) / grid
        assert wake == pytest.approx(round(wake), abs=1e-6 * max(1.0, now / grid))
    else:  # a grid wider than the jitter window would push polls past it
        assert client.poll_grid == 0


@pytest.mark.parametrize("grid", [-0.25, 1e-300, float("nan")])
def test_a_meaningless_poll_grid_is_refused(grid: float) -> None:
    with pytest.raises(ValueError, match="poll_grid"):
        SmartResizeClient(cast(aiohttp.ClientSession, None), API_KEY, "http://127.0.0.1:1/v1", poll_grid=grid)


@given(st.integers(0, 200), st.floats(0, 1, exclude_max=True))
def test_full_jitter_stays_within_bounds(retry: int, draw: float) -> None:
    delay = compute_delay(POLICY, retry, rand=lambda: draw)
    assert 0 <= delay <= min(POLICY.max_delay, POLICY.base_delay * 2.0 ** min(retry, 64))


@given(st.floats(0, 100), st.floats(0, 1, exclude_max=True))
def test_decorrelated_jitter_stays_within_bounds(previous: float, draw: float) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, jitter="decorrelated")
    delay = compute_delay(policy, 3, previous=previous, rand=lambda: draw)
    assert policy.base_delay <= delay <= min(policy.max_delay, 3 * max(previous, policy.base_delay))


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    assert compute_delay(POLICY, 0, retry_after=12.5, rand=lambda: 0.0) == 12.5
    assert compute_delay(POLICY, 0, retry_after=12.5, rand=lambda: 0.9) == pytest.approx(12.5 * 1.09)
    assert compute_delay(POLICY, 0, retry_after=1e9, rand=lambda: 0.0) == POLICY.max_retry_after


@given(
    st.integers(0, 200),
    st.floats(0, 1e6),
    st.floats(0, 1, exclude_max=True),
    st.sampled_from(["full", "decorrelated"]),
)
def test_retry_after_is_the_least_wait_with_jitter_and_never_less_than_the_backoff(
    retry: int, retry_after: float, draw: float, jitter: str
) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, max_retry_after=30.0, jitter=cast(Any, jitter))
    delay = compute_delay(policy, retry, retry_after=retry_after, previous=4.0, rand=lambda: draw)
    told = min(retry_after, policy.max_retry_after)
    backoff = compute_delay(policy, retry, previous=4.0, rand=lambda: draw)
    assert max(told, backoff) <= delay <= max(told * 1.1, backoff)


async def test_a_retry_after_of_zero_during_an_outage_is_no_tight_poll_loop(
    client: SmartResizeClient, server: FaultServer, fake: FakeTime
) -> None:
    # A gateway that answers every poll "come back now" (Retry-After: 0) for the whole of wait()'s deadline.
    server.script("status_get", *[respond(503, {"error": "busy"}, {"Retry-After": "0"})] * 1000)
    job = await client.submit(request())
    with pytest.raises(ServerError):
        await client.wait(job, deadline=120.0)
    # Backed off as for a 503 without the header (up to 8 s apart), not thousands of polls.
    assert server.count("status_get") < 60
    assert sum(fake.sleeps) <= 120.0


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 31, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"retry-after": "120"}) == 120.0
    assert parse_retry_after({"retry-after": " 1.5 "}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Tue, 31 Mar 2026 10:00:30 GMT"}, now=now) == 30.0
    assert parse_retry_after({"retry-after": "Tue, 31 Mar 2026 09:00:00 GMT"}, now=now) == 0.0
    for garbage in ("soon", "-5", "nan", "inf", ""):
        assert parse_retry_after({"retry-after": garbage}, now=now) is None
    assert parse_retry_after({}) is None


async def test_retries_stop_before_a_wait_that_would_pass_the_deadline(fake: FakeTime) -> None:
    calls = 0

    async def always_busy() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("busy")

    with pytest.raises(RuntimeError):
        await call_with_retries(
            always_busy,
            operation=Operation.READ,
            policy=POLICY,
            classify=lambda _: FailureInfo(Failure.RATE_LIMITED, retry_after=4.0),
            max_attempts=100,
            deadline=fake.now + 10.0,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    assert len(fake.sleeps) == 2 and all(4.0 <= s <= 4.4 for s in fake.sleeps) and calls == 3
