"""Sizes, and how many outputs and pixels a request may make: one rule each, shared by the engine, the grammar and
the server."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ImageTooLarge, InvalidSize, TooManyOutputs
from .types import Limits, Size

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
_SIDE_DIGITS = 9  # a side written longer than this is out of range however it reads, and is shown cut short


def parse_size(text: str, limits: Limits | None = None) -> Size:
    """``"1080x1080"`` -> Size(1080, 1080); a clear InvalidSize for anything else or outside the limits."""
    limits = limits or Limits()
    match = _SIZE.match(text)
    if not match:
        raise InvalidSize(f"{text.strip()!r} isn't a size; write sizes as WIDTHxHEIGHT, like 1080x1080.")
    sides = [digits.lstrip("0") or "0" for digits in match.groups()]
    width, height = (int(side) if len(side) <= _SIDE_DIGITS else limits.max_side + 1 for side in sides)
    if not (limits.min_side <= width <= limits.max_side and limits.min_side <= height <= limits.max_side):
        shown = "x".join(side if len(side) <= _SIDE_DIGITS else side[:_SIDE_DIGITS] + "…" for side in sides)
        raise InvalidSize(
            f"{shown} is outside the supported range; each side must be between {limits.min_side} and "
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


def check_input_bytes(size: int, limits: Limits) -> None:
    """The cap on an input file's bytes (MAX_DOWNLOAD_MB), with the one sentence every surface shows; ImageTooLarge
    if ``size`` is over it. Callers that read a file check its size before reading it all."""
    if size > limits.max_input_bytes:
        raise ImageTooLarge(
            f"The file is {rounded_up(size, MB)} MB; the limit is {exactly(limits.max_input_bytes, MB)} MB. "
            "Use a smaller or more compressed version.",
            setting="MAX_DOWNLOAD_MB",
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
    return rounded_up(pixels, MP)


MB = 2**20  # a megabyte as the MB settings count it (MAX_DOWNLOAD_MB=50 is 50 x 2**20 bytes)
MP = 1_000_000


def rounded_up(amount: int, unit: int) -> str:
    """``amount`` in ``unit``s, rounded up to a tenth: what a cap's sentence says of what is over the cap, so it
    always reads more than the limit (a pixel over a 100 MP cap is 100.1, not "100; the limit is 100")."""
    tenths = -(-amount * 10 // unit)
    return f"{tenths / 10:.1f}".removesuffix(".0")


def exactly(amount: int, unit: int) -> str:
    """``amount`` in ``unit``s as it is: a cap as it was set (50 MB, 100 MP, 0.03 MP)."""
    return f"{amount / unit:g}"


@dataclass(frozen=True)
class Fitted:
    """What fits the output caps of what was asked: the sizes (none when not even one image of the first fits), the
    variants, and each cap that cut it, as its sentence and what was made instead."""

    sizes: tuple[Size, ...]
    variants: int
    cuts: tuple[tuple[str, str], ...] = ()


def fit_outputs(sizes: Sequence[Size], variants: int, limits: Limits) -> Fitted:
    """As much of ``sizes`` x ``variants`` as the caps allow: the count, then the pixels; fewer variants first, then
    the first sizes only. The one rule for every request that can be trimmed rather than refused (a mention, a
    channel's stored auto-resize sizes under caps lowered since), where a command or the API refuses."""
    kept, cuts = tuple(sizes), []
    try:
        check_output_count(len(kept), variants, limits)
    except TooManyOutputs as error:
        if len(kept) > limits.max_outputs:
            kept, variants = kept[: limits.max_outputs], 1
            cuts.append((str(error), f"I made one image of each of the first {len(kept)} sizes."))
        else:
            variants = limits.max_outputs // len(kept)
            cuts.append((str(error), f"I made {_variants(variants)} per size."))
    try:
        check_output_pixels(kept, variants, limits)
    except TooManyOutputs as error:
        per_image = output_pixels(kept, 1)
        if per_image <= limits.max_output_pixels:
            variants = limits.max_output_pixels // per_image
            cuts.append((str(error), f"I made {_variants(variants)} per size."))
        else:
            count = 0
            while count < len(kept) and output_pixels(kept[: count + 1], 1) <= limits.max_output_pixels:
                count += 1
            kept, variants = kept[:count], 1
            made = f"one image of each of the first {count} size{'s' if count > 1 else ''}" if count else "nothing"
            cuts.append((str(error), f"I made {made}."))
    return Fitted(kept, variants, tuple(cuts))


def _variants(count: int) -> str:
    return f"{count} variant{'s' if count > 1 else ''}"
