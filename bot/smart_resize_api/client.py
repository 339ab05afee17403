"""Client for the hosted Smart Resize API: submit a job, poll it to the end, download the images.

Every failure is a ``SmartResizeError`` subclass (one per kind, ``bot.smart_resize_api.errors``) carrying the job's
``request_id`` when known, the HTTP status, and the service's ``error``/``details``. What is retried, and how, lives
in ``bot.smart_resize_api.retry``.

The API key goes only to the API's own origin (scheme, host, port): never to the media CDN or to a polling URL
elsewhere, and API calls follow no redirects, because aiohttp would carry a custom header across origins.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

import aiohttp
from yarl import URL

from bot.net.errors import FetchError, TooLarge, UnexpectedContentType
from bot.net.fetch import accepts, decode_data_uri, origin, read_capped
from bot.smart_resize_api.contract import (
    DEFAULT_BASE_URL,
    KEY_HEADER,
    RESULT_PATH,
    STATUS_PATH,
    SUBMIT_PATH,
    ContractError,
    ResultRequest,
    SmartResizeRequest,
    Status,
    StatusResponse,
    SubmitResponse,
)
from bot.smart_resize_api.errors import (
    STATUS_ERRORS,
    ApiStatusError,
    DownloadError,
    DownloadRefused,
    DownloadTooLarge,
    DownloadWrongType,
    JobFailed,
    JobTimedOut,
    MalformedResponse,
    ServerError,
    SmartResizeError,
    TransportError,
)
from bot.smart_resize_api.retry import (
    Clock,
    Failure,
    FailureInfo,
    Operation,
    Random,
    RetryPolicy,
    Sleep,
    call_with_retries,
    is_retryable,
    parse_retry_after,
    transport_failure,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
# sync_mode answers carry every image inline as base64, so a status body can be large.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_ERROR_BODY_BYTES = 64 * 1024
_CHUNK_BYTES = 64 * 1024
_USER_AGENT = "SmartResizeForSlack/0.1"
DEFAULT_POLL_GRID_S = 0.25
_MIN_POLL_GRID_S = 0.001
# Inside wait(), transient status failures are retried until the deadline rather than a fixed number of times:
# the job is already paid for, and giving up early would throw the result away.
_UNTIL_DEADLINE = 1_000_000


# --- models -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobHandle:
    request_id: str  # empty when the service answered the submit with its images at once
    status: Status
    polling_url: str | None = None
    result: StatusResponse | None = None  # those images: there is no job to poll


class Downloaded(NamedTuple):
    data: bytes
    content_type: str

    def __repr__(self) -> str:  # not the bytes: a repr ends up in logs
        return f"Downloaded({len(self.data)} bytes, {self.content_type!r})"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds per HTTP call (each retry gets its own); ``wait()`` has its own overall deadline."""

    connect: float = 10.0
    submit: float = 60.0  # the source travels as a data URI, so the body can be tens of MB
    status: float = 20.0
    download: float = 120.0


# --- client -----------------------------------------------------------------------------------------------------


class SmartResizeClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        retry: RetryPolicy | None = None,
        poll_interval: tuple[float, float] = (2.0, 3.0),
        poll_grid: float = DEFAULT_POLL_GRID_S,
        deadline: float = 300.0,
        timeouts: Timeouts | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        media_session: aiohttp.ClientSession | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rand: Random = random.random,
    ) -> None:
        """``media_session`` (e.g. one on an SSRF-guarded connector) fetches result images on other hosts than the
        API's own (a CDN the service chose); those on the API's origin, which the operator configured, go through
        ``session`` with the key, as every other call does. Default: ``session`` for both.

        ``poll_grid`` aligns poll wake-ups to multiples of that many seconds (see ``_next_poll_delay``); 0 turns
        it off. ``sleep``, ``clock`` and ``rand`` are injectable so tests can run the policy without real waiting.
        """
        if not api_key or not api_key.isprintable() or any(c.isspace() for c in api_key):
            # The key is not echoed: this message may be logged.
            raise ValueError("api_key must be a non-empty string without spaces or control characters")
        base = URL(base_url.rstrip("/"))
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("base_url must be an absolute http(s) URL")
        low, high = poll_interval
        if not 0 < low <= high:
            raise ValueError("poll_interval must be (low, high) with 0 < low <= high")
        if poll_grid != 0 and not poll_grid >= _MIN_POLL_GRID_S:
            raise ValueError(f"poll_grid must be 0 (off) or at least {_MIN_POLL_GRID_S} s")
        self._session = session
        self._media_session = media_session or session
        self._api_key = api_key
        self._base = base
        self._origin = origin(base)
        self.retry = retry or RetryPolicy()
        self.poll_interval = (low, high)
        # A grid wider than the jitter window would push polls past ``high``: then wake-ups are not aligned.
        self.poll_grid = poll_grid if poll_grid <= high - low else 0.0
        self.deadline = deadline
        self.timeouts = timeouts or Timeouts()
        self.max_download_bytes = max_download_bytes
        self.max_response_bytes = max_response_bytes
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._headers = {
            "Cache-Control": "no-cache",  # a poll must never be answered from a cache
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            KEY_HEADER: api_key,
        }
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        # Which status route this deployment answers on, learnt from the first poll that gets an answer.
        self._status_route: Literal["get", "post"] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={str(self._base)!r}, api_key='***')"

    @property
    def status_route(self) -> Literal["get", "post"] | None:
        return self._status_route

    async def submit(self, request: SmartResizeRequest) -> JobHandle:
        data = await self._call_json(
            "POST",
            self._base / SUBMIT_PATH,
            body=request.to_json(),
            operation=Operation.SUBMIT,
            timeout_s=self.timeouts.submit,
        )
        try:
            answer = SubmitResponse.from_json(data)
        except ContractError as error:
            if isinstance(data, dict) and "status" not in data and "images" in data:
                # The document's "Output" block, which it also shows as a submit's answer: the job is done.
                try:
                    result = StatusResponse.from_json(data, request_id="")
                except ContractError:
                    pass
                else:
                    log.info("smart resize job answered at submit with %d images", len(result.media_urls))
                    return JobHandle("", Status.COMPLETED, result=result)
            # The job may exist now; there is no id to poll it with, and it must not be submitted again.
            raise MalformedResponse(f"Unusable submit response: {error.details}") from None
        log.info("smart resize job submitted: request_id=%s status=%s", answer.request_id, answer.status.value)
        return JobHandle(answer.request_id, answer.status, answer.polling_url)

    async def status(
        self,
        job: JobHandle | str,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> StatusResponse:
        """One status read (with the retry policy). ``deadline`` is on this client's clock."""
        request_id, polling_url = (job.request_id, job.polling_url) if isinstance(job, JobHandle) else (job, None)
        return await self._read_status(
            request_id, self._status_url(request_id, polling_url), deadline=deadline, max_attempts=max_attempts
        )

    async def _read_status(
        self, request_id: str, url: URL, *, deadline: float | None, max_attempts: int | None
    ) -> StatusResponse:
        timeout_s = self._bounded(self.timeouts.status, deadline)
        if self._status_route != "post":
            try:
                data = await self._call_json(
                    "GET",
                    url,
                    operation=Operation.READ,
                    timeout_s=timeout_s,
                    request_id=request_id,
                    deadline=deadline,
                    max_attempts=max_attempts,
                )
            except ApiStatusError as error:
                # A 404 here is ambiguous (no such route, or no such job) until GET has worked once; the POST
                # route settles it, and its own 404 is then the answer.
                if self._status_route is not None or error.status_code not in (404, 405):
                    raise
                log.info("smart resize: GET status answered %s, trying the POST result route", error.status_code)
            else:
                self._status_route = "get"
                return self._parse_status(data, request_id)
        data = await self._call_json(
            "POST",
            self._base / RESULT_PATH,
            body=ResultRequest(request_id).to_json(),
            operation=Operation.READ,
            timeout_s=timeout_s,
            request_id=request_id,
            deadline=deadline,
            max_attempts=max_attempts,
        )
        answer = self._parse_status(data, request_id)
        self._status_route = "post"
        return answer

    async def wait(self, job: JobHandle | str, *, deadline: float | None = None) -> StatusResponse:
        """Poll until COMPLETED (returned) or FAILED/ERROR (JobFailed); JobTimedOut after ``deadline`` seconds.

        Transient status failures (429, 5xx, network) are retried until the deadline, not ``max_attempts`` times;
        one still failing when it passes is raised as is.
        """
        request_id, polling_url = (job.request_id, job.polling_url) if isinstance(job, JobHandle) else (job, None)
        url = self._status_url(request_id, polling_url)  # parsed once, not on every poll
        timeout_s = self.deadline if deadline is None else deadline
        end = self._clock() + timeout_s
        last: Status | None = None
        if isinstance(job, JobHandle) and not job.status.terminal:
            # The submit answer was this job's first status read: the next one is due an interval later.
            last = job.status
            await self._sleep(min(self._next_poll_delay(), timeout_s))
        while True:
            answer = await self._read_status(request_id, url, deadline=end, max_attempts=_UNTIL_DEADLINE)
            if answer.status != last:
                log.info("smart resize job %s: %s", request_id, answer.status.value)
            last = answer.status
            if answer.status is Status.COMPLETED:
                return answer
            if answer.status.terminal:
                raise JobFailed(
                    f"Job ended {answer.status.value}",
                    job_status=answer.status,
                    request_id=request_id,
                    error=answer.error,
                )
            remaining = end - self._clock()
            if remaining <= 0:
                raise JobTimedOut(
                    f"Job not finished after {timeout_s:g}s (last status {last.value})",
                    request_id=request_id,
                    timeout_s=timeout_s,
                    last_status=last,
                )
            await self._sleep(min(self._next_poll_delay(), remaining))

    def _next_poll_delay(self) -> float:
        """Seconds to the next poll: random within ``poll_interval``, ending on a multiple of ``poll_grid``.

        The jitter keeps jobs submitted together from polling in lockstep. The grid makes the wake-ups of many
        jobs coincide, so the event loop serves them in one pass (one epoll wait for the timers and another for
        the answers) instead of one pass per job: with 1,000 jobs in flight that halves the poller's CPU
        (bench/README.md). Drawing from [low, high - grid] and rounding up keeps the delay within the interval.
        """
        low, high = self.poll_interval
        grid = self.poll_grid
        delay = low + (high - low - grid) * self._rand()
        if not grid:
            return delay
        now = self._clock()
        return math.ceil((now + delay) / grid) * grid - now

    async def download(
        self,
        media_url: str,
        *,
        max_bytes: int | None = None,
        accept: tuple[str, ...] = ("image/",),
        request_id: str | None = None,
    ) -> Downloaded:
        """Fetch one result image (a URL, or a ``data:image/...;base64,`` URI from sync_mode)."""
        limit = self.max_download_bytes if max_bytes is None else max_bytes
        if media_url[:5].lower() == "data:":
            return await asyncio.to_thread(self._decode_data_uri, media_url, limit, accept, request_id)
        try:
            url = URL(media_url)
        except (TypeError, ValueError):
            raise DownloadError("Result URL is not a URL", request_id=request_id) from None
        if url.scheme not in ("http", "https") or not url.host:
            raise DownloadError("Result URL is not http(s)", request_id=request_id)
        with_key = origin(url) == self._origin
        headers = {"Accept": ", ".join(f"{a}*" if a.endswith("/") else a for a in accept)}
        if with_key:
            headers[KEY_HEADER] = self._api_key

        def too_large() -> SmartResizeError:
            return DownloadTooLarge("Result image is over the size limit", limit_bytes=limit, request_id=request_id)

        session = self._session if with_key else self._media_session

        async def attempt() -> Downloaded:
            try:
                async with session.get(
                    url,
                    headers=headers,
                    timeout=self._timeout(self.timeouts.download),
                    allow_redirects=not with_key,
                ) as response:
                    if response.status != 200:
                        raise DownloadError(
                            "Result image request failed",
                            request_id=request_id,
                            status_code=response.status,
                            retry_after=parse_retry_after(response.headers),
                        )
                    content_type = response.content_type
                    if not accepts(content_type, accept):
                        raise DownloadWrongType(
                            f"Result is {content_type[:80]!r}, not an image",
                            content_type=content_type,
                            request_id=request_id,
                        )
                    try:
                        return Downloaded(await read_capped(response, limit), content_type)
                    except TooLarge:
                        raise too_large() from None
            except (aiohttp.ClientError, TimeoutError) as error:
                raise _transport_error(error, Operation.READ, request_id) from None
            except FetchError as error:  # the guarded session refused the host (a private address, say)
                raise DownloadRefused(f"Result image host refused: {error}", request_id=request_id) from None

        return await self._with_retries(attempt, Operation.READ)

    # --- plumbing -----------------------------------------------------------------------------------------------

    async def _call_json(
        self,
        method: str,
        url: URL,
        *,
        operation: Operation,
        timeout_s: float,
        body: dict[str, Any] | None = None,
        request_id: str | None = None,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> Any:
        # Only ever called with URLs on the API's origin (see _status_url), so the key always goes.
        headers = self._headers if body is None else self._json_headers
        payload = None
        if body is not None and operation is Operation.SUBMIT:
            # A submit carries its source as a data URI (tens of MB): encoded off the event loop.
            payload = await asyncio.to_thread(lambda: json.dumps(body).encode())
        elif body is not None:
            payload = json.dumps(body).encode()

        def too_large() -> SmartResizeError:
            return MalformedResponse(
                f"{method} {url.path} answered with more than {self.max_response_bytes} bytes", request_id=request_id
            )

        async def attempt() -> Any:
            try:
                async with self._session.request(
                    method,
                    url,
                    data=payload,
                    headers=headers,
                    timeout=self._timeout(timeout_s),
                    allow_redirects=False,
                ) as response:
                    if not 200 <= response.status < 300:
                        raise await _status_error(response, request_id)
                    try:
                        raw = await read_capped(response, self.max_response_bytes)
                    except TooLarge:
                        raise too_large() from None
            except (aiohttp.ClientError, TimeoutError) as error:
                # Not chained: some aiohttp errors carry the request headers, and with them the API key.
                raise _transport_error(error, operation, request_id) from None
            try:
                return json.loads(raw)
            except (ValueError, RecursionError):
                raise MalformedResponse(
                    f"{method} {url.path} answered with invalid JSON", request_id=request_id
                ) from None

        return await self._with_retries(attempt, operation, deadline=deadline, max_attempts=max_attempts)

    async def _with_retries(
        self,
        attempt: Callable[[], Awaitable[T]],
        operation: Operation,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> T:
        return await call_with_retries(
            attempt,
            operation=operation,
            policy=self.retry,
            classify=_classify,
            max_attempts=max_attempts,
            deadline=deadline,
            sleep=self._sleep,
            clock=self._clock,
            rand=self._rand,
        )

    def _parse_status(self, data: Any, request_id: str) -> StatusResponse:
        try:
            answer = StatusResponse.from_json(data, request_id=request_id)
        except ContractError as error:
            raise MalformedResponse(f"Unusable status response: {error.details}", request_id=request_id) from None
        if answer.request_id != request_id:
            # Never hand over another job's images (a misrouted or mis-cached answer).
            raise MalformedResponse("Status response is for another request_id", request_id=request_id)
        return answer

    def _status_url(self, request_id: str, polling_url: str | None) -> URL:
        if polling_url:
            try:
                url = URL(polling_url)
            except (TypeError, ValueError):
                url = None
            # A polling URL on another origin would get the key, or fail without it: use our own route instead.
            if url is not None and url.absolute and origin(url) == self._origin:
                return url
        quoted = urllib.parse.quote(request_id, safe="")
        return self._base.origin().joinpath(*STATUS_PATH, quoted, encoded=True)

    def _timeout(self, total_s: float) -> aiohttp.ClientTimeout:
        return _client_timeout(total_s, min(self.timeouts.connect, total_s))

    def _bounded(self, timeout_s: float, deadline: float | None) -> float:
        if deadline is None:
            return timeout_s
        # Not below a second, so that the last poll before the deadline is not doomed from the start.
        return min(timeout_s, max(1.0, deadline - self._clock()))

    def _decode_data_uri(self, uri: str, limit: int, accept: tuple[str, ...], request_id: str | None) -> Downloaded:
        try:
            fetched = decode_data_uri(uri, max_bytes=limit, accept=accept)
        except TooLarge:
            raise DownloadTooLarge(
                "Inline result image is over the limit", limit_bytes=limit, request_id=request_id
            ) from None
        except UnexpectedContentType as error:
            raise DownloadWrongType(
                "Inline result is not an image", content_type=error.content_type, request_id=request_id
            ) from None
        except FetchError:  # anything else: not valid base64, no comma
            raise DownloadError("Inline result image is not a valid data URI", request_id=request_id) from None
        return Downloaded(fetched.data, fetched.content_type)


@functools.lru_cache(maxsize=64)  # the usual timeouts recur on every call; only the last polls before a deadline vary
def _client_timeout(total_s: float, connect_s: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total_s, connect=connect_s)


def submit_may_have_run(error: SmartResizeError) -> bool:
    """Whether a failed submit may still have created a (paid) job: a failure the retry policy would repeat for a
    read but not for a submit (a 5xx, a connection that broke once the request was sent), or a 2xx whose body was
    unusable (the service took the job; we only lack its id)."""
    if isinstance(error, MalformedResponse):
        return True
    info = _classify(error)
    return info is not None and not is_retryable(Operation.SUBMIT, info.failure)


def may_pass(error: SmartResizeError) -> bool:
    """Whether trying the same job again later may succeed: a rate limit, an outage of the API or of the host its
    results are on, a broken connection."""
    return isinstance(error, TransportError) or _classify(error) is not None


def _classify(error: BaseException) -> FailureInfo | None:
    if isinstance(error, TransportError):
        return None if error.failure is None else FailureInfo(error.failure)
    if isinstance(error, ApiStatusError | DownloadError) and error.status_code is not None:
        if error.status_code == 429:
            return FailureInfo(Failure.RATE_LIMITED, error.retry_after)
        if error.status_code >= 500:
            return FailureInfo(Failure.SERVER_ERROR, error.retry_after)
    return None


def _transport_error(error: BaseException, operation: Operation, request_id: str | None) -> TransportError:
    failure = transport_failure(error)
    if isinstance(error, TimeoutError):
        what = "timed out"
    elif failure is Failure.NOT_SENT:
        what = "could not connect"
    else:
        what = "connection failed"
    return TransportError(
        f"Smart Resize API {operation.value} {what} ({type(error).__name__})",
        operation=operation,
        failure=failure,
        request_id=request_id,
    )


async def _status_error(response: aiohttp.ClientResponse, request_id: str | None) -> ApiStatusError:
    raw = await _read_prefix(response, _ERROR_BODY_BYTES)
    error, details = _error_fields(raw)
    status = response.status
    cls = STATUS_ERRORS.get(status) or (ServerError if status >= 500 else ApiStatusError)
    return cls(
        f"Smart Resize API {response.method} {response.url.path} failed",
        request_id=request_id,
        status_code=status,
        error=error,
        details=details,
        retry_after=parse_retry_after(response.headers),
    )


def _error_fields(raw: bytes) -> tuple[str | None, str | None]:
    """The contract's ``{"error", "details"}``; gateways (Azure APIM) send ``{"statusCode", "message"}`` instead."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    details = body.get("details", body.get("message"))
    return (
        error[:500] if isinstance(error, str) else None,
        details[:500] if isinstance(details, str) else None,
    )


async def _read_prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])
