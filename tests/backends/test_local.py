"""The local backend: the spec reaches the engine whole, and a dead worker is a retry, not the job's end."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal

import pytest

from bot.backends import RemoteId, TransientError
from bot.backends.local import LocalBackend
from bot.engine import ImageTooLarge, Limits, Size
from bot.engine.pool import EnginePool
from bot.net import Fetched
from bot.spec import ResizeSpec
from tests.images import astronaut

IMAGE = Fetched(astronaut(), "image/jpeg", "https://files.slack.com/a.jpg")


async def _never_saved(remote_id: str) -> None:
    raise AssertionError("the local engine has no remote request to keep")


NO_REMOTE = RemoteId(None, _never_saved)


async def test_every_size_and_variant_comes_back_with_a_crop_map(engine_pool: EnginePool) -> None:
    spec = ResizeSpec(sizes=(Size(200, 200), Size(300, 100)), variants=2, output_format="png", seed=3)
    result = await LocalBackend(engine_pool, Limits()).run(IMAGE, spec, NO_REMOTE)
    shapes = [(image.target, image.variant, image.width, image.height) for image in result.images]
    assert shapes == [
        (Size(200, 200), 0, 200, 200),
        (Size(200, 200), 1, 200, 200),
        (Size(300, 100), 0, 300, 100),
        (Size(300, 100), 1, 300, 100),
    ]
    assert {image.content_type for image in result.images} == {"image/png"}
    assert result.crop_map is not None and result.crop_map[:2] == b"\xff\xd8"  # a JPEG


async def test_the_deployments_limits_apply_whatever_pool_runs_the_job(engine_pool: EnginePool) -> None:
    backend = LocalBackend(engine_pool, Limits(max_pixels=100 * 100))
    with pytest.raises(ImageTooLarge):
        await backend.run(IMAGE, ResizeSpec(sizes=(Size(50, 50),)), NO_REMOTE)


async def test_a_dead_worker_is_a_transient_error_and_the_pool_recovers() -> None:
    spec = ResizeSpec(sizes=(Size(100, 100),))
    before = set(multiprocessing.active_children())
    async with EnginePool(workers=1) as pool:
        backend = LocalBackend(pool, Limits())
        await backend.run(IMAGE, spec, NO_REMOTE)  # the worker is up
        (worker,) = set(multiprocessing.active_children()) - before
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)  # as the kernel's OOM killer would
        await asyncio.to_thread(worker.join, 10)
        with pytest.raises(TransientError):
            await backend.run(IMAGE, spec, NO_REMOTE)
        result = await backend.run(IMAGE, spec, NO_REMOTE)  # a fresh pool took its place
        assert [(image.width, image.height) for image in result.images] == [(100, 100)]
