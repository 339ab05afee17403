"""Where the important content of a photo is: one small importance map, computed once per source.

The map combines cues that each catch a different kind of subject:
- distinctness from the background, estimated from the image border (objects on plain or busy backgrounds), and
  in crop mode's map also boundary connectivity (what an outline cuts off from the border: a sign, a person),
- spectral-residual saliency (what stands out of a texture),
- local detail (edges), damped where the whole frame is busy,
- skin tones,
- faces (BlazeFace, or OpenCV's Haar cascade when its wheel is not installed: detectors.py),
- lines of text (PP-OCR's text detector, or a stroke heuristic when its wheel is not installed).
Faces and text boxes are also returned as boxes, because a window must not cut them, not just prefer them.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from . import detectors
from .prompts import Hints

Box = tuple[float, float, float, float]  # x, y, w, h in analysis pixels
FloatMap = npt.NDArray[np.float32]

ANALYSIS_LONG_SIDE = 384  # the map and the whole-frame face pass work on this copy; small faces on the text copy
MAP_LONG_SIDE = 128  # the importance map lives here: plenty to place windows, cheap to score
# What a detected head or line of text adds to the map, in units of the map's mean.
FACE_WEIGHT = 3.0
TEXT_WEIGHT = 2.0  # 0.8, 2 and 4 tried on the tuning half
# A line of text the frame already cuts (shelf labels at the bottom edge) is a detail of the scene, not its subject:
# it still counts as text a crop should keep whole, but pulls the window less. 0, 0.25 and 1 tried on the tuning half.
EDGE_TEXT_WEIGHT = 0.25
EDGE_MARGIN = 0.01  # a box this close (share of the side) to the frame's edge touches it
TEXTURE_SURROUND = 0.6  # share of the surrounding detail taken off (0, 0.6 and 1 tried on the tuning half)
CENTRE_PRIOR = 0.15  # 0.15, 0.35, 0.6 and 1.0 tried on the tuning half: more helps crop mode a little, auto less
# Crop mode's map gives this share of the background cue to boundary connectivity (_barrier), measured on a grid this
# many cells across: coarse, so texture averages out and only outlines stand. Tried on the tuning half: 0.15, 0.3,
# 0.45; grids of 16, 24, 32.
BARRIER_SHARE = 0.3
BARRIER_GRID = 24
# ... and this share to enclosure (_enclosed: how little of a region lies along the border), on the same grid, with
# colours this far apart (CIELAB units) counted as different regions. Tried on the tuning half: 0.2, 0.35, 0.5;
# grids of 16, 24, 32; and as a gate on the distinctness cue (0.6) instead of a share of it. Colour scales of 7 and 14
# gave the same to a tenth of a point.
ENCLOSED_SHARE = 0.35
ENCLOSED_COLOUR = 10.0
# Crop mode's map also weighs the shoulders below each head (a box this many heads wide and tall, weighted like a
# face at this many map means), so a portrait's window does not stop at the chin. Tried on the tuning half and the
# first set: a body 2.5 x 3 heads at 1, 2, 3 and 4 (people 68.5 -> 68.6 / 69.4 / 69.5 / 69.5, but 12 / 13 / 15 face
# cuts on the first set instead of 11); these shoulders: people 68.9, the first set 90.9 -> 91.2 with 11 cuts.
# Auto keeps its map: a body box there cost it safe outputs (bench/README.md).
SHOULDERS_WEIGHT = 2.0
SHOULDERS_WIDE, SHOULDERS_TALL = 2.0, 1.5


@dataclass(frozen=True)
class Analysis:
    importance: FloatMap  # MAP-sized, >= 0, sums to 1
    faces: tuple[Box, ...]  # heads (hairline to chin), in source pixels
    texts: tuple[Box, ...]  # lines of text, in source pixels
    people: tuple[Box, ...] = ()  # in source pixels
    opaque: Box | None = None  # a transparent image's visible part, in source pixels
    crop_importance: FloatMap | None = None  # the map crop mode places windows on (importance when absent)


# The cascades ship inside the opencv-python wheel (4.x), so face detection needs no download.
_CASCADES = str(cv2.data.haarcascades)  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=1)
def _face_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(_CASCADES + "haarcascade_frontalface_default.xml")
    if cascade.empty():  # pragma: no cover - only with a broken opencv install
        raise RuntimeError("OpenCV's face cascade could not be loaded; reinstall opencv-python-headless<5")
    return cascade


def analyse(
    rgb: npt.NDArray[np.uint8],
    source_scale: float,
    hints: Hints,
    text_view: tuple[npt.NDArray[np.uint8], float] | None = None,
    *,
    crop_map: bool = True,
) -> Analysis:
    """``rgb``: an analysis copy (long side about ANALYSIS_LONG_SIDE); ``source_scale``: its pixels per source pixel.
    ``text_view``: a larger copy (up to detectors.TEXT_MAX_PIXELS) and its pixels per source pixel, where small
    lettering is still legible; without it text is looked for in ``rgb``. ``crop_map``: also compose crop mode's
    map (about 12 ms, of no use to auto and extend)."""
    height, width = rgb.shape[:2]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    text_rgb, text_scale = text_view or (rgb, source_scale)
    # The face passes run beside the text pass: onnxruntime's int8 kernels leave a core idle for part of the pass,
    # and this takes about 25 ms off a 12 MP photo (bench/README.md, "Speed").
    with ThreadPoolExecutor(1) as beside:
        found_faces = beside.submit(detectors.faces, rgb, text_rgb)
        texts = detectors.text_lines(text_rgb)
        faces = found_faces.result()
    if faces is None:
        faces = [_haar_head(face) for face in detect_faces(grey)]
    if texts is None:
        texts, text_scale = detect_text(grey), source_scale
    map_factor = MAP_LONG_SIDE / max(width, height)
    map_w, map_h = max(8, round(width * map_factor)), max(8, round(height * map_factor))
    small = cv2.resize(rgb, (map_w, map_h), interpolation=cv2.INTER_AREA)
    small_grey = cv2.resize(grey, (map_w, map_h), interpolation=cv2.INTER_AREA)

    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    distinct = _background_distinctness(lab)
    others = 0.25 * _spectral_residual(small_grey) + 0.2 * _detail(grey, (map_w, map_h)) + 0.1 * _skin(small)
    priors = _priors(map_w, map_h, hints)

    to_map = map_w / width
    face_weight = FACE_WEIGHT * (2 if hints.face_priority else 1)
    text_weight = TEXT_WEIGHT * (2.5 if hints.text_priority else 1)
    text_to_map = to_map * source_scale / text_scale
    # The frame in the text boxes' pixels (the text model's copy, or the analysis copy when it fell back).
    frame_w, frame_h = width * text_scale / source_scale, height * text_scale / source_scale

    def compose(background: FloatMap, shoulders: float = 0.0) -> FloatMap:
        importance = 0.45 * background + others
        importance = _normalise(cv2.GaussianBlur(importance, (0, 0), max(1.0, map_w / 96)))
        # Squaring sharpens the map so a strong subject outweighs a wide, faintly interesting background.
        importance = importance**2
        for x, y, w, h in faces:
            # A head matters beyond its box: keep some hair above and the neck below.
            _add_box(importance, (x * to_map, (y - 0.1 * h) * to_map, w * to_map, 1.3 * h * to_map), face_weight)
            if shoulders:
                wide, tall = SHOULDERS_WIDE * w, SHOULDERS_TALL * h
                _add_box(
                    importance,
                    ((x + w / 2 - wide / 2) * to_map, (y + h) * to_map, wide * to_map, tall * to_map),
                    shoulders,
                )
        for box in texts:
            weight = text_weight * (EDGE_TEXT_WEIGHT if touches_edge(box, frame_w, frame_h) else 1.0)
            _add_box(importance, tuple(v * text_to_map for v in box), weight)
        importance *= priors
        total = float(importance.sum())
        if total <= 0 or not np.isfinite(total):
            importance = np.ones((map_h, map_w), np.float32)
            total = float(importance.size)
        return (importance / total).astype(np.float32)

    importance = compose(distinct)
    # Crop mode's own map: part of the background cue given to boundary connectivity and enclosure, and shoulders
    # below the heads. It places windows on real photos better, but auto, which was tuned to never cut, lost safe
    # outputs on it (11 misses instead of 4 on the tuning half), so auto keeps the first map.
    crop_importance = None
    if crop_map:
        background = (1 - BARRIER_SHARE - ENCLOSED_SHARE) * distinct + BARRIER_SHARE * _barrier(lab)
        crop_importance = compose(background + ENCLOSED_SHARE * _enclosed(lab), SHOULDERS_WEIGHT)

    return Analysis(
        importance=importance,
        faces=_scaled(faces, source_scale),
        texts=_scaled(texts, text_scale),
        crop_importance=crop_importance,
    )


def touches_edge(box: Box, width: float, height: float) -> bool:
    """Whether ``box`` reaches the frame's edge: the photo itself cuts what is there."""
    x, y, w, h = box
    edge_x, edge_y = EDGE_MARGIN * width, EDGE_MARGIN * height
    return x <= edge_x or y <= edge_y or x + w >= width - edge_x or y + h >= height - edge_y


