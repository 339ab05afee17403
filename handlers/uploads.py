"""@mention the app on a message with images, or in the thread of one: each image is resized into that thread."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.grammar import AutoCommand, HelpCommand, ResizeCommand
from bot.services import Services
from bot.user_errors import UserError, not_an_image, user_message
from handlers.common import Reply, channel_spec, image_files, left_out, message_at, on_event, submit_images

AUTO_IS_A_COMMAND = (
    "A channel's auto-resize is set with `/resize auto on SIZES` or `/resize auto off` there, so nothing started; "
    "mention me with sizes to resize this image."
)


def register(app: AsyncApp, services: Services) -> None:
    grammar = services.grammar

    async def store_mention(event: dict[str, Any], body: dict[str, Any]) -> list[Reply]:
        channel, user, ts = event["channel"], event.get("user", ""), event["ts"]
        reply_in = event.get("thread_ts")
        parsed = grammar.parse_mention(event.get("text", ""))
        if isinstance(parsed, HelpCommand):
            return [Reply(channel, user, grammar.help_text(), thread_ts=reply_in)]
        if isinstance(parsed, AutoCommand):  # a channel's setting, changed where membership can be checked
            return [Reply(channel, user, AUTO_IS_A_COMMAND, thread_ts=reply_in)]
        files, source = image_files(event), event
        if not files and not event.get("files") and reply_in and reply_in != ts:
            # A mention in a photo's thread ("@Smart Resize 1080x1080" under it) means the photo that opened it.
            try:
                source = await message_at(services, channel, reply_in) or {}
            except SlackApiError as error:
                return [Reply(channel, user, user_message(error), thread_ts=reply_in)]
            files, ts = image_files(source), reply_in
        if not files:
            shared = event.get("files") or []
            if shared:  # they did share a file with the mention: it is the file that is wrong
                answer = not_an_image(str(shared[0].get("name") or ""), str(shared[0].get("mimetype") or ""))
            else:
                answer = (
                    "Mention me in the message that shares the image or in its thread, or use `/resize` after "
                    "sharing it; `/resize help` lists sizes and presets."
                )
            return [Reply(channel, user, answer, thread_ts=reply_in)]
        command = parsed if isinstance(parsed, ResizeCommand) else grammar.default_command()
        notes = list(command.notes)
        spec = command.spec
        if not command.sizes_named:
            try:
                spec, channel_notes = await channel_spec(services, channel, command.spec)
            except UserError as error:
                return [Reply(channel, user, str(error), thread_ts=reply_in)]
            notes += channel_notes
        if (command.sizes_refused and not command.sizes_named) or not spec.sizes:
            # Every size asked for was unusable: the defaults would be a guess the user did not make.
            nothing_started = (
                f"{' '.join(notes)} Nothing started: mention me again with sizes like `1080x1080` or a preset "
                "(`/resize help` lists them)."
            )
            return [Reply(channel, user, nothing_started, thread_ts=reply_in)]
        refused = await submit_images(
            services,
            trigger="mention",
            channel=channel,
            user=user,
            team=event.get("team"),
            message_ts=ts,
            thread_ts=reply_in or ts,
            files=files,
            spec=spec,
            event_id=body.get("event_id"),
        )
        # The files left out are said once images are on their way: beside a refusal it would contradict it.
        skipped = None if refused else left_out(source)
        said = [*notes, skipped] if skipped else notes
        return ([Reply(channel, user, " ".join(said), thread_ts=reply_in)] if said else []) + refused

    on_event(app, services, "app_mention", store_mention)
