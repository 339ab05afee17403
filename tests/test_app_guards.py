"""What stands in front of the app's listeners (bot/app.py): malformed, unsigned and stale requests are refused with a
400 or 401 and one log line, never a 500 and a traceback; another workspace's requests are refused quietly; a
40,000-character mention is answered quickly and briefly. All against the real app on loopback (issue 14)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import Identity, app_id_of
from tests.images import astronaut
from tests.slack_api.emulator import APP_ID, BOT_USER, TEAM, SlackEmulator
from tests.slack_api.harness import SIGNING_SECRET, RunningApp, eventually, running_app

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _signed(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """Slack's signature over the raw bytes (slack_sdk's signer would refuse bytes that are not UTF-8)."""
    timestamp = timestamp or str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


async def _post(app: RunningApp, body: bytes, content_type: str, headers: dict[str, str]) -> tuple[int, str]:
    all_headers = {"Content-Type": content_type, **headers}
    async with app.session.post(f"{app.url}/slack/events", data=body, headers=all_headers) as response:
        return response.status, await response.text()


def _no_traceback(records: list[logging.LogRecord]) -> None:
    bad = [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [(r.name, r.getMessage()) for r in bad]


def _event(event: dict[str, Any]) -> bytes:
    envelope = {"token": "t", "team_id": TEAM, "api_app_id": APP_ID, "type": "event_callback", "event_id": "Ev1"}
    return json.dumps({**envelope, "event": event}).encode()


MALFORMED: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"this is not json", JSON),
    "an array": (b"[1, 2, 3]", JSON),
    "a string": (b'"event_callback"', JSON),
    "truncated": (_event({"type": "app_mention", "channel": "C1", "ts": "1.0"})[:-9], JSON),
    "bad payload=": (b"payload=%7Bnot-json", FORM),
    "payload= an array": (b"payload=" + b"%5B1%5D", FORM),
    "not UTF-8": (b'{"type": "\xff\xfe"}', JSON),
    "nested 5,000 deep": (b"[" * 5000 + b"]" * 5000, JSON),
    "payload= nested 5,000 deep": (b"payload=" + b"%5B" * 5000, FORM),
    "event not an object": (b'{"type": "event_callback", "event": []}', JSON),
    "mention without a channel": (_event({"type": "app_mention", "ts": "1.0", "text": "hi"}), JSON),
    "mention with a number for text": (_event({"type": "app_mention", "channel": "C1", "ts": "1.0", "text": 5}), JSON),
    "mention with files not a list": (_event({"type": "app_mention", "channel": "C1", "ts": "1.0", "files": 1}), JSON),
    "reaction on a message without its ts": (
        _event({"type": "reaction_added", "reaction": "x", "item": {"type": "message", "channel": "C1"}}),
        JSON,
    ),
    "team a list": (b'{"type": "event_callback", "team": [1], "event": {"type": "x"}}', JSON),
    "button without a user": (
        urlencode({"payload": json.dumps({"type": "block_actions", "actions": [{"action_id": "a"}]})}).encode(),
        FORM,
    ),
    "buttons without an action": (
        urlencode({"payload": json.dumps({"type": "block_actions", "user": {"id": "U1"}, "actions": []})}).encode(),
        FORM,
    ),
    "actions not objects": (
        urlencode({"payload": json.dumps({"type": "block_actions", "user": {"id": "U1"}, "actions": [3]})}).encode(),
        FORM,
    ),
    "command without a channel": (urlencode({"command": "/resize", "user_id": "U1", "text": "help"}).encode(), FORM),
    "command as JSON, channel a number": (
        json.dumps({"command": "/resize", "channel_id": 5, "user_id": "U1"}).encode(),
        JSON,
    ),
    "view without private_metadata JSON": (
        urlencode(
            {
                "payload": json.dumps(
                    {
                        "type": "view_submission",
                        "user": {"id": "U1"},
                        "view": {"id": "V1", "private_metadata": "{oops", "state": {"values": {}}},
                    }
                )
            }
        ).encode(),
        FORM,
    ),
}


async def test_signed_malformed_bodies_get_400_and_no_traceback(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_app(slack, tmp_path) as app:
        for name, (body, content_type) in MALFORMED.items():
            caplog.clear()
            status, text = await _post(app, body, content_type, _signed(body))
            assert (status, json.loads(text)) == (400, {"error": "invalid request"}), name
            [line] = [r for r in caplog.records if r.name == "bot.app"]
            assert line.levelno == logging.WARNING and "refused a request to /slack/events" in line.getMessage()
            _no_traceback(caplog.records)
        await asyncio.sleep(0.05)  # a listener that ran anyway would log after the ack
        _no_traceback(caplog.records)
        # And well-formed requests still go through.
        assert (await app.command("help"))[0] == 200


async def test_bad_timestamps_and_signatures_get_401_and_no_traceback(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = urlencode({"command": "/resize", "channel_id": "C1", "user_id": "U1", "text": "help"}).encode()
    now = int(time.time())
    stamps = ["abc", "1e10", "", " 1", "١٢٣", "-1", "9" * 30, str(now - 301), str(now + 400)]
    async with running_app(slack, tmp_path) as app:
        for stamp in stamps:
            signed = _signed(body, stamp or "0") | {"X-Slack-Request-Timestamp": stamp}
            assert (await _post(app, body, FORM, signed))[0] == 401, stamp
        wrong_secret = {**_signed(body), "X-Slack-Signature": "v0=" + "0" * 64}
        assert (await _post(app, body, FORM, wrong_secret))[0] == 401
        assert (await _post(app, body, FORM, {}))[0] == 401  # no headers at all
        # A body that is malformed *and* unsigned is refused for the signature: nothing of it is read.
        assert (await _post(app, b"[" * 5000, JSON, {"X-Slack-Request-Timestamp": str(now)}))[0] == 401
    _no_traceback(caplog.records)
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "bot.app")


# --- random payloads -----------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
)
ids = st.sampled_from(["C1", "U1", "1.0", TEAM, "T0FOREIGN"]) | values


def _maybe(key: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), strategy.map(lambda value: {key: value}))


def _fields(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    parts = [_maybe(key, strategy) for key, strategy in fields.items()]
    return st.tuples(*parts).map(lambda dicts: {k: v for part in dicts for k, v in part.items()})


mimetypes = st.sampled_from(["image/png", "text/plain"]) | values
files = st.lists(_fields(id=ids, mimetype=mimetypes, name=values), max_size=2)
events = _fields(
    type=st.sampled_from(["app_mention", "message", "reaction_added", "app_home_opened", "pin_added"]) | values,
    channel=ids,
    ts=ids,
    user=ids,
    text=st.sampled_from(["help", "400x400", f"<@{BOT_USER}> help"]) | values,
    files=files | values,
    item=_fields(type=st.just("message") | values, channel=ids, ts=ids) | values,
    reaction=st.just("frame_with_picture") | values,
    tab=values,
    message=_fields(subtype=values, thread_ts=values) | values,
)
envelopes = _fields(
    type=st.sampled_from(
        [
            "event_callback",
            "block_actions",
            "message_action",
            "view_submission",
            "view_closed",
            "interactive_message",
            "workflow_step_edit",
            "shortcut",
            "block_suggestion",
        ]
    )
    | values,
    event=events | values,
    team_id=ids,
    api_app_id=st.just(APP_ID) | values,
    team=_fields(id=ids) | values,
    user=_fields(id=ids) | values,
    channel=_fields(id=ids) | values,
    actions=st.lists(_fields(action_id=values, value=values) | values, max_size=2) | values,
    authorizations=st.lists(_fields(team_id=ids) | values, max_size=2) | values,
    view=_fields(
        id=ids,
        type=st.sampled_from(["modal", "workflow_step"]) | values,
        callback_id=ids,
        private_metadata=st.just("{}") | values,
        state=values,
    )
    | values,
    callback_id=ids,
    action_id=ids,
    command=st.just("/resize") | values,
    channel_id=ids,
    user_id=ids,
    trigger_id=ids,
)


@pytest.fixture
def app_on_a_loop(tmp_path: Path) -> Iterator[tuple[asyncio.Runner, RunningApp]]:
    """The app and the emulator on a loop of the test's own: hypothesis drives it example by example."""
    with asyncio.Runner() as runner:
        emulator = runner.run(SlackEmulator().__aenter__())
        emulator.add_channel("C1", members=("U1", "U2"))
        context = running_app(emulator, tmp_path)
        app = runner.run(context.__aenter__())
        try:
            yield runner, app
        finally:
            runner.run(context.__aexit__(None, None, None))
            runner.run(emulator.__aexit__(None, None, None))


