"""Run the real app on loopback against the Slack emulator, and send it signed requests like Slack does."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from slack_sdk.signature import SignatureVerifier

from bot.app import add_health_route, add_request_guards, add_source_route, build_app
from bot.config import load_settings
from bot.engine.pool import EnginePool
from bot.jobs.model import Job
from bot.services import Pacing, Services, open_services
from bot.slack.connection import check_bot_token
from bot.slack.uploads import SHARE_POLL_S
from tests.slack_api.emulator import BOT_TOKEN, TEAM, SlackEmulator

SIGNING_SECRET = "test-signing-secret-0123456789"


@dataclass
class RunningApp:
    url: str
    services: Services
    session: aiohttp.ClientSession

    async def post(
        self, body: bytes, content_type: str, *, secret: str = SIGNING_SECRET, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        timestamp = str(int(time.time()))
        signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        all_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
            **(headers or {}),
        }
        async with self.session.post(f"{self.url}/slack/events", data=body, headers=all_headers) as response:
            return response.status, await response.text()

    def intake_answers(self) -> list[bool]:
        """Whether each request the listeners submit from now on made a new job: they run after the ack, so a test
        of something that must start nothing waits for this instead of for a job."""
        answers: list[bool] = []
        submit = self.services.intake.submit

        async def answered(**request: Any) -> tuple[Job, bool]:
            job, new = await submit(**request)
            answers.append(new)
            return job, new

        self.services.intake.submit = answered  # type: ignore[method-assign]
        return answers

    async def command(
        self,
        text: str,
        *,
        channel: str = "C1",
        user: str = "U1",
        response_url: str = "",
        trigger_id: str | None = None,
        channel_name: str | None = None,
    ) -> tuple[int, str]:
        """``channel_name``: as Slack names it there (``directmessage`` in a DM, ``mpdm-a--b--c-1`` in a group DM)."""
        form = {
            "token": "legacy",
            "team_id": TEAM,
            "channel_id": channel,
            "channel_name": channel_name or ("directmessage" if channel.startswith("D") else "general"),
            "user_id": user,
            "command": "/resize",
            "text": text,
            "response_url": response_url,
            "trigger_id": trigger_id or uuid.uuid4().hex,
        }
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None
    ) -> tuple[int, str]:
        envelope = {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": "AEMU",
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": "UBOTEMU01", "is_bot": True}],
        }
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} if retry_num else None
        return await self.post(json.dumps(envelope).encode(), "application/json", headers=headers)

    async def block_action(
        self, action_id: str, value: str, *, user: str, channel: str = "C1", thread_ts: str | None = None
    ) -> tuple[int, str]:
        """A click on a button of a message; ``thread_ts``: the thread that message is in, as Slack says it."""
        container: dict[str, Any] = {"type": "message", "channel_id": channel}
        if thread_ts is not None:
            container["thread_ts"] = thread_ts
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": user},
            "api_app_id": "AEMU",
            "trigger_id": uuid.uuid4().hex,
            "channel": {"id": channel},
            "container": container,
            "actions": [
                {"type": "button", "action_id": action_id, "block_id": "b1", "value": value, "action_ts": "1.0"}
            ],
        }
        return await self.post(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )

    async def message_shortcut(
        self,
        message: dict[str, Any],
        *,
        user: str,
        channel: str = "C1",
        response_url: str = "",
        channel_name: str | None = None,
    ) -> tuple[int, str]:
        payload = {
            "type": "message_action",
            "callback_id": "smart_resize",
            "trigger_id": uuid.uuid4().hex,
            "team": {"id": TEAM},
            "user": {"id": user},
            "channel": {
                "id": channel,
                "name": channel_name or ("directmessage" if channel.startswith("D") else "general"),
            },
            "message": message,
            "message_ts": message["ts"],
            "response_url": response_url,
        }
        return await self.post(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )

    async def submit_view(self, view: dict[str, Any], values: dict[str, Any], *, user: str) -> tuple[int, str]:
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": {"id": user},
            "trigger_id": uuid.uuid4().hex,
            "view": {**view, "state": {"values": values}},
        }
        return await self.post(
            urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        )


def form_values(
    presets: list[str] = (),  # type: ignore[assignment]
    sizes: str = "",
    mode: str = "auto",
    output_format: str = "auto",
    variants: str = "1",
    prompt: str = "",
    upload: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The state Slack sends for the resize modal, as a person filled it in."""
    values: dict[str, Any] = {
        "presets": {"value": {"type": "multi_static_select", "selected_options": [{"value": p} for p in presets]}},
        "sizes": {"value": {"type": "plain_text_input", "value": sizes or None}},
        "mode": {"value": {"type": "static_select", "selected_option": {"value": mode}}},
        "format": {"value": {"type": "static_select", "selected_option": {"value": output_format}}},
        "variants": {"value": {"type": "static_select", "selected_option": {"value": variants}}},
        "prompt": {"value": {"type": "plain_text_input", "value": prompt or None}},
    }
    if upload is not None:
        values["upload"] = {"value": {"type": "file_input", "files": upload}}
    return values


def app_env(emulator: SlackEmulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": emulator.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "ENGINE_WORKERS": "1",
        **extra,
    }


