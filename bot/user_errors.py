"""One plain sentence for every way a job can fail, so no traceback or error code ever reaches a user."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

from bot.engine import EngineError
from bot.net import FetchError

GENERIC = "Something went wrong on our side; please try again in a few minutes."


class UserError(Exception):
    """A mistake the user can fix; ``str()`` says what to do instead."""


def user_message(error: BaseException) -> str:
    if isinstance(error, (UserError, EngineError, FetchError)):
        return str(error)
    friendly = getattr(error, "user_message", None)
    if callable(friendly):  # the hosted API client's errors know their own wording
        return str(friendly())
    if isinstance(error, SlackApiError):
        return slack_error_message(str(error.response.get("error", "")), error.response.get("needed"))
    return GENERIC


def slack_error_message(code: str, needed: object = None) -> str:
    if code in ("not_in_channel", "channel_not_found"):
        return "I'm not in this channel yet: invite me with `/invite @Smart Resize`, then try again."
    if code == "missing_scope":
        scope = f" ({needed})" if needed else ""
        return f"The app is missing a Slack permission{scope}; ask a workspace admin to reinstall it from manifest.yml."
    if code in ("file_not_found", "file_deleted"):
        return "That file is gone or I can't see it; share the image again in this channel."
    if code in ("is_archived",):
        return "This channel is archived; unarchive it or use another channel."
    if code in ("ratelimited",):
        return "Slack is rate-limiting the app right now; please try again in a minute."
    return GENERIC
