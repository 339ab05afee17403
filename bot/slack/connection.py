"""The app's link to Slack: the start-up token checks, the Socket Mode websocket, and what /readyz reports.

Socket Mode is driven here rather than by slack_sdk's client, which retries a refused or unreachable Slack forever
with a traceback every 10 s and cannot be stopped while it connects. This one opens a socket with
``apps.connections.open`` (the app-level token), hands every envelope to Bolt, acks it, and reconnects with capped,
jittered backoff after Slack's ``disconnect`` messages or a dropped socket, logging one line per retry. A token
Slack refuses ends it with ``TokenRefused``; a cancel (SIGTERM) ends it at once in any phase.

An envelope Slack sends again (its ack was lost with a socket) is acked again, not run twice; an event that
arrives in a new envelope is made into one job by the job store's dedup key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.smart_resize_api.retry import RetryPolicy, compute_delay

log = logging.getLogger(__name__)

# Slack's answers that mean the token itself is wrong: no retry can fix them.
TOKEN_REFUSED = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
# And for the app-level token, what Slack answers one made without the connections:write scope (missing_scope) or a
# token of another kind: apps.connections.open will answer the same however often it is asked.
APP_TOKEN_REFUSED = TOKEN_REFUSED | {"missing_scope", "not_allowed_token_type"}
UNREACHABLE = (aiohttp.ClientError, TimeoutError, OSError)
# Slack's answers that mean it is failing or busy for a moment (429s and 5xx are too, whatever they say).
SLACK_FAILING = frozenset({"ratelimited", "internal_error", "service_unavailable", "fatal_error"})
# Slack out of reach or overloaded: waited out with backoff, one line per retry. 1 s, 2 s, 4 s ... at most 30 s.
RECONNECT = RetryPolicy(max_attempts=1_000_000, base_delay=1.0, max_delay=30.0, jitter="decorrelated")

_WHERE_TO_GET = {
    "SLACK_BOT_TOKEN": "Copy the current Bot User OAuth Token (xoxb-...) from OAuth & Permissions at "
    "https://api.slack.com/apps into .env; reinstall the app to the workspace if it has none.",
    "SLACK_APP_TOKEN": "Create an app-level token (xapp-...) with the connections:write scope under Basic "
    "Information > App-Level Tokens at https://api.slack.com/apps and put it in .env.",
}


class TokenRefused(Exception):
    """Slack refused one of the tokens: the operator must replace it; retrying cannot help."""

    def __init__(self, setting: str, code: str) -> None:
        super().__init__(f"Slack refused {setting} ({code}). {_WHERE_TO_GET[setting]}")
        self.setting = setting
        self.code = code


@dataclass
class Readiness:
    """What /readyz answers: ready once Slack has accepted the bot token and, in Socket Mode, while the socket is
    connected. ``problem`` says what is wrong otherwise, in the words an operator's log uses."""

    socket_mode: bool
    token_checked: bool = False
    socket_connected: bool = False
    problem: str | None = "starting: Slack not checked yet"
    connects: int = 0  # sockets opened since start (each reconnect adds one)
    checked_at: float = field(default=float("-inf"))
    probing: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)  # one auth.test at a time for /readyz

    @property
    def ready(self) -> bool:
        return self.token_checked and (self.socket_connected or not self.socket_mode) and self.problem is None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ready": self.ready, "slack_token_checked": self.token_checked}
        if self.socket_mode:
            body["socket_connected"] = self.socket_connected
            body["socket_connects"] = self.connects
        if self.problem is not None:
            body["problem"] = self.problem
        return body


Sleep = Callable[[float], Awaitable[None]]


def host_of(api_url: str) -> str:
    return urlsplit(api_url).netloc or api_url


def describe_failure(error: BaseException) -> str:
    """One line for a failed call to Slack, without a traceback (and never a token: errors carry none)."""
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or f"HTTP {error.response.status_code}")
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def call_failed(
    error: BaseException,
    host: str,
    method: str,
    token_setting: str | None = None,
    refused: frozenset[str] = TOKEN_REFUSED,
) -> str:
    """The one line for a failed call to Slack. ``token_setting``: a token Slack refuses there (one of the codes in
    ``refused``) raises TokenRefused."""
    if isinstance(error, SlackApiError):
        code = str(error.response.get("error") or "")
        if token_setting is not None and code in refused:
            raise TokenRefused(token_setting, code) from None
        return f"Slack at {host} refused {method} ({describe_failure(error)})"
    return f"Slack is unreachable at {host} ({describe_failure(error)})"


class SlackUnreachable(Exception):
    """A call to Slack that did not get through, where the transport's own error is not passed on (a file
    download's can hold the request's headers, and so the token). ``str()`` is the line for the log."""


