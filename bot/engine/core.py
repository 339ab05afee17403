"""One call: bytes in, every requested size out. Pure and synchronous: no asyncio, no network."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
from PIL import Image

from . import decode as decoding
from .detectors import TEXT_MAX_PIXELS
from .errors import ImageTooLarge, InvalidOption, InvalidSize
from .explain import Detected, explain_picture
from .framing import Framer, protected_faces, resolved_mode
from .importance import ANALYSIS_LONG_SIDE, Analysis, analyse
from .prompts import Fill, Hints, colour_name, parse_prompt
from .render import choose_format, encode, render
from .sizes import check_output_count, check_output_pixels
from .types import (
    CONTENT_TYPES,
    FILL_CHOICES,
    MODES,
    OUTPUT_FORMATS,
    RESOLUTIONS,
    Limits,
    Output,
    Rect,
    ResizeRequest,
    ResizeResult,
    Size,
)

MAX_VARIANTS = 10
MAX_SEED = 2**31 - 1  # what every seeded generator we call takes; the API contract states the same
# How many decoded pixels per output pixel each resolution asks for before the final resample: more gives a
# sharper downscale at the cost of a larger decode (4K decodes at full size).
_OVERSAMPLE = {"1K": 1.0, "2K": 1.5, "4K": float("inf")}
_TIGHTEST_ZOOM = 0.7  # variants may frame this much tighter than the largest window


def validate(request: ResizeRequest, limits: Limits) -> None:
    """Refuse a bad request before any work, with the sentence a person needs."""
    if not request.sizes:
        raise InvalidSize("Give at least one size, like 1080x1080.")
    for size in request.sizes:
        if not (limits.min_side <= size.width <= limits.max_side and limits.min_side <= size.height <= limits.max_side):
            raise InvalidSize(
                f"{size} is outside the supported range; each side must be between {limits.min_side} and "
                f"{limits.max_side} pixels."
            )
    if request.mode not in MODES:
        raise InvalidOption(f"Unknown mode {request.mode!r}; use auto, crop or extend.")
    if request.output_format not in (*OUTPUT_FORMATS, "auto"):
        raise InvalidOption(f"Unknown format {request.output_format!r}; use png, jpeg or webp.")
    if request.resolution not in RESOLUTIONS:
        raise InvalidOption(f"Unknown resolution {request.resolution!r}; use 1K, 2K or 4K.")
    if request.fill not in FILL_CHOICES:
        raise InvalidOption(f"Unknown fill {request.fill!r}; use auto, blur, mirror, colour or synthesize.")
    if request.focus is not None and not (
        len(request.focus) == 2 and all(isinstance(v, float | int) and 0.0 <= v <= 1.0 for v in request.focus)
    ):
        raise InvalidOption("The focal point is two fractions from 0 to 1 (across, then down), like 0.3,0.4.")
    if not 1 <= request.variants <= MAX_VARIANTS:
        raise InvalidOption(f"Variants must be between 1 and {MAX_VARIANTS}.")
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
        raise InvalidOption(f"The seed must be a whole number from 0 to {MAX_SEED}.")
    check_output_count(len(request.sizes), request.variants, limits)
    check_output_pixels(request.sizes, request.variants, limits)


def resize(
    data: bytes,
    request: ResizeRequest,
    limits: Limits | None = None,
    on_output: Callable[[int, int], None] | None = None,
) -> ResizeResult:
    """Every requested size (and variant) of one image. ``on_output(done, total)`` reports progress."""
    try:
        return _resize(data, request, limits or Limits(), on_output)
    except MemoryError:  # past the decode too (analysis, rendering), under an operator's memory limit
        raise ImageTooLarge(
            "This image needs more memory than the app allows; use a smaller version.", setting="MAX_DECODED_MB"
        ) from None


# What any web service reads; other formats (HEIC, AVIF, TIFF, BMP) are sent to one as a web_copy.
WEB_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


def web_copy(data: bytes, limits: Limits | None = None) -> tuple[bytes, str]:
    """The image as a high-quality JPEG (a PNG where it has transparency), upright and sRGB, at its size (within
    ``limits.max_working_pixels``), and its media type: for a service that may not read the file as it came."""
    limits = limits or Limits()
    decoded = decoding.decode(decoding.probe(data, limits), 1.0, limits)
    output_format = choose_format(decoded.image, "auto")
    return encode(decoded.image, output_format, "4K"), f"image/{output_format}"


def _resize(
    data: bytes, request: ResizeRequest, limits: Limits, on_output: Callable[[int, int], None] | None
) -> ResizeResult:
    validate(request, limits)
    hints = parse_prompt(request.prompt)
    if request.focus is not None:
        hints.focus_point = (float(request.focus[0]), float(request.focus[1]))
    probed = decoding.probe(data, limits)
    source = probed.source_size
    resolution = "2K" if hints.detail and request.resolution == "1K" else request.resolution

    scale = _decode_scale(source, request, resolution, hints.zoom)
    crop_mode = resolved_mode(request.mode, hints) == "crop"  # only crop mode needs its own map
    analysis_scale = min(1.0, (TEXT_MAX_PIXELS / (source.width * source.height)) ** 0.5)
    if _analysed_apart(probed, scale, analysis_scale):
        with ThreadPoolExecutor(1) as pool:
            analysed = pool.submit(
                _analyse, decoding.probe(data, limits), analysis_scale, source, hints, limits, crop_mode
            )
            decoded = decoding.decode(probed, scale, limits)
            # The renderer's array copy of the pixels (about 45 ms at 5 MP) is made while this thread would
            # otherwise wait for the analysis.
            pixels = np.asarray(decoded.image)
            analysis = analysed.result()
    else:
        decoded = decoding.decode(probed, scale, limits)
        pixels = np.asarray(decoded.image)
        analysis = _analyse_decoded(decoded.image, source, hints, crop_mode)
    del probed  # it holds the opened image: the decoded pixels are in ``decoded`` now, and nothing else may pin it
    notes = list(decoded.notes)
    opaque = _visible_part(decoded.image, decoded.scale)
    if opaque is not None:
        analysis = replace(analysis, opaque=opaque)
    framer = Framer(analysis, source, hints, grid=round(1 / decoded.scale), crop=crop_mode)
    fill: Fill = request.fill if request.fill != "auto" else hints.fill or "auto"
    rng = np.random.default_rng(request.seed if request.seed is not None else 0)

    if hints.no_crop and request.mode == "crop":
        notes.append("The prompt asked not to crop, but crop mode was requested, so the images are cropped.")
    elif hints.crop and not hints.no_crop and request.mode == "extend":
        notes.append("The prompt asked to crop, but extend mode was requested, so the images are extended.")
    for clause in hints.not_understood:
        notes.append(f"Didn't understand the instruction {clause!r}, so it was ignored.")
    if hints.face_priority and not analysis.faces:
        notes.append("No faces were found, so the framing follows the main subject instead.")
    elif framer.focus_missing is not None:
        notes.append(f"No {_FOCUS_WORDS[framer.focus_missing]} was found, so the framing follows the main subject.")

    outputs: list[Output] = []
    fills: dict[Size, list[str]] = {}  # how each variant of each size was filled ("": not extended), for its note
    extended_instead_of_crop = False  # some size auto extended because a crop would cut the subject
    for target in request.sizes:
        made: list[Output] = []  # this size's images, each different from the others
        for plan in framer.plan(target, request.mode, request.variants, fill, rng):
            variant = len(made)
            image, sides = render(
                decoded.image,
                pixels,
                decoded.scale,
                plan,
                target,
                resolution,
                hints.fill_colour,
                hints.transparent_fill,
            )
            output_format = choose_format(image, request.output_format)
            if output_format == "jpeg":  # no alpha in a JPEG: encode() flattens a clear canvas onto white
                sides = tuple((side, "white" if how == "transparent" else how) for side, how in sides)
            data = encode(image, output_format, resolution)
            if any(other.data == data for other in made):
                # Plans that differ can still draw the same pixels (a blurred reflection and a continued colour
                # are one colour in a one-pixel margin): the same file twice is no alternative.
                continue
            made.append(
                Output(
                    data=data,
                    content_type=CONTENT_TYPES[output_format],
                    width=image.width,
                    height=image.height,
                    target=target,
                    variant=variant,
                    mode=plan.mode,
                    source_rect=plan.source_rect,
                    placed_rect=plan.placed_rect,
                )
            )
            outputs.append(made[-1])
            if on_output is not None:
                on_output(len(outputs), len(request.sizes) * request.variants)
            fills.setdefault(target, []).append(describe_fill(sides, hints.fill_colour) if sides else "")
        if request.variants > 1 and len(made) < request.variants:
            several = len(made) > 1
            if resolved_mode(request.mode, hints) == "auto" and made[0].mode == "crop":
                kept = (
                    f"{len(made)} distinct framings of this size keep" if several else "one framing of this size keeps"
                )
                made_what = "those" if several else "just that one"
                notes.append(f"{target}: only {kept} the whole subject, so I made {made_what}; crop mode makes more.")
            else:
                notes.append(f"{target}: only {len(made)} distinct framing{'s exist' if several else ' exists'}.")
        main = next(o for o in outputs if o.target == target)
        # How much the source was enlarged where it sits: the whole output for a crop, the photo on its canvas for
        # an extension.
        upscale = max(main.placed_rect[2] / main.source_rect[2], main.placed_rect[3] / main.source_rect[3])
        if upscale > 1.05:
            notes.append(f"{target}: the source is smaller than this size, so it was enlarged {upscale:.1f}x.")
        extended_instead = request.mode == "auto" and main.mode == "extend" and not hints.no_crop
        extended_instead_of_crop |= extended_instead
        why = " (cropping would cut important content)" if extended_instead else ""
        filled = fills.get(target, [""])
        if filled[0]:
            # Auto's alternatives are a blurred reflection: the note says so rather than only what variant 0 got.
            others = list(dict.fromkeys(how for how in filled[1:] if how and how != filled[0]))
            also = f"; {'another framing' if len(others) == 1 else 'other framings'}: {'; '.join(others)}"
            notes.append(f"{target}: {filled[0]}{why}{also if others else ''}.")
        elif extended_instead:
            notes.append(f"{target}: extended{why}.")
        faces_note = describe_faces_kept(protected_faces(analysis.faces, source), main.source_rect)
        if faces_note:
            notes.append(f"{target}: {faces_note}")

    if extended_instead_of_crop:
        notes.append("To crop anyway, ask for crop mode.")
    faces = _rects(analysis.faces)
    explain = None
    if request.explain:
        focus = framer.focus_in_source()
        detected = Detected(faces, _rects(analysis.texts), _rects(analysis.people), framer.subject, focus)
        explain = explain_picture(decoded.image, decoded.scale, outputs, detected)
    return ResizeResult(
        outputs=tuple(outputs),
        notes=tuple(notes),
        source_size=source,
        source_format=decoded.source_format,
        crop_map=explain,
        faces=faces,
    )


def _analysed_apart(probed: decoding.Probe, scale: float, analysis_scale: float) -> bool:
    """Whether the detectors' small copy is decoded on its own, in a thread, beside the larger copy the outputs need:
    a JPEG decodes straight to an eighth, a quarter or a half of its size, so when the small copy is at least a
    draft step smaller, its decode costs a fraction of the big one and the analysis no longer waits for it
    (bench/README.md, "Speed")."""
    return probed.source_format in ("JPEG", "MPO") and analysis_scale <= scale / 2


def _analyse(
    probed: decoding.Probe, scale: float, source: Size, hints: Hints, limits: Limits, crop_map: bool
) -> Analysis:
    return _analyse_decoded(decoding.decode(probed, scale, limits).image, source, hints, crop_map)


def _analyse_decoded(image: Image.Image, source: Size, hints: Hints, crop_map: bool) -> Analysis:
    """The importance map and the detectors' finds, from copies of ``image`` shrunk once: the text model's, and the
    analysis copy from it."""
    text_image = _analysis_copy(image, (TEXT_MAX_PIXELS / (image.width * image.height)) ** 0.5)
    analysis_image = _analysis_copy(text_image, ANALYSIS_LONG_SIDE / max(text_image.size))
    return analyse(
        np.asarray(analysis_image),
        analysis_image.width / source.width,
        hints,
        text_view=(np.asarray(text_image), text_image.width / source.width),
        crop_map=crop_map,
    )


def _rects(boxes: tuple[tuple[float, float, float, float], ...]) -> tuple[Rect, ...]:
    return tuple((round(x), round(y), round(w), round(h)) for x, y, w, h in boxes)


_FOCUS_WORDS = {"text": "text", "person": "person", "face": "face", "left face": "face", "right face": "face"}


def describe_faces_kept(faces: tuple[tuple[float, float, float, float], ...], window: tuple[int, int, int, int]) -> str:
    """Where a window cannot hold every face: how many it kept, and which (counted from the left)."""
    if len(faces) < 2:
        return ""
    x, y, w, h = window
    ordered = sorted(faces, key=lambda f: f[0] + f[2] / 2)
    kept = [
        i
        for i, (fx, fy, fw, fh) in enumerate(ordered, start=1)
        if fx >= x - 2 and fy >= y - 2 and fx + fw <= x + w + 2 and fy + fh <= y + h + 2
    ]
    if len(kept) == len(ordered):
        return ""
    if not kept:
        return f"none of the {len(ordered)} faces fit in this shape."
    which = ", ".join(_ORDINALS.get(i, f"{i}th") for i in kept)
    return f"only {len(kept)} of the {len(ordered)} faces fit in this shape; kept the {which} from the left."


_ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}

_FILL_WORDS = {
    "colour": "its colours continued",
    "synthesize": "its texture continued",
    "blur": "a blurred reflection",
    "mirror": "a reflection",
    "transparent": "transparent",
    "white": "white",  # transparency flattened, in a format without it
}


def describe_fill(sides: tuple[tuple[str, str], ...], colour: tuple[int, int, int] | None = None) -> str:
    """``extended left and right (left: its colours continued, right: a blurred reflection)``; ``colour``: the
    one a solid fill was asked in ("black background"), which names it, else it is the photo's border colour."""
    named = colour_name(colour) if colour is not None else None
    words = {**_FILL_WORDS, "solid": f"flat {named}" if named else "a flat colour from its border"}
    names = " and ".join(side for side, _ in sides)
    kinds = {how for _, how in sides}
    if len(kinds) == 1:
        return f"extended {names}: {words[kinds.pop()]}"
    return f"extended {names} (" + ", ".join(f"{side}: {words[how]}" for side, how in sides) + ")"


