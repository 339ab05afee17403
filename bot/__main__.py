"""``python -m bot``: load .env, validate settings, serve Slack (Socket Mode or HTTP) until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import re
import signal
import sys
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any

# Only the standard library at the top: what loads the app (about a second) is imported once main() has made Ctrl-C
# quiet (see _stopped_while_loading).
if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.config import Settings
    from bot.engine.pool import EnginePool
    from bot.services import Pacing, Services

log = logging.getLogger("bot")
_SECRET = re.compile(r"\b(xox[abpsr]-|xapp-)[A-Za-z0-9-]+")


class RedactTokens(logging.Filter):
    """Belt and braces: no Slack token reaches a log line, whoever logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _SECRET.sub(r"\1[redacted]", str(record.msg))
        if record.args:
            record.args = tuple(_SECRET.sub(r"\1[redacted]", str(a)) if isinstance(a, str) else a for a in record.args)
        return True


def configure_logging() -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RedactTokens())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # slack_sdk notes every retry it makes at INFO; the app says once, in its own line, what is wrong.
    logging.getLogger("slack_sdk").setLevel(logging.WARNING)


def main() -> int:
    signal.signal(signal.SIGINT, _stopped_while_loading)
    from dotenv import find_dotenv, load_dotenv

    from bot.config import ConfigError, load_settings

    load_dotenv(find_dotenv(usecwd=True))  # the .env where the app is started, wherever it is installed
    configure_logging()
    try:
        settings = load_settings()
    except ConfigError as error:
        print("Smart Resize can't start:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    # Read once into the settings; gone from the environment, no child process inherits the secrets and no library
    # picks a token up behind the settings' back (Bolt would, and warn that it goes unused).
    for name in _SECRETS:
        os.environ.pop(name, None)
    return asyncio.run(serve(settings))


def _stopped_while_loading(signum: int, frame: object) -> None:
    """Ctrl-C before serve() hands SIGINT to the event loop (while the app's modules load, or the settings are read)
    ends the app as quietly as it does later, rather than with a KeyboardInterrupt traceback out of whatever module
    was being imported. Nothing has started yet, so there is nothing to finish, and the process ends there and then:
    an exception raised here could land inside an extension module's initialisation (numpy's), which turns it into
    an ImportError and a traceback."""
    os._exit(0)


_SECRETS = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "PIXAZO_API_KEY", "SOURCE_LINK_KEY")


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    pacing: Pacing | None = None,
    pool: EnginePool | None = None,
) -> int:
    """Serve until ``stop`` (SIGINT/SIGTERM by default); ``pacing``: the waits on Slack and the API (tests shorten);
    ``pool``: an engine pool to share (else one is started). Returns the exit code: 0 after a stop, 2 when Slack
    refuses a token or the database can't be opened."""
    from bot.postgres import StoreUnavailable
    from bot.services import Pacing, open_services

    pacing = pacing or Pacing()
    with _stop_on_signals(stop) as stop:
        try:
            async with open_services(settings, pacing=pacing, pool=pool) as services:
                return await _serve_with(services, stop, pacing)
        except StoreUnavailable as error:  # the database out of reach at start-up: one line, not a traceback
            print(f"Smart Resize can't start: {error}", file=sys.stderr)
            return 2


