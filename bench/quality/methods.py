"""Crop-placement methods compared by the evaluation. Each returns, for every target size, the window it would cut
from the source, in oriented source pixels. Every baseline uses the max-extent window of the target's aspect ratio,
so they differ only by placement; the engine reports its own ``source_rect``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from bench.common import Engine
from bench.quality.build_set import Case
from bench.quality.geometry import Rect, ceiling_window, centred_on, clamp, max_extent


@dataclass(frozen=True)
class Target:
    name: str
    width: int
    height: int


TARGETS: tuple[Target, ...] = (
    Target("1:1", 1080, 1080),
    Target("16:9", 1920, 1080),
    Target("9:16", 1080, 1920),
    Target("4:5", 1080, 1350),
    Target("1.91:1", 1200, 628),
    Target("3:1", 1500, 500),
)

Windows = dict[str, Rect]
Method = Callable[[Case, Sequence[Target]], Windows]


def centre(case: Case, targets: Sequence[Target]) -> Windows:
    out = {}
    for t in targets:
        size = max_extent(case.width, case.height, t.width, t.height)
        out[t.name] = centred_on(case.width / 2, case.height / 2, size, case.width, case.height)
    return out


def ceiling(case: Case, targets: Sequence[Target]) -> Windows:
    return {
        t.name: ceiling_window(case.width, case.height, t.width, t.height, case.subject, case.faces) for t in targets
    }


def vips_attention(case: Case, targets: Sequence[Target]) -> Windows:
    """libvips ``thumbnail(..., crop="attention")``, as people call it: shrink (on load) until the target covers
    the image, then ``smartcrop`` at the target size. The crop offset comes back as the output's xoffset/yoffset
    (negated; checked against pixels by ``check_vips_offsets``); it is mapped back through the shrink factor."""
    import pyvips

    out = {}
    for t in targets:
        thumb = pyvips.Image.thumbnail(str(case.path), t.width, height=t.height, crop="attention")
        assert (thumb.width, thumb.height) == (t.width, t.height), (case.id, t, thumb.width, thumb.height)
        shrink = min(case.width / t.width, case.height / t.height)
        cx = (-thumb.get("xoffset") + t.width / 2) * shrink
        cy = (-thumb.get("yoffset") + t.height / 2) * shrink
        out[t.name] = centred_on(
            cx, cy, max_extent(case.width, case.height, t.width, t.height), case.width, case.height
        )
    return out


def check_vips_offsets() -> None:
    """Verify that libvips reports a smartcrop's position as -xoffset/-yoffset (libvips 8.18 sets no
    vips-smartcrop-* metadata): the cropped pixels must equal the source at that offset."""
    import pyvips
    from skimage import data

    source = data.coffee()
    image = pyvips.Image.new_from_array(source)
    for w, h in ((200, 400), (600, 150), (320, 400)):
        crop = image.smartcrop(w, h, interesting="attention")
        left, top = -crop.get("xoffset"), -crop.get("yoffset")
        if not np.array_equal(crop.numpy(), source[top : top + h, left : left + w]):
            raise AssertionError(f"libvips smartcrop offset convention changed ({w}x{h} at {left},{top})")


def smartcrop_py(case: Case, targets: Sequence[Target], analysis_side: int = 512) -> Windows:
    """smartcrop (PyPI) on a ~512 px pre-shrunk copy (its own prescale would analyse far larger images), as the
    field notes advise; its windows on a copy that small are max-extent ones (it refuses upscaling crops)."""
    from smartcrop import SmartCrop

    with Image.open(case.path) as raw:
        raw.draft("RGB", (analysis_side, analysis_side))
        small = ImageOps.exif_transpose(raw).convert("RGB")
    small.thumbnail((analysis_side, analysis_side), Image.Resampling.LANCZOS)
    factor = case.width / small.width
    cropper = SmartCrop()
    out = {}
    for t in targets:
        top = cropper.crop(small, t.width, t.height)["top_crop"]
        cx = (top["x"] + top["width"] / 2) * factor
        cy = (top["y"] + top["height"] / 2) * factor
        out[t.name] = centred_on(
            cx, cy, max_extent(case.width, case.height, t.width, t.height), case.width, case.height
        )
    return out


def engine_method(engine: Engine) -> Method:
    """Ours: one ``resize`` call in crop mode for every target, reading each output's ``source_rect``."""

    def ours(case: Case, targets: Sequence[Target]) -> Windows:
        request = engine.request_type(
            sizes=tuple(engine.size_type(t.width, t.height) for t in targets), mode="crop", output_format="jpeg"
        )
        result = engine.resize(case.path.read_bytes(), request, engine.limits_type())
        by_size: dict[tuple[int, int], Any] = {}
        for output in result.outputs:  # the first variant of each size
            by_size.setdefault((output.target.width, output.target.height), output)
        out = {}
        for t in targets:
            output = by_size[(t.width, t.height)]
            if output.mode != "crop":
                raise AssertionError(f"{case.id} {t.name}: engine used mode {output.mode!r} in crop mode")
            out[t.name] = clamp(output.source_rect, case.width, case.height)
        return out

    return ours


def crop_methods(engine: Engine) -> dict[str, Method]:
    """Every method the crop evaluations compare, in report order; the ceiling last."""
    return {
        "ours": engine_method(engine),
        "centre": centre,
        "vips-attention": vips_attention,
        "smartcrop": smartcrop_py,
        "ceiling": ceiling,
    }
