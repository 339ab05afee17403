"""Channel auto-resize: every image shared in a channel that turned it on comes back in the standard sizes."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from bot.user_errors import UserError
from handlers.common import Reply, channel_spec, image_files, on_event, submit_images


def register(app: AsyncApp, services: Services) -> None:
    async def store_file_share(event: dict[str, Any], body: dict[str, Any]) -> list[Reply]:
        channel = event["channel"]
        if await services.store.auto_sizes(channel) is None:
            return []
        files = image_files(event)
        if not files:
            return []
        if f"<@{await services.delivery.bot_user_id()}>" in event.get("text", ""):
            return []  # a mention of the app: its handler takes the upload, with the sizes it asks for
        ts, user = event["ts"], event.get("user", "")
        try:
            spec, _ = await channel_spec(services, channel)  # its sizes fitted to today's caps, quietly
        except UserError as error:
            return [Reply(channel, user, str(error))]
        return await submit_images(
            services,
            trigger="auto",
            channel=channel,
            user=user,
            team=event.get("team"),
            message_ts=ts,
            thread_ts=event.get("thread_ts") or ts,
            files=files,
            spec=spec,
            event_id=body.get("event_id"),
        )

    on_event(app, services, {"type": "message", "subtype": "file_share"}, store_file_share)

    @app.event("message")
    async def ignore_other_messages() -> None:
        """Other messages in channels are not for us; handling them stops Bolt warning about unhandled events."""
