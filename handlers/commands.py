"""``/resize``: parse, accept (or explain), and ack well inside Slack's 3 seconds; the work happens in the runner."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.grammar import AutoCommand, HelpCommand, ParseError, ResizeCommand
from bot.jobs.model import JobSource
from bot.services import Services
from bot.slack import is_slack_link
from bot.slack.messages import is_direct_message, not_in_dms
from bot.slack.views import resize_modal
from bot.spec import describe_sizes
from bot.user_errors import UserError, user_message
from handlers.common import NotStored, not_a_member, open_form, stored_in_time

log = logging.getLogger(__name__)
# Nothing was stored (handlers.common.stored_in_time), so trying again makes one job, not a second.
TRY_AGAIN = "Smart Resize couldn't save your request just now, so nothing was started: please try again in a moment."
NOT_IN_DMS = not_in_dms("use `/resize` in a channel where the image is shared")
SLACK_LINK = (
    "That's a link into Slack, which I can't open as a web link; use *Smart resize* from the ⋯ menu of the message "
    "that shares the image, or mention me on it."
)


def register(app: AsyncApp, services: Services) -> None:
    grammar = services.grammar

    @app.command("/resize")
    async def resize_command(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "")
        # A direct or group message: the app can neither read its images nor post results there (help still works).
        in_dm = is_direct_message(command["channel_id"], command.get("channel_name"))
        if not text.strip() and in_dm:
            await ack(response_type="ephemeral", text=NOT_IN_DMS)
            return
        if not text.strip():
            # No arguments: a form with a file input, so an image can be resized from anywhere. The results go to a
            # new message in this channel, so not where the bot is not in it (checked after the ack, as it takes a
            # Web API call).
            await ack()
            refusal = await not_a_member(services, command["channel_id"])
            if refusal is not None:
                await respond(text=refusal, response_type="ephemeral")
                return
            response_url = command.get("response_url") or None
            metadata = {"channel": command["channel_id"], "response_url": response_url}
            await open_form(
                services,
                command["trigger_id"],
                resize_modal(metadata, file_input=True),
                channel=command["channel_id"],
                user=command["user_id"],
                response_url=response_url,
            )
            return
        try:
            parsed = grammar.parse_command(text)
        except ParseError as error:
            hint = "" if "help" in str(error) else " Type `/resize help` for examples."  # one pointer to it, not two
            await ack(response_type="ephemeral", text=f"{error}{hint}")
            return
        if isinstance(parsed, HelpCommand):
            await ack(response_type="ephemeral", text=grammar.help_text(command.get("command")))
            return
        if in_dm:
            await ack(response_type="ephemeral", text=NOT_IN_DMS)
            return
        if isinstance(parsed, AutoCommand):
            # Membership is checked with a Web API call, which can take a moment: ack first, answer after.
            await ack()
            text = await channel_auto_resize(services, parsed, command["channel_id"], command["user_id"])
            await respond(text=text, response_type="ephemeral")
            return
        assert isinstance(parsed, ResizeCommand)
        if parsed.url and is_slack_link(parsed.url):  # before a job announces the link in the channel
            await ack(response_type="ephemeral", text=SLACK_LINK)
            return
        source = JobSource.link(parsed.url) if parsed.url else JobSource.latest()
        try:
            # Stored before the ack, which carries the answer: Slack never sends a command again.
            _, new = await stored_in_time(
                services.intake.submit(
                    trigger="command",
                    # Slack never re-sends a slash command, but one trigger must never become two jobs.
                    dedup_key=f"command:{command.get('trigger_id') or command.get('team_id')}:{text}",
                    channel_id=command["channel_id"],
                    user_id=command["user_id"],
                    team_id=command.get("team_id"),
                    source=source,
                    spec=parsed.spec,
                    response_url=command.get("response_url"),
                )
            )
        except UserError as error:
            await ack(response_type="ephemeral", text=str(error))
            return
        except NotStored as error:
            log.warning("/resize from %s not started: its job could not be stored (%s)", command["user_id"], error)
            await ack(response_type="ephemeral", text=TRY_AGAIN)
            return
        sizes = describe_sizes(parsed.spec.sizes)
        where = "this link" if parsed.url else "the latest image in this channel"
        verb = "On it" if new else "Already on it"
        await ack(
            response_type="ephemeral",
            text=f"{verb}: resizing {where} to {sizes}. The images will appear in its thread.",
        )


async def channel_auto_resize(services: Services, command: AutoCommand, channel: str, user: str) -> str:
    """``/resize auto on [sizes]``, ``auto off``, ``auto``: only members of the channel may change it."""
    current = await services.store.auto_sizes(channel)
    if command.action == "show":
        if current is None:
            return "Auto-resize is off in this channel. Turn it on with `/resize auto on` (optionally with sizes)."
        return f"Auto-resize is on here: every image shared in this channel comes back as {', '.join(current)}."
    try:
        if not await _is_member(services, channel, user):
            return "Only members of this channel can change its auto-resize setting."
    except SlackApiError as error:
        return user_message(error)
    if command.action == "off":
        await services.store.set_auto_sizes(channel, None, user)
        return "Auto-resize is now off in this channel."
    # The bot hears a channel's uploads only from inside it, and a public channel shows its members to anyone: from
    # outside, "on" would be stored and then never happen.
    refusal = await not_a_member(services, channel)
    if refusal is not None:
        return refusal
    sizes = command.sizes or services.grammar.default_sizes
    await services.store.set_auto_sizes(channel, [str(size) for size in sizes], user)
    return (
        f"Auto-resize is on: every image shared in this channel will come back as {describe_sizes(sizes)} "
        "in its thread. Turn it off with `/resize auto off`."
    )


async def _is_member(services: Services, channel: str, user: str) -> bool:
    cursor = None
    while True:
        response = await services.client.conversations_members(channel=channel, cursor=cursor, limit=1000)
        if user in response.get("members", []):
            return True
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return False