def _scaled(boxes: list[Box], scale: float) -> tuple[Box, ...]:
    return tuple((x / scale, y / scale, w / scale, h / scale) for x, y, w, h in boxes)


def _haar_head(face: Box) -> Box:
    """The cascade's box runs from the brows to the chin like BlazeFace's: grow it the same way to the hairline."""
    x, y, w, h = face
    return (x, y - detectors.HEAD_GROW_UP * h, w, h * (1 + detectors.HEAD_GROW_UP + detectors.HEAD_GROW_DOWN))


def detect_faces(grey: npt.NDArray[np.uint8]) -> list[Box]:
    """Frontal faces. (OpenCV's profile cascade was tried too: on the evaluation set it found no face the frontal one
    missed, at twice the cost, so it is not run.)"""
    height, width = grey.shape
    min_side = max(16, round(min(width, height) * 0.04))
    equalised = cv2.equalizeHist(grey)
    found = _face_cascade().detectMultiScale(equalised, scaleFactor=1.15, minNeighbors=5, minSize=(min_side, min_side))
    boxes: list[Box] = [(float(x), float(y), float(w), float(h)) for x, y, w, h in (found if len(found) else [])]
    return _merge_boxes(boxes)


def detect_text(grey: npt.NDArray[np.uint8]) -> list[Box]:
    """Lines of text: strong, dense strokes that close into wide, well-filled horizontal blobs."""
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
        # Text closes into solid blobs but its strokes alone cover only part of the box.
        if fill > 0.6 and 0.2 < stroke_density < 0.85:
            boxes.append((float(x), float(y), float(w), float(h)))
    return boxes[:50]


