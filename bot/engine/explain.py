"""The "crop map": the source with every output's window drawn and labelled, so people see what was kept."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from .types import Output, Rect

PREVIEW_LONG_SIDE = 800  # Slack shows thread images at about 360 px: plenty, and cheap to draw
_PALETTE = [(255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 120), (255, 100, 255), (255, 150, 50)]


def explain_picture(image: Image.Image, scale: float, outputs: list[Output], faces: tuple[Rect, ...]) -> bytes:
    """``image`` is the decoded source (``scale`` decoded pixels per source pixel); returns a JPEG: a preview
    for people, where a PNG of a photo would be ten times the bytes and take 100 ms to encode."""
    factor = min(1.0, PREVIEW_LONG_SIDE / max(image.size))
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    # Shrink first (reducing_gap: a fast box reduce, then a small resample), convert the small copy after.
    preview = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0).convert("RGB")
    # Dim the photo so the coloured windows read clearly on any content.
    preview = Image.blend(preview, Image.new("RGB", preview.size, (0, 0, 0)), 0.25)
    draw = ImageDraw.Draw(preview)
    to_preview = scale * factor
    line = max(2, round(max(preview.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(preview.size) / 45)))
    for x, y, w, h in faces:
        draw.rectangle(_scaled((x, y, w, h), to_preview), outline=(255, 255, 255), width=1)
    labels: list[tuple[float, float, float, float]] = []
    boxes = [_scaled(output.source_rect, to_preview) for output in outputs]
    for index, box in enumerate(boxes):
        draw.rectangle(box, outline=_PALETTE[index % len(_PALETTE)], width=line)
    # Labels go on last so no window's outline runs through another window's label.
    for index, (output, box) in enumerate(zip(outputs, boxes, strict=True)):
        colour = _PALETTE[index % len(_PALETTE)]
        label = f"{output.target}" + (f" #{output.variant + 1}" if output.variant else "")
        if output.mode == "extend":
            label += " (extended)"
        left, top = box[0] + line, box[1] + line
        text_box = draw.textbbox((left, top), label, font=font)
        # Windows often share a corner: stack their labels instead of printing them over each other.
        while any(_overlaps(text_box, taken) for taken in labels):
            top += text_box[3] - text_box[1] + 6
            text_box = draw.textbbox((left, top), label, font=font)
        labels.append(text_box)
        draw.rectangle((text_box[0] - 3, text_box[1] - 2, text_box[2] + 3, text_box[3] + 2), fill=colour)
        draw.text((left, top), label, fill=(0, 0, 0), font=font)
    buffer = io.BytesIO()
    preview.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _scaled(rect: Rect | tuple[float, float, float, float], factor: float) -> tuple[float, float, float, float]:
    x, y, w, h = rect
    return (x * factor, y * factor, (x + w) * factor - 1, (y + h) * factor - 1)


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] + 4 and b[0] < a[2] + 4 and a[1] < b[3] + 4 and b[1] < a[3] + 4