def _decode_scale(source: Size, request: ResizeRequest, resolution: str, zoom: float) -> float:
    """Decoded pixels per source pixel needed so every output is a downscale of what is decoded."""
    oversample = _OVERSAMPLE[resolution]
    if oversample == float("inf"):
        return 1.0
    tightest = min(zoom, _TIGHTEST_ZOOM if request.variants > 1 else 1.0)
    needed = 0.0
    for target in request.sizes:
        # The crop window is the smallest region any output resamples, so it sets the requirement.
        cover = max(target.width / source.width, target.height / source.height)
        needed = max(needed, cover / tightest)
    return min(1.0, needed * oversample)


def _visible_part(image: Image.Image, scale: float) -> tuple[float, float, float, float] | None:
    """A transparent image's visible part (a logo on a clear canvas), in source pixels; None when it fills the
    canvas, as a photo with an alpha channel does."""
    if image.mode != "RGBA":
        return None
    box = image.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if box is None or box == (0, 0, image.width, image.height):
        return None
    x0, y0, x1, y1 = (v / scale for v in box)
    return (x0, y0, x1 - x0, y1 - y0)


def _analysis_copy(image: Image.Image, factor: float) -> Image.Image:
    """An RGB copy shrunk by ``factor`` (never enlarged)."""
    if factor >= 1:
        small = image
    else:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        small = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if small.mode == "RGBA":
        # Transparent areas are background: show them as neutral grey to the analysis.
        grey = Image.new("RGB", small.size, (128, 128, 128))
        grey.paste(small, mask=small.getchannel("A"))
        return grey
    return small.convert("RGB") if small.mode != "RGB" else small
