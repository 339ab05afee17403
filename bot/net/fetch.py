"""Download an image from a user-supplied link without letting the link reach inside our network.

Redirects are followed here, one hop at a time, so that every hop's URL is validated and every hop's connection
goes through the guarded connector; aiohttp's own redirect handling would skip the URL checks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import urllib.parse
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import hdrs
from aiohttp.abc import AbstractResolver
from yarl import URL

from bot.net.errors import FetchError, FetchFailed, FetchTimeout, InvalidUrl, TooLarge, UnexpectedContentType
from bot.net.guard import GuardedConnector, NetworkPolicy

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_TIMEOUT_S = 15.0
DEFAULT_ACCEPT: tuple[str, ...] = ("image/",)
# What object stores and plain file servers label any file they don't know (aiohttp reads a missing Content-Type
# as application/octet-stream too): for a caller whose decoder tells images from the rest by their bytes.
UNLABELLED: tuple[str, ...] = ("application/octet-stream", "binary/octet-stream")
MAX_REDIRECTS = 5
MAX_URL_LENGTH = 2048
DEFAULT_USER_AGENT = "SmartResizeForSlack/0.1 (image fetcher)"

_CHUNK_BYTES = 64 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes = field(repr=False)
    content_type: str
    final_url: str

    @property
    def size(self) -> int:
        return len(self.data)


def parse_http_url(url: str | URL) -> URL:
    """Validate the shape of a link: http(s), a host, no credentials, not absurdly long. Raises InvalidUrl."""
    text = str(url)
    if len(text) > MAX_URL_LENGTH:
        raise InvalidUrl(f"it is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = url if isinstance(url, URL) else URL(text.strip())
        host = parsed.raw_host
    except (ValueError, TypeError):
        raise InvalidUrl("it isn't a valid web address") from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidUrl("only http:// and https:// links are supported")
    if not host:
        raise InvalidUrl("it has no host name")
    if parsed.user is not None or parsed.password is not None:
        # Credentials in a link would be sent to whatever host it (or a redirect) names.
        raise InvalidUrl("links with a username or password in them aren't supported")
    return parsed.with_fragment(None)


def accepts(content_type: str, accept: tuple[str, ...]) -> bool:
    """True if ``content_type`` equals an entry of ``accept`` or starts with one that ends in "/"."""
    mime = content_type.lower()
    return any(mime == a or (a.endswith("/") and mime.startswith(a)) for a in accept)


def require_content_type(response: aiohttp.ClientResponse, accept: tuple[str, ...]) -> str:
    content_type = response.content_type
    if not accepts(content_type, accept):
        raise UnexpectedContentType(content_type)
    return content_type


Origin = tuple[str, str, int | None]


def origin(url: URL) -> Origin:
    """Scheme, host and port, normalised: where a credential may go is decided by comparing these."""
    return (url.scheme.lower(), (url.raw_host or "").rstrip(".").lower(), url.port)


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """Read the body, giving up as soon as it is known to exceed ``max_bytes``. Raises TooLarge."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise TooLarge(max_bytes)
    if declared is not None and hdrs.CONTENT_ENCODING not in response.headers:
        # aiohttp's parser stops at Content-Length, so an uncompressed body cannot exceed it: one read suffices.
        return await response.read()
    # Otherwise count what arrives: Content-Length can be absent, or describe the compressed body while the
    # decompressed one is far larger.
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(max_bytes)
    return bytes(body)


