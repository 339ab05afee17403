"""Slack file downloads against a loopback Slack emulator and a second, foreign server.

The emulator plays an overridden SLACK_API_URL (http://127.0.0.1:PORT/api/), so its origin is the one extra place
the token may go; the foreign server listens on another port, i.e. another origin, and must never see the token.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from yarl import URL

from bot.net import (
    BlockedAddress,
    FetchError,
    FetchFailed,
    FetchTimeout,
    InvalidUrl,
    NetworkPolicy,
    SafeFetcher,
    TooLarge,
    UnexpectedContentType,
    parse_allow_networks,
)
from bot.slack import (
    DEFAULT_API_BASE_URL,
    RedirectedOffSlack,
    SlackFileAccessDenied,
    SlackFileError,
    SlackFileHosts,
    UntrustedFileHost,
    download_slack_file,
)

TOKEN = "xoxb-1111-2222-SeCrEtToKeN"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(100))
LOGIN_PAGE = "<!DOCTYPE html><html><title>Slack</title><body>Sign in to your workspace</body></html>"


@dataclass
class Recorder:
    base: URL = field(default_factory=URL)
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]


@asynccontextmanager
async def serve(app: web.Application, recorder: Recorder) -> AsyncIterator[Recorder]:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        recorder.seen.append((request.path_qs, request.headers.get("Authorization")))
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(record)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    recorder.base = URL.build(scheme="http", host="127.0.0.1", port=runner.addresses[0][1])
    try:
        yield recorder
    finally:
        await runner.cleanup()


@pytest.fixture
async def foreign() -> AsyncIterator[Recorder]:
    """Another origin (same IP, other port) that serves an image to anyone and redirects on request."""

    async def img(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/img.png", img)
    app.router.add_get("/bounce", bounce)
    async with serve(app, Recorder()) as recorder:
        yield recorder


@pytest.fixture
async def emulator() -> AsyncIterator[Recorder]:
    """Behaves like files.slack.com: the file with the right token, the sign-in page (200, HTML) without it."""
    release = asyncio.Event()

    def authorised(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def file(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        return web.Response(body=PNG, content_type="image/png")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=PNG * 100, content_type="image/png")

    async def pdf(request: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-1.7", content_type="application/pdf")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/files/a.png", file)
    app.router.add_get("/files/big.png", big)
    app.router.add_get("/files/doc.pdf", pdf)
    app.router.add_get("/files/status/{code}", status)
    app.router.add_get("/files/redirect", redirect)
    app.router.add_get("/files/slow.png", slow)
    async with serve(app, Recorder()) as recorder:
        yield recorder
        release.set()


class NoDns(AbstractResolver):
    """Tests only use IP literals; a name lookup means a regression is about to reach a real host."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        raise AssertionError(f"unexpected DNS lookup of {host!r}")

    async def close(self) -> None:
        pass


@pytest.fixture
async def attempts() -> list[str]:
    return []


