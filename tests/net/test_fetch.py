"""SafeFetcher against real aiohttp servers on loopback.

Loopback is blocked by default, which is what makes it a fair stand-in for an internal service: every "blocked"
test below also proves that no TCP connection reached the target.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.net import (
    MAX_URL_LENGTH,
    BlockedAddress,
    FetchError,
    FetchFailed,
    FetchTimeout,
    GuardedConnector,
    InvalidUrl,
    NetworkPolicy,
    SafeFetcher,
    TooLarge,
    UnexpectedContentType,
    decode_data_uri,
    fetch_url,
    parse_allow_networks,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
LOCAL_ONLY = NetworkPolicy(allow_networks=parse_allow_networks("127.0.0.1/32"))


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[URL]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    try:
        yield URL.build(scheme="http", host=host, port=runner.addresses[0][1])
    finally:
        await runner.cleanup()


@asynccontextmanager
async def tripwire(host: str = "127.0.0.2") -> AsyncIterator[tuple[URL, list[str]]]:
    """A bare TCP listener that records every connection it accepts; blocked fetches must leave it empty."""
    accepted: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(on_connect, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield URL.build(scheme="http", host=host, port=port), accepted
    finally:
        server.close()
        await server.wait_closed()


class MapResolver(AbstractResolver):
    """Resolves test hostnames from a dict, so no test depends on (or leaks to) real DNS."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise AssertionError(f"unexpected DNS lookup of {host!r}")
        return [
            {
                "hostname": host,
                "host": ip,
                "port": port,
                "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in self.names[host]
        ]

    async def close(self) -> None:
        pass


def offline(policy: NetworkPolicy | None = None, **kwargs: Any) -> SafeFetcher:
    """A fetcher whose resolver knows no names: a regression must fail the test, not query real DNS."""
    return SafeFetcher(policy, resolver=MapResolver({}), **kwargs)


@pytest.fixture
def no_dial(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Lets the connector reach only our own 127.0.0.1 servers; any other address it tries to dial is recorded
    and refused, so a failing guard fails the test instead of reaching a real host."""
    refused: list[Any] = []
    dial = GuardedConnector._wrap_create_connection

    async def guarded_dial(self: GuardedConnector, *args: Any, **kwargs: Any) -> Any:
        targets = [info[4] for info in kwargs["addr_infos"]]
        if any(target[0] != "127.0.0.1" for target in targets):
            refused.append(targets)
            raise AssertionError(f"the guard let a connection attempt to {targets} through")
        return await dial(self, *args, **kwargs)

    monkeypatch.setattr(GuardedConnector, "_wrap_create_connection", guarded_dial)
    return refused


@pytest.fixture
async def server() -> AsyncIterator[tuple[URL, Counter[str]]]:
    hits: Counter[str] = Counter()
    release = asyncio.Event()

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        hits[request.path] += 1
        response: web.StreamResponse = await handler(request)
        return response

    async def img(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>hi</html>", content_type="text/html")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="nope")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def declared_huge(request: web.Request) -> web.StreamResponse:
        # Claims a gigabyte, sends a little, then stalls: only an early refusal on Content-Length returns quickly.
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 10**9
        await response.prepare(request)
        await response.write(PNG)
        await release.wait()
        return response

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(20):
            await response.write(b"x" * 1000)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application(middlewares=[count])
    app.router.add_get("/img", img)
    app.router.add_get("/html", html)
    app.router.add_get("/missing", missing)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/declared-huge", declared_huge)
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/slow", slow)
    async with serve(app) as base:
        yield base, hits
        release.set()


async def test_default_policy_blocks_loopback_before_any_request(server: tuple[URL, Counter[str]]) -> None:
    base, hits = server
    async with offline() as fetcher:
        with pytest.raises(BlockedAddress) as info:
            await fetcher.fetch(str(base / "img"))
    assert hits == Counter()
    assert "127.0.0.1" not in str(info.value)
    assert str(info.value).startswith("That link points to a private or internal address")


async def test_connector_blocks_even_without_the_url_precheck(server: tuple[URL, Counter[str]]) -> None:
    base, hits = server
    async with offline() as fetcher:
        with pytest.raises(BlockedAddress):
            await fetcher.session.get(base / "img")
    assert hits == Counter()


async def test_connector_checks_ip_literals_that_skip_the_resolver() -> None:
    resolver = MapResolver({})
    connector = GuardedConnector(NetworkPolicy(), resolver=resolver)
    try:
        for literal in ("127.0.0.1", "::1", "::ffff:7f00:1", "169.254.169.254", "2130706433"):
            with pytest.raises(BlockedAddress):
                await connector._resolve_host(literal, 80)
        assert resolver.asked == []
    finally:
        await connector.close()
    allowed = GuardedConnector(LOCAL_ONLY, resolver=resolver)
    try:
        results = await allowed._resolve_host("127.0.0.1", 80)
    finally:
        await allowed.close()
    assert [r["host"] for r in results] == ["127.0.0.1"]


async def test_allowed_loopback_fetches(server: tuple[URL, Counter[str]]) -> None:
    base, hits = server
    async with offline(LOCAL_ONLY) as fetcher:
        fetched = await fetcher.fetch(str(base / "img"))
    assert fetched.data == PNG
    assert fetched.content_type == "image/png"
    assert fetched.final_url == str(base / "img")
    assert hits == Counter({"/img": 1})


async def test_names_are_judged_by_what_they_resolve_to(server: tuple[URL, Counter[str]], no_dial: list[Any]) -> None:
    base, hits = server
    resolver = MapResolver({"images.test": ["127.0.0.1"], "rebind.test": ["127.0.0.1", "10.0.0.1"]})
    url = base.with_host("images.test")
    async with SafeFetcher(LOCAL_ONLY, resolver=resolver) as fetcher:
        assert (await fetcher.fetch(str(url / "img"))).data == PNG
        with pytest.raises(BlockedAddress):
            # One blocked record is enough: the connector may dial any of them.
            await fetcher.fetch(str(base.with_host("rebind.test") / "img"))
    async with SafeFetcher(resolver=resolver) as fetcher:
        with pytest.raises(BlockedAddress):
            await fetcher.fetch(str(url / "img"))
    assert hits == Counter({"/img": 1})
    assert resolver.asked.count("images.test") == 2
    assert no_dial == []


async def test_redirect_within_allowed_host_is_followed(server: tuple[URL, Counter[str]]) -> None:
    base, hits = server
    async with offline(LOCAL_ONLY) as fetcher:
        fetched = await fetcher.fetch(str((base / "redirect").with_query(to="/img")))
    assert fetched.data == PNG
    assert fetched.final_url == str(base / "img")
    assert hits == Counter({"/redirect": 1, "/img": 1})


async def test_redirect_to_other_loopback_address_is_blocked_before_connecting(
    server: tuple[URL, Counter[str]],
) -> None:
    base, hits = server
    async with tripwire("127.0.0.2") as (target, accepted), offline(LOCAL_ONLY) as fetcher:
        with pytest.raises(BlockedAddress):
            await fetcher.fetch(str((base / "redirect").with_query(to=str(target / "img"))))
    assert accepted == []
    assert hits == Counter({"/redirect": 1})


async def test_redirect_to_a_name_resolving_to_a_blocked_address_is_blocked(
    server: tuple[URL, Counter[str]],
) -> None:
    base, _ = server
    resolver = MapResolver({"internal.test": ["127.0.0.2"]})
    async with tripwire("127.0.0.2") as (target, accepted):
        hop = target.with_host("internal.test") / "img"
        async with SafeFetcher(LOCAL_ONLY, resolver=resolver) as fetcher:
            with pytest.raises(BlockedAddress):
                await fetcher.fetch(str((base / "redirect").with_query(to=str(hop))))
    assert accepted == []
    assert resolver.asked == ["internal.test"]


@pytest.mark.parametrize(
    ("location", "error"),
    [
        ("ftp://127.0.0.1/img", InvalidUrl),
        ("file:///etc/passwd", InvalidUrl),
        ("http://user:pw@127.0.0.1/img", InvalidUrl),
        ("http://169.254.169.254/latest/meta-data/", BlockedAddress),
        ("http://metadata.google.internal/computeMetadata/v1/", BlockedAddress),
    ],
)
async def test_redirect_targets_are_revalidated(
    server: tuple[URL, Counter[str]], no_dial: list[Any], location: str, error: type[FetchError]
) -> None:
    base, hits = server
    async with offline(LOCAL_ONLY) as fetcher:
        with pytest.raises(error):
            await fetcher.fetch(str((base / "redirect").with_query(to=location)))
    assert no_dial == []
    assert hits == Counter({"/redirect": 1})


async def test_redirect_loop_stops_after_five_hops(server: tuple[URL, Counter[str]]) -> None:
    base, hits = server
    async with offline(LOCAL_ONLY) as fetcher:
        with pytest.raises(FetchFailed, match="redirected too many times") as info:
            await fetcher.fetch(str(base / "loop"))
    assert info.value.status is None
    assert hits == Counter({"/loop": 6})


async def test_too_large_by_content_length_is_refused_without_reading(server: tuple[URL, Counter[str]]) -> None:
    base, _ = server
    started = time.monotonic()
    async with offline(LOCAL_ONLY, max_bytes=1000, timeout_s=5) as fetcher:
        with pytest.raises(TooLarge) as info:
            await fetcher.fetch(str(base / "declared-huge"))
    assert time.monotonic() - started < 2
    assert info.value.limit_bytes == 1000
    assert str(info.value) == "That file is bigger than the 1000 bytes I can download; share a smaller image."


async def test_too_large_while_streaming_without_content_length(server: tuple[URL, Counter[str]]) -> None:
    base, _ = server
    async with offline(LOCAL_ONLY) as fetcher:
        with pytest.raises(TooLarge):
            await fetcher.fetch(str(base / "streamed"), max_bytes=5000)
        # The same body fits a larger cap, so the refusal above was the cap and not a broken stream.
        fetched = await fetcher.fetch(str(base / "streamed"), max_bytes=20_000)
    assert fetched.data == b"x" * 20_000


async def test_slow_server_times_out(server: tuple[URL, Counter[str]]) -> None:
    base, _ = server
    started = time.monotonic()
    async with offline(LOCAL_ONLY) as fetcher:
        with pytest.raises(FetchTimeout) as info:
            await fetcher.fetch(str(base / "slow"), timeout_s=0.2)
    assert 0.15 < time.monotonic() - started < 2
    assert str(info.value).startswith("The server took longer than 0.2 seconds")


async def test_wrong_content_type_is_refused(server: tuple[URL, Counter[str]]) -> None:
    base, _ = server
    async with offline(LOCAL_ONLY) as fetcher:
        with pytest.raises(UnexpectedContentType) as info:
            await fetcher.fetch(str(base / "html"))
        html = await fetcher.fetch(str(base / "html"), accept=("text/html",))
    assert info.value.content_type == "text/html"
    assert "returned text/html, not an image" in str(info.value)
    assert html.data == b"<html>hi</html>"


async def test_http_error_status_is_reported(server: tuple[URL, Counter[str]]) -> None:
    base, _ = server
    async with offline(LOCAL_ONLY) as fetcher:
        with pytest.raises(FetchFailed, match=r"HTTP 404") as info:
            await fetcher.fetch(str(base / "missing"))
    assert info.value.status == 404


async def test_connection_refused_is_a_fetch_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with offline(LOCAL_ONLY) as fetcher:
        with pytest.raises(FetchFailed) as info:
            await fetcher.fetch(f"http://127.0.0.1:{port}/img")
    assert info.value.status is None
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::1]:8080/",
        "http://[fd00:ec2::254]/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://100.100.100.200/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1./",
    ],
)
async def test_internal_targets_are_blocked(no_dial: list[Any], url: str) -> None:
    async with offline() as fetcher:
        with pytest.raises(BlockedAddress):
            await fetcher.fetch(url)
    assert no_dial == []


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("ftp://example.com/a.png", "only http:// and https://"),
        ("javascript:alert(1)", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("data:image/png;base64,AAAA", "only http:// and https://"),
        ("http://user:secret@example.com/a.png", "username or password"),
        ("http://user@example.com/a.png", "username or password"),
        ("http:///a.png", "no host name"),
        ("/relative.png", "only http:// and https://"),
        ("http://example.com/" + "a" * MAX_URL_LENGTH, f"longer than {MAX_URL_LENGTH}"),
        ("http://134744072/", "usual dotted form"),
    ],
)
async def test_malformed_urls_are_refused(no_dial: list[Any], url: str, detail: str) -> None:
    async with offline() as fetcher:
        with pytest.raises(InvalidUrl, match=detail) as info:
            await fetcher.fetch(url)
    assert "secret" not in str(info.value)
    assert no_dial == []


async def test_fetch_url_refuses_unguarded_sessions() -> None:
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(TypeError, match="GuardedConnector"):
            await fetch_url(plain, "http://127.0.0.1:1/a.png")
    async with aiohttp.ClientSession(connector=GuardedConnector(NetworkPolicy()), trust_env=True) as proxied:
        with pytest.raises(ValueError, match="trust_env"):
            await fetch_url(proxied, "http://127.0.0.1:1/a.png")


async def test_fetcher_lifecycle() -> None:
    fetcher = offline()
    with pytest.raises(RuntimeError, match="not started"):
        _ = fetcher.session
    await fetcher.start()
    session = fetcher.session
    await fetcher.start()
    assert fetcher.session is session
    assert isinstance(session.connector, GuardedConnector)
    await fetcher.close()
    assert session.closed
    with pytest.raises(RuntimeError):
        await fetcher.fetch("http://127.0.0.1:1/a.png")


PNG_B64 = base64.b64encode(PNG).decode()


def test_decode_base64_data_uri() -> None:
    fetched = decode_data_uri(f"data:image/png;base64,{PNG_B64}", max_bytes=1000)
    assert fetched.data == PNG
    assert fetched.content_type == "image/png"
    assert fetched.final_url == "data:image/png"
    assert "data=" not in repr(fetched)


def test_decode_data_uri_tolerates_whitespace_case_and_parameters() -> None:
    wrapped = "\n".join(PNG_B64[i : i + 60] for i in range(0, len(PNG_B64), 60))
    fetched = decode_data_uri(f"DATA:Image/PNG;name=a.png;BASE64,{wrapped}", max_bytes=1000)
    assert fetched.data == PNG
    assert fetched.content_type == "image/png"


def test_decode_percent_encoded_data_uri() -> None:
    assert decode_data_uri("data:image/svg+xml,%3Csvg%2F%3E", max_bytes=100).data == b"<svg/>"


def test_data_uri_size_cap() -> None:
    assert decode_data_uri(f"data:image/png;base64,{PNG_B64}", max_bytes=len(PNG)).data == PNG
    with pytest.raises(TooLarge):
        decode_data_uri(f"data:image/png;base64,{PNG_B64}", max_bytes=len(PNG) - 1)
    with pytest.raises(TooLarge):
        decode_data_uri("data:image/png," + "a" * 101, max_bytes=100)


@pytest.mark.parametrize(
    ("uri", "error", "detail"),
    [
        ("data:image/png;base64,@@@@", InvalidUrl, "valid base64"),
        ("data:image/png;base64,AAA", InvalidUrl, "valid base64"),
        ("data:image/png;base64", InvalidUrl, "no comma"),
        ("https://example.com/a.png", InvalidUrl, "isn't a data: link"),
        (f"data:text/html;base64,{PNG_B64}", UnexpectedContentType, "text/html"),
        ("data:,hello", UnexpectedContentType, "text/plain"),
    ],
)
def test_bad_data_uris(uri: str, error: type[FetchError], detail: str) -> None:
    with pytest.raises(error, match=detail):
        decode_data_uri(uri, max_bytes=1000)


def test_error_messages_are_single_plain_lines() -> None:
    errors: list[FetchError] = [
        BlockedAddress("10.0.0.1"),
        InvalidUrl("it has no host name"),
        TooLarge(20 * 1024 * 1024),
        FetchTimeout(15),
        FetchFailed(502),
        FetchFailed(None),
        UnexpectedContentType("text/html; <!channel>\n<https://evil|click>"),
    ]
    for error in errors:
        text = str(error)
        assert "\n" not in text
        assert "<" not in text
        assert "10.0.0.1" not in text
        assert text.endswith(".")
    assert str(TooLarge(20 * 1024 * 1024)) == (
        "That file is bigger than the 20 MB I can download; share a smaller image."
    )
    assert str(FetchTimeout(15)).startswith("The server took longer than 15 seconds")
