"""Block Kit views: the resize form (message shortcut and ``/resize`` alone) and the App Home tab."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bot.engine import MAX_VARIANTS, readable_extensions
from bot.jobs.model import Job
from bot.presets import PRESETS, presets_help
from bot.smart_resize_api.contract import MAX_PROMPT_CHARS
from bot.spec import describe_sizes

MODAL_ID = "resize_modal"
FORMAT_CHOICES = {"auto": "Automatic (JPEG, or PNG with transparency)", "jpeg": "JPEG", "png": "PNG", "webp": "WebP"}
MODE_CHOICES = {"auto": "Automatic", "crop": "Crop", "extend": "Extend the canvas"}
_STATE_EMOJI = {"done": ":white_check_mark:", "failed": ":x:", "cancelled": ":no_entry_sign:"}


def resize_modal(metadata: dict[str, Any], *, file_input: bool) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    if file_input:
        blocks.append(
            _input(
                "upload",
                "Image",
                {
                    "type": "file_input",
                    # Slack's picker refuses what is not listed: every kind the engine reads (HEIC, .tif ...).
                    "filetypes": readable_extensions(),
                    "max_files": 1,
                },
            )
        )
    blocks += [
        _input(
            "presets",
            "Presets",
            {
                "type": "multi_static_select",
                "placeholder": _text("Instagram story, OG image…"),
                "options": [_option(name, f"{name} ({preset.size})") for name, preset in PRESETS.items()][:100],
            },
            optional=True,
        ),
        _input(
            "sizes",
            "Custom sizes",
            {"type": "plain_text_input", "placeholder": _text("1080x1080 1200x628")},
            optional=True,
            hint="Width x height in pixels, separated by spaces. With no presets or sizes, the defaults are used.",
        ),
        _select("mode", "Mode", MODE_CHOICES, "auto"),
        _select("format", "Format", FORMAT_CHOICES, "auto"),
        _select("variants", "Alternatives per size", {str(n): str(n) for n in range(1, min(MAX_VARIANTS, 4) + 1)}, "1"),
        _input(
            "prompt",
            "Instructions",
            {"type": "plain_text_input", "placeholder": _text("keep face centered"), "max_length": MAX_PROMPT_CHARS},
            optional=True,
        ),
    ]
    return {
        "type": "modal",
        "callback_id": MODAL_ID,
        "title": _text("Smart resize"),
        "submit": _text("Resize"),
        "close": _text("Cancel"),
        "private_metadata": json.dumps(metadata),
        "blocks": blocks,
    }


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": _text(label[:75]), "value": value}


def _input(
    block_id: str, label: str, element: dict[str, Any], *, optional: bool = False, hint: str | None = None
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _text(label),
        "element": {**element, "action_id": "value"},
    }
    if optional:
        block["optional"] = True
    if hint:
        block["hint"] = _text(hint)
    return block


def _select(block_id: str, label: str, choices: dict[str, str], initial: str) -> dict[str, Any]:
    options = [_option(value, text) for value, text in choices.items()]
    element = {
        "type": "static_select",
        "options": options,
        "initial_option": next(o for o in options if o["value"] == initial),
    }
    return _input(block_id, label, element)


def home_view(jobs: list[Job], reaction: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Smart Resize"}},
        _section(
            "*How to use it*\n"
            "• `/resize 1080x1080 instagram-story` resizes the latest image in the channel into its thread.\n"
            "• `/resize og-image https://example.com/photo.jpg` resizes a linked image.\n"
            "• Mention *@Smart Resize* in the message that shares an image, with sizes if you like.\n"
            f"• Add the :{reaction}: reaction to a message with a photo.\n"
            "• `/resize auto on` makes every image shared in a channel come back in its sizes.\n"
            "• `/resize help` lists every option."
        ),
        {"type": "divider"},
        _section("*Your recent jobs*" if jobs else "*Your recent jobs*\nNothing yet: share a photo and try one."),
    ]
    for job in jobs:
        sizes = describe_sizes(job.spec.sizes)
        when = dt.datetime.fromtimestamp(job.created_at, dt.UTC).strftime("%b %d %H:%M UTC")
        state = _STATE_EMOJI.get(job.state, ":hourglass_flowing_sand:") + f" {job.state}"
        line = f"{state} · {sizes} · <#{job.channel_id}> · {when}"
        if job.error:
            line += f"\n_{job.error}_"
        blocks.append(_section(line))
    blocks += [{"type": "divider"}, _section(presets_help()[:2900])]
    return {"type": "home", "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
