"""TEMPORARY centre-crop stand-in for ``bot.engine.resize``, used by the bench harness ONLY while the
real engine cannot be imported (``bench.common.load_engine`` prints a loud banner when it is in use).

Same contract as the engine for mode="crop": header checked against ``Limits`` before any pixel is decoded, JPEG
shrink-on-load, one decode for all sizes, a centred max-extent window per size, ``source_rect`` in oriented source
pixels. No analysis at all, so quality figures for it equal the centre-crop baseline.
"""

from __future__ import annotations

import io
import math
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.engine.errors import CorruptImage, ImageTooLarge, NotAnImage
from bot.engine.types import (
    CONTENT_TYPES,
    Limits,
    Output,
    Rect,
    ResizeRequest,
    ResizeResult,
    Size,
)

__all__ = ["Limits", "ResizeRequest", "Size", "resize"]

_SWAPS_AXES = {5, 6, 7, 8}
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def centre_window(src: Size, target: Size) -> Rect:
    """The largest window of the target's aspect ratio, centred in the source."""
    if src.width * target.height > target.width * src.height:  # source wider than target
        height = src.height
        width = min(src.width, round(src.height * target.width / target.height))
    else:
        width = src.width
        height = min(src.height, round(src.width * target.height / target.width))
    return ((src.width - width) // 2, (src.height - height) // 2, width, height)


def _open_header(data: bytes, limits: Limits) -> Image.Image:
    if len(data) > limits.max_input_bytes:
        raise ImageTooLarge(
            # As the engine says it: the file rounded up to a tenth, the limit as set, both in MB of 2**20 bytes.
            f"The file is {math.ceil(len(data) * 10 / 2**20) / 10:g} MB; the limit is "
            f"{limits.max_input_bytes / 2**20:g} MB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))  # lazy: parses the header only
    except Image.DecompressionBombError:
        raise ImageTooLarge("The image has too many pixels; share a smaller version.") from None
    except UnidentifiedImageError:
        raise NotAnImage("That file isn't an image I can read.") from None
    except (OSError, SyntaxError, ValueError):
        raise CorruptImage("The image file is damaged or incomplete.") from None
    if image.width * image.height > limits.max_pixels:
        raise ImageTooLarge(f"The image is {image.width}x{image.height}; the limit is {limits.max_pixels} pixels.")
    return image


def resize(data: bytes, request: ResizeRequest, limits: Limits | None = None) -> ResizeResult:
    limits = limits or Limits()
    image = _open_header(data, limits)
    orientation = int(image.getexif().get(0x0112, 1) or 1)
    stored = Size(image.width, image.height)
    src = Size(stored.height, stored.width) if orientation in _SWAPS_AXES else stored
    windows = {target: centre_window(src, target) for target in request.sizes}
    # Shrink-on-load as far as every window still has at least as many pixels as its output.
    scale = max(max(t.width / w[2], t.height / w[3]) for t, w in windows.items())
    if image.format == "JPEG" and scale < 1:
        image.draft("RGB", (math.ceil(stored.width * scale), math.ceil(stored.height * scale)))
    decoded = ImageOps.exif_transpose(image.convert("RGB") if image.mode not in ("RGB", "L") else image)
    factor = decoded.width / src.width
    outputs = []
    for target, (x, y, w, h) in windows.items():
        box = (x * factor, y * factor, (x + w) * factor, (y + h) * factor)
        out = decoded.resize((target.width, target.height), Image.Resampling.LANCZOS, box=box)
        buf = io.BytesIO()
        out.save(buf, _PIL_FORMATS[request.output_format], quality=85)
        outputs.append(
            Output(
                data=buf.getvalue(),
                content_type=CONTENT_TYPES[request.output_format],
                width=target.width,
                height=target.height,
                target=target,
                variant=0,
                mode="crop",
                source_rect=(x, y, w, h),
                placed_rect=(0, 0, target.width, target.height),
            )
        )
    return ResizeResult(
        outputs=tuple(outputs),
        notes=("bench centre-crop stand-in",),
        source_size=src,
        source_format=str(image.format),
    )
