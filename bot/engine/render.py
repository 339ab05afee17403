"""Turn a plan into pixels and pixels into an encoded file.

The source region is resampled straight from the decoded image with a fractional box, so ``source_rect`` and
``placed_rect`` describe the output exactly. Extended canvases are filled from the photo itself, side by side as
each border calls for (``bot.engine.extend``), so there are no flat bars unless a solid fill was asked for; images
with transparency are extended with transparency.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from .extend import extend
from .framing import Plan
from .types import FormatChoice, OutputFormat, Resolution, Size

_JPEG_QUALITY = {"1K": 85, "2K": 90, "4K": 95}
_WEBP_QUALITY = {"1K": 82, "2K": 88, "4K": 94}


def render(
    image: Image.Image,
    pixels: npt.NDArray[np.uint8],
    scale: float,
    plan: Plan,
    target: Size,
    resolution: Resolution,
    fill_colour: tuple[int, int, int] | None = None,
    transparent_fill: bool = False,
) -> tuple[Image.Image, tuple[tuple[str, str], ...]]:
    """``image`` is the decoded source (``scale`` decoded pixels per source pixel); ``pixels`` the same as an array,
    converted once per source rather than once per output. Returns the output and, for an extended canvas, how
    each side was filled (("left", "colour"), ...; "solid" for one flat colour, "transparent" for clear)."""
    sx, sy, sw, sh = plan.source_rect
    box = (sx * scale, sy * scale, (sx + sw) * scale, (sy + sh) * scale)
    px, py, pw, ph = plan.placed_rect
    placed = _resample(image, pixels, box, (pw, ph), resolution)
    if (pw, ph) == (target.width, target.height):
        return placed, ()
    size = (target.width, target.height)
    fill = plan.fill or "auto"
    # A cut-out or logo grows naturally into transparency (flattened later if the format has no alpha).
    if transparent_fill or (placed.mode == "RGBA" and fill != "solid"):
        canvas = Image.new("RGBA", size, (0, 0, 0, 0))
        canvas.alpha_composite(placed.convert("RGBA"), (px, py))
        return canvas, _sides(plan, target, "transparent")
    if fill == "solid":
        colour = fill_colour or _border_colour(image, box)
        canvas = Image.new(placed.mode, size, colour if placed.mode == "RGB" else (*colour, 255))
        canvas.paste(placed, (px, py))
        return canvas, _sides(plan, target, "solid")
    extended = extend(np.asarray(placed.convert("RGB")), size, (px, py), fill)
    return Image.fromarray(extended.canvas), extended.sides


def _sides(plan: Plan, target: Size, how: str) -> tuple[tuple[str, str], ...]:
    px, py, pw, ph = plan.placed_rect
    gaps = (
        (("left", px), ("right", target.width - pw - px))
        if ph == target.height
        else (("top", py), ("bottom", target.height - ph - py))
    )
    return tuple((side, how) for side, gap in gaps if gap > 0)


def _resample(
    image: Image.Image,
    pixels: npt.NDArray[np.uint8],
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    resolution: Resolution,
) -> Image.Image:
    """1K: OpenCV's area averaging (about 4x faster than Pillow's convolution, plenty for social sizes);
    2K and 4K: Pillow's Lanczos on the exact fractional box."""
    left, top, right, bottom = (round(v) for v in box)
    # A shrink-on-load decode has a partial last pixel when the source side is not a multiple of the scale;
    # a window that ends at the source's edge ends at the decoded image's edge.
    right = image.width if box[2] > image.width - 1 else right
    bottom = image.height if box[3] > image.height - 1 else bottom
    aligned = all(abs(a - b) < 1e-6 for a, b in zip(box[:2], (left, top), strict=True)) and all(
        abs(a - b) < 1e-6 or b in (image.width, image.height) for a, b in zip(box[2:], (right, bottom), strict=True)
    )
    if resolution != "1K" or not aligned:
        return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    region = pixels[top:bottom, left:right]
    shrinking = size[0] <= region.shape[1] and size[1] <= region.shape[0]
    if not shrinking:
        return Image.fromarray(cv2.resize(region, size, interpolation=cv2.INTER_CUBIC), image.mode)
    # OpenCV's area averaging is fastest at whole factors: take the whole part first, then the remaining < 2x.
    # Trimming the region to a multiple of the factor moves its far edges by under one factor's worth of pixels.
    factor = int(min(region.shape[1] / size[0], region.shape[0] / size[1]))
    if factor >= 2:
        height, width = region.shape[0] // factor * factor, region.shape[1] // factor * factor
        region = cv2.resize(region[:height, :width], (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    return Image.fromarray(cv2.resize(region, size, interpolation=cv2.INTER_AREA), image.mode)


def _border_colour(image: Image.Image, box: tuple[float, float, float, float]) -> tuple[int, int, int]:
    region = np.asarray(image.convert("RGB").crop(tuple(round(v) for v in box)).reduce(4))  # type: ignore[arg-type]
    edges = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]])
    return tuple(int(v) for v in np.median(edges, axis=0))  # type: ignore[return-value]


def choose_format(image: Image.Image, requested: FormatChoice) -> OutputFormat:
    """``auto``: PNG where the output really has transparency (a pixel not wholly opaque), else JPEG: an RGBA
    photo whose only clear pixels lie outside its window comes out a JPEG like any photo."""
    if requested != "auto":
        return requested
    transparent = image.mode == "RGBA" and int(image.getchannel("A").getextrema()[0]) < 255  # type: ignore[arg-type]
    return "png" if transparent else "jpeg"


def encode(image: Image.Image, output_format: OutputFormat, resolution: Resolution) -> bytes:
    buffer = io.BytesIO()
    if output_format == "jpeg":
        if image.mode == "RGBA":
            flat = Image.new("RGB", image.size, (255, 255, 255))
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        quality = _JPEG_QUALITY[resolution]
        image.save(buffer, "JPEG", quality=quality, subsampling=0 if quality >= 95 else 2)
    elif output_format == "webp":
        image.save(buffer, "WEBP", quality=_WEBP_QUALITY[resolution], method=2 if resolution == "1K" else 4)
    else:
        # Photos compress poorly in PNG whatever the level; level 3 is near level 9's size at a fraction of its time.
        image.save(buffer, "PNG", compress_level=1 if resolution == "1K" else 3)
    return buffer.getvalue()
