"""Choose, for each target size, which part of the source to use and where it goes in the output.

Windows are scored on the importance map with an integral image: the importance kept inside, minus the importance
the window's edges cut through, with a hard penalty for cutting a face (or, softer, a line of text) when another
window could hold it whole. Among windows that keep about the same importance, the one that puts the subject
nearest the centre (or on a third, when asked) wins.

``auto`` crops only when the best crop is safe: it holds every face and every line of text that a window of its
size could hold, nearly all of the subject's extent (the densest nine tenths of the map), and the focal point.
Otherwise it extends the canvas only as much as needed: it crops along one axis as far as is safe and fills the
rest, so a 3:1 banner of a portrait shows the face band of the photo instead of a postage stamp in a sea of blur.
Variants obey the same rules as variant 0.

A focal point (``--focus``, or "focus on the sign") is kept inside every window, which is centred on it as far as
the source's edges allow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .importance import Analysis, Box, touches_edge
from .prompts import Fill, FocusTarget, Hints
from .types import Mode, Rect, Size, UsedMode

# The "core" is the densest part of the importance map holding CORE_MASS of it: the subject, not the backdrop.
CORE_MASS = 0.5
# Auto judges a crop by a wider "extent": the densest part holding EXTENT_MASS of the map, so a subject larger than
# its densest half (a whole sign, a group, a product with its label) is kept whole. The three values were chosen on
# the tuning half of bench/quality/photos.json, for outputs that keep the whole labelled subject while at least 60%
# of each output stays photo (extent mass 0.5 to 0.97, crop share 0.8 to 0.995, partial-crop share 0.99 to 1 tried;
# 0.9 / 0.97 / 0.99 kept it in 87% of outputs with 68% photo, 0.95 / 0.99 / 0.999 in 98% with 64%, these in 99% with
# 63%: a partial crop that trims even a sliver of the extent was most of what cut a subject spanning the frame).
EXTENT_MASS = 0.95
CROP_KEEPS_ENOUGH = 0.99  # share of the extent a crop must keep for auto to crop
VARIANT_KEEPS_ENOUGH = 0.8  # share of the core a tighter variant must keep (what makes it a variant, not a detail)
EXTEND_KEEPS_ENOUGH = 1.0  # a partial crop before the canvas is extended keeps all of the extent
# Windows within SCORE_TIE of the best are equally good; composition decides. Tried on the tuning half of
# bench/quality/photos.json, and not taken: centring a subject spread over the frame at the frame's middle, with
# ties of 0.03-0.09 and a price for each step off it. Crop mode there rose to the centre crop's level (73.4 -> 75.0),
# but on the off-centre scenes of bench/quality twice as many windows cut a labelled face (13 -> 31 of 229).
SCORE_TIE = 0.015
CORE_TIE = 0.01
FACE_CUT_PENALTY = 1.0
TEXT_CUT_PENALTY = 0.15
EDGE_CUT_WEIGHT = 1.5
VARIANT_ZOOMS = (1.0, 0.85, 0.7)
TEXT_KEPT = 0.95  # a line of text counts as whole with this much of its box inside (detector boxes are loose)
FOCUS_SLACK = 0.12  # a window may sit this far (share of its size) off centred-on-the-focal-point
# A face touching the source's edge and smaller than this share of its area is incidental: the photo itself cuts it.
INCIDENTAL_AREA = 0.01


def protected_faces(faces: tuple[Box, ...], source: Size) -> tuple[Box, ...]:
    """The faces a window must keep whole: all but a small one the photographer already cut at the frame's edge (a
    passer-by at the side of a photo of a sign), which counts like any other detail."""
    return tuple(
        face
        for face in faces
        if face[2] * face[3] >= INCIDENTAL_AREA * source.width * source.height
        or not touches_edge(face, source.width, source.height)
    )


@dataclass(frozen=True)
class Plan:
    mode: UsedMode
    source_rect: Rect  # source pixels
    placed_rect: Rect  # output pixels
    fill: Fill | None  # how an extended canvas is filled
    kept: float  # share of the subject's core inside source_rect
    extent_kept: float = 1.0  # share of the wider extent auto judges by
    safe: bool = True  # holds every face, line of text and focal point it could hold


@dataclass(frozen=True)
class _Windows:
    """Candidate windows in map coordinates, scored."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    w: npt.NDArray[np.float64]
    h: npt.NDArray[np.float64]
    score: npt.NDArray[np.float64]
    core: npt.NDArray[np.float64]
    extent: npt.NDArray[np.float64]
    face_ok: npt.NDArray[np.bool_]  # holds every face a window of its size could hold
    text_ok: npt.NDArray[np.bool_]  # the same for lines of text, and for a transparent image's opaque part
    focus_ok: npt.NDArray[np.bool_]  # holds the focal point near its centre (True when there is none)
    whole: npt.NDArray[np.bool_]  # holds every face and line of text whole, whether or not a window could

    def safe(self, index: int) -> bool:
        """What auto needs to crop: nothing protected is cut, even what no window of this size could hold."""
        return bool(self.whole[index] and self.focus_ok[index])

    def as_safe_as(self, index: int, other: int) -> bool:
        """``index`` keeps everything ``other`` keeps: the rule every variant follows."""
        return all(
            bool(flags[index]) or not bool(flags[other]) for flags in (self.face_ok, self.text_ok, self.focus_ok)
        )


