"""Read deadlines on every listening socket (bot/slow_clients.py): a client that trickles its headers or its body is
cut with a 408 and counted, on the app's socket and on ``smart-resize serve``'s (issue 14: a trickled body stayed
open past 100 s, unauthenticated). Real sockets on loopback, with deadlines of a fraction of a second."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.config import ConfigError, ServerSettings, load_server_settings, load_settings
from bot.engine.pool import EnginePool
from bot.slow_clients import REPORT_EVERY_S, SlowClients
from bot.smart_resize_api.contract import KEY_HEADER
from bot.smart_resize_api.server.app import PREFIX, SmartResizeServer
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.harness import app_env, running_app

DEADLINE = 0.3  # seconds, for headers and bodies alike
KEY = "slow-test-key"


async def trickle(
    port: int, at_once: bytes, drip: bytes, *, every: float = 0.03, give_up: float = 3.0
) -> tuple[bytes, float]:
    """Send ``at_once``, then ``drip`` a byte at a time; what the server answered, and when it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(at_once)
            for byte in drip:
                await writer.drain()
                writer.write(bytes([byte]))
                await asyncio.sleep(every)

    sender = asyncio.ensure_future(send())
    try:
        async with asyncio.timeout(give_up):
            answer = await reader.read()  # until the server closes the connection
    except TimeoutError:
        answer = b"<still open>"
    took = time.monotonic() - started
    sender.cancel()
    writer.close()
    return answer, took


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _body(answer: bytes) -> object:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


# --- the app -------------------------------------------------------------------------------------------------


