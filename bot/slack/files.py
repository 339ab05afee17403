"""Download a file a user shared in Slack (``url_private`` / ``url_private_download``) with the bot token.

The token is a bearer credential for the whole workspace, so it goes only to Slack's own file hosts over https,
or to the exact origin of an overridden API base URL (an emulator or GovSlack proxy). Redirects are followed by
hand. A hop that leaves those hosts is, from then on, just a link: it is handed to the SSRF-guarded fetcher, which
never holds the token and vets every address and further redirect itself. So the token is never re-attached, even
if a later hop comes back to Slack (a foreign host could otherwise steer it to a Slack URL of its choosing), and a
redirect cannot reach a private or metadata address either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from bot.net.errors import FetchError, FetchFailed
from bot.net.fetch import (
    DEFAULT_ACCEPT,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT_S,
    MAX_REDIRECTS,
    Fetched,
    Origin,
    SafeFetcher,
    open_following_redirects,
    origin,
    parse_http_url,
    read_capped,
    require_content_type,
    run_with_timeout,
)

DEFAULT_API_BASE_URL = "https://slack.com/api/"
SLACK_FILE_DOMAINS = ("slack.com", "slack-edge.com", "slack-gov.com")

# Slack answers these, rather than an image, when the bot may not see the file (or it is gone).
_NO_ACCESS_STATUSES = frozenset({401, 403, 404, 410})


class SlackFileError(FetchError):
    """A Slack file that could not be read."""


class SlackFileAccessDenied(SlackFileError):
    def __init__(self) -> None:
        super().__init__(
            "I couldn't read that file: add me to the channel it was shared in, or share the file again there."
        )


class UntrustedFileHost(SlackFileError):
    def __init__(self) -> None:
        super().__init__(
            "That file link isn't hosted by Slack, so I won't open it as a Slack file; upload the image to Slack."
        )


class RedirectedOffSlack(SlackFileError):
    def __init__(self) -> None:
        super().__init__(
            "Slack sent that file's download to a site outside Slack, so I stopped; upload the image to Slack again."
        )


class _LeftSlack(Exception):
    """Raised between hops: the next one is off Slack's hosts, so it continues outside the token's session."""

    def __init__(self, url: URL, hop: int) -> None:
        self.url = url
        self.hop = hop


@dataclass(frozen=True, slots=True)
class SlackFileHosts:
    """Where the bot token may be sent: Slack's file domains over https, plus one overridden API origin."""

    extra_origin: Origin | None = None

    @classmethod
    def from_api_base_url(cls, api_base_url: str) -> SlackFileHosts:
        try:
            base = URL(api_base_url)
        except ValueError:
            raise ValueError("api_base_url is not a valid URL") from None
        if base.scheme not in ("http", "https") or not base.raw_host:
            raise ValueError("api_base_url must be an absolute http(s) URL")
        hosts = cls()
        return hosts if hosts.trusts(base) else cls(extra_origin=origin(base))

    def trusts(self, url: URL) -> bool:
        where = origin(url)
        if self.extra_origin is not None and where == self.extra_origin:
            return True
        scheme, host, _ = where
        # Suffix match on a label boundary: files.slack.com passes, evilslack.com and slack.com.evil.net do not.
        return scheme == "https" and any(host == d or host.endswith("." + d) for d in SLACK_FILE_DOMAINS)


def is_slack_link(url: str) -> bool:
    """Whether a link points into Slack (a file, its page, a message): fetched as a link, without the token, Slack
    answers its sign-in page. Any scheme, so an http:// one is caught too."""
    host = (URL(url).host or "").lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in SLACK_FILE_DOMAINS)


async def download_slack_file(
    session: aiohttp.ClientSession,
    url: str,
    *,
    token: str,
    off_slack: SafeFetcher | None = None,
    api_base_url: str = DEFAULT_API_BASE_URL,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    accept: tuple[str, ...] = DEFAULT_ACCEPT,
) -> Fetched:
    """Download a Slack-hosted file, sending ``token`` only to Slack's hosts (see SlackFileHosts).

    A redirect off those hosts continues through ``off_slack``, the SSRF-guarded fetcher, without the token; with
    no fetcher it is refused (RedirectedOffSlack). Raises UntrustedFileHost before sending anything if ``url`` is
    not on Slack's hosts, SlackFileAccessDenied when Slack answers with its login page or a 401/403/404, and the
    bot.net FetchError family otherwise.
    """
    if not token or "\r" in token or "\n" in token:
        raise ValueError("a bot token without line breaks is required to download Slack files")
    hosts = SlackFileHosts.from_api_base_url(api_base_url)
    first = parse_http_url(url)
    if not hosts.trusts(first):
        raise UntrustedFileHost()
    authorization = {"Authorization": f"Bearer {token}"}

    def prepare(hop_url: URL, hop: int) -> Mapping[str, str]:
        if not hosts.trusts(hop_url):
            raise _LeftSlack(hop_url, hop)  # before anything is sent there on this session
        return authorization

    async def run() -> Fetched:
        left: _LeftSlack | None = None
        try:
            async with open_following_redirects(session, first, prepare=prepare) as response:
                if response.status in _NO_ACCESS_STATUSES:
                    raise SlackFileAccessDenied()
                if not 200 <= response.status < 300:
                    raise FetchFailed(response.status)
                if response.content_type == "text/html":
                    # Without a valid token, Slack serves its sign-in page with a 200 instead of an error.
                    raise SlackFileAccessDenied()
                content_type = require_content_type(response, accept)
                data = await read_capped(response, max_bytes)
                return Fetched(data=data, content_type=content_type, final_url=str(response.url))
        except _LeftSlack as leaving:
            left = leaving  # fetched below, outside this block: its errors must not chain to the URL
        if off_slack is None:
            raise RedirectedOffSlack()
        # Both legs share the one deadline below, and the redirects left.
        return await off_slack.fetch(
            str(left.url),
            max_bytes=max_bytes,
            timeout_s=timeout_s,
            accept=accept,
            max_redirects=MAX_REDIRECTS - left.hop,
        )

    return await run_with_timeout(run(), timeout_s, keep_cause=False)
