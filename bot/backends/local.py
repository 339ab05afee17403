"""The embedded engine as a backend: the spec's engine request, run in the worker-process pool.

A worker that dies (killed for memory, a crash in native code) breaks every job the pool was running, and nothing
says whose image did it. So each of those images becomes a suspect and is retried once, alone: in a pool of its own,
one suspect at a time. The image that kills that worker too gets a plain sentence instead of more retries (and, for
an hour, is refused at once if asked for again); the others were bystanders and finish.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from concurrent.futures.process import BrokenProcessPool

from bot.backends import BackendResult, RemoteId, ResizedImage, SourceImage, TransientError
from bot.engine import Limits, ResizeRequest, ResizeResult
from bot.engine.pool import EnginePool
from bot.spec import ResizeSpec
from bot.user_errors import UserError

# In Slack's words. A worker killed for memory and one a decoder crashed look alike from here (a broken pool).
NEEDS_MORE_MEMORY = (
    "This image needs more memory than the app allows, or its file breaks the image reader; share a smaller "
    "version, or export it again as a JPEG."
)
_REMEMBERED = 1000  # images that were being resized when a worker died, and when one killed a worker alone
_PROVEN_FOR_S = 3600.0  # then a convicted image gets another chance (memory may have been freed, limits raised)


class LocalBackend:
    name = "local"

    def __init__(self, pool: EnginePool, limits: Limits) -> None:
        self.pool = pool
        self.limits = limits
        # digest -> when it killed a worker alone (None: only suspected, as a bystander may be)
        self._suspects: OrderedDict[str, float | None] = OrderedDict()
        self._one_alone = asyncio.Lock()  # suspects run one at a time, so they can't take each other's memory

    async def accept(self, image: SourceImage) -> SourceImage:
        return image  # the engine reads every format it takes as it came

    async def run(self, image: SourceImage, spec: ResizeSpec, remote: RemoteId) -> BackendResult:
        # The crop map comes with every job: the "Show crop map" button needs it, and it costs a few ms.
        request = spec.engine_request(explain=True)
        # The digest only matters once a worker has died: until then no job pays for hashing its image.
        digest = await _digest(image.data) if self._suspects else None
        if digest is not None and digest in self._suspects:
            result = await self._alone(image.data, request, digest)
        else:
            try:
                result = await self.pool.resize(image.data, request, self.limits)
            except BrokenProcessPool:
                self._suspect(digest or await _digest(image.data), proven=False)
                raise TransientError("an engine worker died while this image was being resized") from None
        images = [
            ResizedImage(o.data, o.content_type, o.width, o.height, o.target, o.variant, o.mode) for o in result.outputs
        ]
        return BackendResult(images=images, notes=list(result.notes), crop_map=result.crop_map)

    async def _alone(self, data: bytes, request: ResizeRequest, digest: str) -> ResizeResult:
        proven = self._suspects[digest]
        if proven is not None and time.monotonic() - proven < _PROVEN_FOR_S:
            raise UserError(NEEDS_MORE_MEMORY)  # it already killed a worker on its own: don't feed it another
        async with self._one_alone, EnginePool(workers=1) as alone:
            try:
                result = await alone.resize(data, request, self.limits)
            except BrokenProcessPool:
                self._suspect(digest, proven=True)
                raise UserError(
                    NEEDS_MORE_MEMORY,
                    detail="an engine worker died on this image alone (killed for memory, or crashed); not retried",
                ) from None
        self._suspects.pop(digest, None)  # a bystander of another image's crash after all
        return result

    def _suspect(self, digest: str, *, proven: bool) -> None:
        self._suspects[digest] = time.monotonic() if proven else self._suspects.get(digest)
        self._suspects.move_to_end(digest)
        while len(self._suspects) > _REMEMBERED:
            self._suspects.popitem(last=False)


async def _digest(data: bytes) -> str:
    return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())  # tens of ms for a big photo
