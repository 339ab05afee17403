"""The hosted API client's whole retry policy: what is retried, how long to wait, and for how long to keep trying.

Submitting a job costs money, so a submit is retried only where the service cannot have accepted it: a 429, or a
connection that failed before the request was written. A 5xx, a dropped connection or a read timeout after the
request went out may hide an accepted job, and retrying would make one request two paid jobs. Reads (status,
result, media download) are idempotent and are retried on every transient failure.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Literal, TypeVar

import aiohttp

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
Random = Callable[[], float]  # uniform in [0, 1)
# The most drawn on top of a server's Retry-After, as a fraction of it.
RETRY_AFTER_JITTER = 0.1


class Operation(Enum):
    SUBMIT = "submit"  # creates a paid job: never repeat one the service may have accepted
    READ = "read"  # status, result and media download: safe to repeat


class Failure(Enum):
    RATE_LIMITED = "rate_limited"  # HTTP 429
    SERVER_ERROR = "server_error"  # HTTP 5xx
    NOT_SENT = "not_sent"  # the connection failed before the request was written (refused, DNS, connect timeout)
    AFTER_SENT = "after_sent"  # dropped or timed out once the request may have reached the service


_RETRYABLE: dict[Operation, frozenset[Failure]] = {
    Operation.SUBMIT: frozenset({Failure.RATE_LIMITED, Failure.NOT_SENT}),
    Operation.READ: frozenset(Failure),
}


def is_retryable(operation: Operation, failure: Failure) -> bool:
    return failure in _RETRYABLE[operation]


def transport_failure(error: BaseException) -> Failure | None:
    """Classify an aiohttp/asyncio exception; None for errors that retrying cannot fix (TLS, invalid URL)."""
    if isinstance(error, aiohttp.ClientSSLError | aiohttp.InvalidURL):
        return None
    # Both are raised while connecting, before a byte of the request exists on the wire.
    if isinstance(error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return Failure.NOT_SENT
    # A disconnect on a reused keep-alive connection may also be "not sent", but nothing tells the two apart.
    if isinstance(error, aiohttp.ClientError | TimeoutError):
        return Failure.AFTER_SENT
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` counts the first try. Delays are in seconds."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A Retry-After above this is cut down to it; the retry may then meet another 429, which is retried in turn.
    max_retry_after: float = 60.0
    jitter: Literal["full", "decorrelated"] = "full"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.base_delay <= self.max_delay or self.max_retry_after < 0:
            raise ValueError("need 0 < base_delay <= max_delay and max_retry_after >= 0")


def compute_delay(
    policy: RetryPolicy,
    retry: int,
    *,
    retry_after: float | None = None,
    previous: float | None = None,
    rand: Random = random.random,
) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first retry).

    Full jitter draws from [0, min(max_delay, base * 2**retry)]; decorrelated jitter from [base, 3 * previous],
    capped at ``max_delay``. Jitter spreads the retries of many clients that failed together, so they do not return
    together. A server's Retry-After (capped at ``max_retry_after``) is the least wait, with up to a tenth more drawn
    on top for the same reason, and never less than the backoff: a ``Retry-After: 0`` (or a date already past) on
    every answer of an outage would otherwise make ``wait()``, which retries until its deadline, poll in a tight loop.
    """
    backoff = _backoff(policy, retry, previous, rand)
    if retry_after is None:
        return backoff
    told = min(max(retry_after, 0.0), policy.max_retry_after)
    return max(told * (1 + RETRY_AFTER_JITTER * rand()), backoff)


def _backoff(policy: RetryPolicy, retry: int, previous: float | None, rand: Random) -> float:
    if policy.jitter == "decorrelated":
        last = policy.base_delay if previous is None else max(previous, policy.base_delay)
        upper = min(policy.max_delay, 3 * last)
        return min(policy.max_delay, policy.base_delay + rand() * (upper - policy.base_delay))
    # min() on the exponent keeps 2**retry from overflowing a float when retry is huge.
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** min(retry, 64))
    return rand() * ceiling


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP-date)."""
    millis = _non_negative(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less parse means the same
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _non_negative(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class FailureInfo:
    failure: Failure
    retry_after: float | None = None


Classify = Callable[[BaseException], FailureInfo | None]


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    operation: Operation,
    policy: RetryPolicy,
    classify: Classify,
    max_attempts: int | None = None,
    deadline: float | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    rand: Random = random.random,
) -> T:
    """Run ``attempt`` until it succeeds, fails in a way ``operation`` must not retry, or runs out of tries.

    ``max_attempts`` overrides the policy's (pass a large number with a ``deadline`` to retry
    for as long as time allows). ``deadline`` is on ``clock``: a retry whose wait would end past it is not made,
    and the last error is raised instead.
    """
    limit = policy.max_attempts if max_attempts is None else max_attempts
    previous: float | None = None
    retry = 0
    while True:
        try:
            return await attempt()
        except Exception as error:
            info = classify(error)
            if info is None or not is_retryable(operation, info.failure) or retry + 1 >= limit:
                raise
            delay = compute_delay(policy, retry, retry_after=info.retry_after, previous=previous, rand=rand)
            if deadline is not None and clock() + delay > deadline:
                raise
            log.info("smart resize %s: %s, retry %d in %.2fs", operation.value, info.failure.value, retry + 1, delay)
            await sleep(delay)
            previous = delay
            retry += 1