def _auto_may_crop(plan: Plan) -> bool:
    """Auto's rule for a crop: it keeps nearly all of the subject's extent and cuts nothing protected."""
    return plan.extent_kept >= CROP_KEEPS_ENOUGH and plan.safe


def resolved_mode(mode: Mode, hints: Hints) -> Mode:
    """Auto as the prompt may have narrowed it: "don't crop" extends, "crop to fill the frame" crops (the first
    wins where both are asked)."""
    if mode == "auto" and hints.no_crop:
        return "extend"
    if mode == "auto" and hints.crop:
        return "crop"
    return mode


class Framer:
    """Plans windows for one analysed source; reused for every target size."""

    def __init__(self, analysis: Analysis, source: Size, hints: Hints, grid: int = 1, *, crop: bool = False) -> None:
        """``grid``: source pixels per decoded pixel; windows snap to it so they map onto whole decoded pixels.
        ``crop``: crop mode, which places windows on the analysis's crop map where there is one."""
        self.grid = grid
        self.analysis = analysis
        self.source = source
        self.hints = hints
        chosen = analysis.crop_importance if crop and analysis.crop_importance is not None else analysis.importance
        importance = chosen.astype(np.float64)
        self.map_h, self.map_w = importance.shape
        self.sx = self.map_w / source.width
        self.sy = self.map_h / source.height
        self.integral = _integral(importance)
        core_share = _densest_share(importance, CORE_MASS)
        self.core_integral = _integral(core_share)
        self.extent_integral = _integral(_densest_share(importance, EXTENT_MASS))
        # The subject's centre is the core's centre of mass: the backdrop's faint importance must not pull it.
        ys, xs = np.mgrid[0 : self.map_h, 0 : self.map_w]
        self.centroid = (float((core_share * (xs + 0.5)).sum()), float((core_share * (ys + 0.5)).sum()))
        self.subject = self._mass_box(core_share)
        if hints.face_priority and analysis.faces:
            # "keep face centered": the faces, not the whole subject, sit at the centre.
            boxes = [self._to_map(face) for face in analysis.faces]
            self.centroid = (
                float(np.mean([b[0] + b[2] / 2 for b in boxes])),
                float(np.mean([b[1] + b[3] / 2 for b in boxes])),
            )
        # A head is whole with a margin of hair above and chin below: guard a box a little larger than the detector's.
        self.faces = [
            self._clip(self._to_map((x - 0.1 * w, y - 0.15 * h, 1.2 * w, 1.27 * h)))
            for x, y, w, h in protected_faces(analysis.faces, source)
        ]
        self.texts = [self._to_map(text) for text in analysis.texts]
        if analysis.opaque is not None:
            # A logo on a transparent canvas: its visible part must stay whole, as strictly as a face.
            self.faces.append(self._clip(self._to_map(analysis.opaque)))
        # The focal point, in map pixels: asked for as a point, or named ("focus on the sign") and found.
        self.focus: tuple[float, float] | None = None
        self.focus_missing: FocusTarget | None = None
        point = hints.focus_point
        if point is None and hints.focus_target is not None:
            box = _focus_box(hints.focus_target, analysis)
            if box is None:
                self.focus_missing = hints.focus_target
            elif box:
                point = ((box[0] + box[2] / 2) / source.width, (box[1] + box[3] / 2) / source.height)
        if point is not None:
            self.focus = (min(1.0, max(0.0, point[0])) * self.map_w, min(1.0, max(0.0, point[1])) * self.map_h)
            self.centroid = self.focus

    # --- public -----------------------------------------------------------------------------------------------

    def focus_in_source(self) -> tuple[float, float] | None:
        return None if self.focus is None else (self.focus[0] / self.sx, self.focus[1] / self.sy)

    def plan(self, target: Size, mode: Mode, variants: int, fill: Fill, rng: np.random.Generator) -> list[Plan]:
        mode = resolved_mode(mode, self.hints)
        plans: list[Plan] = []
        if mode in ("crop", "auto"):
            crop = self._best_crops(target, variants, rng, auto=mode == "auto")
            use_crop = mode == "crop" or _auto_may_crop(crop[0])
            if mode == "auto" and self.hints.zoom > 1.0:
                use_crop = False
            if use_crop:
                plans = crop
        if not plans:
            whole = mode == "extend"
            plans = self._extensions(target, variants, fill, whole=whole, rng=rng)
        # Auto's crop variants obey variant 0's rule, so there may be fewer than asked for (the notes say so).
        return plans[: max(1, variants)]

    # --- crop ---------------------------------------------------------------------------------------------------

    def _max_window(self, target: Size) -> tuple[float, float]:
        """The largest window of the target's aspect that fits the source, in source pixels."""
        aspect = target.aspect
        if aspect >= self.source.width / self.source.height:
            return float(self.source.width), self.source.width / aspect
        return self.source.height * aspect, float(self.source.height)

    def _best_crops(self, target: Size, variants: int, rng: np.random.Generator, *, auto: bool) -> list[Plan]:
        """Variant 0, the best window, and up to ``variants - 1`` others as safe as it; in auto mode only others
        that auto itself would crop to (``_auto_may_crop``), so a variant never cuts what variant 0 keeps whole."""
        full_w, full_h = self._max_window(target)
        zooms = [self.hints.zoom] if self.hints.zoom < 1.0 else [1.0]
        if variants > 1:
            zooms += [z for z in VARIANT_ZOOMS if z not in zooms]
        first = self._slide(full_w * zooms[0], full_h * zooms[0])
        # Variant 0 is what a single output would be; the other zooms only offer alternatives.
        best = self._ranked(first)[0]
        windows = self._concat([first, *(self._slide(full_w * z, full_h * z) for z in zooms[1:])])
        chosen = [best]
        # A window is the source pixels it takes: on a small source (a 16x16 icon) windows a map pixel apart round
        # to the same pixels, and would make the same image twice.
        taken = {self._window_rect(windows, best)}
        if variants > 1:
            # Seeded jitter picks among comparably good, genuinely different windows; variant 0 stays the best.
            # Every variant keeps what variant 0 keeps: its faces, text, focal point, and enough of the core.
            jitter = rng.uniform(0.0, 0.04, size=windows.score.shape)
            ranked = np.argsort(-(windows.score + jitter), kind="stable")
            enough_core = min(float(windows.core[best]), VARIANT_KEEPS_ENOUGH) - 1e-9
            for limit in (0.5, 0.75, 0.9):
                for index in ranked:
                    if len(chosen) >= variants:
                        break
                    allowed = windows.as_safe_as(int(index), best) and windows.core[index] >= enough_core
                    if auto:
                        allowed = allowed and windows.extent[index] >= CROP_KEEPS_ENOUGH and windows.safe(int(index))
                    if allowed and all(self._iou(windows, index, other) < limit for other in chosen):
                        rect = self._window_rect(windows, int(index))
                        if rect not in taken:
                            taken.add(rect)
                            chosen.append(int(index))
                if len(chosen) >= variants:
                    break
        return [self._crop_plan(windows, index, target) for index in chosen]

    def _slide(self, width: float, height: float) -> _Windows:
        """Every position of one window size, one map pixel apart (the map is small, so this is cheap)."""
        w, h = width * self.sx, height * self.sy
        xs = np.linspace(0.0, self.map_w - w, max(1, int(np.ceil(self.map_w - w)) + 1))
        ys = np.linspace(0.0, self.map_h - h, max(1, int(np.ceil(self.map_h - h)) + 1))
        if self.focus is not None:
            # The window centred on the focal point, too: a window thinner than a map pixel could miss it otherwise.
            fx, fy = self.focus
            xs = np.unique(np.append(xs, min(max(fx - w / 2, 0.0), max(self.map_w - w, 0.0))))
            ys = np.unique(np.append(ys, min(max(fy - h / 2, 0.0), max(self.map_h - h, 0.0))))
        gx, gy = np.meshgrid(xs, ys)
        x, y = gx.ravel(), gy.ravel()
        ww, hh = np.full_like(x, w), np.full_like(x, h)
        return self._score(x, y, ww, hh)

    def _score(
        self,
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        w: npt.NDArray[np.float64],
        h: npt.NDArray[np.float64],
    ) -> _Windows:
        mass = self._box_sum(x, y, x + w, y + h)
        band = 1.5
        # Edges lying on the image border cut nothing.
        cut = np.zeros_like(mass)
        cut += np.where(x > 0.5, self._box_sum(x, y, x + band, y + h), 0.0)
        cut += np.where(x + w < self.map_w - 0.5, self._box_sum(x + w - band, y, x + w, y + h), 0.0)
        cut += np.where(y > 0.5, self._box_sum(x, y, x + w, y + band), 0.0)
        cut += np.where(y + h < self.map_h - 0.5, self._box_sum(x, y + h - band, x + w, y + h), 0.0)
        score = mass - EDGE_CUT_WEIGHT * cut
        face_ok = np.ones_like(mass, dtype=bool)
        whole = np.ones_like(mass, dtype=bool)
        for face in self.faces:
            inside = self._inside_share(face, x, y, w, h)
            fits = (face[2] <= w + 1e-6) & (face[3] <= h + 1e-6)
            # Losing a face that a window of this size could hold costs as much as cutting through it.
            lost = fits & (inside < 0.995)
            face_ok &= ~lost
            whole &= inside >= 0.995
            score = score - FACE_CUT_PENALTY * lost * (1.0 - 0.5 * inside)
        text_ok = np.ones_like(mass, dtype=bool)
        for text in self.texts:
            inside = self._inside_share(text, x, y, w, h)
            fits = (text[2] <= w + 1e-6) & (text[3] <= h + 1e-6)
            text_ok &= ~(fits & (inside < TEXT_KEPT))
            whole &= inside >= TEXT_KEPT
            score = score - TEXT_CUT_PENALTY * ((inside > 0.05) & (inside < TEXT_KEPT))
        focus_ok = np.ones_like(mass, dtype=bool)
        if self.focus is not None:
            # Centred on the focal point as far as the map's edges allow; a little slack lets the subject decide.
            fx, fy = self.focus
            ideal_x = np.clip(fx - w / 2, 0.0, np.maximum(self.map_w - w, 0.0))
            ideal_y = np.clip(fy - h / 2, 0.0, np.maximum(self.map_h - h, 0.0))
            focus_ok = (np.abs(x - ideal_x) <= FOCUS_SLACK * w + 0.5) & (np.abs(y - ideal_y) <= FOCUS_SLACK * h + 0.5)
            # ... and always inside, a little way in from the window's edges unless that is the photo's edge.
            mx, my = 0.05 * w, 0.05 * h
            focus_ok &= (x <= np.maximum(fx - mx, 0.0) + 1e-6) & (x + w >= np.minimum(fx + mx, self.map_w) - 1e-6)
            focus_ok &= (y <= np.maximum(fy - my, 0.0) + 1e-6) & (y + h >= np.minimum(fy + my, self.map_h) - 1e-6)
            score = score - 10.0 * ~focus_ok
        return _Windows(
            x=x,
            y=y,
            w=w,
            h=h,
            score=score,
            core=self._box_sum(x, y, x + w, y + h, self.core_integral),
            extent=self._box_sum(x, y, x + w, y + h, self.extent_integral),
            face_ok=face_ok,
            text_ok=text_ok,
            focus_ok=focus_ok,
            whole=whole,
        )

    def _ranked(self, windows: _Windows) -> list[int]:
        """Indices by score; among near-ties the best-composed window comes first."""
        # Windows that keep as much of the subject's core as the best one does, at nearly its score, are equally
        # good framings; composition picks among them.
        best = float(windows.score.max())
        most_core = float(windows.core.max())
        near = np.flatnonzero(
            ((windows.core >= most_core - CORE_TIE) & (windows.score >= best - 4 * SCORE_TIE))
            | (windows.score >= best - SCORE_TIE)
        )
        cx, cy = self.centroid
        wx = windows.x[near] + windows.w[near] * self._anchor(windows.w[near], axis=0)
        wy = windows.y[near] + windows.h[near] * self._anchor(windows.h[near], axis=1)
        distance = ((wx - cx) / windows.w[near]) ** 2 + ((wy - cy) / windows.h[near]) ** 2
        # Near-ties go to composition, but a clearly better score still wins over a slightly better placement.
        composed = near[np.lexsort((-windows.score[near], np.round(distance, 3)))]
        rest = np.argsort(-windows.score, kind="stable")
        seen = set(composed.tolist())
        return [int(i) for i in composed] + [int(i) for i in rest if int(i) not in seen]

    def _anchor(self, sizes: npt.NDArray[np.float64], axis: int) -> npt.NDArray[np.float64]:
        """Where in the window the subject should sit: the centre, or the nearer third when asked."""
        if not self.hints.thirds:
            return np.full_like(sizes, 0.5)
        centre = self.centroid[axis]
        extent = self.map_w if axis == 0 else self.map_h
        return np.where(centre < extent / 2, 1 / 3, 2 / 3) + 0 * sizes

    def _window_rect(self, windows: _Windows, index: int) -> Rect:
        return self._to_source_rect(windows.x[index], windows.y[index], windows.w[index], windows.h[index])

    def _crop_plan(self, windows: _Windows, index: int, target: Size) -> Plan:
        return Plan(
            mode="crop",
            source_rect=self._window_rect(windows, index),
            placed_rect=(0, 0, target.width, target.height),
            fill=None,
            kept=float(windows.core[index]),
            extent_kept=float(windows.extent[index]),
            safe=windows.safe(index),
        )

    # --- extend -------------------------------------------------------------------------------------------------

    def _extensions(
        self, target: Size, variants: int, fill: Fill, *, whole: bool, rng: np.random.Generator
    ) -> list[Plan]:
        source_aspect = self.source.width / self.source.height
        wide = target.aspect >= source_aspect  # the canvas grows sideways; the crop, if any, is vertical
        full_w, full_h = self._max_window(target)
        # Candidate crop extents along the cropped axis, from the tightest crop to the whole image.
        extent_min = full_h if wide else full_w
        extent_max = float(self.source.height if wide else self.source.width)
        chosen_extent = extent_max
        offset = 0.0
        if not whole:
            for extent in np.linspace(extent_min, extent_max, 12)[1:]:
                windows = self._slide(self.source.width, extent) if wide else self._slide(extent, self.source.height)
                index = self._ranked(windows)[0]
                if windows.extent[index] >= EXTEND_KEEPS_ENOUGH and windows.safe(index):
                    chosen_extent = float(extent)
                    offset = float(windows.y[index] / self.sy if wide else windows.x[index] / self.sx)
                    break
        # Alternatives to auto's own fill: a blurred reflection. A fill that was asked for holds for every variant.
        fills: list[Fill] = [fill, "blur"] if fill == "auto" else [fill]
        plans = []
        for variant in range(max(1, variants)):
            # Alternatives: the other fill, then the photo nudged towards its subject's side of the canvas.
            shift = 0.0 if variant < len(fills) else float(rng.choice([-1.0, 1.0])) * min(0.25, 0.08 * variant)
            plans.append(self._extend_plan(target, wide, chosen_extent, offset, fills[variant % len(fills)], shift))
        return _distinct(plans, target)

    def _extend_plan(self, target: Size, wide: bool, extent: float, offset: float, fill: Fill, shift: float) -> Plan:
        if wide:
            source_rect = self._clamp_rect(0, offset, self.source.width, extent)
            scale = target.height / source_rect[3]
            placed_w = min(target.width, max(1, round(source_rect[2] * scale)))
            slack = target.width - placed_w
            x = round(slack / 2 + shift * slack)
            placed = (min(max(0, x), slack), 0, placed_w, target.height)
        else:
            source_rect = self._clamp_rect(offset, 0, extent, self.source.height)
            scale = target.width / source_rect[2]
            placed_h = min(target.height, max(1, round(source_rect[3] * scale)))
            slack = target.height - placed_h
            y = round(slack / 2 + shift * slack)
            placed = (0, min(max(0, y), slack), target.width, placed_h)
        sx, sy, sw, sh = source_rect
        x0, y0, x1, y1 = (np.array([v]) for v in (sx * self.sx, sy * self.sy, (sx + sw) * self.sx, (sy + sh) * self.sy))
        kept = float(self._box_sum(x0, y0, x1, y1, self.core_integral)[0])
        crops = placed[2] < target.width or placed[3] < target.height
        return Plan(
            mode="extend" if crops else "crop", source_rect=source_rect, placed_rect=placed, fill=fill, kept=kept
        )

    # --- geometry helpers ---------------------------------------------------------------------------------------

    def _mass_box(self, share: npt.NDArray[np.float64], trim: float = 0.02) -> Rect:
        """The box holding all but ``trim`` of a map's mass on each side, in source pixels: the subject as found."""
        columns, rows = np.cumsum(share.sum(axis=0)), np.cumsum(share.sum(axis=1))
        x0, x1 = int(np.searchsorted(columns, trim)), int(np.searchsorted(columns, 1 - trim)) + 1
        y0, y1 = int(np.searchsorted(rows, trim)), int(np.searchsorted(rows, 1 - trim)) + 1
        return self._clamp_rect(x0 / self.sx, y0 / self.sy, (x1 - x0) / self.sx, (y1 - y0) / self.sy)

    def _box_sum(
        self,
        x0: npt.NDArray[np.float64],
        y0: npt.NDArray[np.float64],
        x1: npt.NDArray[np.float64],
        y1: npt.NDArray[np.float64],
        integral: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Importance inside continuous boxes: the integral image sampled bilinearly at fractional corners."""
        p = self.integral if integral is None else integral
        return self._at(p, x1, y1) - self._at(p, x0, y1) - self._at(p, x1, y0) + self._at(p, x0, y0)

    def _at(
        self, p: npt.NDArray[np.float64], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        x = np.clip(x, 0, self.map_w)
        y = np.clip(y, 0, self.map_h)
        x0 = np.minimum(np.floor(x).astype(int), self.map_w - 1)
        y0 = np.minimum(np.floor(y).astype(int), self.map_h - 1)
        fx, fy = x - x0, y - y0
        return (
            p[y0, x0] * (1 - fx) * (1 - fy)
            + p[y0, x0 + 1] * fx * (1 - fy)
            + p[y0 + 1, x0] * (1 - fx) * fy
            + p[y0 + 1, x0 + 1] * fx * fy
        )

    def _inside_share(
        self,
        box: Box,
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        w: npt.NDArray[np.float64],
        h: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        bx, by, bw, bh = box
        ix = np.clip(np.minimum(x + w, bx + bw) - np.maximum(x, bx), 0, None)
        iy = np.clip(np.minimum(y + h, by + bh) - np.maximum(y, by), 0, None)
        area = max(bw * bh, 1e-9)
        return np.asarray(ix * iy / area, dtype=np.float64)

    def _iou(self, windows: _Windows, a: int, b: int) -> float:
        ix = max(0.0, min(windows.x[a] + windows.w[a], windows.x[b] + windows.w[b]) - max(windows.x[a], windows.x[b]))
        iy = max(0.0, min(windows.y[a] + windows.h[a], windows.y[b] + windows.h[b]) - max(windows.y[a], windows.y[b]))
        inter = ix * iy
        union = windows.w[a] * windows.h[a] + windows.w[b] * windows.h[b] - inter
        return float(inter / union) if union > 0 else 1.0

    def _clip(self, box: Box) -> Box:
        x0, y0 = max(0.0, box[0]), max(0.0, box[1])
        x1, y1 = min(float(self.map_w), box[0] + box[2]), min(float(self.map_h), box[1] + box[3])
        return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))

    def _to_map(self, box: Box) -> Box:
        return (box[0] * self.sx, box[1] * self.sy, box[2] * self.sx, box[3] * self.sy)

    def _to_source_rect(self, x: float, y: float, w: float, h: float) -> Rect:
        return self._clamp_rect(x / self.sx, y / self.sy, w / self.sx, h / self.sy)

    def _clamp_rect(self, x: float, y: float, w: float, h: float) -> Rect:
        g = self.grid
        width = max(g, min(self.source.width, g * round(w / g)))
        height = max(g, min(self.source.height, g * round(h / g)))
        left = min(max(0, g * round(x / g)), self.source.width - width)
        top = min(max(0, g * round(y / g)), self.source.height - height)
        return (int(left), int(top), int(width), int(height))

    @staticmethod
    def _concat(parts: list[_Windows]) -> _Windows:
        return _Windows(
            x=np.concatenate([p.x for p in parts]),
            y=np.concatenate([p.y for p in parts]),
            w=np.concatenate([p.w for p in parts]),
            h=np.concatenate([p.h for p in parts]),
            score=np.concatenate([p.score for p in parts]),
            core=np.concatenate([p.core for p in parts]),
            extent=np.concatenate([p.extent for p in parts]),
            face_ok=np.concatenate([p.face_ok for p in parts]),
            text_ok=np.concatenate([p.text_ok for p in parts]),
            focus_ok=np.concatenate([p.focus_ok for p in parts]),
            whole=np.concatenate([p.whole for p in parts]),
        )


def _distinct(plans: list[Plan], target: Size) -> list[Plan]:
    """The plans that make different images: where the photo fills the canvas, fills and nudges change nothing."""
    seen: set[object] = set()
    kept = []
    for plan in plans:
        fills_nothing = plan.placed_rect == (0, 0, target.width, target.height)
        key = (plan.source_rect, plan.placed_rect, None if fills_nothing else plan.fill)
        if key not in seen:
            seen.add(key)
            kept.append(plan)
    return kept


def _densest_share(importance: npt.NDArray[np.float64], mass: float) -> npt.NDArray[np.float64]:
    """The map's densest cells that together hold ``mass`` of it, zero elsewhere, scaled to sum to 1."""
    ordered = np.sort(importance.ravel())[::-1]
    threshold = ordered[min(len(ordered) - 1, int(np.searchsorted(np.cumsum(ordered), mass)))]
    densest = np.where(importance >= threshold, importance, 0.0)
    return densest / max(float(densest.sum()), 1e-12)


def _integral(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    padded = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    padded[1:, 1:] = values.cumsum(axis=0).cumsum(axis=1)
    return padded


def _focus_box(target: FocusTarget, analysis: Analysis) -> Box | tuple[()] | None:
    """The detected thing "focus on the ..." names, in source pixels; ``()`` for the subject (the default framing),
    ``None`` when nothing of the kind was found."""
    if target == "subject":
        return ()
    candidates: tuple[Box, ...]
    if target == "text":
        candidates = analysis.texts
    elif target == "person":
        candidates = analysis.faces or analysis.people
    else:
        candidates = analysis.faces
    if not candidates:
        return None
    if target == "left face":
        return min(candidates, key=lambda b: b[0] + b[2] / 2)
    if target == "right face":
        return max(candidates, key=lambda b: b[0] + b[2] / 2)
    return max(candidates, key=lambda b: b[2] * b[3])