def _merge_boxes(boxes: list[Box]) -> list[Box]:
    merged: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b[2] * b[3]):
        if all(_overlap(box, kept) < 0.3 for kept in merged):
            merged.append(box)
    return merged


def _overlap(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    smaller = min(a[2] * a[3], b[2] * b[3])
    return ix * iy / smaller if smaller > 0 else 0.0


def _normalise(values: FloatMap) -> FloatMap:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def _background_distinctness(lab: FloatMap) -> FloatMap:
    """Colour distance to the nearest of a few background colours sampled on the border."""
    height, width = lab.shape[:2]
    ring = max(1, round(min(width, height) * 0.04))
    border = np.concatenate(
        [
            lab[:ring].reshape(-1, 3),
            lab[-ring:].reshape(-1, 3),
            lab[:, :ring].reshape(-1, 3),
            lab[:, -ring:].reshape(-1, 3),
        ]
    ).astype(np.float32)
    clusters = min(6, len(border))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(border, clusters, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    # Clusters holding a sliver of the border are likely the subject touching the edge, not background.
    counts = np.bincount(labels.ravel(), minlength=clusters)
    centres = centres[counts >= 0.08 * len(border)]
    flat = lab.reshape(-1, 1, 3)
    distance = np.sqrt(((flat - centres.reshape(1, -1, 3)) ** 2).sum(axis=2)).min(axis=1)
    distance = distance.reshape(height, width)
    # A ~20 unit Lab difference is a clearly different colour; saturate beyond that.
    scale = max(20.0, float(np.percentile(distance, 99)))
    return np.clip(distance / scale, 0, 1).astype(np.float32)


def _coarse(lab: FloatMap) -> FloatMap:
    """The map averaged onto the border cues' grid, BARRIER_GRID cells across: coarse, so texture averages out."""
    height, width = lab.shape[:2]
    grid_h = max(2, round(BARRIER_GRID * height / width))
    return cv2.resize(lab, (BARRIER_GRID, grid_h), interpolation=cv2.INTER_AREA)


def _barrier(lab: FloatMap) -> FloatMap:
    """Minimum barrier distance to the frame's border (Zhang et al., 2015), on a coarse grid: for each cell, the
    least rise and fall of colour a path from it to the border must cross, summed over L, a and b. What an outline
    cuts off from the border (a sign, a product, a person) scores high, however plain its inside; a background that
    reaches the border scores low, however colourful it is."""
    height, width = lab.shape[:2]
    coarse = _coarse(lab)
    grid_h = coarse.shape[0]
    total = np.zeros((grid_h, BARRIER_GRID), np.float32)
    for channel in range(3):
        values = coarse[:, :, channel]
        barrier = np.full(values.shape, np.inf, np.float32)
        barrier[0, :] = barrier[-1, :] = barrier[:, 0] = barrier[:, -1] = 0.0
        high, low = values.copy(), values.copy()  # the best path's highest and lowest value so far
        for _ in range(BARRIER_GRID + grid_h):  # enough sweeps to cross the grid; stops early once settled
            changed = False
            for here, there in _NEIGHBOURS:
                new_high = np.maximum(high[there], values[here])
                new_low = np.minimum(low[there], values[here])
                # Only through a neighbour a path from the border has reached.
                better = np.isfinite(barrier[there]) & ((new_high - new_low) < barrier[here])
                if better.any():
                    changed = True
                    barrier[here] = np.where(better, new_high - new_low, barrier[here])
                    high[here] = np.where(better, new_high, high[here])
                    low[here] = np.where(better, new_low, low[here])
            if not changed:
                break
        total += barrier
    return _normalise(cv2.resize(total, (width, height), interpolation=cv2.INTER_LINEAR))


def _enclosed(lab: FloatMap) -> FloatMap:
    """1 minus the background probability of robust background detection (Zhu et al., 2014), on a coarse grid: a
    region (the cells a path of similar colours reaches) is background when much of it lies along the frame's border
    for its area. A subject that touches the border along a short stretch (a machine at the side of a street) stays
    foreground; a sky or a hedge that lines an edge does not, however colourful or textured it is."""
    height, width = lab.shape[:2]
    coarse = _coarse(lab)
    grid_h, grid_w = coarse.shape[:2]
    cells = grid_w * grid_h
    step_x = np.sqrt(((coarse[:, 1:] - coarse[:, :-1]) ** 2).sum(-1))  # colour change to the right neighbour
    step_y = np.sqrt(((coarse[1:] - coarse[:-1]) ** 2).sum(-1))
    # Geodesic distance from every cell (last axis) to every cell: the least colour change summed along a path.
    distance = np.full((grid_h, grid_w, cells), np.inf, np.float32)
    index = np.arange(cells)
    distance[index // grid_w, index % grid_w, index] = 0.0
    right, down = step_x[:, :, None], step_y[:, :, None]
    for _ in range(grid_w + grid_h):  # a few sweeps settle it; the bound only guards against a pathological grid
        before = distance.copy()
        for x in range(1, grid_w):
            np.minimum(distance[:, x], distance[:, x - 1] + right[:, x - 1], out=distance[:, x])
        for x in range(grid_w - 2, -1, -1):
            np.minimum(distance[:, x], distance[:, x + 1] + right[:, x], out=distance[:, x])
        for y in range(1, grid_h):
            np.minimum(distance[y], distance[y - 1] + down[y - 1], out=distance[y])
        for y in range(grid_h - 2, -1, -1):
            np.minimum(distance[y], distance[y + 1] + down[y], out=distance[y])
        if np.array_equal(before, distance):
            break
    distance = distance.reshape(cells, cells).T  # row: from that cell
    # Each cell's soft region: the cells it reaches without crossing a change of colour.
    region = np.exp(-(distance**2) / (2 * ENCLOSED_COLOUR**2))
    ring = np.zeros((grid_h, grid_w), bool)
    ring[0] = ring[-1] = ring[:, 0] = ring[:, -1] = True
    connectivity = region[:, ring.ravel()].sum(axis=1) / np.sqrt(region.sum(axis=1))
    enclosed = np.exp(-(connectivity**2) / 2).reshape(grid_h, grid_w).astype(np.float32)
    return cv2.resize(enclosed, (width, height), interpolation=cv2.INTER_LINEAR)


# Each cell and the neighbour a path may arrive from (below, above, right, left), as slices of one grid.
_NEIGHBOURS = (
    ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
    ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
)


def _spectral_residual(grey: npt.NDArray[np.uint8]) -> FloatMap:
    """Hou & Zhang (2007): the log spectrum minus its local average marks what stands out of the texture."""
    height, width = grey.shape
    small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    spectrum = np.fft.fft2(small)
    log_amplitude = np.log(np.abs(spectrum) + 1e-6).astype(np.float32)
    phase = np.angle(spectrum)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3))
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    saliency = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), 2.5)
    return _normalise(cv2.resize(saliency, (width, height), interpolation=cv2.INTER_LINEAR))