async def test_the_app_cuts_a_trickled_body_and_trickled_headers(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running_app(slack, tmp_path, read_timeouts=(DEADLINE, DEADLINE)) as app:
        port = int(app.url.rsplit(":", 1)[1])
        head = (
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
        )
        answer, took = await trickle(port, head, b"{" + b" " * 499)
        assert _status(answer) == 408 and DEADLINE <= took < DEADLINE + 1.0, (answer[:60], took)

        answer, took = await trickle(port, b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200)
        assert _status(answer) == 408 and DEADLINE <= took < DEADLINE + 1.0, (answer[:60], took)
        assert answer.endswith(b"The request headers did not arrive in time.\n")

        # A connection that opens and says nothing is closed too, quietly: an idle client is no slow client.
        answer, took = await trickle(port, b"", b"")
        assert answer == b"" and took < DEADLINE + 1.0

        # Prompt requests are untouched, twice over one kept-alive connection; /healthz counts the cuts.
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.get(f"{app.url}/healthz") as response:
                    health = await response.json()
                await asyncio.sleep(DEADLINE / 3)
    assert health["slow_clients_cut"] == {"headers": 1, "bodies": 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.slow_clients"]
    # One line when the first was cut; the second came within the minute, so it is counted, not logged.
    assert lines == [
        "Smart Resize: cut slow clients so far: 0 sent headers slower than 0.3s, 1 sent a body slower than 0.3s "
        "(HEADER_READ_TIMEOUT, BODY_READ_TIMEOUT)"
    ]


async def test_a_kept_alive_connection_may_wait_between_requests_up_to_the_deadline(
    slack: SlackEmulator, tmp_path: Path
) -> None:
    async with running_app(slack, tmp_path, read_timeouts=(DEADLINE, DEADLINE)) as app:
        port = int(app.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(3):  # each head arrives well within its deadline, counted from the previous answer
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.sleep(DEADLINE * 0.6)
        writer.close()
        async with app.session.get(f"{app.url}/healthz") as response:
            assert (await response.json())["slow_clients_cut"] == {"headers": 0, "bodies": 0}


def test_the_deadlines_are_settings_of_both_surfaces(slack: SlackEmulator, tmp_path: Path) -> None:
    app = load_settings(app_env(slack, tmp_path, HEADER_READ_TIMEOUT="5", BODY_READ_TIMEOUT="90"))
    assert (app.header_read_timeout_s, app.body_read_timeout_s) == (5.0, 90.0)
    server = load_server_settings({"HEADER_READ_TIMEOUT": "5", "BODY_READ_TIMEOUT": "90"})
    assert (server.header_read_timeout_s, server.body_read_timeout_s) == (5.0, 90.0)
    defaults = load_server_settings({})
    assert (defaults.header_read_timeout_s, defaults.body_read_timeout_s) == (10.0, 30.0)
    with pytest.raises(ConfigError, match="BODY_READ_TIMEOUT=0 is out of range; use a number from 1 to 3600"):
        load_server_settings({"BODY_READ_TIMEOUT": "0"})


# --- smart-resize serve --------------------------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path, engine_pool: EnginePool) -> AsyncIterator[tuple[int, SmartResizeServer]]:
    """The server as ``smart-resize serve`` runs it: through the guarded runner, on a real port."""
    config = ServerSettings(
        keys=frozenset({KEY}),
        database_path=tmp_path / "slow.db",
        workers=1,
        header_read_timeout_s=DEADLINE,
        body_read_timeout_s=DEADLINE,
    )
    service = SmartResizeServer(config, pool=engine_pool)
    runner = service.slow_clients.runner(service.application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], service
    finally:
        await runner.cleanup()


async def test_the_server_cuts_trickled_bodies_and_headers_in_its_own_words(
    served: tuple[int, SmartResizeServer], caplog: pytest.LogCaptureFixture
) -> None:
    port, service = served
    caplog.set_level(logging.WARNING)
    submit = f"POST {PREFIX}/smart-resize-request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head = (submit + f"{KEY_HEADER}: {KEY}\r\nContent-Length: 1000\r\n\r\n").encode()
    answer, took = await trickle(port, head, b"{" + b" " * 999)
    assert _status(answer) == 408 and DEADLINE <= took < DEADLINE + 1.0, (answer[:80], took)
    assert _body(answer) == {
        "error": "Request timeout",
        "details": "The request body did not arrive within 0.3 seconds (BODY_READ_TIMEOUT); send it again",
    }
    answer, took = await trickle(port, b"", submit.encode() + b"X-Slow: " + b"a" * 200)
    assert _status(answer) == 408 and took < DEADLINE + 1.0
    assert service.slow_clients.counts() == {"headers": 1, "bodies": 1}
    assert [r.getMessage() for r in caplog.records if r.name == "bot.slow_clients"] == [
        "smart-resize serve: cut slow clients so far: 0 sent headers slower than 0.3s, 1 sent a body slower than "
        "0.3s (HEADER_READ_TIMEOUT, BODY_READ_TIMEOUT)"
    ]


async def test_without_a_key_the_server_reads_no_body_and_holds_no_connection(
    served: tuple[int, SmartResizeServer],
) -> None:
    port, service = served
    head = f"POST {PREFIX}/smart-resize-request HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
    answer, took = await trickle(port, head, b" " * 1000)
    assert _status(answer) == 401  # at once, without waiting for the body
    assert took < DEADLINE + 1.0  # and the unread rest is not waited for long either
    assert service.slow_clients.counts() == {"headers": 0, "bodies": 0}


def test_the_log_line_comes_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    slow = SlowClients(1, 2, surface="test", clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    for step in range(10):
        now[0] = step * REPORT_EVERY_S / 4
        slow.head_timed_out()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3  # at 0, at one minute and at two (of 2.25)
    assert lines[-1].startswith("test: cut slow clients so far: 9 sent headers slower than 1s")


async def test_a_kept_alive_connection_may_idle_longer_than_a_head_may_take() -> None:
    # Clients keep idle connections (aiohttp for 15 s): closing one at the head deadline races their next request.
    guard = SlowClients(0.1, 1.0, surface="test", idle_s=0.5)
    app = web.Application()

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app.router.add_get("/", hello)
    guard.install(app)
    runner = guard.runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):  # the second request after an idle pause longer than the head deadline
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            assert (await reader.readuntil(b"hi")).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.25)
        assert await asyncio.wait_for(reader.read(), 2.0) == b""  # then, idle past idle_s, closed quietly
        writer.close()
    finally:
        await runner.cleanup()
    assert guard.counts() == {"headers": 0, "bodies": 0}
