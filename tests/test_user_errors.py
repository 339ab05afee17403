"""Every way a Slack job can fail has one plain sentence, with no markup a service could smuggle in."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse

from bot.engine import InvalidSize
from bot.net import BlockedAddress
from bot.smart_resize_api.contract import Status
from bot.smart_resize_api.errors import (
    ApiStatusError,
    BadRequest,
    DownloadError,
    DownloadRefused,
    DownloadTooLarge,
    DownloadWrongType,
    Forbidden,
    JobFailed,
    JobTimedOut,
    MalformedResponse,
    NotFound,
    PaymentRequired,
    RateLimited,
    ServerError,
    SmartResizeError,
    TransportError,
    Unauthorized,
)
from bot.smart_resize_api.retry import Failure, Operation
from bot.user_errors import GENERIC, UserError, not_an_image, user_message


def test_api_errors_are_one_plain_sentence_each() -> None:
    errors: list[SmartResizeError] = [
        BadRequest("x", status_code=400, details="<!channel> *now* <https://evil.example|click>"),
        Unauthorized("x", status_code=401),
        PaymentRequired("x", status_code=402),
        Forbidden("x", status_code=403),
        NotFound("x", status_code=404),
        RateLimited("x", status_code=429, retry_after=12),
        ServerError("x", status_code=500),
        ApiStatusError("x", status_code=418),
        ApiStatusError("x", status_code=413),
        JobFailed("x", job_status=Status.FAILED, request_id="r", error="bad\nimage"),
        JobFailed("x", job_status=Status.ERROR, request_id="r", error=None),
        JobTimedOut("x", request_id="r", timeout_s=300, last_status=Status.QUEUED),
        TransportError("x", operation=Operation.READ, failure=Failure.AFTER_SENT),
        MalformedResponse("x"),
        DownloadError("x"),
        DownloadRefused("x"),
        DownloadTooLarge("x", limit_bytes=5 * 1024 * 1024),
        DownloadWrongType("x", content_type="text/html"),
    ]
    for error in errors:
        message = user_message(error)
        assert message.endswith(".") and "\n" not in message and ". " not in message, message
        assert not any(c in message for c in "<>*|`"), message
    assert user_message(errors[8]) == (
        "The Smart Resize API refused the request as too large; share a smaller or more compressed image."
    )
    assert user_message(errors[2]) == (
        "The Smart Resize API account is out of credits; "
        "ask your workspace admin to top it up or switch the app to the local engine."
    )
    assert "12 seconds" in user_message(errors[5])
    assert "5 MB" in user_message(errors[16])


def test_a_submit_that_may_have_run_says_to_wait_rather_than_retry() -> None:
    sent = TransportError("x", operation=Operation.SUBMIT, failure=Failure.AFTER_SENT)
    unsent = TransportError("x", operation=Operation.SUBMIT, failure=Failure.NOT_SENT)
    assert "may still run" in user_message(sent)
    assert "couldn't reach" in user_message(unsent)


def test_every_other_failure_speaks_for_itself_or_is_generic() -> None:
    assert user_message(UserError("Say this.")) == "Say this."
    assert user_message(InvalidSize("That size is wrong.")) == "That size is wrong."
    assert "private or internal address" in user_message(BlockedAddress())
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="",
        req_args={},
        data={"ok": False, "error": "not_in_channel"},
        headers={},
        status_code=200,
    )
    assert "/invite @Smart Resize" in user_message(SlackApiError("no", response))
    assert user_message(RuntimeError("a bug, with details nobody should see")) == GENERIC


def test_a_file_that_is_not_an_image_is_named_as_slack_shows_it() -> None:
    assert not_an_image("brief.pdf", "application/pdf") == (
        "brief.pdf isn't an image (application/pdf); share a JPEG, PNG, WebP, HEIC, AVIF, GIF, BMP or TIFF image."
    )
    # The name is the uploader's own text: shown as it is, never read as Slack markup.
    assert not_an_image("<!channel>.pdf", "").startswith("&lt;!channel&gt;.pdf isn't an image (unknown type)")
    assert not_an_image("", "text/plain<b>").startswith("That file isn't an image (text/plainb)")
