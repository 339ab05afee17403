"""App Home: the user's recent jobs, how to use each trigger, and the presets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.jobs.store import Job
from bot.presets import presets_help
from bot.services import Services

_STATE_EMOJI = {"done": ":white_check_mark:", "failed": ":x:", "cancelled": ":no_entry_sign:"}


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        jobs = await services.store.recent_for_user(user, limit=10)
        await services.client.views_publish(user_id=user, view=home_view(jobs, services.settings.resize_reaction))


def home_view(jobs: list[Job], reaction: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Smart Resize"}},
        _section(
            "*How to use it*\n"
            "• `/resize 1080x1080 instagram-story` resizes the latest image in the channel into its thread.\n"
            "• `/resize og-image https://example.com/photo.jpg` resizes a linked image.\n"
            "• Mention *@Smart Resize* in the message that shares an image, with sizes if you like.\n"
            f"• Add the :{reaction}: reaction to a message with a photo.\n"
            "• `/resize auto on` makes every image shared in a channel come back in its sizes.\n"
            "• `/resize help` lists every option."
        ),
        {"type": "divider"},
        _section("*Your recent jobs*" if jobs else "*Your recent jobs*\nNothing yet: share a photo and try one."),
    ]
    for job in jobs:
        sizes = ", ".join(f"{w}x{h}" for w, h in job.spec["sizes"])
        when = dt.datetime.fromtimestamp(job.created_at, dt.UTC).strftime("%b %d %H:%M UTC")
        state = _STATE_EMOJI.get(job.state, ":hourglass_flowing_sand:") + f" {job.state}"
        line = f"{state} · {sizes} · <#{job.channel_id}> · {when}"
        if job.error:
            line += f"\n_{job.error}_"
        blocks.append(_section(line))
    blocks += [{"type": "divider"}, _section(presets_help()[:2900])]
    return {"type": "home", "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
