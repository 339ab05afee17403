"""``/resize``: parse, accept (or explain), and ack well inside Slack's 3 seconds; the work happens in the runner."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.requests import AutoCommand, HelpCommand, ParseError, ResizeCommand, help_text, parse_command
from bot.services import Services
from bot.user_errors import UserError
from handlers.common import describe_sizes, options_from


def register(app: AsyncApp, services: Services) -> None:
    settings = services.settings

    @app.command("/resize")
    async def resize_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "")
        try:
            parsed = parse_command(text, limits=settings.limits, max_sizes=settings.max_sizes)
        except ParseError as error:
            await ack(response_type="ephemeral", text=f"{error} Type `/resize help` for examples.")
            return
        if isinstance(parsed, HelpCommand):
            await ack(response_type="ephemeral", text=_help(services, command.get("command") or "/resize"))
            return
        if isinstance(parsed, AutoCommand):
            await ack(
                response_type="ephemeral",
                text="Channel auto-resize isn't available in this version yet; mention me on an upload instead.",
            )
            return
        assert isinstance(parsed, ResizeCommand)
        options = options_from(parsed)
        source: dict[str, Any] = {"kind": "url", "url": parsed.url} if parsed.url else {"kind": "latest"}
        try:
            _, new = await services.intake.submit(
                trigger="command",
                # Slack never re-sends a slash command, but one trigger must never become two jobs.
                dedup_key=f"command:{command.get('trigger_id') or command.get('team_id')}:{text}",
                channel_id=command["channel_id"],
                user_id=command["user_id"],
                team_id=command.get("team_id"),
                source=source,
                options=options,
                response_url=command.get("response_url"),
            )
        except UserError as error:
            await ack(response_type="ephemeral", text=str(error))
            return
        sizes = describe_sizes(options.sizes or services.intake.default_sizes)
        where = "this link" if parsed.url else "the latest image in this channel"
        verb = "On it" if new else "Already on it"
        await ack(
            response_type="ephemeral",
            text=f"{verb}: resizing {where} to {sizes}. The images will appear in its thread.",
        )


def _help(services: Services, command_name: str) -> str:
    settings = services.settings
    return help_text(
        command_name,
        limits=settings.limits,
        max_sizes=settings.max_sizes,
        default_sizes=settings.default_sizes,
        reaction=settings.resize_reaction,
    )
