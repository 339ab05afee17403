"""Signed, expiring links to a job's source image, for a hosted service that must fetch it (``PUBLIC_BASE_URL``).

Slack files are private, so the hosted API cannot fetch them; rather than a data URI inside the request (a third
larger, and not documented as accepted), the service gets ``PUBLIC_BASE_URL/sources/<token>``. The token is
``<job id>.<expiry>.<HMAC>``: unguessable (the job id is random), bound to that job and that expiry, and checkable
with nothing but the key, so a restart serves the links it handed out before. A link answers only while its job is
open; anything else (bad, tampered, expired, finished) is the same plain 404.

The bytes are the runner's while a backend is working on them (``hold``); otherwise, after a restart say, they are
fetched again from Slack on demand. Nothing is written to disk, so there is nothing to delete when the job ends.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.backends import SourceImage

PATH_PREFIX = "/sources/"
DEFAULT_TTL_S = 15 * 60.0
_TOKEN = re.compile(r"([0-9a-f]{32})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def derive_key(secret: str) -> bytes:
    """The signing key, from a secret the app already has (its own label, so it is no reuse of that secret)."""
    return hmac.new(secret.encode(), b"smart-resize source links v1", hashlib.sha256).digest()


class SourceLinks:
    def __init__(
        self, base_url: str, key: bytes, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self.ttl_s = ttl_s
        self.clock = clock
        self._held: dict[str, SourceImage] = {}

    def __repr__(self) -> str:  # not the key
        return f"SourceLinks({self.base_url!r}, ttl_s={self.ttl_s:g})"

    def link(self, job_id: str) -> str:
        expiry = int(self.clock() + self.ttl_s)
        return f"{self.base_url}{PATH_PREFIX}{job_id}.{expiry}.{self._signature(job_id, expiry)}"

    def job_of(self, token: str) -> str | None:
        """The job a token names, if the token is ours, untampered and unexpired; else None."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        job_id, expiry_text, signature = match.groups()
        expiry = int(expiry_text)
        if not hmac.compare_digest(signature, self._signature(job_id, expiry)):
            return None
        return job_id if self.clock() < expiry else None

    @contextlib.contextmanager
    def hold(self, job_id: str, image: SourceImage) -> Iterator[None]:
        """Serve ``image`` from memory for ``job_id`` while the block runs (the service fetches it meanwhile)."""
        self._held[job_id] = image
        try:
            yield
        finally:
            self._held.pop(job_id, None)

    def held(self, job_id: str) -> SourceImage | None:
        return self._held.get(job_id)

    def _signature(self, job_id: str, expiry: int) -> str:
        digest = hmac.new(self._key, f"{job_id}.{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
