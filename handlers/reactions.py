"""Adding RESIZE_REACTION to a message with images resizes them into its thread (the channel's sizes, else the
defaults). The job is keyed on the message, file and sizes (submit_images), so removing and re-adding the reaction
repeats nothing, nor does the reaction on an image auto-resize already made in those sizes."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.services import Services
from bot.user_errors import UserError, user_message
from handlers.common import Reply, channel_spec, image_files, left_out, message_at, on_event, submit_images


def register(app: AsyncApp, services: Services) -> None:
    reaction = services.settings.resize_reaction

    async def store_reaction(event: dict[str, Any], body: dict[str, Any]) -> list[Reply]:
        item = event.get("item") or {}
        if event.get("reaction") != reaction or item.get("type") != "message":
            return []
        channel, ts, user = item["channel"], item["ts"], event.get("user", "")
        try:
            # Before the ack too, and so within its deadline: the message's files are what the jobs are made of.
            message = await message_at(services, channel, ts)
        except SlackApiError as error:
            return [Reply(channel, user, user_message(error))]
        files = image_files(message or {})
        # Answered where the reacted message is: a thread reply's reactor is looking at the thread.
        in_thread = (message or {}).get("thread_ts")
        if not message or not files:
            no_image = f"That message has no image to resize; add :{reaction}: to a message with a photo."
            return [Reply(channel, user, no_image, thread_ts=in_thread)]
        if message.get("user") == await services.delivery.bot_user_id():
            # Its results (or crop map): made again from an output, they would be upscaled copies of a copy.
            own = f"That's one of my own posts; add :{reaction}: to the original photo to resize it."
            return [Reply(channel, user, own, thread_ts=in_thread)]
        try:
            spec, _ = await channel_spec(services, channel)
        except UserError as error:
            return [Reply(channel, user, str(error), thread_ts=in_thread)]
        refused = await submit_images(
            services,
            trigger="reaction",
            channel=channel,
            user=user,
            team=event.get("team"),
            message_ts=ts,
            thread_ts=message.get("thread_ts") or ts,
            files=files,
            spec=spec,
            event_id=body.get("event_id"),
        )
        skipped = None if refused else left_out(message)  # as for a mention: said once images are on their way
        return refused or ([Reply(channel, user, skipped, thread_ts=in_thread)] if skipped else [])

    on_event(app, services, "reaction_added", store_reaction)
