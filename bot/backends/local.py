"""The embedded engine as a backend: the spec's engine request, run in the worker-process pool.

A worker that dies (killed for memory, a crash in native code) breaks every job the pool was running, and nothing
says whose image did it. So each of those images becomes a suspect and is retried once, alone, in a pool of its
own: the image that killed the worker kills only that one, and gets a plain sentence instead of more retries; the
others were bystanders and finish.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from concurrent.futures.process import BrokenProcessPool

from bot.backends import BackendResult, RemoteId, ResizedImage, SourceImage, TransientError
from bot.engine import Limits, ResizeRequest, ResizeResult
from bot.engine.pool import EnginePool
from bot.spec import ResizeSpec
from bot.user_errors import UserError

NEEDS_MORE_MEMORY = "This image needs more memory than the app allows; share a smaller version."
_REMEMBERED = 1000  # images that were being resized when a worker died, and whether one did so alone


class LocalBackend:
    name = "local"

    def __init__(self, pool: EnginePool, limits: Limits) -> None:
        self.pool = pool
        self.limits = limits
        self._suspects: OrderedDict[str, bool] = OrderedDict()  # digest -> proven (it killed a worker alone)

    async def run(self, image: SourceImage, spec: ResizeSpec, remote: RemoteId) -> BackendResult:
        # The crop map comes with every job: the "Show crop map" button needs it, and it costs a few ms.
        request = spec.engine_request(explain=True)
        digest = hashlib.sha256(image.data).hexdigest()
        if digest in self._suspects:
            result = await self._alone(image.data, request, digest)
        else:
            try:
                result = await self.pool.resize(image.data, request, self.limits)
            except BrokenProcessPool:
                self._suspect(digest, proven=False)
                raise TransientError("an engine worker died while this image was being resized") from None
        images = [
            ResizedImage(o.data, o.content_type, o.width, o.height, o.target, o.variant, o.mode) for o in result.outputs
        ]
        return BackendResult(images=images, notes=list(result.notes), crop_map=result.crop_map)

    async def _alone(self, data: bytes, request: ResizeRequest, digest: str) -> ResizeResult:
        if self._suspects[digest]:  # it already killed a worker on its own: don't feed it another
            raise UserError(NEEDS_MORE_MEMORY)
        async with EnginePool(workers=1) as alone:
            try:
                result = await alone.resize(data, request, self.limits)
            except BrokenProcessPool:
                self._suspect(digest, proven=True)
                raise UserError(
                    NEEDS_MORE_MEMORY,
                    detail="an engine worker died on this image alone (killed for memory, or crashed); not retried",
                ) from None
        if not self._suspects.get(digest):  # a bystander of another image's crash after all
            self._suspects.pop(digest, None)
        return result

    def _suspect(self, digest: str, *, proven: bool) -> None:
        self._suspects[digest] = proven or self._suspects.get(digest, False)
        self._suspects.move_to_end(digest)
        while len(self._suspects) > _REMEMBERED:
            self._suspects.popitem(last=False)
