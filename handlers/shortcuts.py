"""The "Smart resize" message shortcut and the `/resize` modal: pick presets, custom sizes and options in a form.

From a message with images the results go to that message's thread; from `/resize` with no arguments the modal has
a file input, and the results go to a new message in the channel, in its thread.
"""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.engine import MAX_VARIANTS, Size
from bot.grammar import ParseError, parse_size_list
from bot.jobs.intake import ResizeOptions
from bot.presets import PRESETS
from bot.services import Services
from bot.user_errors import UserError
from handlers.common import image_files

SHORTCUT_ID = "smart_resize"
MODAL_ID = "resize_modal"
_FORMATS = {"auto": "Automatic (JPEG, or PNG with transparency)", "jpeg": "JPEG", "png": "PNG", "webp": "WebP"}
_MODES = {"auto": "Automatic", "crop": "Crop", "extend": "Extend the canvas"}
NOT_IN_DMS = (
    "I can't work in direct messages: share the image in a channel and use the shortcut there "
    "(invite me with `/invite @Smart Resize`)."
)


def register(app: AsyncApp, services: Services) -> None:
    @app.shortcut(SHORTCUT_ID)
    async def on_shortcut(ack: AsyncAck, shortcut: dict[str, Any]) -> None:
        await ack()
        message = shortcut.get("message") or {}
        files = image_files(message)
        channel, user = shortcut["channel"]["id"], shortcut["user"]["id"]
        refusal = None
        if channel.startswith("D"):
            # The bot is in no DM (its Messages tab is read-only): it could not post the results there.
            refusal = NOT_IN_DMS
        elif not files:
            refusal = "That message has no image to resize; use the shortcut on a message with a photo."
        if refusal is not None:
            await services.delivery.ephemeral(channel, user, refusal, response_url=shortcut.get("response_url") or None)
            return
        metadata = {
            "channel": shortcut["channel"]["id"],
            "message_ts": message["ts"],
            "thread_ts": message.get("thread_ts") or message["ts"],
            "files": [file["id"] for file in files],
        }
        await services.client.views_open(
            trigger_id=shortcut["trigger_id"], view=resize_modal(metadata, file_input=False)
        )

    @app.view(MODAL_ID)
    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        metadata = json.loads(view["private_metadata"])
        values = view["state"]["values"]
        errors, options = read_form(values, services)
        file_ids = list(metadata.get("files") or [])
        if "upload" in values:
            uploaded = values["upload"]["value"].get("files") or []
            file_ids = [file["id"] for file in uploaded]
            if not file_ids:
                errors["upload"] = "Attach an image to resize."
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user = body["user"]["id"]
        channel = metadata["channel"]
        for file_id in file_ids:
            try:
                await services.intake.submit(
                    trigger="shortcut" if metadata.get("message_ts") else "modal",
                    # One modal is one request: submitting it twice (or Slack retrying) makes no second job.
                    dedup_key=f"view:{view['id']}:{file_id}",
                    channel_id=channel,
                    user_id=user,
                    team_id=(body.get("team") or {}).get("id"),
                    source={
                        "kind": "slack_file",
                        "file": {"id": file_id, "file_access": "check_file_info"},
                        "message_ts": metadata.get("message_ts"),
                    },
                    thread_ts=metadata.get("thread_ts"),
                    options=options,
                )
            except UserError as error:
                await services.delivery.ephemeral(channel, user, str(error))
                return


def read_form(values: dict[str, Any], services: Services) -> tuple[dict[str, str], ResizeOptions]:
    """The modal's fields -> options, or field errors shown under the fields that need fixing."""
    settings = services.settings
    errors: dict[str, str] = {}
    chosen = [o["value"] for o in values["presets"]["value"].get("selected_options") or []]
    sizes: list[Size] = []
    for name in chosen:
        if PRESETS[name].size not in sizes:
            sizes.append(PRESETS[name].size)
    custom = (values["sizes"]["value"].get("value") or "").strip()
    if custom:
        try:
            sizes.extend(s for s in parse_size_list(custom, limits=settings.limits, max_sizes=40) if s not in sizes)
        except ParseError as error:
            errors["sizes"] = error.message
    variants = int(values["variants"]["value"]["selected_option"]["value"])
    if len(sizes) > settings.max_sizes:
        errors["sizes"] = f"That's {len(sizes)} sizes; the limit is {settings.max_sizes} per request."
    elif len(sizes or services.intake.default_sizes) * variants > settings.limits.max_outputs:
        errors["variants"] = (
            f"{len(sizes or services.intake.default_sizes)} sizes x {variants} variants is more than "
            f"{settings.limits.max_outputs} images; choose fewer."
        )
    options = ResizeOptions(
        sizes=tuple(sizes),
        mode=values["mode"]["value"]["selected_option"]["value"],
        output_format=values["format"]["value"]["selected_option"]["value"],
        variants=variants,
        prompt=(values["prompt"]["value"].get("value") or "").strip(),
    )
    return errors, options


def resize_modal(metadata: dict[str, Any], *, file_input: bool) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    if file_input:
        blocks.append(
            _input(
                "upload",
                "Image",
                {
                    "type": "file_input",
                    "filetypes": ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff"],
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
        _select("mode", "Mode", _MODES, "auto"),
        _select("format", "Format", _FORMATS, "auto"),
        _select("variants", "Alternatives per size", {str(n): str(n) for n in range(1, min(MAX_VARIANTS, 4) + 1)}, "1"),
        _input(
            "prompt",
            "Instructions",
            {"type": "plain_text_input", "placeholder": _text("keep face centered")},
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
