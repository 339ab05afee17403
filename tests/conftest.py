"""Fixtures shared by the whole suite: one Slack emulator per test, one engine pool per session, and databases
(SQLite files, and PostgreSQL ones on the server `.ci/run` starts), and a detector model made absent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.engine import detectors
from bot.engine.pool import EnginePool
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.harness import SHARED_ENGINE


@pytest.fixture(scope="session", autouse=True)
def this_checkout_in_subprocesses() -> Iterator[None]:
    """Processes the tests start (``python -m bot``, ``python -m bot.cli``) import this checkout's code, as the tests
    themselves do, not whichever checkout the venv installed in editable mode (another worktree's, say)."""
    root = str(Path(__file__).parents[1])
    with pytest.MonkeyPatch.context() as session:
        session.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        yield


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The quantised text model is kept here, not in the user's own cache, for this run and the processes it
    starts (built once, by whichever starts first)."""
    path = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as session:
        session.setenv("SMART_RESIZE_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session", autouse=True)
def engine_pool(model_cache: Path) -> Iterator[EnginePool]:
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


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of a PostgreSQL server to make test databases on: TEST_DATABASE_URL, as `.ci/run` sets it (it starts
    one with `.ci/postgres`). Without it the PostgreSQL tests skip, saying so; in CI they fail instead."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        reason = "TEST_DATABASE_URL is not set: start a server with .ci/postgres and export the URL it prints"
        if os.environ.get("TEST_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    async with fresh_database(postgres_server) as url:
        yield url


@contextlib.asynccontextmanager
async def fresh_database(server: str) -> AsyncIterator[str]:
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.rsplit("/", 1)[0] + f"/{name}"
        finally:  # a failing test's database goes too
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each store test runs twice: on a SQLite file, and on a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    async with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
def no_face_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The face model's wheel as if it were not installed (a package name that does not exist)."""
    absent = replace(detectors.FACE_MODEL, package="smart_resize_no_such_package")
    monkeypatch.setattr(detectors, "FACE_MODEL", absent)
    monkeypatch.setattr(detectors, "MODELS", (absent, detectors.TEXT_MODEL))
    detectors._face_net.cache_clear()
    yield
    detectors._face_net.cache_clear()
