"""Fixtures shared by the whole suite: one Slack emulator per test, one engine pool per session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.engine.pool import EnginePool
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.harness import SHARED_ENGINE


@pytest.fixture(scope="session", autouse=True)
def engine_pool() -> Iterator[EnginePool]:
    """Worker processes for every app a test starts (tests that need a pool of their own make one)."""
    pool = EnginePool(workers=2)
    SHARED_ENGINE.pool = pool
    yield pool
    SHARED_ENGINE.pool = None
    asyncio.run(pool.close())


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    """A real aiohttp server speaking Slack's Web API and Socket Mode, with channel C1 (members U1 and U2)."""
    async with SlackEmulator() as emulator:
        emulator.add_channel("C1", members=("U1", "U2"))
        yield emulator
