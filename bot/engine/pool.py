"""Run the engine in worker processes so an asyncio event loop never executes image code.

Workers are started with ``spawn`` (no inherited event loop, sockets or threads from the parent) and load (and run
once) the face and text detectors at start, so the first job is not slower than the rest. A worker whose app process
is gone (killed with -9, say) leaves within a second or so instead of holding its models' memory for ever.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .core import resize
from .importance import warm_up
from .types import Limits, ResizeRequest, ResizeResult

PARENT_CHECK_S = 1.0  # how often a worker looks for its app process


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


class EnginePool:
    """``await pool.resize(data, request)``; engine errors (EngineError subclasses) propagate unchanged."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None) -> None:
        self.workers = workers or default_workers()
        self.limits = limits or Limits()
        self._executor: ProcessPoolExecutor | None = None
        # One pool may serve event loops on several threads (a library caller's): one executor, however they race.
        self._lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
                )
            return self._executor

    async def resize(self, data: bytes, request: ResizeRequest, limits: Limits | None = None) -> ResizeResult:
        """``limits``: this call's caps, where they are not the pool's (one pool can serve several callers)."""
        loop = asyncio.get_running_loop()
        executor = self._pool()
        try:
            return await loop.run_in_executor(executor, resize, data, request, limits or self.limits)
        except BrokenProcessPool:
            # A worker died (out of memory, killed): replace the pool so one bad input doesn't take the service
            # down; the caller decides what this job does next (the local backend retries it).
            self._replace(executor)
            raise

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop ``broken``, unless another failed call has already put a fresh pool in its place."""
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    async def __aenter__(self) -> EnginePool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _start_worker() -> None:
    """Each worker's start: watch for the app process going away, then load the models."""
    parent = os.getppid()
    threading.Thread(target=_leave_when_orphaned, args=(parent,), daemon=True, name="parent-watch").start()
    warm_up()


def _leave_when_orphaned(parent: int) -> None:
    # An idle worker waits on its task queue, and it holds that pipe's write end too, so a parent killed with -9
    # never closes it: without this the worker would wait, and hold its ~150 MB of models, for ever.
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)
