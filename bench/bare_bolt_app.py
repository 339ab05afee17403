"""The ack-latency baseline for bench/slack_app.py: a bare slack_bolt AsyncApp whose /resize listener only acks.

    python bench/bare_bolt_app.py --port P     (env: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL)

Built like the real app (bot/app.py): the same signing-secret verification, ``process_before_response=False``, a
Web API client pointed at SLACK_API_URL (the emulator), served by Bolt's own aiohttp adapter at /slack/events, with a
/healthz route, INFO logging. The only difference is that the listener does no work before ``ack()``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("bare_bolt_app")


def build_app(token: str, signing_secret: str, api_url: str) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=api_url),
        signing_secret=signing_secret,
        request_verification_enabled=True,
        process_before_response=False,
    )

    @app.command("/resize")
    async def resize_command(ack: AsyncAck) -> None:
        await ack()

    return app


def web_app(app: AsyncApp, port: int) -> web.Application:
    served = app.web_app(path="/slack/events", port=port)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "app": "bare-bolt"})

    served.router.add_get("/healthz", healthz)
    return served


async def serve(port: int) -> None:
    app = build_app(
        os.environ["SLACK_BOT_TOKEN"],
        os.environ["SLACK_SIGNING_SECRET"],
        os.environ.get("SLACK_API_URL", "https://slack.com/api/"),
    )
    runner = web.AppRunner(web_app(app, port))
    await runner.setup()
    await web.TCPSite(runner, host="127.0.0.1", port=port).start()
    log.info("bare Bolt app running at http://127.0.0.1:%d/slack/events", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
