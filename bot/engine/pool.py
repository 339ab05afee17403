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
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from .core import resize, web_copy
from .importance import warm_up
from .types import Limits, ResizeRequest, ResizeResult

T = TypeVar("T")
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
        # Calls not done yet, and those of them whose caller stopped waiting (cancelled) while a worker was already
        # on them: no one wants their results, so close() does not wait for them.
        self._running: set[Future[Any]] = set()
        self._abandoned: set[Future[Any]] = set()

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
                )
            return self._executor

    async def resize(self, data: bytes, request: ResizeRequest, limits: Limits | None = None) -> ResizeResult:
        """``limits``: this call's caps, where they are not the pool's (one pool can serve several callers)."""
        return await self._run(resize, data, request, limits or self.limits)

    async def web_copy(self, data: bytes, limits: Limits | None = None) -> tuple[bytes, str]:
        """``bot.engine.web_copy`` in a worker: the image as a JPEG or PNG any web service reads."""
        return await self._run(web_copy, data, limits or self.limits)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        executor = self._pool()
        work: Future[T] = executor.submit(function, *args)
        with self._lock:
            self._running.add(work)
        work.add_done_callback(self._forget)
        try:
            return await asyncio.wrap_future(work)
        except asyncio.CancelledError:
            if not work.cancel():  # a worker is on it already: it runs on, for no one
                with self._lock:
                    if not work.done():
                        self._abandoned.add(work)
            raise
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

    def _forget(self, work: Future[Any]) -> None:
        with self._lock:
            self._running.discard(work)
            self._abandoned.discard(work)

    async def close(self) -> None:
        """Wait for the work callers still wait for. When all that runs is work they gave up on (a stop's grace ran
        out), it is not waited for: the workers are ended instead, so a stop takes no longer than its grace."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        with self._lock:
            unwanted = bool(self._running) and self._running <= self._abandoned
        if unwanted:
            for process in list(executor._processes.values()):
                process.terminate()
        await asyncio.get_running_loop().run_in_executor(None, lambda: executor.shutdown(cancel_futures=unwanted))

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
