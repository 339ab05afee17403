"""One plain sentence for every way a request can fail, in the words of the surface it came from.

- Slack (``user_message``): the engine's and the fetcher's errors already speak to a Slack user; the API client's
  errors and Slack's error codes are put into words here.
- The API server (``api_message``): the same failures, never telling anyone to share something in Slack, and naming
  the server setting that would allow the thing where there is one.
- The CLI (``cli_message``): the engine's sentence and the setting behind a limit.

No traceback or error code ever reaches a person.
"""

from __future__ import annotations

import os
import re

from slack_sdk.errors import SlackApiError

from bot.engine import EngineError
from bot.net import BlockedAddress, FetchError, FetchFailed, FetchTimeout, InvalidUrl, TooLarge, UnexpectedContentType
from bot.net.errors import human_size, shown_content_type
from bot.slack.messages import escape_mrkdwn
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
    """A mistake the user can fix, or a final failure; ``str()`` is the sentence to show them. ``detail``, when
    there is one, is for the operator's log: a failure they may need to act on (a bad key, no credits)."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


def user_message(error: BaseException) -> str:
    if isinstance(error, (UserError, EngineError, FetchError)):
        return str(error)
    user_facing = getattr(error, "user_message", None)  # a backend's TransientError carries its own sentence
    if isinstance(user_facing, str):
        return user_facing
    if isinstance(error, api.SmartResizeError):
        return api_error_message(error)
    if isinstance(error, SlackApiError):
        return slack_error_message(str(error.response.get("error", "")), error.response.get("needed"))
    return GENERIC


def api_message(error: EngineError | FetchError) -> str:
    """For a client of ``smart-resize serve``: what went wrong with its ``image_url`` or image, and the fix."""
    if isinstance(error, EngineError):
        return _with_setting(error, "the server's")
    if isinstance(error, BlockedAddress):
        return (
            "image_url points to a private or internal address, which this server does not fetch; use a public "
            "URL or a data URI, or allow that network with the server's FETCH_ALLOW_PRIVATE_NETWORKS setting."
        )
    if isinstance(error, TooLarge):
        return (
            f"The image is larger than the {human_size(error.limit_bytes)} this server downloads; send a smaller "
            "image, or raise the server's MAX_DOWNLOAD_MB setting."
        )
    if isinstance(error, FetchTimeout):
        return (
            f"The server at image_url took longer than {error.timeout_s:g} seconds to send the image; "
            "try again, or send the image as a data URI."
        )
    if isinstance(error, UnexpectedContentType):
        return f"image_url returned {shown_content_type(error.content_type)}, not an image; link to the image file."
    if isinstance(error, InvalidUrl):
        return f"image_url can't be fetched: {error.detail}; use a plain http:// or https:// URL or a data URI."
    if isinstance(error, FetchFailed) and error.status is not None:
        return f"The server at image_url answered HTTP {error.status} instead of the image; check the URL."
    return "The image at image_url could not be downloaded; check that the URL opens from the internet."


def cli_message(error: EngineError) -> str:
    """For ``smart-resize resize``: the engine's sentence, and which setting raises a limit it hit."""
    return _with_setting(error, "the")


def _with_setting(error: EngineError, whose: str) -> str:
    if error.setting is None:
        return str(error)
    return f"{str(error).rstrip('.')} ({whose} {error.setting} setting sets this limit)."


SLACK_CONNECT_DENIED = (
    "I can't open that file: it was shared from another organisation over Slack Connect, and their settings don't "
    "let apps read it. Download it and upload it here yourself, then ask again."
)


HIDDEN_BY_PLAN = (
    "Slack is hiding that file: on this workspace's plan, files older than its history limit can't be opened. "
    "Upload the image again and ask on the new message."
)
NO_DOWNLOAD = "Slack gave me no way to download that file; upload the image again and ask on the new message."


def not_an_image(name: str, mimetype: str) -> str:
    """A Slack file that is not an image, by the name and type Slack gives it."""
    kind = shown_content_type(mimetype) if mimetype else "unknown type"
    formats = "JPEG, PNG, WebP, HEIC, AVIF, GIF, BMP or TIFF"
    return f"{escape_mrkdwn(name) or 'That file'} isn't an image ({kind}); share a {formats} image."


def external_file_message(service: str) -> str:
    return (
        f"That image is a link to a file in {service}, not a file in Slack; download it and upload the image "
        "itself, then ask again."
    )


def slack_error_message(code: str, needed: object = None) -> str:
    if code in ("not_in_channel", "channel_not_found"):
        return "I'm not in this channel yet: invite me with `/invite @Smart Resize`, then try again."
    if code == "missing_scope":
        scope = f" ({needed})" if needed else ""
        return f"The app is missing a Slack permission{scope}; ask a workspace admin to reinstall it from manifest.yml."
    if code == "access_denied":
        return SLACK_CONNECT_DENIED
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
        if error.request_id is None:  # the submit's own address: no job was made, so trying again cannot help
            return (
                "The Smart Resize API has no resize service at the address the app is set up with; ask your "
                "workspace admin to check PIXAZO_BASE_URL."
            )
        return "The Smart Resize API no longer knows this job; please start the resize again."
    if isinstance(error, api.RateLimited):
        when = f"in about {max(1, round(error.retry_after))} seconds" if error.retry_after else "in a minute"
        return f"The Smart Resize API is rate-limiting the app right now; please try again {when}."
    if isinstance(error, api.ServerError):
        return "The Smart Resize API is having trouble on its side; please try again in a few minutes."
    if isinstance(error, api.ApiStatusError) and error.status_code == 413:  # trying again sends the same size
        return "The Smart Resize API refused the request as too large; share a smaller or more compressed image."
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
    if isinstance(error, api.DownloadRefused):
        return (
            "The Smart Resize API put the resized images on an internal address the app may not fetch from; ask "
            "your workspace admin to allow it with FETCH_ALLOW_PRIVATE_NETWORKS."
        )
    if isinstance(error, api.DownloadError):
        return "I couldn't download the resized image from the Smart Resize API; please try again."
    return "Something went wrong with the Smart Resize API; please try again in a few minutes."


def _shown(text: str | None) -> str:
    """Service text made safe to post: no Slack markup (<!channel>, links), short, no trailing full stop."""
    if not text:
        return ""
    return " ".join(_SHOWN_TEXT.sub("", text).split())[:160].rstrip(" .")


def system_reason(error: OSError) -> str:
    """What the system says went wrong, in its own few words ("Address already in use"): asyncio and aiohttp wrap
    them in a sentence of their own. A resolver's error carries its words without an errno the system knows."""
    return os.strerror(error.errno) if error.errno and error.errno > 0 else error.strerror or str(error)
