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
    buttons: list[dict[str, Any]] = []
    if cancellable:
        buttons.append(
            {
                "type": "button",
                "action_id": CANCEL_ACTION,
                "text": {"type": "plain_text", "text": "Cancel"},
                "style": "danger",
                "value": job_id,
            }
        )
    if crop_map:
        buttons.append(
            {
                "type": "button",
                "action_id": CROP_MAP_ACTION,
                "text": {"type": "plain_text", "text": "Show crop map"},
                "value": job_id,
            }
        )
    if crop_instead:
        buttons.append(
            {
                "type": "button",
                "action_id": CROP_INSTEAD_ACTION,
                "text": {"type": "plain_text", "text": "Crop instead"},
                "value": job_id,
            }
        )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def escape_mrkdwn(text: str) -> str:
    """User text shown as is: Slack reads &, < and > as markup (<!channel>, <url|label>) unless escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def not_in_dms(how: str) -> str:
    """Why nothing starts in a direct message (the app can neither read its images nor post there), and ``how``
    to ask instead, like "use `/resize` in a channel where the image is shared"."""
    return f"I can't work in direct messages: {how} (invite me there with `/invite @Smart Resize`)."
