"""One error class per way a download can be refused; ``str(error)`` is one sentence a Slack user can act on
(``bot.user_errors.api_message`` words them for the API server).

Messages never echo the URL, the resolved address or any header: URLs can carry signed tokens, and resolved
addresses would tell a prober what the bot's internal network looks like. Operators get the details from the
attributes instead.
"""

from __future__ import annotations

import re

_MIB = 1024 * 1024
# Remote servers choose the Content-Type; keep only characters a MIME type needs so that nothing a server sends
# can turn into Slack markup (<!channel>, links) when the message is posted.
_UNSAFE_TYPE_CHARS = re.compile(r"[^A-Za-z0-9.+/-]")


def human_size(n_bytes: int) -> str:
    if n_bytes >= _MIB:
        return f"{n_bytes / _MIB:.1f}".removesuffix(".0") + " MB"
    if n_bytes >= 1024:
        return f"{n_bytes / 1024:.1f}".removesuffix(".0") + " KB"
    return f"{n_bytes} bytes"


def shown_content_type(content_type: str) -> str:
    """A server's Content-Type made safe to show: only a MIME type's characters, short."""
    return _UNSAFE_TYPE_CHARS.sub("", content_type)[:80] or "something unrecognised"


class FetchError(Exception):
    """Base class for every refused or failed download."""


class BlockedAddress(FetchError):
    def __init__(self, address: str | None = None) -> None:
        super().__init__(
            "That link points to a private or internal address, which I can't fetch; share the image in Slack or "
            "use a public link (a workspace admin can allow internal sites with FETCH_ALLOW_PRIVATE_NETWORKS)."
        )
        self.address = address


class InvalidUrl(FetchError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"I can't fetch that link: {detail}. Use a plain http:// or https:// link to the image.")
        self.detail = detail


class TooLarge(FetchError):
    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            f"That file is bigger than the {human_size(limit_bytes)} I can download; share a smaller image."
        )
        self.limit_bytes = limit_bytes


class FetchTimeout(FetchError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"The server took longer than {timeout_s:g} seconds to send the image; "
            "try again, or upload the image to Slack instead."
        )
        self.timeout_s = timeout_s


class FetchFailed(FetchError):
    def __init__(self, status: int | None, detail: str | None = None) -> None:
        if detail is not None:
            message = f"I couldn't download that link ({detail}); check that it opens in a browser."
        elif status is None:
            message = "I couldn't connect to that server; check that the link opens in a browser."
        else:
            message = f"The server answered with an error (HTTP {status}) instead of the image; check the link."
        super().__init__(message)
        self.status = status


class UnexpectedContentType(FetchError):
    def __init__(self, content_type: str) -> None:
        shown = shown_content_type(content_type)
        super().__init__(
            f"That link returned {shown}, not an image; link straight to the image file or upload it to Slack."
        )
        self.content_type = content_type
