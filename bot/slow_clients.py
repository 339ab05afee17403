"""Read deadlines for every listening socket: the app's (``/slack/events``, ``/healthz``, ``/sources/``) and
``smart-resize serve``'s.

aiohttp waits for a request's headers and body as long as the client cares to send them (its only clock is an idle
keep-alive of an hour), so one unauthenticated client trickling a byte a second holds a connection, and the memory
behind it, indefinitely. Here:

- **headers**: a connection must deliver a complete request head within ``headers_s`` of opening, or of the first
  byte of a later request; otherwise it gets ``408`` and is closed. A kept-alive connection may sit idle between
  requests for ``idle_s`` (75 s, longer than clients keep theirs: aiohttp's 15 s, so a client never sends on a
  connection we are closing), and is then closed quietly: that is not a slow client.
- **body**: the whole body must arrive within ``body_s`` of the head; otherwise ``408`` and the connection closed,
  without the ten seconds aiohttp would otherwise spend reading the rest.

Both kinds of cut are counted (``SlowClients.headers``, ``SlowClients.bodies``), logged as one WARNING line at most
once a minute, and shown by the app's ``/healthz``.

The head deadline needs to see the connection itself, below aiohttp's request handling: ``GuardedRunner`` hands
the listening socket a thin protocol in front of aiohttp's, which forwards every call unchanged (only the asyncio
protocol interface is relied on, and the runner's ``server`` property). Two middlewares do the rest: ``track``,
outermost, tells that protocol a request is being handled (they meet through ``transport.get_protocol()``), and
``read_body`` reads the body within its deadline, after authentication where an app has it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_server import Server

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_HEAD_TIMEOUT_TEXT = b"The request headers did not arrive in time.\n"
# Raw bytes: aiohttp is between requests when the head deadline passes, so nothing else is writing.
_HEAD_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_HEAD_TIMEOUT_TEXT), _HEAD_TIMEOUT_TEXT)
)
REPORT_EVERY_S = 60.0
KEEPALIVE_IDLE_S = 75.0


class SlowClients:
    """The deadlines of one listening app, and what they have cut.

    ``body_answer(seconds)`` makes the 408 for a body that was too slow, in the surface's own style (the API answers
    ``{"error", "details"}``); ``clock`` is injectable so tests need not wait a minute to see the log line.
    """

    def __init__(
        self,
        headers_s: float,
        body_s: float,
        *,
        surface: str,
        body_answer: Callable[[float], web.Response] | None = None,
        clock: Callable[[], float] = time.monotonic,
        idle_s: float = KEEPALIVE_IDLE_S,
    ) -> None:
        self.headers_s = headers_s
        self.body_s = body_s
        self.idle_s = idle_s
        self.surface = surface
        self.body_answer = body_answer or _plain_body_answer
        self.clock = clock
        self.headers = 0
        self.bodies = 0
        self._reported_at: float | None = None

    def counts(self) -> dict[str, int]:
        return {"headers": self.headers, "bodies": self.bodies}

    def install(self, app: web.Application) -> None:
        """Both middlewares around whatever ``app`` has: for apps that read every body anyway (Bolt's)."""
        app.middlewares.insert(0, self.track)
        app.middlewares.append(self.read_body)
        app[SLOW_CLIENTS] = self

    def runner(self, app: web.Application, **kwargs: Any) -> GuardedRunner:
        # No access log: request lines carry capability links (/sources/<token>, /media/<id>/...), which a log
        # reader could then fetch.
        kwargs.setdefault("access_log", None)
        return GuardedRunner(app, self, **kwargs)

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The outermost middleware: this connection's head is in, so its head deadline stops until the answer is
        sent."""
        connection = _connection_of(request)
        if connection is not None:
            connection.request_started()
            # The task that runs this middleware also writes the response (aiohttp's _handle_request): only when it
            # is done is the connection waiting for the next head, and the head deadline starts again. A body left
            # unread (a 401 before it was needed) is drained by aiohttp for a while: not a slow head.
            task = asyncio.current_task()
            if task is not None:
                task.add_done_callback(lambda _task: connection.request_finished(draining=not request.content.is_eof()))
        return await handler(request)

    @web.middleware
    async def read_body(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The whole body within ``body_s``, before the handler runs; after authentication where an app has it."""
        if request.body_exists:
            try:
                async with asyncio.timeout(self.body_s):
                    await request.read()  # cached: request.text(), .json() and .post() read this copy
            except TimeoutError:
                return await self._cut_body(request)
        return await handler(request)

    async def _cut_body(self, request: web.Request) -> web.StreamResponse:
        self.bodies += 1
        self.report()
        response = self.body_answer(self.body_s)
        response.force_close()
        # Sent and closed here: returned as usual, aiohttp would first spend up to ten seconds reading the rest of
        # the body the client is still trickling.
        await response.prepare(request)
        await response.write_eof()
        if request.transport is not None:
            request.transport.close()
        return response

    def head_timed_out(self) -> None:
        self.headers += 1
        self.report()

    def report(self) -> None:
        """One WARNING line, the first time and then at most once a minute: a flood of slow clients must not
        become a flood of log lines."""
        now = self.clock()
        if self._reported_at is not None and now - self._reported_at < REPORT_EVERY_S:
            return
        self._reported_at = now
        log.warning(
            "%s: cut slow clients so far: %d sent headers slower than %gs, %d sent a body slower than %gs "
            "(HEADER_READ_TIMEOUT, BODY_READ_TIMEOUT)",
            self.surface,
            self.headers,
            self.headers_s,
            self.bodies,
            self.body_s,
        )


SLOW_CLIENTS = web.AppKey("slow_clients", SlowClients)


def _plain_body_answer(seconds: float) -> web.Response:
    return web.Response(status=408, text=f"The request body did not arrive within {seconds:g} seconds.")


def _connection_of(request: web.Request) -> _Connection | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, _Connection) else None


class _Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with a clock on the request heads. Every call is forwarded."""

    def __init__(self, inner: asyncio.Protocol, guard: SlowClients) -> None:
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.busy = False  # a request's head is in and it is being handled (and answered)
        self.partial = False  # bytes of a head that is not complete yet (else the connection is just idle)
        self.draining = False  # aiohttp is reading away a body nobody asked for: its bytes are no head

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._arm(self.guard.headers_s)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy and not self.draining:
            if not self.partial:  # the first byte of a head: from now on it has headers_s to be complete
                self._arm(self.guard.headers_s)
            self.partial = True
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.transport = None
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def request_started(self) -> None:
        self.busy = True
        self.partial = False
        self.draining = False
        self._disarm()

    def request_finished(self, *, draining: bool) -> None:
        self.busy = False
        self.draining = draining
        if self.transport is not None and not self.transport.is_closing():
            # Reading away a body nobody asked for gets the short deadline; an idle keep-alive the long one.
            self._arm(self.guard.headers_s if draining else self.guard.idle_s)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        transport = self.transport
        if self.busy or transport is None or transport.is_closing():
            return
        if self.partial and not self.draining:
            self.guard.head_timed_out()
            transport.write(_HEAD_TIMEOUT_ANSWER)
        transport.close()


class GuardedRunner(web.AppRunner):
    """An AppRunner whose sites put the head deadline in front of each connection (see the module's notes)."""

    def __init__(self, app: web.Application, guard: SlowClients, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard

    @property
    def server(self) -> Server | None:
        real = super().server
        if real is None:
            return None
        guard = self.guard

        def connection() -> _Connection:
            return _Connection(real(), guard)

        # Sites only call it, as the listening socket's protocol factory; the runner itself keeps the real one.
        return cast(Server, connection)
