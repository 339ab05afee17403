"""manifest.yml validates against Slack's published schema and asks for exactly the scopes the code uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).parents[1]
SCHEMA = ROOT.parent / "shared" / "slack-manifest-schema" / "schemas" / "manifest.schema.1.0.0.json"

# Web API methods the code calls -> the bot scope each needs (methods needing none are absent).
SCOPE_OF_METHOD = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "reactions_add": "reactions:write",
    "reactions_remove": "reactions:write",
    "files_info": "files:read",
    "files_getUploadURLExternal": "files:write",
    "files_completeUploadExternal": "files:write",
    "files_delete": "files:write",
    "conversations_history": "channels:history",
    "conversations_replies": "channels:history",
    "conversations_members": "channels:read",
    "conversations_info": "channels:read",
}
# Scopes that come from features rather than Web API calls.
FEATURE_SCOPES = {
    "commands": "a slash command is declared",
    "app_mentions:read": "the app_mention event is handled",
    "files:read": "url_private downloads need it",
    "groups:history": "history and replies in private channels; message.groups events",
    "groups:read": "membership checks in private channels",
    "reactions:read": "the reaction_added event",
}


def manifest() -> dict[str, object]:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates_against_slacks_schema() -> None:
    if not SCHEMA.exists():
        pytest.skip(f"Slack's manifest schema is not beside the checkout ({SCHEMA})")
    jsonschema.validate(manifest(), json.loads(SCHEMA.read_text()))


def test_scopes_are_exactly_what_the_code_uses() -> None:
    code = "\n".join(
        p.read_text() for p in [*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("handlers").rglob("*.py")]
    )
    called = {method for method in SCOPE_OF_METHOD if re.search(rf"\b{method}\b", code)}
    needed = {SCOPE_OF_METHOD[m] for m in called} | set(FEATURE_SCOPES)
    declared = set(manifest()["oauth_config"]["scopes"]["bot"])  # type: ignore[index]
    assert declared == needed, f"declared but unused: {declared - needed}; used but undeclared: {needed - declared}"


def test_handled_events_are_subscribed_and_nothing_else() -> None:
    code = "\n".join(p.read_text() for p in ROOT.joinpath("handlers").rglob("*.py"))
    # Listened to with Bolt's decorator, or through handlers.common.on_event (stored before the ack).
    handled = set(re.findall(r"(?:@app\.event\(|on_event\(app, services, )\"(\w+)\"", code))
    if re.search(r"@app\.event\(\{\"type\": \"message\"", code) or "message" in handled:
        handled = (handled - {"message"}) | {"message.channels", "message.groups"}
    subscribed = set(manifest()["settings"]["event_subscriptions"]["bot_events"])  # type: ignore[index]
    assert subscribed == handled


def test_socket_mode_is_on_and_the_command_exists() -> None:
    data = manifest()
    assert data["settings"]["socket_mode_enabled"] is True  # type: ignore[index]
    assert [c["command"] for c in data["features"]["slash_commands"]] == ["/resize"]  # type: ignore[index]