def waiting_on_slack(error: BaseException, host: str) -> str | None:
    """For an error from work whose only unwrapped network calls are Slack's: the one line when Slack could not take
    a call now but will later (out of reach, failing, rate-limiting, or refusing the bot token until the operator
    puts the right one in). None for any other error: Slack answered and its answer stands, or it is not Slack's."""
    if isinstance(error, SlackApiError):
        code = str(error.response.get("error") or "")
        if code in TOKEN_REFUSED:
            return f"Slack refused SLACK_BOT_TOKEN ({code}): put the current token in .env and restart"
        status = error.response.status_code
        if code in SLACK_FAILING or status == 429 or status >= 500:
            return call_failed(error, host, method=str(error.response.api_url).rsplit("/", 1)[-1])
        return None
    if isinstance(error, SlackUnreachable):
        return str(error)
    if isinstance(error, aiohttp.ClientResponseError) and error.status < 500 and error.status != 429:
        return None  # Slack refused that request (an upload URL gone, say): the same one again would not do
    # aiohttp's errors and timeouts, not any OSError: a full disk is not Slack's.
    if isinstance(error, aiohttp.ClientError | TimeoutError):
        return f"Slack is unreachable at {host} ({describe_failure(error)})"
    return None


async def check_bot_token(
    client: AsyncWebClient, readiness: Readiness, *, policy: RetryPolicy = RECONNECT, sleep: Sleep = asyncio.sleep
) -> dict[str, Any]:
    """``auth.test`` until Slack answers: the token checked once before anything is served with it.

    Raises TokenRefused when Slack says the token is wrong; waits out an unreachable or failing Slack with one log
    line per retry (cancel to stop)."""
    host = host_of(client.base_url)
    retry = 0
    previous: float | None = None
    while True:
        try:
            response = await client.auth_test()
        except (SlackApiError, *UNREACHABLE) as error:
            problem = call_failed(error, host, "auth.test", "SLACK_BOT_TOKEN")
        else:
            readiness.token_checked = True
            readiness.problem = None
            readiness.checked_at = time.monotonic()
            return dict(response.data) if isinstance(response.data, dict) else {}
        readiness.problem = problem
        previous = compute_delay(policy, retry, previous=previous)
        log.warning("%s; retrying in %.1f s", problem, previous)
        await sleep(previous)
        retry += 1


READY_PROBE_S = 15.0
# A socket that lasted this long was a working one: the next connect starts the backoff afresh.
STEADY_S = 10.0


async def refresh_readiness(client: AsyncWebClient, readiness: Readiness) -> None:
    """In HTTP mode nothing else tells whether Slack still answers: ``auth.test`` once READY_PROBE_S has passed
    since the last look (a load balancer probing every second costs Slack one call per READY_PROBE_S)."""
    if not readiness.token_checked:  # still starting: check_bot_token reports
        return
    async with readiness.probing:
        if time.monotonic() - readiness.checked_at < READY_PROBE_S:
            return
        readiness.checked_at = time.monotonic()
        host = host_of(client.base_url)
        try:
            async with asyncio.timeout(3.0):
                await client.auth_test()
        except (SlackApiError, *UNREACHABLE) as error:
            readiness.problem = call_failed(error, host, "auth.test")
        else:
            readiness.problem = None


