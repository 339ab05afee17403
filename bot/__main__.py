"""``python -m bot``: load .env, validate settings, serve Slack (Socket Mode or HTTP) until stopped."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import signal
import sys
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from dotenv import find_dotenv, load_dotenv
from slack_sdk.errors import SlackApiError

from bot.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from bot.services import Pacing

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


def main() -> int:
    load_dotenv(find_dotenv(usecwd=True))  # the .env where the app is started, wherever it is installed
    configure_logging()
    try:
        settings = load_settings()
    except ConfigError as error:
        print("Smart Resize can't start:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    return asyncio.run(serve(settings))


# Slack's answers to auth.test that mean the token itself is wrong: no retry can fix them.
_TOKEN_REFUSED = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})


async def serve(settings: Settings, *, stop: asyncio.Event | None = None, pacing: Pacing | None = None) -> int:
    """Serve until ``stop`` (SIGINT/SIGTERM by default); ``pacing``: the waits on Slack and the API (tests shorten).
    Returns the exit code: 0 after a stop, 2 when Slack refuses the bot token."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.app import add_health_route, add_request_guards, add_source_route, build_app
    from bot.services import Pacing, open_services

    stop = stop or _stop_on_signals()
    async with open_services(settings, pacing=pacing or Pacing()) as services:
        try:
            await services.client.auth_test()  # the token, checked once before anything is served with it
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            # Slack out of reach now: start anyway, as before; every call says so in its own words meanwhile.
            log.warning("could not check the bot token with Slack (%s); starting anyway", type(error).__name__)
        except SlackApiError as error:
            code = str(error.response.get("error", ""))
            if code in _TOKEN_REFUSED:
                print(
                    f"Smart Resize can't start: Slack refused SLACK_BOT_TOKEN ({code}). Copy the current Bot User "
                    "OAuth Token (xoxb-...) from OAuth & Permissions at https://api.slack.com/apps into .env; "
                    "reinstall the app to the workspace if it has none.",
                    file=sys.stderr,
                )
                return 2
            log.warning("could not check the bot token with Slack (%s); starting anyway", code or "no answer")
        app = build_app(services)
        # What exists now (numpy, OpenCV, Pillow, slack_sdk, the app) lives as long as the process. Frozen out of
        # the collector's reach, each full collection walks only what jobs allocate: ~6 ms instead of ~40 ms, and
        # a poller with 1,000 hosted jobs in flight spends about a point of a core less (bench/README.md).
        gc.collect()
        gc.freeze()
        if settings.socket_mode:
            web_app = web.Application()
            socket = AsyncSocketModeHandler(app, settings.slack_app_token)
            await socket.connect_async()  # type: ignore[no-untyped-call]
        else:
            web_app = app.web_app(path="/slack/events", port=settings.port)
            socket = None
        add_health_route(web_app, services)
        add_source_route(web_app, services)
        # Read deadlines on every connection, and /slack/events checked before Bolt (HEADER_/BODY_READ_TIMEOUT).
        runner = add_request_guards(web_app, services).runner(web_app)
        await runner.setup()
        await web.TCPSite(runner, host="0.0.0.0", port=settings.port).start()  # noqa: S104 - Slack must reach it
        mode = "Socket Mode" if socket else f"HTTP at :{settings.port}/slack/events"
        log.info("Smart Resize is running (%s, backend %s, store %s)", mode, settings.backend, settings.database_path)
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
        await stop.wait()
        log.info("shutting down: finishing running jobs; the rest resume on the next start")
        if socket is not None:
            await socket.close_async()  # type: ignore[no-untyped-call]
        await runner.cleanup()
    return 0


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


if __name__ == "__main__":
    sys.exit(main())
