"""Block Kit for the progress message: its text, a Cancel button while work remains, and once done a crop-map
button and, where auto extended a canvas rather than crop, a Crop instead button."""

from __future__ import annotations

from typing import Any

CANCEL_ACTION = "cancel_job"
CROP_MAP_ACTION = "show_crop_map"
CROP_INSTEAD_ACTION = "crop_instead"


def progress_blocks(
    text: str, job_id: str, *, cancellable: bool = False, crop_map: bool = False, crop_instead: bool = False
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    wanted = (
        (cancellable, CANCEL_ACTION, "Cancel", "danger"),
        (crop_map, CROP_MAP_ACTION, "Show crop map", None),
        (crop_instead, CROP_INSTEAD_ACTION, "Crop instead", None),
    )
    buttons = [_button(action, label, job_id, style) for shown, action, label, style in wanted if shown]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def _button(action_id: str, label: str, value: str, style: str | None) -> dict[str, Any]:
    button = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label}, "value": value}
    return button if style is None else {**button, "style": style}


def escape_mrkdwn(text: str) -> str:
    """User text shown as is: Slack reads &, < and > as markup (<!channel>, <url|label>) unless escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def is_direct_message(channel_id: str, channel_name: str | None) -> bool:
    """A DM (its id starts with D) or a group DM (Slack names it ``mpdm-...``; its id starts as a private channel's
    does): the app has no scopes to read or post in either."""
    return channel_id.startswith("D") or (channel_name or "").startswith("mpdm-")


def not_in_dms(how: str) -> str:
    """Why nothing starts in a direct message (the app can neither read its images nor post there), and ``how``
    to ask instead, like "use `/resize` in a channel where the image is shared"."""
    return f"I can't work in direct messages: {how} (invite me there with `/invite @Smart Resize`)."