class SocketModeLink:
    """One Socket Mode connection at a time, kept open until cancelled."""

    def __init__(
        self,
        app: AsyncApp,
        app_token: str,
        *,
        api_url: str,
        session: aiohttp.ClientSession,
        readiness: Readiness,
        policy: RetryPolicy = RECONNECT,
        heartbeat_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        on_token_accepted: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``on_token_accepted``: awaited once, the first time Slack accepts the app-level token."""
        self.app = app
        self._on_token_accepted = on_token_accepted
        # A client with no token of its own: the app-level token goes to this one method only.
        self._opener = AsyncWebClient(base_url=api_url, session=session)
        self._app_token = app_token
        self._session = session
        self.readiness = readiness
        self.policy = policy
        self.heartbeat_s = heartbeat_s
        self._sleep = sleep
        self._host = host_of(api_url)
        self._handling: set[asyncio.Task[None]] = set()  # strong references: the loop must not lose an envelope
        # Envelopes seen lately, with the ack sent (None while still being handled): a redelivered one is acked
        # again instead of being dispatched twice.
        self._seen: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._current: aiohttp.ClientWebSocketResponse | None = None

    async def run(self) -> None:
        """Connect, serve, reconnect; returns only by cancellation or TokenRefused."""
        retry = 0
        previous: float | None = None
        try:
            while True:
                opened = time.monotonic()
                problem = await self._connect_once()
                lasted = time.monotonic() - opened
                if problem is None and lasted >= STEADY_S:  # a session that served, then ended: reconnect at once
                    retry, previous = 0, None
                    continue
                previous = compute_delay(self.policy, retry, previous=previous)
                retry += 1
                if problem is None:  # greeted, then ended at once, again and again: don't hammer Slack
                    log.info("the Socket Mode connection ended after %.1f s; reconnecting in %.1f s", lasted, previous)
                else:
                    self.readiness.problem = problem
                    log.warning("%s; retrying in %.1f s", problem, previous)
                await self._sleep(previous)
        finally:
            self.readiness.socket_connected = False
            for task in list(self._handling):
                task.cancel()
            await asyncio.gather(*self._handling, return_exceptions=True)

    async def _connect_once(self) -> str | None:
        """One socket's life; None when it ran and Slack (or the network) ended it, else why it could not open."""
        try:
            response = await self._opener.apps_connections_open(app_token=self._app_token)
        except (SlackApiError, *UNREACHABLE) as error:
            return call_failed(error, self._host, "apps.connections.open", "SLACK_APP_TOKEN", APP_TOKEN_REFUSED)
        if self._on_token_accepted is not None:
            accepted, self._on_token_accepted = self._on_token_accepted, None
            await accepted()
        url = str(response["url"])
        try:
            async with self._session.ws_connect(url, heartbeat=self.heartbeat_s, autoping=True) as socket:
                self._current = socket
                greeted = await self._serve(socket)
        except UNREACHABLE as error:
            # The error's text can hold the URL, and its ticket is a credential: the kind and status only.
            status = getattr(error, "status", None)
            why = type(error).__name__ + (f", HTTP {status}" if status else "")
            return f"the Socket Mode connection to {urlsplit(url).netloc} failed ({why})"
        finally:
            self._current = None
            self.readiness.socket_connected = False
        if not greeted:
            return "Slack closed the Socket Mode connection before greeting it"
        return None

    async def _serve(self, socket: aiohttp.ClientWebSocketResponse) -> bool:
        greeted = False
        async for message in socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                if message.type is aiohttp.WSMsgType.ERROR:
                    log.warning("the Socket Mode connection broke (%s); reconnecting", describe_failure(message.data))
                break
            try:
                data = json.loads(message.data)
            except ValueError:
                log.warning("Slack sent a Socket Mode message that is not JSON; ignored")
                continue
            kind = data.get("type")
            if kind == "hello":
                greeted = True
                self.readiness.socket_connected = True
                self.readiness.problem = None
                self.readiness.connects += 1
                log.info("connected to Slack over Socket Mode")
            elif kind == "disconnect":
                reason = data.get("reason", "")
                if reason == "link_disabled":
                    log.warning(
                        "Slack disabled this app's Socket Mode connection (link_disabled): turn Socket Mode on under "
                        "Settings > Socket Mode at https://api.slack.com/apps; trying to reconnect"
                    )
                else:
                    log.info("Slack asked for a new Socket Mode connection (%s); reconnecting", reason or "no reason")
                break
            elif "envelope_id" in data:
                self._receive(socket, data)
        return greeted

    def _receive(self, socket: aiohttp.ClientWebSocketResponse, data: dict[str, Any]) -> None:
        envelope_id = str(data["envelope_id"])
        if envelope_id in self._seen:
            ack = self._seen[envelope_id]
            if ack is not None:  # answered before, and the answer was lost: answer again, run nothing
                task = asyncio.create_task(self._send(socket, ack))
                self._keep(task)
            return
        self._seen[envelope_id] = None
        while len(self._seen) > 1000:
            self._seen.popitem(last=False)
        request = SocketModeRequest.from_dict(data)
        if request is None:
            return
        self._keep(asyncio.create_task(self._handle(socket, request), name=f"envelope-{envelope_id}"))

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _handle(self, socket: aiohttp.ClientWebSocketResponse, request: SocketModeRequest) -> None:
        response = await run_async_bolt_app(self.app, request)
        if response.status != 200:
            # Not acked, as Bolt's own adapter does: Slack sends it again, and then it is run again.
            log.info("envelope %s not handled (status %s)", request.envelope_id, response.status)
            self._seen.pop(request.envelope_id, None)
            return
        ack: dict[str, Any] = {"envelope_id": request.envelope_id}
        if response.body:
            content_type = (response.headers.get("content-type") or [""])[0]
            ack["payload"] = (
                json.loads(response.body) if content_type.startswith("application/json") else {"text": response.body}
            )
        self._seen[request.envelope_id] = ack
        # On the socket open now: if the one it came on dropped meanwhile, Slack waits for the ack on the new one.
        await self._send(self._current or socket, ack)

    async def _send(self, socket: aiohttp.ClientWebSocketResponse, ack: dict[str, Any]) -> None:
        # The socket may be gone by now: Slack then sends the envelope again on the next one, where it is acked.
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await socket.send_json(ack)