def redirect_target(response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise FetchFailed(response.status, "the server redirected without saying where to")
    try:
        target = response.url.join(URL(location))
    except (ValueError, TypeError):
        raise InvalidUrl("the server redirected to something that isn't a web address") from None
    return parse_http_url(target)


PrepareHop = Callable[[URL, int], Mapping[str, str]]


@asynccontextmanager
async def open_following_redirects(
    session: aiohttp.ClientSession, url: URL, *, prepare: PrepareHop, max_redirects: int = MAX_REDIRECTS
) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET ``url``, following up to ``max_redirects`` redirects by hand; yields the first non-redirect response.

    ``prepare(url, hop)`` runs before each request: it refuses the hop by raising, or returns that hop's headers
    (hop 0 is the original URL), so callers decide per hop what may be sent where.
    """
    for hop in range(max_redirects + 1):
        headers = prepare(url, hop)
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status in _REDIRECT_STATUSES:
                url = redirect_target(response)
                continue
            yield response
            return
    # No count in the sentence: a chain can be followed in two legs (see bot.slack.files), each with what is left.
    raise FetchFailed(None, "it redirected too many times")


async def fetch_url(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    accept: tuple[str, ...] = DEFAULT_ACCEPT,
    max_redirects: int = MAX_REDIRECTS,
) -> Fetched:
    """Fetch ``url`` through ``session``, whose connector must be a GuardedConnector (its policy applies).

    Raises a FetchError subclass for every refusal or failure.
    """
    connector = session.connector
    if not isinstance(connector, GuardedConnector):
        raise TypeError("fetch_url needs a session built on GuardedConnector")
    if session.trust_env:
        # An environment proxy would make the connector vet the proxy's address instead of the target's.
        raise ValueError("fetch_url needs a session with trust_env=False")
    policy = connector.policy
    first = parse_http_url(url)
    accept_header = ", ".join(f"{a}*" if a.endswith("/") else a for a in accept)

    def prepare(hop_url: URL, hop: int) -> Mapping[str, str]:
        if hop_url.raw_host is not None:
            policy.check_host(hop_url.raw_host)
        return {"Accept": accept_header}

    async def run() -> Fetched:
        async with open_following_redirects(session, first, prepare=prepare, max_redirects=max_redirects) as response:
            if not 200 <= response.status < 300:
                raise FetchFailed(response.status)
            content_type = require_content_type(response, accept)
            data = await read_capped(response, max_bytes)
            return Fetched(data=data, content_type=content_type, final_url=str(response.url))

    return await run_with_timeout(run(), timeout_s)


async def run_with_timeout(
    download: Coroutine[Any, Any, Fetched], timeout_s: float, *, keep_cause: bool = True
) -> Fetched:
    """Await a download under one overall deadline, mapping transport failures onto the FetchError family.

    ``keep_cause=False`` detaches the aiohttp exception entirely (no ``__cause__``, no ``__context__``): some
    aiohttp errors carry the request headers, which must not reach logs when they hold a token.
    """
    failure: FetchError
    cause: BaseException | None
    try:
        async with asyncio.timeout(timeout_s):
            return await download
    except TimeoutError as exc:
        # Also catches aiohttp's ServerTimeoutError, which is both a TimeoutError and a ClientError.
        failure, cause = FetchTimeout(timeout_s), exc
    except (aiohttp.InvalidURL, UnicodeError) as exc:  # UnicodeError: a host name IDNA can't encode (a..b)
        failure, cause = InvalidUrl("it isn't a valid web address"), exc
    except aiohttp.ClientConnectorError as exc:
        failure, cause = FetchFailed(None), exc
    except aiohttp.ClientError as exc:
        failure, cause = FetchFailed(None, "the connection broke off before the image arrived"), exc
    # Raised outside the except blocks so that, without keep_cause, not even __context__ points at the original.
    raise failure from (cause if keep_cause else None)


class SafeFetcher:
    """Owns the process's one guarded ClientSession; ``start()`` at startup and ``close()`` at shutdown.

    Also usable as ``async with SafeFetcher(policy) as fetcher:``.
    """

    def __init__(
        self,
        policy: NetworkPolicy | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        user_agent: str = DEFAULT_USER_AGENT,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.policy = policy if policy is not None else NetworkPolicy()
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._user_agent = user_agent
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise RuntimeError("SafeFetcher is not started; call `await fetcher.start()` first")
        return self._session

    async def start(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        connector = GuardedConnector(self.policy, resolver=self._resolver)
        self._session = aiohttp.ClientSession(
            connector=connector,
            # One session serves every user: a cookie one user's link sets must not ride along on another's fetch.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            headers={"User-Agent": self._user_agent},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def vet(self, url: str) -> None:
        """Refuse now what a fetch of ``url`` would refuse for where it points (InvalidUrl, BlockedAddress).
        A name that does not resolve passes: the fetch reports that itself, and it may resolve by then."""
        target = parse_http_url(url)
        connector = self.session.connector
        assert isinstance(connector, GuardedConnector)
        try:
            await connector.vet(target.raw_host or "", target.port or 443)
        except UnicodeError:  # a host name IDNA can't encode (a..b, a label over 63 characters)
            raise InvalidUrl("it isn't a valid web address") from None
        except (aiohttp.ClientConnectorError, OSError):
            return

    async def __aenter__(self) -> SafeFetcher:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def fetch(
        self,
        url: str,
        *,
        max_bytes: int | None = None,
        timeout_s: float | None = None,
        accept: tuple[str, ...] = DEFAULT_ACCEPT,
        max_redirects: int = MAX_REDIRECTS,
    ) -> Fetched:
        return await fetch_url(
            self.session,
            url,
            max_bytes=self.max_bytes if max_bytes is None else max_bytes,
            timeout_s=self.timeout_s if timeout_s is None else timeout_s,
            accept=accept,
            max_redirects=max_redirects,
        )


def decode_data_uri(uri: str, *, max_bytes: int, accept: tuple[str, ...] = DEFAULT_ACCEPT) -> Fetched:
    """Decode ``data:image/png;base64,...`` (or a percent-encoded data URI) into a Fetched.

    ``final_url`` is ``data:<type>`` without the payload, so it can be logged.
    """
    if uri[:5].lower() != "data:":
        raise InvalidUrl("it isn't a data: link")
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise InvalidUrl("the data: link has no comma before its contents")
    params = [p.strip() for p in header.split(";")]
    is_base64 = len(params) > 1 and params[-1].lower() == "base64"
    # RFC 2397: an omitted media type means text/plain.
    content_type = params[0].lower() or "text/plain"
    if not accepts(content_type, accept):
        raise UnexpectedContentType(content_type)
    if is_base64:
        if "%" in payload:
            payload = urllib.parse.unquote(payload)
        compact = "".join(payload.split())
        # Refuse on the encoded length before allocating the decoded bytes.
        if len(compact) // 4 * 3 - compact.count("=", -2) > max_bytes:
            raise TooLarge(max_bytes)
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidUrl("the data: link's contents aren't valid base64") from None
    else:
        # Percent-encoding only shrinks on decoding, so the encoded length bounds the result.
        if len(payload) > 3 * max_bytes:
            raise TooLarge(max_bytes)
        data = urllib.parse.unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise TooLarge(max_bytes)
    return Fetched(data=data, content_type=content_type, final_url=f"data:{content_type}")
