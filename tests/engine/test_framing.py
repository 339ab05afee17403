"""Where windows go: subjects kept, faces never cut, auto's choice, prompts, variants, exact sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from bot.engine import ResizeRequest, Size, core, resize
from bot.engine.prompts import MODE_PHRASES
from bot.engine.types import Output
from tests.images import astronaut, box_iou, encode, footballer, photo, portrait, scene_with_subject, sign_in_foliage


def _share_kept(rect: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> float:
    x, y, w, h = rect
    bx, by, bw, bh = box
    ix = max(0, min(x + w, bx + bw) - max(x, bx))
    iy = max(0, min(y + h, by + bh) - max(y, by))
    return ix * iy / (bw * bh)


@pytest.mark.parametrize(
    ("source", "box", "target"),
    [
        ((1600, 900), (80, 250, 300, 300), Size(1080, 1080)),  # far left of a landscape
        ((1600, 900), (1250, 100, 280, 280), Size(1080, 1350)),  # top right, 4:5
        ((900, 1600), (300, 1250, 300, 300), Size(1920, 1080)),  # bottom of a portrait
        ((2000, 1500), (1500, 300, 200, 200), Size(1080, 1920)),  # small subject off to the right, 9:16
    ],
)
def test_crop_keeps_an_off_centre_subject(
    source: tuple[int, int], box: tuple[int, int, int, int], target: Size
) -> None:
    image = scene_with_subject(*source, box)
    result = resize(encode(image, "JPEG", quality=90), ResizeRequest(sizes=(target,), mode="crop"))
    output = result.outputs[0]
    assert output.mode == "crop"
    assert _share_kept(output.source_rect, box) == 1.0
    # A centre crop would have lost it: the test would pass for the wrong reason otherwise.
    centre = _centre_window(source, target)
    assert _share_kept(centre, box) < 0.9


def _centre_window(source: tuple[int, int], target: Size) -> tuple[int, int, int, int]:
    width, height = source
    if target.aspect >= width / height:
        h = round(width / target.aspect)
        return (0, (height - h) // 2, width, h)
    w = round(height * target.aspect)
    return ((width - w) // 2, 0, w, height)


def test_subject_that_fits_is_centred_in_the_window() -> None:
    box = (600, 300, 200, 200)
    image = scene_with_subject(1600, 900, box)
    rect = resize(encode(image, "PNG"), ResizeRequest(sizes=(Size(900, 900),), mode="crop")).outputs[0].source_rect
    subject_centre = box[0] + box[2] / 2
    assert abs(rect[0] + rect[2] / 2 - subject_centre) < 0.06 * rect[2]


def test_face_is_found_and_never_cut() -> None:
    result = resize(astronaut(), ResizeRequest(sizes=(Size(1500, 500), Size(500, 1000), Size(400, 400)), mode="crop"))
    assert len(result.faces) == 1
    fx, fy, fw, fh = result.faces[0]
    for output in result.outputs:
        x, y, w, h = output.source_rect
        assert x <= fx and y <= fy and fx + fw <= x + w and fy + fh <= y + h, output.target


def test_auto_crops_a_mild_change_and_extends_when_a_crop_would_cut_the_subject() -> None:
    # A wide subject spanning most of a landscape: 4:5 can't hold it, 16:10 can.
    box = (150, 250, 1300, 400)
    data = encode(scene_with_subject(1600, 900, box), "JPEG", quality=90)
    result = resize(data, ResizeRequest(sizes=(Size(1600, 1000), Size(800, 1000))))
    mild, tall = result.outputs
    assert mild.mode == "crop"
    assert _share_kept(mild.source_rect, box) == 1.0
    assert tall.mode == "extend"
    # The subject is the ellipse inscribed in the box: at most its thin tips may be trimmed.
    assert _ellipse_share_kept(tall.source_rect, box) > 0.97
    assert any("extended" in note for note in result.notes)


def test_auto_extending_a_portrait_to_a_story_trims_nothing_of_a_subject_that_spans_the_frame() -> None:
    # Her shoulders run to both sides of the frame, where the importance map is faint: a partial crop that kept
    # "nearly all" of the map's extent trimmed them (449 of 512 columns kept, 87% of her).
    story = resize(portrait(), ResizeRequest(sizes=(Size(1080, 1920),))).outputs[0]
    assert story.mode == "extend"
    assert story.source_rect == (0, 0, 512, 600)
    assert story.placed_rect[2] == 1080  # the whole width, as large as the story allows


def _ellipse_share_kept(rect: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> float:
    bx, by, bw, bh = box
    ys, xs = np.mgrid[by : by + bh, bx : bx + bw]
    inside = np.hypot((xs - bx - bw / 2) / (bw / 2), (ys - by - bh / 2) / (bh / 2)) <= 1
    x, y, w, h = rect
    kept = inside & (xs >= x) & (xs < x + w) & (ys >= y) & (ys < y + h)
    return float(kept.sum() / inside.sum())


def test_extend_fills_naturally_without_flat_bars() -> None:
    data = encode(photo(800, 600), "PNG")
    output = resize(data, ResizeRequest(sizes=(Size(1200, 400),), mode="extend")).outputs[0]
    assert output.mode == "extend"
    assert output.source_rect == (0, 0, 800, 600)
    x, _, w, _ = output.placed_rect
    assert x > 0 and w < 1200
    pixels = np.asarray(Image.open(io.BytesIO(output.data)).convert("RGB"), dtype=float)
    fill = pixels[:, : x - 2]
    assert fill.std(axis=(0, 1)).max() > 0.5  # a continuation of the photo, not one flat colour
    assert abs(fill.mean() - pixels[:, x : x + w].mean()) < 60  # in the photo's own tones


def test_solid_fill_when_asked() -> None:
    data = encode(photo(800, 600), "PNG")
    output = resize(data, ResizeRequest(sizes=(Size(1200, 400),), mode="extend", prompt="white background"))
    pixels = np.asarray(Image.open(io.BytesIO(output.outputs[0].data)).convert("RGB"))
    assert (pixels[:, :50] == 255).all()


@pytest.mark.parametrize(("prompt", "side"), [("focus on the left", "left"), ("focus on the right", "right")])
def test_focus_prompt_moves_the_window(prompt: str, side: str) -> None:
    data = encode(scene_with_subject(1600, 900, (650, 300, 300, 300)), "PNG")
    plain = resize(data, ResizeRequest(sizes=(Size(600, 900),), mode="crop")).outputs[0].source_rect
    hinted = resize(data, ResizeRequest(sizes=(Size(600, 900),), mode="crop", prompt=prompt)).outputs[0].source_rect
    assert (hinted[0] < plain[0]) if side == "left" else (hinted[0] > plain[0])


def test_dont_crop_prompt_extends_and_unknown_prompts_are_reported() -> None:
    data = encode(photo(800, 600), "PNG")
    result = resize(data, ResizeRequest(sizes=(Size(600, 600),), prompt="don't crop, make it pop"))
    assert result.outputs[0].mode == "extend"
    assert result.outputs[0].source_rect == (0, 0, 800, 600)
    assert any("make it pop" in note for note in result.notes)


@pytest.mark.parametrize("mode", ["crop", "extend"])
def test_the_mode_words_the_hosted_backend_sends_frame_as_that_mode(mode: str) -> None:
    # What auto extends (a wide output of a square photo), each mode's words frame as that mode would.
    data = astronaut()
    worded = resize(data, ResizeRequest(sizes=(Size(600, 200),), prompt=MODE_PHRASES[mode])).outputs[0]
    direct = resize(data, ResizeRequest(sizes=(Size(600, 200),), mode=mode)).outputs[0]  # type: ignore[arg-type]
    assert (worded.mode, worded.source_rect, worded.placed_rect) == (
        direct.mode,
        direct.source_rect,
        direct.placed_rect,
    )
    assert worded.mode == mode


def test_asked_in_words_to_crop_and_to_extend_extends() -> None:
    request = ResizeRequest(sizes=(Size(600, 200),), prompt="don't crop to fill the frame")
    assert resize(astronaut(), request).outputs[0].mode == "extend"
    extended = resize(astronaut(), ResizeRequest(sizes=(Size(600, 200),), mode="extend", prompt="crop to fill"))
    assert any("asked to crop, but extend mode" in note for note in extended.notes)


def test_variants_are_different_and_deterministic_for_a_seed() -> None:
    data = encode(photo(1600, 900), "JPEG", quality=90)
    request = ResizeRequest(sizes=(Size(800, 800),), mode="crop", variants=3, seed=7)
    first = resize(data, request)
    again = resize(data, request)
    rects = [o.source_rect for o in first.outputs]
    assert [o.variant for o in first.outputs] == [0, 1, 2]
    assert len(set(rects)) == 3
    assert rects == [o.source_rect for o in again.outputs]
    assert [o.data for o in first.outputs] == [o.data for o in again.outputs]
    # Variant 0 is the best framing whatever the seed.
    other = resize(data, ResizeRequest(sizes=(Size(800, 800),), mode="crop", variants=3, seed=8))
    assert other.outputs[0].source_rect == rects[0]


def test_extend_variants_differ() -> None:
    data = encode(photo(800, 600), "JPEG", quality=90)
    outputs = resize(data, ResizeRequest(sizes=(Size(1500, 500),), mode="extend", variants=3, seed=1)).outputs
    assert len({o.data for o in outputs}) == 3


@pytest.mark.parametrize("fill", ["mirror", "blur", "colour"])
def test_a_fill_that_was_asked_for_holds_for_every_variant(monkeypatch: pytest.MonkeyPatch, fill: str) -> None:
    from bot.engine import render

    used = []

    def recording(placed: object, size: object, at: object, how: str) -> object:
        used.append(how)
        return extend(placed, size, at, how)  # type: ignore[arg-type]

    extend = render.extend
    monkeypatch.setattr(render, "extend", recording)
    data = encode(photo(800, 600), "JPEG", quality=90)
    request = ResizeRequest(sizes=(Size(1500, 500),), mode="extend", variants=3, seed=1, fill=fill)  # type: ignore[arg-type]
    outputs = resize(data, request).outputs
    assert used == [fill] * 3
    assert len({o.data for o in outputs}) == 3  # still three framings: the photo placed apart, not refilled


def test_the_note_says_how_each_framing_was_filled_not_only_the_first() -> None:
    # Auto's second framing of an extended size is a blurred reflection: the size's note says so too, where it
    # used to say only the first's fill, true of one of the two images.
    result = resize(astronaut(), ResizeRequest(sizes=(Size(600, 200),), mode="extend", variants=2))
    assert len(result.outputs) == 2
    assert (
        "600x200: extended left and right: its colours continued; another framing: extended left and right: a "
        "blurred reflection." in result.notes
    ), result.notes
    # A fill asked for is every framing's, said once.
    asked = resize(astronaut(), ResizeRequest(sizes=(Size(600, 200),), mode="extend", variants=2, fill="mirror"))
    assert "600x200: extended left and right: a reflection." in asked.notes, asked.notes


def test_extend_variants_of_a_canvas_the_photo_fills_are_one_and_say_so() -> None:
    result = resize(astronaut(), ResizeRequest(sizes=(Size(300, 300),), mode="extend", variants=3))
    assert len(result.outputs) == 1
    assert "300x300: only 1 distinct framing exists." in result.notes


@pytest.mark.parametrize(
    ("source", "target", "mode"),
    [
        # A 16x16 source's map is enlarged (128x128): windows a map pixel apart are the same 16x8 source pixels.
        ((16, 16), Size(1200, 630), "crop"),
        ((7, 7), Size(1081, 1079), "extend"),  # a one-pixel margin: a reflection and its colours are one colour
        ((384, 384), Size(1082, 1080), "extend"),
    ],
)
def test_variants_are_never_the_same_file_twice_and_fewer_are_said(
    source: tuple[int, int], target: Size, mode: str
) -> None:
    pixels = np.random.default_rng(1).integers(0, 255, (source[1], source[0], 3), dtype=np.uint8)
    data = astronaut() if source == (384, 384) else encode(Image.fromarray(pixels), "PNG")
    result = resize(data, ResizeRequest(sizes=(target,), mode=mode, variants=3, output_format="png"))  # type: ignore[arg-type]
    files = [o.data for o in result.outputs]
    assert len(set(files)) == len(files)
    assert [o.variant for o in result.outputs] == list(range(len(files)))
    if len(files) < 3:  # the notes say how many there are
        framings = f"{len(files)} distinct framing{'s exist' if len(files) > 1 else ' exists'}"
        assert f"{target}: only {framings}." in result.notes, result.notes


def test_small_source_is_enlarged_with_a_note() -> None:
    result = resize(encode(photo(200, 150), "PNG"), ResizeRequest(sizes=(Size(1080, 1080),), mode="crop"))
    assert (result.outputs[0].width, result.outputs[0].height) == (1080, 1080)
    assert any("enlarged" in note for note in result.notes)


_SOURCE = encode(photo(480, 320, seed=3), "JPEG", quality=90)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(16, 1400), st.integers(16, 1400)), min_size=1, max_size=3),
    st.sampled_from(["auto", "crop", "extend"]),
)
def test_every_requested_size_is_produced_exactly(sizes: list[tuple[int, int]], mode: str) -> None:
    request = ResizeRequest(sizes=tuple(Size(w, h) for w, h in sizes), mode=mode, output_format="jpeg")  # type: ignore[arg-type]
    result = resize(_SOURCE, request)
    assert [(o.width, o.height) for o in result.outputs] == sizes
    for output in result.outputs:
        assert Image.open(io.BytesIO(output.data)).size == (output.width, output.height)
        _assert_geometry_is_consistent(output, Size(480, 320))


def _assert_geometry_is_consistent(output: Output, source: Size) -> None:
    x, y, w, h = output.source_rect
    assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= source.width and y + h <= source.height
    px, py, pw, ph = output.placed_rect
    assert 0 <= px and 0 <= py and px + pw <= output.width and py + ph <= output.height
    if output.mode == "crop":
        assert output.placed_rect == (0, 0, output.width, output.height)
    # The region keeps its shape: no visible stretching.
    assert abs((w / h) / (pw / ph) - 1) < 0.05 + 2 / min(pw, ph)


@pytest.mark.parametrize(
    ("fmt", "mode", "resolution", "target"),
    [
        ("png", "crop", "1K", Size(300, 300)),
        ("png", "extend", "1K", Size(600, 200)),
        ("png", "crop", "2K", Size(200, 400)),
        ("png", "extend", "4K", Size(200, 500)),
    ],
)
def test_source_rect_resampled_into_placed_rect_reproduces_the_output(
    fmt: str, mode: str, resolution: str, target: Size
) -> None:
    source = scene_with_subject(1200, 800, (500, 200, 300, 300), seed=5)
    request = ResizeRequest(sizes=(target,), mode=mode, output_format=fmt, resolution=resolution)  # type: ignore[arg-type]
    output = resize(encode(source, "JPEG", quality=95), request).outputs[0]
    x, y, w, h = output.source_rect
    px, py, pw, ph = output.placed_rect
    expected = np.asarray(source.resize((pw, ph), Image.Resampling.LANCZOS, box=(x, y, x + w, y + h)), dtype=float)
    actual = np.asarray(Image.open(io.BytesIO(output.data)).convert("RGB"), dtype=float)[py : py + ph, px : px + pw]
    assert np.abs(actual - expected).mean() < 4.0
    # The same comparison against a slightly tighter window fails: the check has teeth.
    tighter = (x + w * 0.05, y + h * 0.05, x + w * 0.95, y + h * 0.95)
    wrong = np.asarray(source.resize((pw, ph), Image.Resampling.LANCZOS, box=tighter), dtype=float)
    assert np.abs(actual - wrong).mean() > np.abs(actual - expected).mean() * 2


def test_large_jpeg_is_decoded_with_shrink_on_load_and_geometry_stays_in_source_pixels() -> None:
    source = scene_with_subject(4000, 3000, (2800, 1000, 800, 800), seed=2)
    output = resize(encode(source, "JPEG", quality=90), ResizeRequest(sizes=(Size(400, 400),), mode="crop")).outputs[0]
    _, _, w, h = output.source_rect
    assert (w, h) == (3000, 3000)  # reported in source pixels although decoded at 1/4 or 1/8
    assert _share_kept(output.source_rect, (2800, 1000, 800, 800)) == 1.0


def test_a_large_jpegs_analysis_decoded_apart_finds_and_frames_what_the_shared_decode_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The astronaut at 3072x3072 to 1536x1536: the outputs need half the pixels, the detectors a fifth, so the
    # detectors' copy is decoded on its own beside the big one. It must see the same face and pick the same window.
    big = Image.open(io.BytesIO(astronaut())).resize((3072, 3072), Image.Resampling.LANCZOS)
    data = encode(big, "JPEG", quality=92)
    request = ResizeRequest(sizes=(Size(1536, 1536), Size(1536, 768)), mode="crop")
    apart = resize(data, request)
    monkeypatch.setattr(core, "_analysed_apart", lambda *_: False)
    shared = resize(data, request)
    assert len(apart.faces) == len(shared.faces) == 1
    assert box_iou(apart.faces[0], shared.faces[0]) > 0.9, (apart.faces, shared.faces)
    assert box_iou(apart.faces[0], tuple(8 * v for v in (130, 48, 75, 75))) >= 0.5, apart.faces
    for one, other in zip(apart.outputs, shared.outputs, strict=True):
        assert all(abs(a - b) <= 0.02 * 3072 for a, b in zip(one.source_rect, other.source_rect, strict=True))


_FOCUS_SOURCE = encode(photo(900, 600, seed=5), "JPEG", quality=90)


@settings(max_examples=15, deadline=None)
@given(
    st.floats(0, 1, allow_nan=False),
    st.floats(0, 1, allow_nan=False),
    st.sampled_from([Size(600, 600), Size(1500, 500), Size(500, 900)]),
    st.sampled_from(["crop", "auto"]),
)
def test_the_focal_point_is_inside_every_window_and_centred_as_far_as_the_edges_allow(
    fx: float, fy: float, target: Size, mode: str
) -> None:
    request = ResizeRequest(sizes=(target,), mode=mode, focus=(fx, fy), variants=2, seed=1)  # type: ignore[arg-type]
    for output in resize(_FOCUS_SOURCE, request).outputs:
        x, y, w, h = output.source_rect
        px, py = fx * 900, fy * 600
        assert x - 1 <= px <= x + w + 1 and y - 1 <= py <= y + h + 1
        # Centred on the point unless an edge of the photo is in the way (slack: 12% of the window, plus rounding).
        ideal_x = min(max(px - w / 2, 0), 900 - w)
        ideal_y = min(max(py - h / 2, 0), 600 - h)
        assert abs(x - ideal_x) <= 0.12 * w + 8 and abs(y - ideal_y) <= 0.12 * h + 8


def test_the_focus_option_wins_over_the_subject() -> None:
    data = encode(scene_with_subject(1600, 900, (1200, 300, 300, 300)), "PNG")
    plain = resize(data, ResizeRequest(sizes=(Size(600, 900),), mode="crop")).outputs[0].source_rect
    focused = resize(data, ResizeRequest(sizes=(Size(600, 900),), mode="crop", focus=(0.1, 0.5))).outputs[0]
    assert plain[0] > 800 and focused.source_rect[0] == 0


@pytest.mark.parametrize("size", [Size(76, 7581), Size(7581, 76)], ids=["100:1 tall", "100:1 wide"])
def test_the_focal_point_is_in_every_window_of_a_strip_thinner_than_the_map(size: Size) -> None:
    # The windows slide a map pixel apart; one a few source pixels wide must still find the point.
    focus = (0.27, 0.97)
    result = resize(footballer(), ResizeRequest(sizes=(size,), mode="crop", variants=3, focus=focus))
    fx, fy = focus[0] * result.source_size.width, focus[1] * result.source_size.height
    for output in result.outputs:
        x, y, w, h = output.source_rect
        assert x - 1 <= fx <= x + w + 1 and y - 1 <= fy <= y + h + 1, (output.variant, output.source_rect)


def test_a_focus_on_something_not_found_says_so() -> None:
    result = resize(_FOCUS_SOURCE, ResizeRequest(sizes=(Size(600, 600),), prompt="focus on the person"))
    assert "No person was found, so the framing follows the main subject." in result.notes


def test_a_bad_focal_point_is_refused_before_any_work() -> None:
    from bot.engine import InvalidOption, validate
    from bot.engine.types import Limits

    with pytest.raises(InvalidOption, match="two fractions from 0 to 1"):
        validate(ResizeRequest(sizes=(Size(600, 600),), focus=(1.5, 0.2)), Limits())


def test_auto_never_cuts_a_transparent_logo_it_extends_instead() -> None:
    logo = Image.new("RGBA", (800, 600), (0, 0, 0, 0))
    logo.paste(photo(600, 420, seed=2).convert("RGBA"), (100, 90))  # a wide mark on a clear canvas
    result = resize(encode(logo, "PNG"), ResizeRequest(sizes=(Size(1500, 500),)))
    output = result.outputs[0]
    _, y, _, h = output.source_rect
    assert y <= 90 and y + h >= 510  # the visible part is whole
    assert output.mode == "extend"
    assert any("cropping would cut important content" in note for note in result.notes)
    corner = Image.open(io.BytesIO(output.data)).convert("RGBA").getpixel((2, 2))
    assert corner[3] == 0  # and the canvas stays transparent


def test_variants_keep_every_face_variant_zero_keeps() -> None:
    outputs = resize(astronaut(), ResizeRequest(sizes=(Size(300, 500),), mode="crop", variants=3, seed=4)).outputs
    faces = resize(astronaut(), ResizeRequest(sizes=(Size(300, 500),))).faces
    assert faces
    for output in outputs:
        x, y, w, h = output.source_rect
        for fx, fy, fw, fh in faces:
            assert x <= fx and fx + fw <= x + w and y <= fy and fy + fh <= y + h, (output.variant, output.source_rect)


def test_auto_variants_keep_the_whole_subject_variant_zero_keeps_and_say_when_fewer_do() -> None:
    # A tall product on white: a square crop can hold it whole only at the widest zoom, so the tighter zooms
    # the other variants try would cut its cap or its base.
    image = Image.new("RGB", (800, 600), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((340, 50, 460, 560), 30, fill=(30, 90, 200))
    draw.ellipse((350, 30, 450, 130), fill=(220, 60, 40))
    draw.rectangle((360, 300, 440, 380), fill=(250, 200, 0))
    result = resize(encode(image, "JPEG", quality=92), ResizeRequest(sizes=(Size(600, 600),), variants=10))
    assert result.outputs[0].mode == "crop"
    assert 1 < len(result.outputs) < 10
    for output in result.outputs:
        x, y, w, h = output.source_rect
        assert x <= 340 and 460 <= x + w and y <= 30 and 560 <= y + h, (output.variant, output.source_rect)
    assert f"600x600: only {len(result.outputs)} distinct framings of this size keep the whole subject" in " ".join(
        result.notes
    )


def test_when_not_every_face_fits_the_notes_say_which_were_kept() -> None:
    from bot.engine.core import describe_faces_kept

    faces = ((10.0, 10.0, 40.0, 40.0), (300.0, 10.0, 40.0, 40.0), (600.0, 10.0, 40.0, 40.0))
    assert describe_faces_kept(faces, (0, 0, 400, 300)) == (
        "only 2 of the 3 faces fit in this shape; kept the 1st, 2nd from the left."
    )
    assert describe_faces_kept(faces, (0, 0, 700, 300)) == ""


@pytest.mark.parametrize("seed", [0, 1])
def test_a_plain_sign_wins_over_a_busy_bush(seed: int) -> None:
    # Texture that fills a whole area (foliage, gravel) must not outscore a flat, distinct subject.
    image, sign = sign_in_foliage(seed)
    targets = (Size(1080, 1080), Size(1080, 1350), Size(1080, 1920))
    for output in resize(encode(image, "PNG"), ResizeRequest(sizes=targets, mode="crop")).outputs:
        assert _share_kept(output.source_rect, sign) == 1.0, (output.target, output.source_rect)
