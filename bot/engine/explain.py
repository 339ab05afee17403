"""The "crop map": the source with every output's window drawn and labelled, and what the engine detected (faces,
text, people, the subject it settled on, the focal point), so people see what was kept and why."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from .types import Output, Rect

PREVIEW_LONG_SIDE = 800  # Slack shows thread images at about 360 px: plenty, and cheap to draw
# A small source is enlarged to at least this, so its labels and detections stay readable.
MIN_PREVIEW_LONG_SIDE = 480
# A source thinner than this in the preview (a 1x10000 strip is 1x800 there) sits on a dark canvas this wide,
# so its windows' labels have somewhere to go and the map is still a picture, not a line.
MIN_SHORT_SIDE = 64
_CANVAS = (24, 24, 24)
_PALETTE = [(255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 120), (255, 100, 255), (255, 150, 50)]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1, inclusive, as ImageDraw takes them
_FACE, _TEXT, _PERSON, _SUBJECT, _FOCUS = (255, 255, 255), (0, 230, 230), (230, 0, 230), (0, 230, 0), (255, 255, 0)


@dataclass(frozen=True)
class Detected:
    """What the analysis found, in source pixels."""

    faces: tuple[Rect, ...] = ()
    texts: tuple[Rect, ...] = ()
    people: tuple[Rect, ...] = ()
    subject: Rect | None = None
    focus: tuple[float, float] | None = None


def explain_picture(image: Image.Image, scale: float, outputs: list[Output], detected: Detected) -> bytes:
    """``image`` is the decoded source (``scale`` decoded pixels per source pixel); returns a JPEG: a preview
    for people, where a PNG of a photo would be ten times the bytes and take 100 ms to encode.

    Every aspect the engine accepts is drawn, down to a 1-pixel strip: windows thinner than a preview pixel are
    drawn one pixel wide rather than with an inverted box (which ImageDraw refuses)."""
    factor = min(PREVIEW_LONG_SIDE, max(MIN_PREVIEW_LONG_SIDE, max(image.size))) / max(image.size)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    # Shrink first (reducing_gap: a fast box reduce, then a small resample), convert the small copy after.
    preview = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0).convert("RGB")
    # Dim the photo so the coloured windows read clearly on any content.
    preview = Image.blend(preview, Image.new("RGB", preview.size, (0, 0, 0)), 0.25)
    # A very thin source is centred on a canvas; a small one (16x16) is left as it is, not padded.
    floor = min(MIN_SHORT_SIDE, max(size))
    canvas_size = (max(size[0], floor), max(size[1], floor))
    offset = ((canvas_size[0] - size[0]) // 2, (canvas_size[1] - size[1]) // 2)
    if canvas_size != size:
        canvas = Image.new("RGB", canvas_size, _CANVAS)
        canvas.paste(preview, offset)
        preview = canvas
    draw = ImageDraw.Draw(preview)
    to_preview = scale * factor
    line = max(2, round(max(preview.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(preview.size) / 45)))
    labels: list[Box] = []
    small_font = ImageFont.load_default(size=max(10, round(max(preview.size) / 70)))
    if detected.subject is not None:
        _tagged(draw, _scaled(detected.subject, to_preview, offset), "subject", _SUBJECT, small_font, labels)
    for kind, boxes_of_kind, colour in (
        ("person", detected.people, _PERSON),
        ("text", detected.texts, _TEXT),
        ("face", detected.faces, _FACE),
    ):
        for rect in boxes_of_kind:
            _tagged(draw, _scaled(rect, to_preview, offset), kind, colour, small_font, labels)
    if detected.focus is not None:
        fx, fy = detected.focus[0] * to_preview + offset[0], detected.focus[1] * to_preview + offset[1]
        arm = max(6, line * 4)
        draw.line((fx - arm, fy, fx + arm, fy), fill=_FOCUS, width=line)
        draw.line((fx, fy - arm, fx, fy + arm), fill=_FOCUS, width=line)
    boxes = [_scaled(output.source_rect, to_preview, offset) for output in outputs]
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
    preview.info.clear()  # the source's metadata (its JPEG comment, say) stays out of the map, as out of the outputs
    preview.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _tagged(
    draw: ImageDraw.ImageDraw,
    box: Box,
    label: str,
    colour: tuple[int, int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    taken: list[Box],
) -> None:
    """A thin box for something detected, its kind written just above it (or inside, at the top edge)."""
    draw.rectangle(box, outline=colour, width=1)
    text_box = draw.textbbox((box[0], box[1]), label, font=font)
    height = text_box[3] - text_box[1]
    top = box[1] - height - 3 if box[1] - height - 3 >= 0 else box[1] + 2
    text_box = draw.textbbox((box[0] + 1, top), label, font=font)
    if not any(_overlaps(text_box, other) for other in taken):
        draw.text((box[0] + 1, top), label, fill=colour, font=font)
        taken.append(text_box)


def _scaled(rect: Rect, factor: float, offset: tuple[int, int] = (0, 0)) -> Box:
    """``rect`` (source pixels) as an inclusive preview box; at least one pixel wide and high, never inverted."""
    x, y, w, h = rect
    x0, y0 = x * factor + offset[0], y * factor + offset[1]
    return (x0, y0, max(x0, (x + w) * factor + offset[0] - 1), max(y0, (y + h) * factor + offset[1] - 1))


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] + 4 and b[0] < a[2] + 4 and a[1] < b[3] + 4 and b[1] < a[3] + 4
