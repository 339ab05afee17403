"""One plain sentence for every way a Slack job can fail, so no traceback or error code ever reaches a user.

The engine's and the fetcher's errors already speak to a person; the API client's errors and Slack's error codes
are put into words here, for Slack (the API server and the CLI answer in their own words).
"""

from __future__ import annotations

import re

from slack_sdk.errors import SlackApiError

from bot.engine import EngineError
from bot.net import FetchError
from bot.smart_resize_api import errors as api
from bot.smart_resize_api.contract import Status
from bot.smart_resize_api.retry import Operation

GENERIC = "Something went wrong on our side; please try again in a few minutes."
SUBMIT_OUTCOME_UNKNOWN = (
    "The Smart Resize API failed while taking the job, so it may still run and be charged; "
    "wait a few minutes before trying again."
)
_SHOWN_TEXT = re.compile(r"[^A-Za-z0-9 .,:;'()/_-]")


class UserError(Exception):
    """A mistake the user can fix, or a final failure; ``str()`` is the sentence to show them."""


def user_message(error: BaseException) -> str:
    if isinstance(error, (UserError, EngineError, FetchError)):
        return str(error)
    if isinstance(error, api.SmartResizeError):
        return api_error_message(error)
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


def api_error_message(error: api.SmartResizeError) -> str:
    """The hosted API client's errors, for the Slack user whose job it was."""
    if isinstance(error, api.BadRequest):
        reason = _shown(error.details or error.error)
        because = f" ({reason})" if reason else ""
        return f"The Smart Resize API refused the request{because}; check the sizes and options and try again."
    if isinstance(error, api.Unauthorized):
        return "The Smart Resize API rejected the app's API key; ask your workspace admin to check the key."
    if isinstance(error, api.PaymentRequired):
        return (
            "The Smart Resize API account is out of credits; ask your workspace admin to top it up "
            "or switch the app to the local engine."
        )
    if isinstance(error, api.Forbidden):
        return (
            "The Smart Resize API account is not allowed to do this; ask your workspace admin to check "
            "its subscription or switch the app to the local engine."
        )
    if isinstance(error, api.NotFound):
        return "The Smart Resize API no longer knows this job; please start the resize again."
    if isinstance(error, api.RateLimited):
        when = f"in about {max(1, round(error.retry_after))} seconds" if error.retry_after else "in a minute"
        return f"The Smart Resize API is rate-limiting the app right now; please try again {when}."
    if isinstance(error, api.ServerError):
        return "The Smart Resize API is having trouble on its side; please try again in a few minutes."
    if isinstance(error, api.ApiStatusError):
        status = error.status_code
        return f"The Smart Resize API answered with an unexpected error (HTTP {status}); please try again later."
    if isinstance(error, api.JobFailed):
        if error.job_status is Status.ERROR:
            return "The Smart Resize API hit a system error and did not charge for this job; please try again."
        reason = _shown(error.error)
        because = f" ({reason})" if reason else ""
        return f"The Smart Resize API could not resize this image{because}; try another image or other sizes."
    if isinstance(error, api.JobTimedOut):
        return (
            f"The Smart Resize API did not finish within {error.timeout_s:g} seconds; "
            "please try again later or with fewer sizes."
        )
    if isinstance(error, api.TransportError):
        if error.operation is Operation.SUBMIT and error.may_have_been_sent:
            return (
                "The connection to the Smart Resize API broke after the job was sent, so it may still run; "
                "wait a few minutes before trying again."
            )
        return "I couldn't reach the Smart Resize API; please try again in a few minutes."
    if isinstance(error, api.MalformedResponse):
        return (
            "The Smart Resize API sent an answer I couldn't understand; please try again later "
            "or switch the app to the local engine."
        )
    if isinstance(error, api.DownloadTooLarge):
        megabytes = f"{error.limit_bytes / (1024 * 1024):.1f}".removesuffix(".0")
        return (
            f"A resized image from the Smart Resize API is larger than the {megabytes} MB limit; "
            "try smaller sizes or a lower resolution."
        )
    if isinstance(error, api.DownloadWrongType):
        return "The Smart Resize API returned something that isn't an image; please try again."
    if isinstance(error, api.DownloadError):
        return "I couldn't download the resized image from the Smart Resize API; please try again."
    return "Something went wrong with the Smart Resize API; please try again in a few minutes."


def _shown(text: str | None) -> str:
    """Service text made safe to post: no Slack markup (<!channel>, links), short, no trailing full stop."""
    if not text:
        return ""
    return " ".join(_SHOWN_TEXT.sub("", text).split())[:160].rstrip(" .")
