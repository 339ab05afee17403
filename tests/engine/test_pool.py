from __future__ import annotations

import asyncio

import pytest

from bot.engine import NotAnImage, ResizeRequest, Size
from bot.engine.pool import EnginePool
from tests.images import astronaut


async def test_pool_resizes_in_worker_processes_and_keeps_the_loop_free() -> None:
    async with EnginePool(workers=2) as pool:
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        request = ResizeRequest(sizes=(Size(200, 200), Size(400, 100)))
        results = await asyncio.gather(*(pool.resize(astronaut(), request) for _ in range(4)))
        beat.cancel()
        assert all([(o.width, o.height) for o in r.outputs] == [(200, 200), (400, 100)] for r in results)
        assert ticks > 5  # the loop kept running while images were made
        with pytest.raises(NotAnImage):
            await pool.resize(b"plain text", request)