# The emulator shares an upload as soon as it is complete, and the loopback API answers at once: the app need
# not wait long on either.
PACING = Pacing(share_poll_s=(0.01,), hosted_poll_interval=(0.2, 0.3))


class FakeClock:
    """Wall-clock time that moves only when something sleeps on it: a share a minute late takes no time. Give the
    app ``pacing(clock)`` and the emulator ``clock`` as its ``clock``."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def pacing(self, **changes: Any) -> Pacing:
        # Slack's own poll schedule: on this clock its waits cost nothing, and each look costs a call.
        return replace(PACING, clock=self, sleep=self.sleep, share_poll_s=SHARE_POLL_S, **changes)


@dataclass
class SharedEngine:
    """The test session's engine pool (tests/conftest.py): starting one per app costs about a second."""

    pool: EnginePool | None = None


SHARED_ENGINE = SharedEngine()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def running_app(
    emulator: SlackEmulator,
    tmp_path: Path,
    *,
    port: int | None = None,
    read_timeouts: tuple[float, float] | None = None,
    pacing: Pacing = PACING,
    check_token: bool = True,
    **extra: str,
) -> AsyncIterator[RunningApp]:
    """The app as ``python -m bot`` serves it in HTTP mode, on ``port`` (a free one by default), through the same
    runner and request guards. ``read_timeouts``: (headers, body) deadlines in seconds, shorter than the settings
    allow, so tests of slow clients are quick. ``check_token=False``: as before Slack has accepted the token (no
    job runs)."""
    port = port or free_port()
    settings = load_settings(app_env(emulator, tmp_path, **extra))
    if read_timeouts is not None:
        settings = replace(settings, header_read_timeout_s=read_timeouts[0], body_read_timeout_s=read_timeouts[1])
    services_context = open_services(settings, pool=SHARED_ENGINE.pool, pacing=pacing)
    async with services_context as services, aiohttp.ClientSession() as session:
        if check_token:  # as serve() does before requests are let through to Bolt, and jobs run
            await check_bot_token(services.client, services.readiness)
            await services.start_work()
        app = build_app(services)
        web_app = app.web_app(path="/slack/events", port=port)
        add_health_route(web_app, services)
        add_source_route(web_app, services)
        runner = add_request_guards(web_app, services).runner(web_app)
        await runner.setup()
        try:
            await web.TCPSite(runner, host="127.0.0.1", port=port).start()
            yield RunningApp(f"http://127.0.0.1:{port}", services, session)
        finally:
            await runner.cleanup()


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 30.0) -> None:
    """Poll ``check`` until it holds; the job runs in the background, so tests wait for its effects."""
    deadline = time.monotonic() + within
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


OWN_API_KEY = "own-key"


@dataclass
class OwnApi:
    """``smart-resize serve`` on loopback, allowed to reach loopback: as a hosted service reaches the app over the
    internet, so the hosted backend can be run end to end against it."""

    server: TestServer
    database: Path

    def hosted_env(self, app_port: int) -> dict[str, str]:
        """The app's settings for the hosted backend against this server, with links under the app's own port."""
        return {
            "SMART_RESIZE_BACKEND": "hosted",
            "PIXAZO_API_KEY": OWN_API_KEY,
            "PIXAZO_BASE_URL": f"http://127.0.0.1:{self.server.port}/smart-resize/v1",
            "FETCH_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{app_port}",
        }

    def submitted_image_urls(self) -> list[str]:
        with sqlite3.connect(self.database) as db:
            return [json.loads(body)["image_url"] for (body,) in db.execute("SELECT body FROM api_requests")]


@contextlib.asynccontextmanager
async def own_api(tmp_path: Path) -> AsyncIterator[OwnApi]:
    from bot.config import ServerSettings
    from bot.net import parse_allow_networks
    from bot.smart_resize_api.server.app import SmartResizeServer

    database = tmp_path / "api.db"
    settings = ServerSettings(
        keys=frozenset({OWN_API_KEY}), database_path=database, allow_networks=parse_allow_networks("127.0.0.1/32")
    )
    server = TestServer(SmartResizeServer(settings, pool=SHARED_ENGINE.pool).application(), host="127.0.0.1")
    await server.start_server()
    try:
        yield OwnApi(server, database)
    finally:
        await server.close()


ROOT = Path(__file__).parents[2]


class AppProcess:
    """``python -m bot`` as a real child process in HTTP mode, logging to ``cwd / log_name``."""

    def __init__(self, env: dict[str, str], cwd: Path, log_name: str = "app.log") -> None:
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port), "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
        self.cwd = cwd
        self.log = cwd / log_name
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start it and wait until it is ready: Slack accepted its token (/readyz)."""
        with self.log.open("ab") as log:
            # Popen only forks; the child's output goes straight to the log file, nothing here blocks.
            self.process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "bot"], env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("the app did not start:\n" + self.log.read_text())

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    async def stop(self) -> None:
        """SIGTERM, then wait off the event loop: the emulator shares this loop and must keep answering while the
        app finishes its running jobs (a blocking wait stalled both until the app's grace period cut the job)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.process.wait, 30)
