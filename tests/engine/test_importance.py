"""The importance map's parts, where a whole resize would not single one out."""

from __future__ import annotations

import io

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw, ImageFont

from bot.engine import ResizeRequest, Size, detectors, importance, resize
from bot.engine.framing import Framer
from bot.engine.prompts import parse_prompt
from tests.images import astronaut, encode, photo, sign_in_foliage

SUBJECT = (250, 70, 90, 80)  # x, y, w, h in the 384x216 analysis copy
MAP_SIZE = (128, 72)


def _busy_left_plain_subject_right(seed: int) -> npt.NDArray[np.uint8]:
    """Grain over the whole left half (foliage, gravel at this size) and a flat, brighter panel on the right."""
    grey = np.full((216, 384), 120, np.float32)
    grey[:, :192] += np.random.default_rng(seed).normal(0, 20, (216, 192))
    x, y, w, h = SUBJECT
    grey[y : y + h, x : x + w] = 200
    return np.clip(grey, 0, 255).astype(np.uint8)


def _standing(grey: npt.NDArray[np.uint8]) -> float:
    """How far the panel's outline stands above the grain, in the detail map: its peak over the grain's mean."""
    detail = importance._detail(grey, MAP_SIZE)
    f = MAP_SIZE[0] / grey.shape[1]
    x, y, w, h = SUBJECT
    outline = detail[int(y * f) : int((y + h) * f) + 1, int(x * f) : int((x + w) * f) + 1]
    grain = detail[:, : int(192 * f) - 2]
    return float(outline.max() / grain.mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uniform_grain_is_damped_by_its_surroundings_so_a_plain_outline_stands_out(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    grey = _busy_left_plain_subject_right(seed)
    damped = _standing(grey)
    monkeypatch.setattr(importance, "TEXTURE_SURROUND", 0.0)
    undamped = _standing(grey)
    # Grain fills its own neighbourhood, an outline does not: taking off the surround's level must lift the outline
    # clearly above the grain (measured: about 5 against 2.6 without the damping).
    assert damped > 1.5 * undamped
    assert damped > 4.0


def _line_mass(pixels: npt.NDArray[np.float32], box: tuple[int, int, int, int], size: tuple[int, int]) -> float:
    f = pixels.shape[1] / size[0]
    x, y, w, h = box
    return float(pixels[int(y * f) : int((y + h) * f) + 1, int(x * f) : int((x + w) * f) + 1].sum())


def test_a_line_of_text_the_frame_cuts_pulls_less_than_the_same_line_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same words twice on a plain wall: inside the frame, and cut by its bottom edge (a shelf label the
    # photographer left half out). Both are found; the cut one weighs less than it would undamped.
    wall = Image.new("RGB", (800, 600), (200, 200, 190))
    draw = ImageDraw.Draw(wall)
    font = ImageFont.load_default(size=44)
    inside, cut = (60, 200, 270, 50), (460, 560, 270, 40)
    for x, y, _, _ in (inside, cut):
        draw.text((x, y), "OPEN DAILY", fill=(20, 20, 20), font=font)

    def ratio() -> float:
        analysis = importance.analyse(np.asarray(wall), 1.0, parse_prompt(""))
        assert len(analysis.texts) == 2, analysis.texts
        assert sum(importance.touches_edge(box, 800, 600) for box in analysis.texts) == 1, analysis.texts
        return _line_mass(analysis.importance, cut, wall.size) / _line_mass(analysis.importance, inside, wall.size)

    damped = ratio()
    monkeypatch.setattr(importance, "EDGE_TEXT_WEIGHT", 1.0)
    undamped = ratio()
    assert damped < 0.8 and damped < undamped - 0.08, (damped, undamped)


@pytest.mark.parametrize(
    ("box", "touches"),
    [((0, 100, 50, 20), True), ((100, 595, 50, 5), True), ((760, 10, 40, 20), True), ((100, 100, 50, 20), False)],
)
def test_a_box_touches_the_frame_within_one_percent_of_its_side(box: tuple[int, int, int, int], touches: bool) -> None:
    assert importance.touches_edge(box, 800, 600) is touches


def test_a_plain_sign_in_grass_stands_out_by_boundary_connectivity_and_the_grass_does_not() -> None:
    picture, (x, y, w, h) = sign_in_foliage()
    small = np.asarray(picture.resize((128, 72), Image.Resampling.BOX), np.float32) / 255.0
    barrier = importance._barrier(cv2.cvtColor(small, cv2.COLOR_RGB2Lab))
    f = 128 / picture.width
    sign = barrier[int(y * f) + 1 : int((y + h) * f) - 1, int(x * f) + 1 : int((x + w) * f) - 1]
    # The bush and the grass both reach the border, however busy the bush; the sign's outline cuts it off.
    assert sign.mean() > 0.5 > 4 * barrier[:, : int(900 * f)].mean()
    assert sign.mean() > 4 * barrier[:, int(900 * f) : int(x * f) - 2].mean()


def test_a_machine_at_the_side_is_enclosed_and_the_sky_and_hedge_lining_the_edges_are_not() -> None:
    # The report this answers: foliage outscored a large, flat machine standing at the side of a street.
    picture, _ = sign_in_foliage()
    pixels = np.asarray(picture).copy()
    pixels[:, 1100:] = np.asarray(picture)[:, 500:1000]  # the bush, lining the right edge
    pixels[:200] = (170, 200, 235)  # a sky along the top
    pixels[200:, :1100] = (120, 118, 112)  # a street, lining the bottom and the left
    pixels[360:720, :700] = (200, 170, 40)  # a yellow machine, touching the left edge along 40% of it
    small = cv2.resize(pixels, (128, 72), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2Lab)
    enclosed = importance._enclosed(lab)
    f = 128 / 1600
    on_machine = np.s_[int(360 * f) + 2 : int(720 * f) - 2, 2 : int(700 * f) - 2]
    machine = enclosed[on_machine].mean()
    sky = enclosed[: int(200 * f) - 2].mean()
    hedge = enclosed[int(200 * f) + 2 :, int(1100 * f) + 2 :].mean()
    assert machine > 0.5 > 4 * sky, (machine, sky)
    assert machine > 2 * hedge, (machine, hedge)
    # Why the cue exists: a path round the machine reaches the edge it touches, so the barrier does not see it.
    assert importance._barrier(lab)[on_machine].mean() < 0.1


def test_crop_mode_s_map_weighs_the_shoulders_below_a_head_and_auto_s_not(monkeypatch: pytest.MonkeyPatch) -> None:
    rgb = np.asarray(Image.open(io.BytesIO(astronaut())).convert("RGB"))

    def below_the_head() -> tuple[float, float]:
        analysis = importance.analyse(rgb, 1.0, parse_prompt(""))
        [(x, y, w, h)] = analysis.faces
        wide, tall = importance.SHOULDERS_WIDE * w, importance.SHOULDERS_TALL * h
        shoulders = (round(x + w / 2 - wide / 2), round(y + h), round(wide), round(tall))
        assert analysis.crop_importance is not None
        return (
            _line_mass(analysis.crop_importance, shoulders, (rgb.shape[1], rgb.shape[0])),
            _line_mass(analysis.importance, shoulders, (rgb.shape[1], rgb.shape[0])),
        )

    crop_with, auto_with = below_the_head()
    monkeypatch.setattr(importance, "SHOULDERS_WEIGHT", 0.0)
    crop_without, auto_without = below_the_head()
    assert crop_with > 1.2 * crop_without, (crop_with, crop_without)
    assert auto_with == auto_without


@pytest.mark.parametrize(
    ("mode", "prompt", "composed"),
    [("crop", "", True), ("auto", "crop to fill the frame", True), ("auto", "", False), ("extend", "", False)],
)
def test_crop_mode_s_map_is_composed_only_when_crop_mode_will_use_it(
    monkeypatch: pytest.MonkeyPatch, mode: str, prompt: str, composed: bool
) -> None:
    calls: list[int] = []
    enclosed = importance._enclosed
    monkeypatch.setattr(importance, "_enclosed", lambda lab: calls.append(1) or enclosed(lab))
    request = ResizeRequest(sizes=(Size(300, 300),), mode=mode, prompt=prompt)  # type: ignore[arg-type]
    for source in (photo(), photo(2400, 1800)):  # analysed with the outputs' copy, and decoded apart in a thread
        resize(encode(source, "JPEG"), request)
    assert calls == ([1, 1] if composed else [])


def test_the_face_tiles_are_cut_from_the_text_model_s_larger_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = []
    faces = detectors.faces

    def recording(rgb: npt.NDArray[np.uint8], detail: npt.NDArray[np.uint8] | None = None) -> object:
        seen.append((rgb.shape, None if detail is None else detail.shape))
        return faces(rgb, detail)

    monkeypatch.setattr(detectors, "faces", recording)
    resize(encode(photo(2400, 1800), "JPEG"), ResizeRequest(sizes=(Size(300, 300),)))
    [(analysed, detail)] = seen
    assert max(analysed[:2]) == importance.ANALYSIS_LONG_SIDE
    assert detail is not None
    assert detail[0] * detail[1] > 2 * analysed[0] * analysed[1]  # the text model's copy, up to twice the side


def test_crop_mode_places_windows_on_the_crop_map_and_auto_on_the_other() -> None:
    # Two maps that disagree: all of the first's mass on the left, all of the crop map's on the right.
    left, right = np.zeros((72, 128), np.float32), np.zeros((72, 128), np.float32)
    left[30:40, 5:15], right[30:40, 110:120] = 1.0, 1.0
    analysis = importance.Analysis(left / left.sum(), (), (), crop_importance=right / right.sum())
    source, target = Size(1280, 720), Size(400, 400)
    rng = np.random.default_rng(0)
    [cropped] = Framer(analysis, source, parse_prompt(""), crop=True).plan(target, "crop", 1, "auto", rng)
    [auto] = Framer(analysis, source, parse_prompt(""), crop=False).plan(target, "auto", 1, "auto", rng)

    def centre(rect: tuple[int, int, int, int]) -> float:
        return rect[0] + rect[2] / 2

    assert centre(cropped.source_rect) > 1280 / 2 > centre(auto.source_rect)
