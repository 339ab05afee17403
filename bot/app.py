"""Build the Bolt app on the shared services and register one module per Slack feature."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.jobs.source_links import PATH_PREFIX
from bot.net import FetchError
from bot.services import Services
from bot.user_errors import UserError

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


def add_source_route(web_app: web.Application, services: Services) -> None:
    """``GET /sources/<token>``: a job's source image for the hosted service, while the link and the job last."""
    links = services.links
    if links is None:
        return

    async def source(request: web.Request) -> web.Response:
        job_id = links.job_of(request.match_info["token"])
        job = await services.store.get(job_id) if job_id is not None else None
        if job is None or job.finished:
            raise web.HTTPNotFound()  # bad, tampered, expired or done: the same answer, revealing nothing
        image = links.held(job.id)
        if image is None:  # not in memory (a restart, say): fetched again from where the job has it
            try:
                fetched = await services.runner.source_image(job)
            except (FetchError, SlackApiError, UserError) as error:
                log.warning("source link for job %s: the image could not be fetched again (%s)", job.short_id, error)
                raise web.HTTPNotFound() from None
            return _image_response(fetched.data, fetched.content_type)
        return _image_response(image.data, image.content_type)

    web_app.router.add_get(PATH_PREFIX + "{token}", source)


def _image_response(data: bytes, content_type: str) -> web.Response:
    return web.Response(body=data, content_type=content_type, headers={"Cache-Control": "no-store"})


def _mode(services: Services) -> str:
    return "socket" if services.settings.socket_mode else "http"
