"""@mention the app on a message with images: each image is resized into that message's thread."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.requests import HelpCommand, ResizeCommand, help_text, parse_mention
from bot.services import Services
from bot.user_errors import UserError
from handlers.common import image_files, options_from


def register(app: AsyncApp, services: Services) -> None:
    settings = services.settings

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any]) -> None:
        channel, user, ts = event["channel"], event.get("user", ""), event["ts"]
        reply_in = event.get("thread_ts")
        parsed = parse_mention(event.get("text", ""), limits=settings.limits, max_sizes=settings.max_sizes)
        if isinstance(parsed, HelpCommand):
            await services.delivery.ephemeral(channel, user, _help(services), thread_ts=reply_in)
            return
        files = image_files(event)
        if not files:
            await services.delivery.ephemeral(
                channel,
                user,
                "Mention me in the same message that shares the image, or use `/resize` after sharing it; "
                "`/resize help` lists sizes and presets.",
                thread_ts=reply_in,
            )
            return
        command = parsed if isinstance(parsed, ResizeCommand) else ResizeCommand()
        options = options_from(command)
        for file in files:
            try:
                await services.intake.submit(
                    trigger="mention",
                    # The same upload can arrive as app_mention and as a message event, and Slack retries events:
                    # one image in one message is one job.
                    dedup_key=f"upload:{channel}:{ts}:{file['id']}",
                    channel_id=channel,
                    user_id=user,
                    team_id=event.get("team"),
                    source={"kind": "slack_file", "file": file, "message_ts": ts},
                    thread_ts=reply_in or ts,
                    options=options,
                )
            except UserError as error:
                await services.delivery.ephemeral(channel, user, str(error), thread_ts=reply_in)
                return


def _help(services: Services) -> str:
    settings = services.settings
    return help_text(
        "/resize",
        limits=settings.limits,
        max_sizes=settings.max_sizes,
        default_sizes=settings.default_sizes,
        reaction=settings.resize_reaction,
    )
