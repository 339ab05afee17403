"""The local backend: the spec reaches the engine whole, and a dead worker is a retry, not the job's end."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import threading
from pathlib import Path

import pytest
from PIL import Image

from bot.backends import RemoteId, SourceImage, TransientError
from bot.backends.local import LocalBackend
from bot.engine import ImageTooLarge, Limits, Size
from bot.engine.pool import EnginePool
from bot.spec import ResizeSpec
from bot.user_errors import UserError
from tests.images import astronaut, encode

IMAGE = SourceImage(astronaut(), "image/jpeg")


async def _never_saved(remote_id: str | None) -> None:
    raise AssertionError("the local engine has no remote request to keep")


NO_REMOTE = RemoteId(None, _never_saved)


async def test_every_size_and_variant_comes_back_with_a_crop_map(engine_pool: EnginePool) -> None:
    # Crop mode: auto makes a second variant only where it keeps the whole subject too.
    spec = ResizeSpec(sizes=(Size(200, 200), Size(200, 300)), mode="crop", variants=2, output_format="png", seed=3)
    result = await LocalBackend(engine_pool, Limits()).run(IMAGE, spec, NO_REMOTE)
    shapes = [(image.target, image.variant, image.width, image.height) for image in result.images]
    assert shapes == [
        (Size(200, 200), 0, 200, 200),
        (Size(200, 200), 1, 200, 200),
        (Size(200, 300), 0, 200, 300),
        (Size(200, 300), 1, 200, 300),
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


def _children_rss_mb() -> list[float]:
    me, sizes = os.getpid(), []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            if int(fields.get("PPid", "0")) == me:
                sizes.append(int(fields.get("VmRSS", "0 kB").split()[0]) / 1024)
    return sizes


class OomKiller:
    """What a container's memory limit does, on loopback: SIGKILL any child of this process over ``limit_mb``."""

    def __init__(self, limit_mb: float) -> None:
        self.limit_mb = limit_mb
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> OomKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.005):
            for status in Path("/proc").glob("[0-9]*/status"):
                try:
                    fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
                except OSError:
                    continue  # it ended meanwhile
                rss_kb = int(fields.get("VmRSS", "0 kB").split()[0])
                if int(fields.get("PPid", "0")) == me and rss_kb > self.limit_mb * 1024:
                    pid = int(status.parent.name)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads children's memory in /proc")
async def test_the_image_that_kills_a_worker_gets_one_retry_alone_then_a_plain_sentence() -> None:
    pixels = Image.new("RGBA", (7000, 7000), (9, 90, 200, 128))  # 49 MP: 200 MB decoded, well over the limit
    greedy = SourceImage(encode(pixels, "PNG", compress_level=1), "image/png")
    spec = ResizeSpec(sizes=(Size(100, 100),))
    async with EnginePool(workers=2) as pool:
        backend = LocalBackend(pool, Limits())
        await backend.run(IMAGE, spec, NO_REMOTE)  # the workers are up, and a small job is well under the limit
        # A started worker holds its models; the limit leaves room for small jobs, not for 200 MB more.
        with OomKiller(limit_mb=max(_children_rss_mb()) + 130) as killer:
            first = await asyncio.gather(
                backend.run(greedy, spec, NO_REMOTE), backend.run(IMAGE, spec, NO_REMOTE), return_exceptions=True
            )
            assert killer.killed and isinstance(first[0], TransientError)  # retried: it might have been a bystander
            with pytest.raises(UserError) as refused:  # alone, it dies again: its own doing
                await backend.run(greedy, spec, NO_REMOTE)
            assert str(refused.value) == (
                "This image needs more memory than the app allows, or its file breaks the image reader; share a "
                "smaller version, or export it again as a JPEG."
            )
            # The other image, broken or not by the crash, comes out fine; and the pool is whole again.
            for _ in range(2):
                result = await backend.run(IMAGE, spec, NO_REMOTE)
                assert [(image.width, image.height) for image in result.images] == [(100, 100)]
            kills = len(killer.killed)
            with pytest.raises(UserError):  # asked for again: refused at once, no worker fed to it
                await backend.run(greedy, spec, NO_REMOTE)
            assert len(killer.killed) == kills
