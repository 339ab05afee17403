from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.engine import NotAnImage, ResizeRequest, Size
from bot.engine.pool import EnginePool
from tests.images import astronaut, encode, photo


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


# A process that starts a pool, makes one image, prints its workers' pids and kills itself with -9.
_KILLED_PARENT = """
import asyncio, os, signal
from bot.engine import ResizeRequest, Size
from bot.engine.pool import EnginePool
from tests.images import astronaut, encode, photo

async def main():
    pool = EnginePool(workers=2)
    await pool.resize(astronaut(), ResizeRequest(sizes=(Size(64, 64),)))
    print(" ".join(str(pid) for pid in pool._pool()._processes), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its entry is left for a reaper


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_workers_leave_when_the_app_process_is_killed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_PARENT],
        capture_output=True,
        text=True,
        timeout=60,  # a worker left behind holds the output pipe open: this is how long that takes to fail
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == -9, done.stderr
    workers = [int(pid) for pid in done.stdout.split()]
    assert workers  # started on demand: one, for one image
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), [pid for pid in workers if _alive(pid)]
    assert os.getpid() not in workers


def test_threads_asking_for_the_workers_at_once_share_one_set() -> None:
    # A library caller may run an event loop per thread on one pool: a second executor would keep its own
    # processes alive, out of close()'s reach.
    pool = EnginePool(workers=1)
    start = threading.Barrier(8)
    executors = []

    def ask() -> None:
        start.wait()
        executors.append(pool._pool())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(executor) for executor in executors}) == 1
    executors[0].shutdown()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
async def test_close_does_not_wait_for_work_its_caller_gave_up_on() -> None:
    # A stop whose grace ran out cancels the request it was on: the worker's seconds of work are for no one, and
    # waiting for them would make the stop as long as the request.
    pool = EnginePool(workers=1)
    await pool.resize(astronaut(), ResizeRequest(sizes=(Size(64, 64),)))  # the worker up, its models loaded
    workers = list(pool._pool()._processes)
    big = encode(photo(3000, 2000), "PNG")
    slow = asyncio.ensure_future(
        pool.resize(big, ResizeRequest(sizes=(Size(6000, 6000), Size(6000, 3000), Size(3000, 6000))))
    )  # about 6 s of work on a 2-core machine
    await asyncio.sleep(0.5)  # the worker is on it
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    started = time.monotonic()
    await pool.close()
    assert time.monotonic() - started < 2.5
    assert not any(_alive(pid) for pid in workers)
