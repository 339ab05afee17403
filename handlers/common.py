"""Small helpers shared by the Slack feature modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.engine import Size
from bot.grammar import ResizeCommand
from bot.jobs.intake import ResizeOptions
from bot.services import Services
from bot.user_errors import UserError


def options_from(parsed: ResizeCommand) -> ResizeOptions:
    return ResizeOptions(
        sizes=tuple(parsed.sizes),
        mode=parsed.mode,
        output_format=parsed.output_format,
        variants=parsed.variants,
        prompt=parsed.prompt,
        seed=parsed.seed,
        resolution=parsed.resolution,
    )


def describe_sizes(sizes: Sequence[Size]) -> str:
    return ", ".join(str(size) for size in sizes)


def image_files(event: dict[str, Any]) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = event.get("files") or []
    return [
        f for f in files if str(f.get("mimetype", "")).startswith("image/") or f.get("file_access") == "check_file_info"
    ]


async def channel_sizes(services: Services, channel: str) -> tuple[Size, ...]:
    """The channel's auto-resize sizes when it has them; empty means the app's defaults."""
    stored = await services.store.auto_sizes(channel)
    return tuple(Size(*(int(v) for v in text.split("x"))) for text in stored or [])


async def submit_images(
    services: Services,
    *,
    trigger: str,
    key_prefix: str,
    channel: str,
    user: str,
    team: str | None,
    message_ts: str,
    thread_ts: str,
    files: list[dict[str, Any]],
    options: ResizeOptions,
) -> None:
    """One job per image of a message, keyed on (prefix, channel, message, file) so repeats make no new job."""
    for file in files:
        try:
            await services.intake.submit(
                trigger=trigger,
                dedup_key=f"{key_prefix}:{channel}:{message_ts}:{file['id']}",
                channel_id=channel,
                user_id=user,
                team_id=team,
                source={"kind": "slack_file", "file": file, "message_ts": message_ts},
                thread_ts=thread_ts,
                options=options,
            )
        except UserError as error:
            await services.delivery.ephemeral(channel, user, str(error))
            return
