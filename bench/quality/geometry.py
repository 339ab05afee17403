"""Window geometry for the crop-placement evaluation: max-extent windows, kept subject share, face cuts, ceiling.

All rectangles are (x, y, width, height) in oriented source pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Rect = tuple[int, int, int, int]

# A face counts as cut when between 3% and 97% of it is inside the window: hand labels are good to a few pixels,
# so a window edge grazing a face box is not a cut.
FACE_TOLERANCE = 0.03


def max_extent(src_w: int, src_h: int, target_w: int, target_h: int) -> tuple[int, int]:
    """Size of the largest window of the target's aspect ratio inside the source (full width or full height)."""
    if src_w * target_h > target_w * src_h:  # source is wider than the target
        return min(src_w, round(src_h * target_w / target_h)), src_h
    return src_w, min(src_h, round(src_w * target_h / target_w))


def clamp(rect: Sequence[float], src_w: int, src_h: int) -> Rect:
    """Round a window and move it inside the source, keeping its size (trimmed to the source if larger)."""
    x, y, w, h = rect
    w, h = min(round(w), src_w), min(round(h), src_h)
    return (min(max(0, round(x)), src_w - w), min(max(0, round(y)), src_h - h), w, h)


def centred_on(cx: float, cy: float, size: tuple[int, int], src_w: int, src_h: int) -> Rect:
    """A window of the given size centred on (cx, cy), clamped into the source."""
    w, h = size
    return clamp((cx - w / 2, cy - h / 2, w, h), src_w, src_h)


def intersection(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def kept_share(subject: Sequence[float], window: Sequence[float]) -> float:
    """Share of the subject box's area inside the window."""
    return intersection(subject, window) / (subject[2] * subject[3])


def face_cut(face: Sequence[float], window: Sequence[float]) -> bool | None:
    """True if the face is partly inside although the window could hold it whole; None if it could not."""
    if face[2] > window[2] or face[3] > window[3]:
        return None
    inside = intersection(face, window) / (face[2] * face[3])
    return FACE_TOLERANCE < inside < 1 - FACE_TOLERANCE


def _coverage(positions: np.ndarray, length: int, start: float, extent: float) -> np.ndarray:
    """Share of the interval [start, start + extent) covered by [p, p + length) for every position p."""
    covered = np.minimum(positions + length, start + extent) - np.maximum(positions, start)
    return np.clip(covered, 0, None) / extent


def ceiling_window(
    src_w: int, src_h: int, target_w: int, target_h: int, subject: Sequence[float], faces: Sequence[Sequence[float]]
) -> Rect:
    """The max-extent window placed to keep the most subject; ties go to fewer face cuts, then to the window
    closest to the subject's centre. Exhaustive over every integer position along the free axis."""
    w, h = max_extent(src_w, src_h, target_w, target_h)
    horizontal = w < src_w  # the window slides left-right (it spans the full height), else up-down
    length, span = (w, src_w) if horizontal else (h, src_h)
    axis = 0 if horizontal else 1
    positions = np.arange(0, span - length + 1, dtype=np.float64)
    score = _coverage(positions, length, subject[axis], subject[axis + 2])
    for face in faces:
        if face[2] <= w and face[3] <= h:
            inside = _coverage(positions, length, face[axis], face[axis + 2])
            score -= 1e-3 * ((inside > FACE_TOLERANCE) & (inside < 1 - FACE_TOLERANCE))
    centre = subject[axis] + subject[axis + 2] / 2
    score -= 1e-9 * np.abs(positions + length / 2 - centre)
    best = int(positions[int(np.argmax(score))])
    return (best, 0, w, h) if horizontal else (0, best, w, h)
