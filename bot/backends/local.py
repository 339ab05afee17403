"""The embedded engine as a backend: the spec's engine request, run in the worker-process pool."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

from bot.backends import BackendResult, RemoteId, ResizedImage, SourceImage, TransientError
from bot.engine import Limits
from bot.engine.pool import EnginePool
from bot.spec import ResizeSpec


class LocalBackend:
    name = "local"

    def __init__(self, pool: EnginePool, limits: Limits) -> None:
        self.pool = pool
        self.limits = limits

    async def run(self, image: SourceImage, spec: ResizeSpec, remote: RemoteId) -> BackendResult:
        try:
            # The crop map comes with every job: the "Show crop map" button needs it, and it costs a few ms.
            result = await self.pool.resize(image.data, spec.engine_request(explain=True), self.limits)
        except BrokenProcessPool:
            raise TransientError("an engine worker process died") from None
        images = [
            ResizedImage(o.data, o.content_type, o.width, o.height, o.target, o.variant, o.mode) for o in result.outputs
        ]
        return BackendResult(images=images, notes=list(result.notes), crop_map=result.crop_map)