def _detail(grey: npt.NDArray[np.uint8], size: tuple[int, int]) -> FloatMap:
    edges = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    energy = cv2.resize(np.abs(edges), size, interpolation=cv2.INTER_AREA)
    # When the whole frame is textured (grass, gravel) detail says little: keep only what beats the typical level.
    energy = np.maximum(energy - float(np.median(energy)), 0)
    # Detail that fills its surroundings as well (foliage, gravel, a crowd in the stands) is texture: take off a
    # share of the neighbourhood's level, so what stands out of its surroundings (a sign's edge, a product's outline)
    # keeps its weight and a uniformly busy area does not.
    surround = cv2.GaussianBlur(energy, (0, 0), max(2.0, size[0] / 10))
    energy = np.maximum(energy - TEXTURE_SURROUND * surround, 0)
    return _normalise(energy)


def _skin(rgb: npt.NDArray[np.uint8]) -> FloatMap:
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    mask = cv2.inRange(ycrcb, (40, 138, 80), (240, 172, 125)).astype(np.float32) / 255.0
    return cv2.GaussianBlur(mask, (0, 0), 1.5)


def _add_box(target: FloatMap, box: Box, weight: float) -> None:
    height, width = target.shape
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(width, int(np.ceil(box[0] + box[2]))), min(height, int(np.ceil(box[1] + box[3])))
    if x1 > x0 and y1 > y0:
        target[y0:y1, x0:x1] += weight * max(float(target.mean()), 0.05)


def _priors(width: int, height: int, hints: Hints) -> FloatMap:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (xs + 0.5) / width, (ys + 0.5) / height
    centre_strength = 0.6 if hints.centre and not hints.face_priority else CENTRE_PRIOR
    prior = 1.0 - centre_strength * (((u - 0.5) / 0.5) ** 2 + ((v - 0.5) / 0.5) ** 2) / 2
    for side in hints.focus:
        ramp = {"left": 1 - u, "right": u, "top": 1 - v, "bottom": v}[side]
        prior = prior * (0.15 + 1.7 * ramp)
    return prior.astype(np.float32)


def warm_up() -> None:
    """Load the detectors once per worker process, before the first job needs them."""
    if detectors.FACE_MODEL in detectors.missing():
        _face_cascade()
    detectors.load()