def test_random_signed_payloads_never_make_a_500_or_a_traceback(
    app_on_a_loop: tuple[asyncio.Runner, RunningApp], caplog: pytest.LogCaptureFixture
) -> None:
    runner, app = app_on_a_loop
    caplog.set_level(logging.WARNING)

    @settings(
        max_examples=75,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(envelopes, st.sampled_from(["json", "payload", "form"]))
    def check(envelope: dict[str, Any], shape: str) -> None:
        if shape == "json":
            body, content_type = json.dumps(envelope).encode(), JSON
        elif shape == "payload":
            body, content_type = urlencode({"payload": json.dumps(envelope)}).encode(), FORM
        else:  # a slash command's form: only strings survive it
            body, content_type = urlencode({k: v for k, v in envelope.items() if isinstance(v, str)}).encode(), FORM
        status, _ = runner.run(_post(app, body, content_type, _signed(body)))
        assert status in (200, 400, 404), (status, envelope)

    check()
    runner.run(asyncio.sleep(0.2))  # listeners run after the ack: let any that would fail do so
    runner.run(app.services.runner.idle())
    _no_traceback(caplog.records)


# --- another workspace -----------------------------------------------------------------------------------------


async def test_another_teams_requests_are_refused_quietly_and_logged_once(
    slack: SlackEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    message = slack.post_user_message("C1", "U1", f"<@{BOT_USER}> 300x300", files=[slack.add_file(astronaut())])
    mention = {**message, "type": "app_mention", "channel": "C1"}

    def foreign_event(team: str, app_id: str) -> bytes:
        return json.dumps(
            {"team_id": team, "api_app_id": app_id, "type": "event_callback", "event_id": "Ev9", "event": mention}
        ).encode()

    command = {
        "team_id": "T0FOREIGN",
        "channel_id": "C1",
        "user_id": "U1",
        "command": "/resize",
        "text": "300x300",
        "trigger_id": "1.2",
    }
    button = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "api_app_id": "A0OTHERAPP",  # a button of another app's
        "user": {"id": "U1"},
        "channel": {"id": "C1"},
        "actions": [{"action_id": "cancel_job", "value": "j1"}],
    }
    # In a Slack Connect channel a member of another organisation presses our button: their workspace, our app.
    connect_button = {**button, "team": {"id": "T0PARTNER"}, "api_app_id": APP_ID, "user": {"id": "U2"}}
    async with running_app(slack, tmp_path) as app:
        requests = [
            (foreign_event("T0FOREIGN", APP_ID), JSON),
            (foreign_event("T0FOREIGN", APP_ID), JSON),  # the same team again: refused, not logged again
            (foreign_event(TEAM, "A0OTHERAPP"), JSON),  # our team, another app's request
            (urlencode(command).encode(), FORM),
            (urlencode({"payload": json.dumps(button)}).encode(), FORM),
        ]
        for body, content_type in requests:
            status, text = await _post(app, body, content_type, _signed(body))
            assert (status, text) == (200, ""), body[:80]  # an empty 200: Slack does not retry it
        await asyncio.sleep(0.1)
        assert await app.services.store.recent_for_user("U1") == []  # nothing started with our token
        assert slack.ephemerals_for("U1") == []  # and no button of another app's was answered
        body = urlencode({"payload": json.dumps(connect_button)}).encode()
        assert (await _post(app, body, FORM, _signed(body)))[0] == 200
        await eventually(lambda: slack.ephemerals_for("U2") == ["I can't find that job any more."])
        # Our own team's request is handled as always.
        assert (await app.event(mention))[0] == 200
        await eventually(lambda: len(slack.uploads_in_thread("C1", message["ts"])) == 1)
        await app.services.runner.idle()
    refusals = [r.getMessage() for r in caplog.records if r.name == "bot.app"]
    assert refusals == [
        f"refusing requests from team T0FOREIGN: this app is installed for team {TEAM} (app {APP_ID}) only, and "
        "its token is not used for another's events or commands",
        f"refusing requests from app A0OTHERAPP: this app is installed for team {TEAM} (app {APP_ID}) only, and "
        "its token is not used for another's events or commands",
    ]
    assert slack.calls_to("auth.test")  # learnt from Slack, not configured


def test_who_counts_as_this_installation() -> None:
    ours = Identity(team_id="T1", enterprise_id=None, org_install=False, app_id="A1")
    assert ours.foreign("T1", None, "A1") is None
    assert ours.foreign("T1", None, None) is None  # interactivity payloads may not name the app
    assert ours.foreign(None, None, None) is None  # url_verification and the like: nothing to compare
    assert ours.foreign("T2", None, "A1") == "team T2"
    assert ours.foreign("T1", None, "A2") == "app A2"
    org = Identity(team_id="T1", enterprise_id="E1", org_install=True, app_id=None)
    assert org.foreign("T2", "E1", "A9") is None  # an org-wide install serves its org; no app id known to compare
    assert org.foreign("T2", "E2", None) == "team T2"
    assert app_id_of("xapp-1-AEMU-1-emulator") == "AEMU"
    assert app_id_of("xoxb-1-2") is None and app_id_of(None) is None


# --- long text -------------------------------------------------------------------------------------------------


async def test_a_40000_character_mention_gets_one_short_answer_quickly(slack: SlackEmulator, tmp_path: Path) -> None:
    text = f"<@{BOT_USER}> " + " ".join(f"instagrm 99999x99999 --foo{n}" for n in range(2000))[:39_980]
    message = slack.post_user_message("C1", "U1", text, files=[slack.add_file(astronaut())])
    async with running_app(slack, tmp_path) as app:
        started = time.monotonic()
        status, _ = await app.event({**message, "type": "app_mention", "channel": "C1"})
        assert status == 200
        await eventually(lambda: len(slack.ephemerals_for("U1")) == 1, within=5)
        took = time.monotonic() - started
    [answer] = slack.ephemerals_for("U1")
    assert took < 1.0
    assert len(answer) < 2_000  # was 302,000; Slack shows 3,000 in a section
    assert answer.startswith("Your message is long, so I read only its first 4,000 characters.")
    assert "Nothing started" in answer and "I also left out" in answer
