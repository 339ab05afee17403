"""Filling an extended canvas so it looks like the photo: chosen per side from what that border holds.

- ``colour``: a flat or near-flat border (a studio backdrop, white paper, a soft gradient) is continued as its own
  colours: each row (or column) carries the border's colour there outward, smoothed along the edge, so a gradient
  goes on as a gradient and white stays white.
- ``synthesize``: a stationary texture (sky, grass, water, a wall, bokeh) keeps its grain: the border's fine
  detail (its reflection less its broad colours) fading out over the continued colours.
- a busy or structured border (a crowd, a building's edge) is continued as colour too: its colours diffused
  outward, following the edge near the photo and ever smoother further out (measured closer to the real scene than
  a blurred reflection, and it mirrors no shape).
- ``blur`` (asked for): the reflection, blurred, feathered from sharp at the join to soft further out.
- ``mirror`` (asked for): the plain reflection, lightly softened.

Every join is continuous: the fill's first pixels are the photo's own edge (reflected, or its colour), so the
gradient across the seam is the photo's own (bench/extend.py measures it). Only one axis is ever extended (the
framing crops along the other), so a canvas has two sides to fill: left and right, or top and bottom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from .types import FillChoice

SideFill = Literal["blur", "mirror", "colour", "synthesize"]
Array = npt.NDArray[np.uint8]

# Border statistics, on 0-255 values of a border strip shrunk to about 64 px along the edge.
FLAT_NOISE = 4.0  # mean local deviation below this: a backdrop, paper, a clear sky
FLAT_SPREAD = 28.0  # and its colours along the edge within this of each other (a soft gradient at most)
TEXTURE_EDGES = 0.12  # a texture: under this share of strong edges (objects and lines have more)
TEXTURE_DRIFT = 36.0  # and no large colour change along the edge (not half sky, half building)
# The continued colours: read from this many border pixels, and smoothed along the edge by this much more (in
# pixels of sigma) for every pixel further out. Set on the uncrop benchmark's tuning half (bench/README.md).
EDGE_DEPTH = 4
DIFFUSION = 0.6


@dataclass(frozen=True)
class Extended:
    canvas: Array  # the whole output, photo included
    sides: tuple[tuple[str, SideFill], ...]  # each filled side and how: (("left", "colour"), ("right", "blur"))


def extend(placed: Array, size: tuple[int, int], at: tuple[int, int], fill: FillChoice = "auto") -> Extended:
    """``placed`` (H x W x 3) put at ``at`` on a canvas of ``size`` (width, height), the rest filled."""
    width, height = size
    x, y = at
    ph, pw = placed.shape[:2]
    if (pw, ph) == (width, height):
        return Extended(placed.copy(), ())
    if ph == height:  # wider: fill left and right
        left, right = x, width - pw - x
        canvas, sides = _fill_across(placed, left, right, fill, ("left", "right"))
        return Extended(canvas, sides)
    # Taller: the same along the other axis, on the transposed image.
    top, bottom = y, height - ph - y
    canvas, sides = _fill_across(placed.transpose(1, 0, 2), top, bottom, fill, ("top", "bottom"))
    return Extended(np.ascontiguousarray(canvas.transpose(1, 0, 2)), sides)


def _fill_across(
    photo: Array, before: int, after: int, fill: FillChoice, names: tuple[str, str]
) -> tuple[Array, tuple[tuple[str, SideFill], ...]]:
    height = photo.shape[0]
    parts: list[Array] = []
    sides: list[tuple[str, SideFill]] = []
    if before > 0:
        # The left side is the right side of the mirrored photo: one code path for both.
        mirrored = photo[:, ::-1]
        chosen = classify(mirrored) if fill == "auto" else fill
        parts.append(_side(mirrored, before, chosen)[:, ::-1])
        sides.append((names[0], chosen))
    parts.append(photo)
    if after > 0:
        chosen = classify(photo) if fill == "auto" else fill
        parts.append(_side(photo, after, chosen))
        sides.append((names[1], chosen))
    canvas = np.concatenate(parts, axis=1)
    assert canvas.shape[0] == height
    return canvas, tuple(sides)


def _strip(photo: Array) -> Array:
    """The photo's right border, shrunk to at most 64 px along the edge (statistics need no more)."""
    height, width = photo.shape[:2]
    depth = max(2, min(width // 8, max(8, width // 12)))
    strip = photo[:, width - depth :]
    scale = min(1.0, 64 / height)
    if scale < 1.0:
        strip = cv2.resize(strip, (max(2, round(depth * scale)), 64), interpolation=cv2.INTER_AREA)
    return strip


def classify(photo: Array) -> SideFill:
    """How to continue the photo past its right edge, from what the border there holds."""
    strip = _strip(photo).astype(np.float32)
    grey = cv2.cvtColor(strip, cv2.COLOR_RGB2GRAY)
    smooth = cv2.GaussianBlur(strip, (0, 0), 1.5)
    noise = float(np.abs(strip - smooth).mean())
    rows = strip.mean(axis=1)  # the border's colour at each point along the edge
    spread = float(np.ptp(rows, axis=0).max())
    if noise < FLAT_NOISE and spread < FLAT_SPREAD:
        return "colour"
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    edges = float((np.hypot(gx, gy) > 120).mean())
    drift = float(np.ptp(cv2.GaussianBlur(rows[None], (0, 0), 4)[0], axis=0).max())
    if edges < TEXTURE_EDGES and drift < TEXTURE_DRIFT:
        return "synthesize"
    # Busy or structured: its colours diffused outward. A blurred reflection looks more like the photo at a glance
    # but is further from it by both measures on every family of the uncrop benchmark (bench/README.md), and
    # repeats shapes (a face, a sign) mirrored in the margin.
    return "colour"


def _side(photo: Array, gap: int, how: SideFill) -> Array:
    if how == "colour":
        return _colour(photo, gap)
    if how == "synthesize":
        return _synthesize(photo, gap)
    return _reflection(photo, gap, soften=how == "mirror")


def _edge_colours(photo: Array, width: int) -> npt.NDArray[np.float32]:
    """The colour at each row of the right border, smoothed along the edge (noise and stray pixels out)."""
    border = photo[:, -max(1, min(width, photo.shape[1])) :].astype(np.float32)
    colours = np.median(border, axis=1)
    sigma = max(1.0, photo.shape[0] / 120)
    return cv2.GaussianBlur(colours[:, None, :], (0, 0), sigmaX=0.1, sigmaY=sigma)[:, 0, :]


def _continued(photo: Array, gap: int) -> npt.NDArray[np.float32]:
    """The border's colours carried outward, ever more smoothed along the edge the further they go: near the
    photo they follow it row by row, far out only its broad colours remain (what is least wrong where nothing is
    known: a diffusion of the edge, not a copy of anything in the photo). Worked out at a quarter of the size and
    scaled up: it is smooth by construction, and the first pixels are the photo's own reflection (_feathered)."""
    colours = _edge_colours(photo, EDGE_DEPTH)
    height = photo.shape[0]
    small_h, small_gap = max(2, height // 4), max(2, gap // 4)
    small = cv2.resize(colours[:, None, :], (1, small_h), interpolation=cv2.INTER_AREA).reshape(small_h, 3)
    # The edge's straight-line trend (a backdrop's gradient, a sky's) is carried out as it is; only what departs
    # from it is smoothed away with distance, so a gradient stays a gradient however far the fill reaches.
    rows = np.arange(small_h, dtype=np.float32)
    slope, intercept = np.polyfit(rows, small, 1)
    trend = (rows[:, None] * slope[None, :] + intercept[None, :]).astype(np.float32)
    residual = (small - trend).astype(np.float32)
    out = np.empty((small_h, small_gap, 3), np.float32)
    previous = small
    step = max(1, small_gap // 24)
    for start in range(0, small_gap, step):
        sigma = 0.1 + (start + step / 2) * DIFFUSION  # in quarter-size pixels: the same spread per pixel out
        current = trend + cv2.GaussianBlur(residual[:, None, :], (0, 0), sigmaX=0.1, sigmaY=sigma)[:, 0, :]
        stop = min(small_gap, start + step)
        t = np.linspace(0.0, 1.0, stop - start, endpoint=False, dtype=np.float32)[None, :, None]
        out[:, start:stop] = previous[:, None, :] * (1 - t) + current[:, None, :] * t
        previous = current
    return cv2.resize(out, (gap, height), interpolation=cv2.INTER_LINEAR)


def _colour(photo: Array, gap: int) -> Array:
    return _feathered(photo, _continued(photo, gap), gap)


def _reflected(photo: Array, gap: int) -> Array:
    """``gap`` columns continuing the photo past its right edge by reflection (repeated for a wide gap)."""
    width = photo.shape[1]
    out = np.empty((photo.shape[0], gap, 3), np.uint8)
    done = 0
    forward = False  # the first band is the border reflected: continuous at the seam
    while done < gap:
        take = min(gap - done, width)
        band = photo[:, width - take :] if forward else photo[:, ::-1][:, :take]
        out[:, done : done + take] = band
        done += take
        forward = not forward
    return out


def _reflection(photo: Array, gap: int, *, soften: bool) -> Array:
    mirrored = _reflected(photo, gap).astype(np.float32)
    height = photo.shape[0]
    sigma = max(1.5, height / 90) if soften else max(3.0, height / 30)
    # Blurred at a quarter size: the same look, a sixteenth of the work.
    small = cv2.resize(mirrored, (max(1, gap // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA)
    blurred = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / 4), (gap, height), interpolation=cv2.INTER_LINEAR)
    if not soften:
        # A little flatter than the photo, so the real image reads as the subject and its extension as background.
        blurred = blurred * 0.88 + 0.12 * blurred.mean(axis=(0, 1))
    return _feathered(photo, blurred, gap, sharp=mirrored)


def _synthesize(photo: Array, gap: int) -> Array:
    """The texture goes on: the border's fine detail (its reflection, less its own broad colours), fading with
    distance, over the continued colours. Grass stays grassy and sky stays smooth, without copying a shape."""
    height = photo.shape[0]
    length = max(12.0, height / 14)
    reach = min(gap, int(5 * length))  # past this the detail has faded to nothing: not worth computing
    reflected = _reflected(photo, reach).astype(np.float32)
    sigma = max(2.0, height / 100)
    detail = reflected - cv2.GaussianBlur(reflected, (0, 0), sigma)
    fade = 0.6 * np.exp(-np.arange(reach, dtype=np.float32) / length)[None, :, None]
    fill = _continued(photo, gap)
    fill[:, :reach] += detail * fade
    return _feathered(photo, fill, gap, sharp=reflected)


def _feathered(
    photo: Array, fill: npt.NDArray[np.float32], gap: int, sharp: npt.NDArray[np.float32] | None = None
) -> Array:
    """The fill, eased in from the photo's own reflection over the first few pixels: the seam is the photo."""
    span = min(gap, max(2, min(photo.shape[0] // 20, 48)))  # a 1-pixel gap has a 1-pixel join
    mirrored = sharp[:, :span] if sharp is not None else _reflected(photo, span).astype(np.float32)
    alpha = ((1 - np.cos(np.linspace(0, np.pi, span))) / 2).astype(np.float32)[None, :, None]  # 0 at the photo
    out = fill.copy() if fill.dtype == np.float32 else fill.astype(np.float32)
    out[:, :span] = mirrored * (1 - alpha) + fill[:, :span] * alpha
    return np.clip(out, 0, 255).astype(np.uint8)
