"""Channel auto-resize: every image shared in a channel that turned it on comes back in the standard sizes."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.jobs.intake import ResizeOptions
from bot.services import Services
from bot.user_errors import UserError
from handlers.common import channel_sizes, image_files


def register(app: AsyncApp, services: Services) -> None:
    @app.event({"type": "message", "subtype": "file_share"})
    async def on_file_share(event: dict[str, Any]) -> None:
        channel = event["channel"]
        if await services.store.auto_sizes(channel) is None:
            return
        files = image_files(event)
        if not files:
            return
        ts, user = event["ts"], event.get("user", "")
        options = ResizeOptions(sizes=await channel_sizes(services, channel))
        for file in files:
            try:
                await services.intake.submit(
                    trigger="auto",
                    # Same key as a mention of the same upload: mentioning the app in an auto channel is one job.
                    dedup_key=f"upload:{channel}:{ts}:{file['id']}",
                    channel_id=channel,
                    user_id=user,
                    team_id=event.get("team"),
                    source={"kind": "slack_file", "file": file, "message_ts": ts},
                    thread_ts=event.get("thread_ts") or ts,
                    options=options,
                )
            except UserError as error:
                await services.delivery.ephemeral(channel, user, str(error))
                return

    @app.event("message")
    async def ignore_other_messages() -> None:
        """Other messages in channels are not for us; handling them stops Bolt warning about unhandled events."""
