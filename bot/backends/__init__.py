"""One resize interface, two backends: the embedded engine (``local``, the default) and the hosted Smart Resize API
(``hosted``). The runner sees only what is here: a backend takes a ``ResizeSpec`` and returns images, or raises
``UserError`` (final: tell the requester) or ``TransientError`` (a later attempt may succeed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.engine import Size
from bot.spec import ResizeSpec
from bot.user_errors import GENERIC, UserError

__all__ = ["Backend", "BackendResult", "RemoteId", "ResizedImage", "SourceImage", "TransientError", "UserError"]


@dataclass(frozen=True)
class ResizedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    target: Size
    variant: int
    mode: str | None  # crop | extend (None when the backend does not say)

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(self.content_type, "img")


@dataclass(frozen=True)
class SourceImage:
    """The image to resize, and where a remote service can fetch it (a signed, expiring link), if anywhere."""

    data: bytes = field(repr=False)
    content_type: str
    public_url: str | None = None


@dataclass(frozen=True)
class BackendResult:
    images: list[ResizedImage]
    notes: list[str]
    crop_map: bytes | None = None


class TransientError(Exception):
    """A failure a later attempt may not meet (rate limit, outage, network, a crashed worker).

    ``str()`` is the operator's detail for the log; ``user_message`` is what the requester is told if every
    attempt fails.
    """

    def __init__(self, detail: str, user_message: str = GENERIC) -> None:
        super().__init__(detail)
        self.user_message = user_message


SUBMIT_IN_FLIGHT = "(submit in flight)"
"""A job's remote id from just before its submit until the service's id replaces it. Left by a process that died
in between, it says the service may or may not have taken (and charged for) that submit: there is no id to ask by."""


@dataclass(frozen=True)
class RemoteId:
    """A remote service's id for this job's request (the hosted API's ``request_id``): ``value`` as the job has it
    (None: nothing submitted yet), ``save`` to store a new one before waiting on it, so a restart polls that
    request instead of paying again (SUBMIT_IN_FLIGHT while a submit is out; None again if it surely did not run)."""

    value: str | None
    save: Callable[[str | None], Awaitable[None]]


class Backend(Protocol):
    name: str

    async def accept(self, image: SourceImage) -> SourceImage:
        """``image`` as this backend takes it: as it came, or a copy in a format it reads."""
        ...

    async def run(self, image: SourceImage, spec: ResizeSpec, remote: RemoteId) -> BackendResult: ...
