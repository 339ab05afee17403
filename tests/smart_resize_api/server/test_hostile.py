"""``smart-resize serve`` against hostile requests (issue 14): forged Host headers never reach the URLs it hands out,
malformed JSON is a 400 in the contract's words and never a 500, and the work one request may ask for is capped at
submit. A real server on loopback; raw sockets where a client library would tidy up what an attacker sends."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from bot.config import ConfigError, ServerSettings, load_server_settings, parse_authority
from bot.engine.pool import EnginePool
from bot.smart_resize_api.contract import KEY_HEADER, MAX_JSON_DEPTH, MAX_JSON_ITEMS, ContractError, load_json_body
from bot.smart_resize_api.server.app import PREFIX, SmartResizeServer, origin_for
from tests.images import encode, photo

KEY = "hostile-test-key"
SOURCE = "data:image/png;base64," + base64.b64encode(encode(photo(120, 90), "PNG")).decode()


@pytest.fixture
async def api(tmp_path: Path, engine_pool: EnginePool) -> AsyncIterator[tuple[TestServer, SmartResizeServer]]:
    config = ServerSettings(keys=frozenset({KEY}), database_path=tmp_path / "hostile.db", workers=1)
    service = SmartResizeServer(config, pool=engine_pool)
    server = TestServer(service.application(), host="127.0.0.1")
    await server.start_server()
    yield server, service
    await server.close()


async def _raw(port: int, method: str, path: str, host: str, body: bytes = b"") -> tuple[int, Any]:
    """One request exactly as written: aiohttp's client would refuse or normalise such a Host."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{KEY_HEADER}: {KEY}\r\nContent-Type: application/json\r\n"
    writer.write(head.encode() + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    answer = await reader.read()
    writer.close()
    status, rest = answer.split(b" ", 2)[1], answer.split(b"\r\n\r\n", 1)[1]
    return int(status), json.loads(rest)


FORGED_HOSTS = [
    "127.0.0.1@evil.example",
    "evil.example",
    "evil.example:8080",
    "localhost:1@evil.example",
    "[::1]@evil.example",
    "evil.example/x",
    "evil.example#",
    "%65vil.example",
]


async def test_a_forged_host_never_becomes_the_polling_or_media_url(
    api: tuple[TestServer, SmartResizeServer],
) -> None:
    server, _ = api
    port = server.port
    assert port is not None
    listening = f"http://127.0.0.1:{port}"
    body = json.dumps({"image_url": SOURCE, "target_sizes": ["64x64"]}).encode()
    request_ids = []
    for host in FORGED_HOSTS:
        status, submitted = await _raw(port, "POST", f"{PREFIX}/smart-resize-request", host, body)
        assert status == 200, (host, submitted)
        assert submitted["polling_url"] == f"{listening}/v2/requests/status/{submitted['request_id']}", host
        request_ids.append(submitted["request_id"])
    for request_id in request_ids:
        for _ in range(200):
            status, answer = await _raw(port, "GET", f"/v2/requests/status/{request_id}", "evil.example")
            if answer["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.05)
        assert [url[: len(listening) + 1] for url in answer["output"]["media_url"]] == [f"{listening}/"]
        assert answer["images"][0]["url"].startswith(f"{listening}/media/")


async def test_allowed_hosts_and_the_public_url_are_used_as_configured(tmp_path: Path, engine_pool: EnginePool) -> None:
    config = load_server_settings(
        {
            "SMART_RESIZE_API_KEYS": KEY,
            "SMART_RESIZE_ALLOWED_HOSTS": "resize.example.com, Resize.Internal:8080",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'allowed.db'}",
        }
    )
    assert config.allowed_hosts == (("resize.example.com", None), ("resize.internal", 8080))
    body = json.dumps({"image_url": SOURCE, "target_sizes": ["64x64"]}).encode()
    for settings_, host, origin in [
        (config, "RESIZE.example.com:9000", "http://resize.example.com:9000"),  # any port of a listed name
        (config, "resize.internal:8080", "http://resize.internal:8080"),
        (config, "resize.internal:8081", None),  # the listed port only
        (config, "resize.internal", None),
        (config, "resize.example.com.evil.example", None),
        (replace(config, public_url="https://api.example.org/"), "resize.example.com", "https://api.example.org"),
    ]:
        service = SmartResizeServer(replace(settings_, workers=1), pool=engine_pool)
        server = TestServer(service.application(), host="127.0.0.1")
        await server.start_server()
        port = server.port or 0
        try:
            status, submitted = await _raw(port, "POST", f"{PREFIX}/smart-resize-request", host, body)
        finally:
            await server.close()
        assert status == 200
        expected = origin or f"http://127.0.0.1:{port}"
        assert submitted["polling_url"].startswith(f"{expected}/v2/requests/status/"), (host, submitted)


def test_allowed_hosts_that_are_not_hosts_stop_the_server() -> None:
    with pytest.raises(ConfigError) as refused:
        load_server_settings({"SMART_RESIZE_ALLOWED_HOSTS": "ok.example, https://x.example, a@b, ok:99999"})
    assert refused.value.problems == [
        f"SMART_RESIZE_ALLOWED_HOSTS: {entry!r} is not a host name or address with an optional port; list the "
        "names clients use, like resize.example.com,resize.internal:8080."
        for entry in ("https://x.example", "a@b", "ok:99999")
    ]


sockets = st.sampled_from([("127.0.0.1", 8080), ("::1", 8080, 0, 0), ("10.1.2.3", 443), ("fe80::1%eth0", 80, 0, 2)])
allowed = st.lists(st.tuples(st.sampled_from(["a.example", "b.example", "10.0.0.1"]), st.none() | st.integers(1, 9)))
headers = st.none() | st.text(max_size=40) | st.sampled_from(["a.example", "a.example:5", "b.example:7", *FORGED_HOSTS])


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["http", "https"]), headers, sockets, allowed)
def test_the_origin_is_always_an_allowed_host_or_the_listening_address(
    scheme: str, header: str | None, sockname: tuple[Any, ...], allowed_hosts: list[tuple[str, int | None]]
) -> None:
    origin = origin_for(scheme, header, sockname, public_url=None, allowed_hosts=allowed_hosts)
    url = URL(origin)
    assert url.scheme == scheme and url.path in ("", "/") and not url.user and not url.query_string
    listening = (sockname[0], sockname[1])
    chosen = (url.host, url.explicit_port)  # yarl gives a zone (fe80::1%eth0) back unescaped
    assert chosen == listening or any(url.host == name and port in (None, url.port) for name, port in allowed_hosts), (
        header,
        origin,
    )


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_a_parsed_authority_is_only_a_host_and_a_port(text: str) -> None:
    try:
        host, port = parse_authority(text)
    except ValueError:
        return
    rebuilt = URL(f"http://{host}" + (f":{port}" if port is not None else ""))
    assert rebuilt.host is not None and rebuilt.host.strip("[]") == host.strip("[]")
    assert not set(host) & set("@/?#\\% \t\r\n")