async def _serve_with(services: Services, stop: asyncio.Event, pacing: Pacing) -> int:
    from aiohttp import web

    from bot.app import add_health_route, add_request_guards, add_source_route, build_app
    from bot.user_errors import system_reason

    settings = services.settings
    app = build_app(services)
    web_app = web.Application() if settings.socket_mode else app.web_app(path="/slack/events", port=settings.port)
    add_health_route(web_app, services)
    add_source_route(web_app, services)
    # Read deadlines on every connection, and /slack/events checked before Bolt (HEADER_/BODY_READ_TIMEOUT).
    runner = add_request_guards(web_app, services).runner(web_app)
    await runner.setup()
    try:
        # Listening before Slack is checked: /healthz says live and /readyz says why it is not ready yet.
        try:
            await web.TCPSite(runner, host="0.0.0.0", port=settings.port).start()  # noqa: S104 - Slack must reach it
        except OSError as error:  # another process has the port
            reason = system_reason(error)
            print(
                f"Smart Resize can't start: can't listen on port {settings.port} ({reason}); set PORT in .env to a "
                "free port.",
                file=sys.stderr,
            )
            return 2
        _log_running(settings, services)
        # What exists now (numpy, OpenCV, Pillow, slack_sdk, the app) lives as long as the process. Frozen out of
        # the collector's reach, each full collection walks only what jobs allocate: ~6 ms instead of ~40 ms, and
        # a poller with 1,000 hosted jobs in flight spends about a point of a core less.
        gc.collect()
        gc.freeze()
        return await _until_stopped(stop, _connect(app, services, pacing))
    finally:
        log.info("shutting down: finishing running jobs; the rest resume on the next start")
        await runner.cleanup()


async def _connect(app: AsyncApp, services: Services, pacing: Pacing) -> None:
    """Check the bot token with Slack, then (Socket Mode) the app-level token as the socket opens, and start the jobs
    once Slack has accepted both: not before, or a token Slack refuses would fail (or an exit abandon) every job
    claimed. Returns in HTTP mode once they are started."""
    import aiohttp

    from bot.slack.connection import SocketModeLink, check_bot_token

    settings = services.settings
    identity = await check_bot_token(services.client, services.readiness, policy=pacing.reconnect)
    log.info("Slack accepted the bot token (workspace %s)", identity.get("team") or identity.get("team_id") or "?")
    if settings.slack_app_token is None:
        await services.start_work()
        return
    async with aiohttp.ClientSession(trust_env=False) as session:
        link = SocketModeLink(
            app,
            settings.slack_app_token,
            api_url=settings.slack_api_url,
            session=session,
            readiness=services.readiness,
            policy=pacing.reconnect,
            heartbeat_s=pacing.socket_heartbeat_s,
            on_token_accepted=services.start_work,
        )
        await link.run()


async def _until_stopped(stop: asyncio.Event, connecting: Coroutine[Any, Any, None]) -> int:
    """Run ``connecting`` until ``stop``; 2 when Slack refuses a token, else 0. A stop cancels it in any phase."""
    from bot.slack.connection import TokenRefused

    work = asyncio.create_task(connecting, name="slack-link")
    stopped = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if work.done() and not work.cancelled():
            error = work.exception()
            if isinstance(error, TokenRefused):
                print(f"Smart Resize can't start: {error}", file=sys.stderr)
                return 2
            if error is not None:
                raise error
            await stopped  # HTTP mode, token checked: serve until stopped
        return 0
    finally:
        for task in (work, stopped):
            task.cancel()
        await asyncio.gather(work, stopped, return_exceptions=True)


def _log_running(settings: Settings, services: Services) -> None:
    from bot.engine.detectors import missing_warning

    mode = "Socket Mode" if settings.socket_mode else f"HTTP at :{settings.port}/slack/events"
    log.info(
        "Smart Resize is listening (%s, backend %s, store %s); health at :%d/healthz, readiness at :%d/readyz",
        mode,
        settings.backend,
        "PostgreSQL" if settings.postgres_url else settings.database_path,
        settings.port,
        settings.port,
    )
    if settings.backend == "local" and (models := missing_warning()) is not None:
        log.warning(models)
    if settings.backend == "hosted":
        if services.links is not None:
            log.info(
                "the hosted API fetches source images from signed links under %s/sources/ (valid %d min); "
                "that path must be reachable from the internet",
                settings.public_base_url,
                settings.source_link_ttl_s // 60,
            )
        else:
            log.info("the hosted API gets source images as data URIs; set PUBLIC_BASE_URL to send links instead")


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event | None) -> Iterator[asyncio.Event]:
    """``stop`` as given, or one SIGINT and SIGTERM set (the handlers removed again on the way out)."""
    if stop is not None:
        yield stop
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


if __name__ == "__main__":
    sys.exit(main())
