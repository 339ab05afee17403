"""App Home: the user's recent jobs, how to use each trigger, and the presets."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from bot.slack.views import home_view


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        jobs = await services.store.recent_for_user(user, limit=10)
        await services.client.views_publish(user_id=user, view=home_view(jobs, services.settings.resize_reaction))
