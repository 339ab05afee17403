"""The API client's errors: one class per way a call can fail, each carrying what an operator needs to look it up.

``str()`` is for logs (never the key): the message, the HTTP status, what the service said and the request id. What
a person is told is not decided here but by each surface (``bot.user_errors`` for Slack).
"""

from __future__ import annotations

from bot.smart_resize_api.contract import Status
from bot.smart_resize_api.retry import Failure, Operation


class SmartResizeError(Exception):
    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
        error: str | None = None,
        details: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.status_code = status_code
        self.error = error
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [super().__str__()]
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        service = ": ".join(text for text in (self.error, self.details) if text)
        if service:
            parts.append(f"service said {service[:300]!r}")
        if self.request_id is not None:
            parts.append(f"request_id={self.request_id}")
        return "; ".join(parts)


class ApiStatusError(SmartResizeError):
    """The API answered with an HTTP error; the subclasses name the statuses the contract documents."""


class BadRequest(ApiStatusError):
    pass


class Unauthorized(ApiStatusError):
    pass


class PaymentRequired(ApiStatusError):
    pass


class Forbidden(ApiStatusError):
    pass


class NotFound(ApiStatusError):
    pass


class RateLimited(ApiStatusError):
    pass


class ServerError(ApiStatusError):
    pass


STATUS_ERRORS: dict[int, type[ApiStatusError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
    429: RateLimited,
}


class JobFailed(SmartResizeError):
    """The job ended FAILED (``error`` says why) or ERROR (a system error the service did not charge for)."""

    def __init__(self, message: str, *, job_status: Status, request_id: str, error: str | None) -> None:
        super().__init__(message, request_id=request_id, error=error)
        self.job_status = job_status

    @property
    def charged(self) -> bool | None:
        """False for ERROR (the contract says so); None for FAILED, on which the contract is silent."""
        return False if self.job_status is Status.ERROR else None


class JobTimedOut(SmartResizeError):
    """Our deadline passed; the job may still finish (and be charged) on the service's side."""

    def __init__(self, message: str, *, request_id: str, timeout_s: float, last_status: Status | None) -> None:
        super().__init__(message, request_id=request_id)
        self.timeout_s = timeout_s
        self.last_status = last_status


class TransportError(SmartResizeError):
    """No HTTP answer: the connection failed, broke off or timed out."""

    def __init__(
        self, message: str, *, operation: Operation, failure: Failure | None, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.operation = operation
        self.failure = failure

    @property
    def may_have_been_sent(self) -> bool:
        return self.failure is not Failure.NOT_SENT


class MalformedResponse(SmartResizeError):
    """A 2xx answer that is not valid JSON or not the contract's shape."""


class DownloadError(SmartResizeError):
    """A result image could not be fetched (``status_code`` is the media server's)."""


class DownloadRefused(DownloadError):
    """The result's host is one the SSRF guard refuses (a private or internal address)."""


class DownloadTooLarge(DownloadError):
    def __init__(self, message: str, *, limit_bytes: int, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.limit_bytes = limit_bytes


class DownloadWrongType(DownloadError):
    def __init__(self, message: str, *, content_type: str, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.content_type = content_type