@pytest.fixture
async def session(attempts: list[str]) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain session (as the app may pass) that records every request it starts and resolves no names."""

    async def on_start(
        client: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        attempts.append(str(params.url))

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(on_start)
    connector = aiohttp.TCPConnector(resolver=NoDns())
    async with aiohttp.ClientSession(connector=connector, trace_configs=[tracing]) as client:
        yield client


@pytest.fixture
async def off_slack() -> AsyncIterator[SafeFetcher]:
    """The SSRF-guarded fetcher, configured to allow loopback: here the foreign server stands in for a public host."""
    policy = NetworkPolicy(allow_networks=parse_allow_networks("127.0.0.1/32"))
    async with SafeFetcher(policy, resolver=NoDns()) as fetcher:
        yield fetcher


def api_url(recorder: Recorder) -> str:
    return str(recorder.base / "api" / "")


def assert_token_absent(error: BaseException) -> None:
    seen: BaseException | None = error
    while seen is not None:
        assert TOKEN not in str(seen)
        assert TOKEN not in repr(seen)
        assert TOKEN not in repr(vars(seen))
        seen = seen.__cause__ or seen.__context__


async def test_downloads_with_the_token(
    session: aiohttp.ClientSession, emulator: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = str(emulator.base / "files" / "a.png")
    fetched = await download_slack_file(session, url, token=TOKEN, api_base_url=api_url(emulator))
    assert fetched.data == PNG
    assert fetched.content_type == "image/png"
    assert fetched.final_url == url
    assert emulator.seen == [("/files/a.png", f"Bearer {TOKEN}")]
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(fetched)


async def test_wrong_token_gets_the_login_page_reported_as_no_access(
    session: aiohttp.ClientSession, emulator: Recorder
) -> None:
    with pytest.raises(SlackFileAccessDenied) as info:
        await download_slack_file(
            session, str(emulator.base / "files" / "a.png"), token="xoxb-wrong", api_base_url=api_url(emulator)
        )
    assert str(info.value) == (
        "I couldn't read that file: add me to the channel it was shared in, or share the file again there."
    )
    assert isinstance(info.value, SlackFileError)
    assert isinstance(info.value, FetchError)
    assert emulator.seen == [("/files/a.png", "Bearer xoxb-wrong")]


@pytest.mark.parametrize("code", [401, 403, 404])
async def test_refusal_statuses_are_no_access(session: aiohttp.ClientSession, emulator: Recorder, code: int) -> None:
    with pytest.raises(SlackFileAccessDenied):
        await download_slack_file(
            session, str(emulator.base / "files" / "status" / str(code)), token=TOKEN, api_base_url=api_url(emulator)
        )


async def test_server_error_is_a_fetch_failure(session: aiohttp.ClientSession, emulator: Recorder) -> None:
    with pytest.raises(FetchFailed) as info:
        await download_slack_file(
            session, str(emulator.base / "files" / "status" / "503"), token=TOKEN, api_base_url=api_url(emulator)
        )
    assert info.value.status == 503
    assert_token_absent(info.value)


async def test_redirect_within_the_trusted_origin_keeps_the_token(
    session: aiohttp.ClientSession, emulator: Recorder
) -> None:
    url = (emulator.base / "files" / "redirect").with_query(to="/files/a.png")
    fetched = await download_slack_file(session, str(url), token=TOKEN, api_base_url=api_url(emulator))
    assert fetched.data == PNG
    assert [auth for _, auth in emulator.seen] == [f"Bearer {TOKEN}", f"Bearer {TOKEN}"]


async def test_redirect_to_another_origin_drops_the_token(
    session: aiohttp.ClientSession, emulator: Recorder, foreign: Recorder, off_slack: SafeFetcher
) -> None:
    url = (emulator.base / "files" / "redirect").with_query(to=str(foreign.base / "img.png"))
    fetched = await download_slack_file(
        session, str(url), token=TOKEN, off_slack=off_slack, api_base_url=api_url(emulator)
    )
    assert fetched.data == PNG
    assert fetched.final_url == str(foreign.base / "img.png")
    assert emulator.seen == [(url.path_qs, f"Bearer {TOKEN}")]
    assert foreign.seen == [("/img.png", None)]


async def test_token_is_not_restored_when_a_foreign_hop_redirects_back(
    session: aiohttp.ClientSession, emulator: Recorder, foreign: Recorder, off_slack: SafeFetcher
) -> None:
    back = str(emulator.base / "files" / "a.png")
    away = (foreign.base / "bounce").with_query(to=back)
    url = (emulator.base / "files" / "redirect").with_query(to=str(away))
    with pytest.raises(UnexpectedContentType):  # the sign-in page: Slack's answer to a request without the token
        await download_slack_file(session, str(url), token=TOKEN, off_slack=off_slack, api_base_url=api_url(emulator))
    assert emulator.seen == [(url.path_qs, f"Bearer {TOKEN}"), ("/files/a.png", None)]
    assert foreign.seen == [(away.path_qs, None)]


@pytest.mark.parametrize(("foreign_hops", "allowed"), [(4, True), (5, False)])
async def test_the_redirect_limit_spans_both_legs(
    session: aiohttp.ClientSession,
    emulator: Recorder,
    foreign: Recorder,
    off_slack: SafeFetcher,
    foreign_hops: int,
    allowed: bool,
) -> None:
    target = foreign.base / "img.png"
    for _ in range(foreign_hops):
        target = (foreign.base / "bounce").with_query(to=str(target))
    url = (emulator.base / "files" / "redirect").with_query(to=str(target))  # one more redirect, on Slack's side
    download = download_slack_file(session, str(url), token=TOKEN, off_slack=off_slack, api_base_url=api_url(emulator))
    if allowed:  # 5 redirects in all: the limit
        assert (await download).data == PNG
    else:
        with pytest.raises(FetchFailed, match="redirected too many times"):
            await download


async def test_without_a_guarded_fetcher_a_redirect_off_slack_is_refused(
    session: aiohttp.ClientSession, emulator: Recorder, foreign: Recorder
) -> None:
    url = (emulator.base / "files" / "redirect").with_query(to=str(foreign.base / "img.png"))
    with pytest.raises(RedirectedOffSlack):
        await download_slack_file(session, str(url), token=TOKEN, api_base_url=api_url(emulator))
    assert foreign.seen == []


@pytest.mark.parametrize("target", ["foreign", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/a.png"])
async def test_a_redirect_off_slack_to_a_private_address_is_blocked(
    session: aiohttp.ClientSession, emulator: Recorder, foreign: Recorder, target: str
) -> None:
    to = str(foreign.base / "img.png") if target == "foreign" else target
    url = (emulator.base / "files" / "redirect").with_query(to=to)
    async with SafeFetcher(NetworkPolicy(), resolver=NoDns()) as default_policy:
        with pytest.raises(BlockedAddress):
            await download_slack_file(
                session, str(url), token=TOKEN, off_slack=default_policy, api_base_url=api_url(emulator)
            )
    assert foreign.seen == []


async def test_untrusted_first_url_sends_nothing(
    session: aiohttp.ClientSession, emulator: Recorder, foreign: Recorder
) -> None:
    with pytest.raises(UntrustedFileHost) as info:
        await download_slack_file(session, str(foreign.base / "img.png"), token=TOKEN, api_base_url=api_url(emulator))
    assert foreign.seen == []
    assert emulator.seen == []
    assert_token_absent(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://files.slack.com/files-pri/T1-F1/a.png",
        "https://files.slack.com.evil.test/files-pri/T1-F1/a.png",
        "https://evilslack.com/files-pri/T1-F1/a.png",
        "https://example.test/files-pri/T1-F1/a.png",
        "https://127.0.0.1/files/a.png",
    ],
)
async def test_non_slack_hosts_are_refused_without_a_request(
    session: aiohttp.ClientSession, attempts: list[str], url: str
) -> None:
    with pytest.raises(UntrustedFileHost):
        await download_slack_file(session, url, token=TOKEN)
    assert attempts == []


async def test_userinfo_and_schemes_are_refused(session: aiohttp.ClientSession, attempts: list[str]) -> None:
    with pytest.raises(InvalidUrl):
        await download_slack_file(session, "https://u:p@files.slack.com/files-pri/a.png", token=TOKEN)
    with pytest.raises(InvalidUrl):
        await download_slack_file(session, "ftp://files.slack.com/a.png", token=TOKEN)
    assert attempts == []


async def test_size_cap(session: aiohttp.ClientSession, emulator: Recorder) -> None:
    url = str(emulator.base / "files" / "big.png")
    with pytest.raises(TooLarge) as info:
        await download_slack_file(session, url, token=TOKEN, api_base_url=api_url(emulator), max_bytes=len(PNG) * 99)
    assert_token_absent(info.value)
    fetched = await download_slack_file(
        session, url, token=TOKEN, api_base_url=api_url(emulator), max_bytes=len(PNG) * 100
    )
    assert len(fetched.data) == len(PNG) * 100


async def test_non_image_file_is_refused(session: aiohttp.ClientSession, emulator: Recorder) -> None:
    with pytest.raises(UnexpectedContentType, match="application/pdf"):
        await download_slack_file(
            session, str(emulator.base / "files" / "doc.pdf"), token=TOKEN, api_base_url=api_url(emulator)
        )


async def test_timeout_and_connection_errors_carry_no_token(session: aiohttp.ClientSession, emulator: Recorder) -> None:
    with pytest.raises(FetchTimeout) as timeout:
        await download_slack_file(
            session,
            str(emulator.base / "files" / "slow.png"),
            token=TOKEN,
            api_base_url=api_url(emulator),
            timeout_s=0.2,
        )
    assert timeout.value.__cause__ is None
    assert timeout.value.__context__ is None
    assert_token_absent(timeout.value)

    # A trusted origin with nothing listening: the aiohttp error is not chained, so its details cannot leak.
    dead = emulator.base.with_port(1)
    with pytest.raises(FetchFailed) as failed:
        await download_slack_file(session, str(dead / "files" / "a.png"), token=TOKEN, api_base_url=str(dead / "api"))
    assert failed.value.status is None
    assert failed.value.__cause__ is None
    assert failed.value.__context__ is None


def test_slack_file_hosts() -> None:
    default = SlackFileHosts.from_api_base_url(DEFAULT_API_BASE_URL)
    assert default.extra_origin is None
    for trusted in (
        "https://files.slack.com/files-pri/T1-F1/a.png",
        "https://FILES.SLACK.COM./files-pri/T1-F1/a.png",
        "https://files-edge.slack-edge.com/a.png",
        "https://files.slack-gov.com/files-pri/a.png",
        "https://slack.com/x",
    ):
        assert default.trusts(URL(trusted)), trusted
    for untrusted in (
        "http://files.slack.com/a.png",
        "https://slack.com.evil.test/a.png",
        "https://notslack-edge.com/a.png",
        "https://127.0.0.1:8000/files/a.png",
    ):
        assert not default.trusts(URL(untrusted)), untrusted

    assert SlackFileHosts.from_api_base_url("https://slack-gov.com/api/").extra_origin is None
    emulated = SlackFileHosts.from_api_base_url("http://127.0.0.1:8000/api/")
    assert emulated.extra_origin == ("http", "127.0.0.1", 8000)
    assert emulated.trusts(URL("http://127.0.0.1:8000/files/a.png"))
    assert not emulated.trusts(URL("http://127.0.0.1:8001/files/a.png"))
    assert not emulated.trusts(URL("https://127.0.0.1:8000/files/a.png"))
    assert not emulated.trusts(URL("http://localhost:8000/files/a.png"))
    with pytest.raises(ValueError, match="absolute"):
        SlackFileHosts.from_api_base_url("/api/")


async def test_missing_token_is_a_programming_error(session: aiohttp.ClientSession, attempts: list[str]) -> None:
    with pytest.raises(ValueError, match="token"):
        await download_slack_file(session, "https://files.slack.com/files-pri/a.png", token="")
    with pytest.raises(ValueError, match="line breaks") as info:
        await download_slack_file(session, "https://files.slack.com/files-pri/a.png", token=TOKEN + "\r\nX: y")
    assert TOKEN not in str(info.value)
    assert attempts == []
