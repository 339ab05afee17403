"""The crop map draws every aspect the engine accepts, down to a one-pixel strip (issue 14: 1x10000 crashed)."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.engine import ResizeRequest, Size, resize
from bot.engine.explain import MIN_PREVIEW_LONG_SIDE, MIN_SHORT_SIDE, PREVIEW_LONG_SIDE, Detected, explain_picture
from bot.engine.types import Output
from tests.images import encode


def _strip(width: int, height: int) -> bytes:
    return encode(Image.new("RGB", (width, height), (90, 140, 200)), "PNG")


def _map_size(crop_map: bytes | None) -> tuple[int, int]:
    assert crop_map is not None
    image = Image.open(io.BytesIO(crop_map))
    assert image.format == "JPEG"
    return image.size


def test_the_strips_of_the_report_get_a_map_for_every_mode() -> None:
    for width, height in ((1, 10_000), (10_000, 1), (1, 800), (2, 30_000)):
        for mode in ("auto", "crop", "extend"):
            request = ResizeRequest(sizes=(Size(100, 100), Size(16, 8192), Size(8192, 16)), mode=mode, explain=True)
            result = resize(_strip(width, height), request)
            map_width, map_height = _map_size(result.crop_map)
            # The long side at preview size; the short one widened to a canvas the labels fit on.
            assert max(map_width, map_height) == PREVIEW_LONG_SIDE, (width, height, mode)
            assert min(map_width, map_height) == MIN_SHORT_SIDE, (width, height, mode)


@settings(max_examples=30, deadline=None)
@given(
    long_side=st.integers(min_value=1, max_value=20_000),
    short_side=st.integers(min_value=1, max_value=40),
    tall=st.booleans(),
    target=st.sampled_from([Size(16, 16), Size(100, 100), Size(16, 8192), Size(8192, 16), Size(1200, 630)]),
    mode=st.sampled_from(["auto", "crop", "extend"]),
)
def test_any_aspect_through_the_engine_gives_a_map(
    long_side: int, short_side: int, tall: bool, target: Size, mode: str
) -> None:
    width, height = (short_side, long_side) if tall else (long_side, short_side)
    result = resize(_strip(width, height), ResizeRequest(sizes=(target,), mode=mode, explain=True))  # type: ignore[arg-type]
    map_width, map_height = _map_size(result.crop_map)
    assert 1 <= map_width <= PREVIEW_LONG_SIDE and 1 <= map_height <= PREVIEW_LONG_SIDE


rects = st.tuples(
    st.integers(min_value=0, max_value=50_000),
    st.integers(min_value=0, max_value=50_000),
    st.integers(min_value=0, max_value=50_000),
    st.integers(min_value=0, max_value=50_000),
)


@settings(max_examples=30, deadline=None)
@given(
    size=st.tuples(st.integers(min_value=1, max_value=3000), st.integers(min_value=1, max_value=3000)),
    scale=st.floats(min_value=0.05, max_value=1.0),
    windows=st.lists(rects, min_size=1, max_size=6),
    faces=st.lists(rects, max_size=3),
)
def test_any_window_on_any_preview_is_drawn(
    size: tuple[int, int],
    scale: float,
    windows: list[tuple[int, int, int, int]],
    faces: list[tuple[int, int, int, int]],
) -> None:
    """Windows of zero width, past the edge, or thinner than a preview pixel: drawn, never an inverted box."""
    outputs = [
        Output(b"", "image/png", 16, 16, Size(16, 16), variant, "crop", window, (0, 0, 16, 16))
        for variant, window in enumerate(windows)
    ]
    detected = Detected(faces=tuple(faces), texts=tuple(faces[:1]), subject=windows[0], focus=(size[0] / 2, 0.0))
    crop_map = explain_picture(Image.new("RGB", size, (10, 200, 10)), scale, outputs, detected)
    map_width, map_height = _map_size(crop_map)
    assert max(map_width, map_height) == min(PREVIEW_LONG_SIDE, max(MIN_PREVIEW_LONG_SIDE, max(size)))
    assert min(map_width, map_height) >= min(MIN_SHORT_SIDE, max(map_width, map_height))


def test_small_sources_are_enlarged_so_the_map_stays_readable() -> None:
    crop_map = explain_picture(Image.new("RGB", (16, 16)), 1.0, [], Detected())
    assert _map_size(crop_map) == (MIN_PREVIEW_LONG_SIDE, MIN_PREVIEW_LONG_SIDE)


def test_a_one_pixel_side_gap_is_filled() -> None:
    # Found by the property above: a 5x2643 strip extended to 16x8192 leaves a 1-pixel gap on one side.
    result = resize(_strip(5, 2643), ResizeRequest(sizes=(Size(16, 8192),), mode="extend"))
    assert (result.outputs[0].width, result.outputs[0].height) == (16, 8192)
