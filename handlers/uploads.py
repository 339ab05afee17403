"""@mention the app on a message with images: each image is resized into that message's thread."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.grammar import HelpCommand, ResizeCommand
from bot.services import Services
from bot.user_errors import not_an_image
from handlers.common import image_files, submit_images


def register(app: AsyncApp, services: Services) -> None:
    grammar = services.grammar

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], body: dict[str, Any]) -> None:
        channel, user, ts = event["channel"], event.get("user", ""), event["ts"]
        reply_in = event.get("thread_ts")
        parsed = grammar.parse_mention(event.get("text", ""))
        if isinstance(parsed, HelpCommand):
            await services.delivery.ephemeral(channel, user, grammar.help_text(), thread_ts=reply_in)
            return
        files = image_files(event)
        if not files:
            shared = event.get("files") or []
            if shared:  # they did share a file with the mention: it is the file that is wrong
                answer = not_an_image(str(shared[0].get("name") or ""), str(shared[0].get("mimetype") or ""))
            else:
                answer = (
                    "Mention me in the same message that shares the image, or use `/resize` after sharing it; "
                    "`/resize help` lists sizes and presets."
                )
            await services.delivery.ephemeral(channel, user, answer, thread_ts=reply_in)
            return
        command = parsed if isinstance(parsed, ResizeCommand) else grammar.default_command()
        notes = " ".join(parsed.notes)
        if notes and not command.sizes_named:
            # Every size asked for was unusable: the defaults would be a guess the user did not make.
            await services.delivery.ephemeral(
                channel,
                user,
                f"{notes} Nothing started: mention me again with sizes like `1080x1080` or a preset "
                "(`/resize help` lists them).",
                thread_ts=reply_in,
            )
            return
        if notes:
            await services.delivery.ephemeral(channel, user, notes, thread_ts=reply_in)
        await submit_images(
            services,
            trigger="mention",
            channel=channel,
            user=user,
            team=event.get("team"),
            message_ts=ts,
            thread_ts=reply_in or ts,
            files=files,
            spec=command.spec,
            event_id=body.get("event_id"),
        )
