"""Build the Bolt app on the shared services and register one module per Slack feature."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bot.services import Services

log = logging.getLogger(__name__)


def build_app(services: Services) -> AsyncApp:
    from handlers import channel_uploads, commands, home, progress, reactions, shortcuts, uploads

    settings = services.settings
    app = AsyncApp(
        client=services.client,
        signing_secret=settings.slack_signing_secret or "",
        # Socket Mode requests arrive over an authenticated websocket and carry no signature.
        request_verification_enabled=not settings.socket_mode,
        # Ack first, then keep working: Slack gets its answer in milliseconds.
        process_before_response=False,
    )
    commands.register(app, services)
    uploads.register(app, services)
    reactions.register(app, services)
    channel_uploads.register(app, services)
    home.register(app, services)
    progress.register(app, services)
    shortcuts.register(app, services)
    return app


def add_health_route(web_app: web.Application, services: Services) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        body: dict[str, Any] = {"ok": True, "backend": services.backend.name, "mode": _mode(services)}
        return web.json_response(body)

    web_app.router.add_get("/healthz", healthz)


def _mode(services: Services) -> str:
    return "socket" if services.settings.socket_mode else "http"
