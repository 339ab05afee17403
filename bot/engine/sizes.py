"""Sizes, and how many outputs and pixels a request may make: one rule each, shared by the engine, the grammar and
the server."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import InvalidSize, TooManyOutputs
from .types import Limits, Size

_SIZE = re.compile(r"^\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*$")


def parse_size(text: str, limits: Limits | None = None) -> Size:
    """``"1080x1080"`` -> Size(1080, 1080); a clear InvalidSize for anything else or outside the limits."""
    limits = limits or Limits()
    match = _SIZE.match(text)
    if not match:
        raise InvalidSize(f"{text.strip()!r} isn't a size; write sizes as WIDTHxHEIGHT, like 1080x1080.")
    width, height = int(match.group(1)), int(match.group(2))
    if not (limits.min_side <= width <= limits.max_side and limits.min_side <= height <= limits.max_side):
        raise InvalidSize(
            f"{width}x{height} is outside the supported range; each side must be between {limits.min_side} and "
            f"{limits.max_side} pixels."
        )
    return Size(width, height)


def check_output_count(sizes: int, variants: int, limits: Limits) -> None:
    """The one output cap (sizes x variants), with the one sentence every surface shows; TooManyOutputs if over."""
    if sizes * variants > limits.max_outputs:
        raise TooManyOutputs(
            f"That would make {sizes * variants} images ({sizes} sizes x {variants} variants); the limit is "
            f"{limits.max_outputs} per request, so ask for fewer sizes or variants.",
            setting="MAX_OUTPUTS_PER_REQUEST",
        )


def output_pixels(sizes: Sequence[Size], variants: int) -> int:
    return sum(size.width * size.height for size in sizes) * variants


def check_output_pixels(sizes: Sequence[Size], variants: int, limits: Limits) -> None:
    """The cap on all of a request's outputs together (each is made, encoded and kept until it is delivered), with
    the one sentence every surface shows; TooManyOutputs if over."""
    pixels = output_pixels(sizes, variants)
    if pixels > limits.max_output_pixels:
        raise TooManyOutputs(
            f"That would make {_megapixels(pixels)} megapixels of images in all; the limit is "
            f"{_megapixels(limits.max_output_pixels)} per request, so ask for fewer or smaller sizes.",
            setting="MAX_OUTPUT_MEGAPIXELS",
        )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}".removesuffix(".0")
