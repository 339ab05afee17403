"""Small helpers shared by the Slack feature modules."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.engine import Size
from bot.jobs.model import JobSource, Trigger
from bot.services import Services
from bot.spec import ResizeSpec
from bot.user_errors import UserError, slack_error_message

# The form opens with a trigger_id that lasts 3 s: a membership check slower than this gives way to the form.
MEMBERSHIP_CHECK_S = 1.0


def image_files(event: dict[str, Any]) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = event.get("files") or []
    # A Slack Connect file may come without its type: checked (or refused in a sentence) when the job runs.
    return [
        f
        for f in files
        if str(f.get("mimetype", "")).startswith("image/")
        or f.get("file_access") in ("check_file_info", "access_denied")
    ]


async def not_a_member(services: Services, channel: str) -> str | None:
    """The sentence to answer with when the bot is not in ``channel`` (it could post no results there), before a
    form is filled in for nothing; None when it is in, or when Slack could not say in time (the form opens, and
    the job's response_url still reaches the requester if it fails)."""
    try:
        async with asyncio.timeout(MEMBERSHIP_CHECK_S):
            response = await services.client.conversations_info(channel=channel)
    except SlackApiError as error:
        code = str(error.response.get("error", ""))
        # A private channel the bot is not in is hidden from it: channel_not_found.
        return slack_error_message(code) if code in ("channel_not_found", "not_in_channel") else None
    except (aiohttp.ClientError, TimeoutError):
        return None
    if (response.get("channel") or {}).get("is_member") is False:
        return slack_error_message("not_in_channel")
    return None


async def channel_spec(services: Services, channel: str) -> ResizeSpec:
    """What a reaction or an upload in this channel asks for: its auto-resize sizes when it has them, else the
    defaults, with every other option at its default."""
    stored = await services.store.auto_sizes(channel)
    sizes = tuple(Size.parse(text) for text in stored or []) or services.grammar.default_sizes
    # Sizes stored under a higher cap than today's: the first ones that fit, rather than a job that can't run.
    return ResizeSpec(sizes=sizes[: services.grammar.limits.max_outputs])


async def submit_images(
    services: Services,
    *,
    trigger: Trigger,
    channel: str,
    user: str,
    team: str | None,
    message_ts: str,
    thread_ts: str,
    files: list[dict[str, Any]],
    spec: ResizeSpec,
    event_id: str | None,
) -> None:
    """One job per image of a message and spec: a mention, an auto-resize and a reaction that ask for the same sizes
    of the same image make one job, however they arrive; other sizes or options are a job of their own. And
    ``event_id`` (the Slack event's), so Slack sending the event again makes none even after the job failed."""
    for file in files:
        try:
            await services.intake.submit(
                trigger=trigger,
                dedup_key=f"upload:{channel}:{message_ts}:{file['id']}:{spec.digest()}",
                channel_id=channel,
                user_id=user,
                team_id=team,
                source=JobSource.slack_file(file, message_ts),
                thread_ts=thread_ts,
                spec=spec,
                event_id=event_id,
            )
        except UserError as error:
            await services.delivery.ephemeral(channel, user, str(error))
            return