# --- malformed JSON -------------------------------------------------------------------------------------------

HOSTILE_BODIES = {
    "nested 5,000 deep": (b"[" * 5000 + b"]" * 5000, "nested more than"),
    "objects nested 5,000 deep": (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested more than"),
    "nested just past the limit": (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested more than"),
    "a million values": (b"[" + b"0," * 1_000_000 + b"0]", f"more than {MAX_JSON_ITEMS} JSON values"),
    "not JSON": (b"{nope", "must be a JSON object"),
    "not UTF-8": (b'{"image_url": "\xff"}', "must be a JSON object"),
    "a 5,000-digit number": (b'{"seed": ' + b"9" * 5000 + b"}", "must be a JSON object"),
}


async def test_malformed_json_is_a_400_in_the_contracts_words_and_never_a_traceback(
    api: tuple[TestServer, SmartResizeServer], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = api
    caplog.set_level(logging.INFO)
    origin = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as session:
        for path in (f"{PREFIX}/smart-resize-request", f"{PREFIX}/smart-resize-request-result"):
            for name, (body, details) in HOSTILE_BODIES.items():
                async with session.post(f"{origin}{path}", data=body, headers={KEY_HEADER: KEY}) as response:
                    answer = await response.json()
                assert response.status == 400, (name, answer)
                assert answer["error"] == "Invalid JSON" and details in answer["details"], (name, answer)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
        max_leaves=60,
    ).map(lambda value: json.dumps(value).encode())
)
def test_any_body_parses_within_the_limits_or_is_the_contracts_400(raw: bytes) -> None:
    try:
        load_json_body(raw)
    except ContractError as error:
        assert error.error == "Invalid JSON"


# --- work per request ------------------------------------------------------------------------------------------


async def test_too_many_pixels_is_refused_at_submit(api: tuple[TestServer, SmartResizeServer]) -> None:
    server, service = api
    url = f"http://127.0.0.1:{server.port}{PREFIX}/smart-resize-request"
    assert (service.config.limits.max_output_pixels, service.config.sync_max_pixels) == (100_000_000, 16_000_000)
    huge = {"image_url": SOURCE, "target_sizes": ["8192x8192"] * 10}  # the 671 MP request
    inline = {"image_url": SOURCE, "target_sizes": ["2048x2048"] * 4, "sync_mode": True}  # 16.8 MP inline
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=huge, headers={KEY_HEADER: KEY}) as response:
            assert response.status == 400
            assert await response.json() == {
                "error": "Too many pixels",
                "details": "This request asks for 671.1 megapixels of images in all; this server makes at most 100 "
                "per request (SMART_RESIZE_MAX_OUTPUT_MEGAPIXELS). Ask for fewer or smaller images, or split the "
                "request",
            }
        async with session.post(url, json=inline, headers={KEY_HEADER: KEY}) as response:
            assert response.status == 400
            assert await response.json() == {
                "error": "Too large for sync_mode",
                "details": "sync_mode returns every image inside each status answer, and this request's 16.8 "
                "megapixels are over the 16 this server returns that way (SMART_RESIZE_SYNC_MAX_MEGAPIXELS). "
                "Submit it without sync_mode and download the media_url links",
            }
        # Nothing of either was queued; the same sizes without sync_mode, and a small sync_mode request, are.
        with sqlite3.connect(service.config.database_path) as connection:
            assert connection.execute("SELECT COUNT(*) FROM api_requests").fetchone() == (0,)
        small_inline = {"image_url": SOURCE, "target_sizes": ["64x64"], "sync_mode": True}
        async with session.post(url, json=small_inline, headers={KEY_HEADER: KEY}) as response:
            assert response.status == 200


def test_the_caps_are_settings() -> None:
    config = load_server_settings({"SMART_RESIZE_MAX_OUTPUT_MEGAPIXELS": "40", "SMART_RESIZE_SYNC_MAX_MEGAPIXELS": "4"})
    assert (config.limits.max_output_pixels, config.sync_max_pixels) == (40_000_000, 4_000_000)
    with pytest.raises(ConfigError, match="SMART_RESIZE_SYNC_MAX_MEGAPIXELS=0 is out of range"):
        load_server_settings({"SMART_RESIZE_SYNC_MAX_MEGAPIXELS": "0"})
