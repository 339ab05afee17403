"""Build the crop-placement evaluation set deterministically into bench/out/quality-set/ (git-ignored).

Two families of sources, 2-12 MP, landscape, portrait and square:

* real: the scikit-image sample photos hand-labelled in bench/quality/labels.json, upscaled ("native"), and placed
  off-centre on wide or tall canvases of blurred fill or tinted texture ("wide", "tall"), two of them stored
  rotated with an EXIF orientation tag (labels are in oriented pixels, like the engine's source_rect);
* synthetic: a subject with an exactly known box (textured shape, pasted photo patch, horse silhouette, text
  block) on flat, gradient, noise, texture (grass, gravel, brick) or star-field backgrounds, centred, off-centre,
  in corners, small and large.

Each case is written once as <id>.jpg|png plus a <id>.json sidecar with its labels and a stamp of everything it was
built from; ``ensure_built`` rebuilds only what is missing or stale. Usage:

    python bench/quality/build_set.py [--quick] [--force] [--preview]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import OUT_DIR

BUILD_VERSION = "2"
SET_DIR = OUT_DIR / "quality-set"
LABELS_PATH = Path(__file__).with_name("labels.json")
JPEG_QUALITY = 90

Box = tuple[int, int, int, int]  # x, y, width, height
RGB = tuple[int, int, int]


# --------------------------------------------------------------------------------------------------------------
# Case specifications: plain data, so the stamp of a case is the hash of its spec.


@dataclass(frozen=True)
class Spec:
    id: str
    family: str  # "real" | "synthetic"
    canvas: tuple[int, int] | None  # None: the photo alone, scaled to `megapixels`
    background: str = "blur"  # blur | flat | gradient | noise | grass | gravel | brick | hubble
    photo: str = ""  # real: labels.json photo name
    subject: str = ""  # synthetic: shape | patch:<name> | horse | text
    size: float = 0.5  # real on canvas: photo side / canvas side; synthetic: subject long side / canvas short side
    at: tuple[float, float] = (0.5, 0.5)  # real: offset in the free space; synthetic: subject centre
    megapixels: float = 3.0
    orientation: int = 1  # EXIF orientation tag the file is stored with
    fmt: str = "jpeg"
    tags: tuple[str, ...] = ()
    quick: bool = False


@dataclass
class Case:
    """A built case as stored in its sidecar: labels in oriented source pixels."""

    id: str
    file: str
    width: int
    height: int
    subject: Box
    faces: list[Box]
    tags: list[str]
    quick: bool
    stamp: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return SET_DIR / self.file


def _real_specs() -> list[Spec]:
    # (photo, native MP, wide canvas, wide photo-height share, wide x offset, wide bg,
    #  tall canvas, tall photo-width share, tall y offset, tall bg)
    layouts = [
        ("astronaut", 2.5, (4400, 2000), 1.0, 0.12, "blur", (2250, 4000), 1.0, 0.08, "gravel"),
        ("camera", 3.0, (3840, 1600), 0.9, 0.88, "brick", (1800, 3200), 0.9, 0.92, "blur"),
        ("chelsea", 2.2, (4000, 1500), 1.0, 0.92, "blur", (2400, 4000), 0.85, 0.2, "grass"),
        ("coffee", 12.0, (4200, 1800), 0.95, 0.08, "gravel", (2000, 3600), 1.0, 0.85, "blur"),
        ("rocket", 3.0, (4000, 1600), 1.0, 0.8, "blur", (2250, 4000), 1.0, 0.3, "brick"),
        ("motorcycle", 3.0, (4400, 1800), 1.0, 0.2, "grass", (2000, 3000), 1.0, 0.75, "blur"),
        ("clock", 2.0, (3600, 1500), 0.8, 0.9, "brick", (1600, 2800), 0.9, 0.15, "blur"),
    ]
    specs: list[Spec] = []
    for photo, mp, wide, wide_share, wide_x, wide_bg, tall, tall_share, tall_y, tall_bg in layouts:
        specs.append(Spec(f"real-{photo}-native", "real", None, photo=photo, megapixels=mp, tags=("real", "centred")))
        specs.append(
            Spec(
                f"real-{photo}-wide",
                "real",
                wide,
                wide_bg,
                photo=photo,
                size=wide_share,
                at=(wide_x, 0.5),
                tags=("real", "off-centre", "landscape"),
            )
        )
        specs.append(
            Spec(
                f"real-{photo}-tall",
                "real",
                tall,
                tall_bg,
                photo=photo,
                size=tall_share,
                at=(0.5, tall_y),
                tags=("real", "off-centre", "portrait"),
            )
        )
    # The same layouts stored rotated: the file's pixels are sideways, the labels are in oriented pixels.
    specs.append(
        Spec(
            "real-astronaut-tall-exif6",
            "real",
            (2250, 4000),
            "gravel",
            photo="astronaut",
            size=1.0,
            at=(0.5, 0.08),
            orientation=6,
            tags=("real", "off-centre", "portrait", "exif"),
        )
    )
    specs.append(
        Spec(
            "real-coffee-wide-exif8",
            "real",
            (4200, 1800),
            "gravel",
            photo="coffee",
            size=0.95,
            at=(0.08, 0.5),
            orientation=8,
            tags=("real", "off-centre", "landscape", "exif"),
        )
    )
    return specs


def _synthetic_specs() -> list[Spec]:
    # (canvas, background, subject, size, centre)
    rows: list[tuple[tuple[int, int], str, str, float, tuple[float, float]]] = [
        ((3000, 2000), "flat", "shape", 0.5, (0.5, 0.5)),
        ((3840, 2160), "flat", "shape", 0.3, (0.2, 0.5)),
        ((3840, 2160), "gradient", "shape", 0.12, (0.8, 0.3)),
        ((2400, 1200), "noise", "shape", 0.12, (0.15, 0.75)),
        ((3000, 2000), "grass", "shape", 0.3, (0.75, 0.5)),
        ((2400, 1200), "noise", "shape", 0.15, (0.08, 0.12)),
        ((2160, 3840), "gravel", "shape", 0.2, (0.5, 0.12)),
        ((3000, 3000), "hubble", "shape", 0.3, (0.5, 0.5)),
        ((3840, 2160), "gravel", "patch:astronaut_head", 0.45, (0.25, 0.45)),
        ((4000, 3000), "brick", "patch:astronaut_head", 0.35, (0.8, 0.4)),
        ((2000, 3000), "flat", "patch:astronaut_head", 0.5, (0.5, 0.5)),
        ((2160, 3840), "gradient", "patch:astronaut_head", 0.4, (0.5, 0.2)),
        ((2000, 3000), "noise", "patch:astronaut_head", 0.35, (0.5, 0.8)),
        ((3840, 2160), "hubble", "patch:astronaut_head", 0.15, (0.7, 0.3)),
        ((4000, 3000), "grass", "patch:astronaut_head", 0.2, (0.88, 0.85)),
        ((3000, 2000), "grass", "patch:chelsea_head", 0.5, (0.3, 0.5)),
        ((2000, 3000), "gradient", "patch:chelsea_head", 0.6, (0.5, 0.75)),
        ((2160, 3840), "brick", "patch:chelsea_head", 0.3, (0.25, 0.3)),
        ((3000, 2000), "brick", "patch:coffee_cup", 0.45, (0.7, 0.6)),
        ((1500, 2000), "flat", "patch:coffee_cup", 0.6, (0.5, 0.3)),
        ((3840, 2160), "flat", "patch:motorcycle", 0.7, (0.6, 0.5)),
        ((3840, 2160), "gravel", "horse", 0.5, (0.4, 0.55)),
        ((2160, 3840), "noise", "horse", 0.5, (0.5, 0.65)),
        ((3000, 2000), "hubble", "horse", 0.2, (0.85, 0.8)),
        ((3840, 2160), "flat", "text", 0.7, (0.3, 0.5)),
        ((2000, 3000), "gradient", "text", 0.8, (0.5, 0.25)),
        ((3000, 2000), "brick", "text", 0.6, (0.7, 0.7)),
        ((2000, 2000), "grass", "text", 0.7, (0.5, 0.5)),
        ((2400, 1200), "flat", "text", 0.9, (0.6, 0.35)),
    ]
    specs = []
    for index, (canvas, background, subject, size, at) in enumerate(rows, start=1):
        w, h = canvas
        tags = ["synthetic", "landscape" if w > h else "portrait" if h > w else "square"]
        tags.append("centred" if abs(at[0] - 0.5) < 0.05 and abs(at[1] - 0.5) < 0.05 else "off-centre")
        if size <= 0.2:
            tags.append("small")
        tags.append("busy" if background in ("grass", "gravel", "brick", "hubble", "noise") else "plain")
        kind = subject.split(":")[0]
        fmt = "png" if subject == "text" and background == "flat" else "jpeg"
        specs.append(
            Spec(
                f"syn{index:02d}-{background}-{subject.replace('patch:', '')}",
                "synthetic",
                canvas,
                background,
                subject=subject,
                size=size,
                at=at,
                fmt=fmt,
                tags=(*tags, kind),
            )
        )
    return specs


def all_specs() -> list[Spec]:
    real, synthetic = _real_specs(), _synthetic_specs()
    # A fixed third of the set for --quick: one layout per photo (native, wide, tall in turn), one EXIF case,
    # every third synthetic scene.
    quick = {s.id for i, s in enumerate(real) if "exif" not in s.tags and i % 3 == (i // 3) % 3}
    quick |= {real[-2].id} | {s.id for i, s in enumerate(synthetic) if i % 3 == 0}
    return [Spec(**{**asdict(s), "quick": s.id in quick}) for s in real + synthetic]


# --------------------------------------------------------------------------------------------------------------
# Sources: photos, labels, textures.


@cache
def labels() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(LABELS_PATH.read_text(encoding="utf-8"))
    return data


@cache
def load_photo(name: str) -> np.ndarray:
    from skimage import data

    loaders: dict[str, Callable[[], np.ndarray]] = {
        "astronaut": data.astronaut,
        "camera": data.camera,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
        "clock": data.clock,
        "grass": data.grass,
        "gravel": data.gravel,
        "brick": data.brick,
        "hubble": data.hubble_deep_field,
    }
    array = np.asarray(loaders[name]())
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3].astype(np.uint8))


def resize_array(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.LANCZOS))


def scale_box(box: Sequence[float], sx: float, sy: float, dx: float = 0, dy: float = 0) -> Box:
    x, y, w, h = box
    x0, y0 = round(x * sx + dx), round(y * sy + dy)
    return (x0, y0, round((x + w) * sx + dx) - x0, round((y + h) * sy + dy) - y0)


def rng_for(case_id: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(case_id.encode()))


def mirror_tile(tile: np.ndarray, width: int, height: int) -> np.ndarray:
    """Cover width x height by tiling the tile and its mirror images (no seams)."""
    quad = np.concatenate([np.concatenate([tile, tile[:, ::-1]], 1), np.concatenate([tile[::-1], tile[::-1, ::-1]], 1)])
    reps = (math.ceil(height / quad.shape[0]), math.ceil(width / quad.shape[1]), 1)
    return np.tile(quad, reps)[:height, :width]


def add_grain(canvas: np.ndarray, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    """Camera-like grain from a tiled noise patch (cheap on 12 MP); 509 px so it never aligns with JPEG blocks."""
    patch = rng.normal(0, sigma, (509, 509, 1)).astype(np.float32)
    grain = mirror_tile(patch, canvas.shape[1], canvas.shape[0])
    return np.clip(canvas.astype(np.float32) + grain, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# Backgrounds.


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.uniform(60, 200, 3).astype(np.float32)
    b = rng.uniform(60, 200, 3).astype(np.float32)
    return a, b


def background(
    kind: str, width: int, height: int, rng: np.random.Generator, photo: np.ndarray | None = None
) -> np.ndarray:
    colour_a, colour_b = _palette(rng)
    if kind == "flat":
        return np.broadcast_to(colour_a.astype(np.uint8), (height, width, 3)).copy()
    if kind == "gradient":
        angle = rng.uniform(0, math.pi)
        xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :] * math.cos(angle)
        ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None] * math.sin(angle)
        t = np.clip(xs + ys + 0.5, 0, 1)[:, :, None]
        return (colour_a * (1 - t) + colour_b * t).astype(np.uint8)
    if kind == "noise":  # cloudy low-frequency colour noise
        small = rng.uniform(0, 255, (max(2, height // 96), max(2, width // 96), 3)).astype(np.uint8)
        clouds = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC), np.float32)
        return (0.4 * clouds + 0.6 * colour_a).astype(np.uint8)
    if kind in ("grass", "gravel", "brick"):
        tex = load_photo(kind)[:, :, 0]
        tex = resize_array(tex, (tex.shape[1] * 2, tex.shape[0] * 2)).astype(np.float32) / 255.0
        tiled = mirror_tile(tex[:, :, None], width, height)
        shade = 0.35 + 1.1 * (tiled - tiled.mean())
        return np.clip(colour_a * (0.65 + shade), 0, 255).astype(np.uint8)
    if kind == "hubble":
        tex = load_photo("hubble")
        tex = resize_array(tex, (tex.shape[1] * 2, tex.shape[0] * 2))
        return mirror_tile(tex, width, height).copy()
    if kind == "blur":  # the photo itself stretched to cover the canvas and blurred away (the "blur fill" look)
        assert photo is not None
        tiny = Image.fromarray(photo).resize((max(8, width // 32), max(8, height // 32)), Image.Resampling.BOX)
        tiny = tiny.filter(ImageFilter.GaussianBlur(radius=2))
        big = np.asarray(tiny.resize((width, height), Image.Resampling.BICUBIC), np.float32)
        return np.clip(big * 0.8 + 20, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown background {kind!r}")


# --------------------------------------------------------------------------------------------------------------
# Subjects for the synthetic scenes: an RGB patch, its alpha, and labels relative to the patch.


@dataclass
class Sprite:
    rgb: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) float32 0..1
    subject: Box
    faces: list[Box]


def soft_rect_alpha(width: int, height: int, feather: int) -> np.ndarray:
    ax = np.clip(np.minimum(np.arange(width), np.arange(width)[::-1]) / feather, 0, 1).astype(np.float32)
    ay = np.clip(np.minimum(np.arange(height), np.arange(height)[::-1]) / feather, 0, 1).astype(np.float32)
    return ay[:, None] * ax[None, :]


def alpha_bbox(alpha: np.ndarray) -> Box:
    ys, xs = np.nonzero(alpha >= 0.5)
    return (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))


def sprite_patch(name: str, long_side: int) -> Sprite:
    patch = labels()["patches"][name]
    photo = load_photo(patch["photo"])
    x, y, w, h = patch["box"]
    scale = long_side / max(w, h)
    size = (round(w * scale), round(h * scale))
    rgb = resize_array(np.ascontiguousarray(photo[y : y + h, x : x + w]), size)
    alpha = soft_rect_alpha(*size, feather=max(2, round(0.03 * max(size))))
    faces = [scale_box(f, scale, scale, -x * scale, -y * scale) for f in patch["faces"]]
    return Sprite(rgb, alpha, alpha_bbox(alpha), faces)


def sprite_shape(long_side: int, rng: np.random.Generator) -> Sprite:
    w, h = long_side, round(long_side * rng.uniform(0.55, 0.8))
    if rng.random() < 0.5:
        w, h = h, w
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    if rng.random() < 0.5:
        draw.ellipse((0, 0, w - 1, h - 1), fill=255)
    else:
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=min(w, h) // 5, fill=255)
    alpha = np.asarray(mask.filter(ImageFilter.GaussianBlur(1.5)), np.float32) / 255.0
    hue = rng.uniform(0, 1)
    base = np.array(Image.new("HSV", (1, 1), (int(hue * 255), 230, 235)).convert("RGB"), np.float32)[0, 0]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin((xx + yy) * (2 * math.pi / max(8.0, long_side / 12)))
    light = 1.0 - 0.35 * (yy / h)
    rgb = np.clip(base * (0.6 + 0.4 * stripes[:, :, None]) * light[:, :, None], 0, 255).astype(np.uint8)
    return Sprite(rgb, alpha, alpha_bbox(alpha), [])


def sprite_horse(long_side: int, rng: np.random.Generator) -> Sprite:
    from skimage import data

    mask = (~data.horse()).astype(np.uint8) * 255
    scale = long_side / max(mask.shape)
    size = (round(mask.shape[1] * scale), round(mask.shape[0] * scale))
    alpha = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.BILINEAR), np.float32) / 255.0
    tone = np.array([rng.uniform(90, 140), rng.uniform(55, 80), rng.uniform(30, 50)], np.float32)
    yy = np.linspace(1.15, 0.75, size[1], dtype=np.float32)[:, None, None]
    rgb = np.clip(tone * yy * np.ones((1, size[0], 1), np.float32), 0, 255).astype(np.uint8)
    return Sprite(rgb, alpha, alpha_bbox(alpha), [scale_box(labels()["horse"]["head"], scale, scale)])


TEXT_LINES = ("Quarterly results", "Revenue up 12% year on year", "All hands - Thursday 10:00", "Room 4B and online")


def sprite_text(long_side: int, busy: bool, rng: np.random.Generator) -> Sprite:
    """A left-aligned text block (title + three lines), on a light card when the background is busy."""
    ref_sizes = (140, 100, 100, 100)  # title, then three lines
    widths = [ImageFont.load_default(size=s).getbbox(t)[2] for s, t in zip(ref_sizes, TEXT_LINES, strict=True)]
    sizes = [max(8, round(s * long_side / max(widths))) for s in ref_sizes]
    fonts = [ImageFont.load_default(size=s) for s in sizes]
    pad = round(0.08 * long_side) if busy else 0
    line_h = [round(s * 1.25) for s in sizes]
    w, h = long_side + 2 * pad + 4, sum(line_h) + 2 * pad + round(0.3 * sizes[-1])  # room for descenders
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if busy:
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=pad // 2, fill=(245, 242, 235, 235))
    ink = tuple(int(v) for v in rng.integers(10, 60, 3))
    y = pad
    title: Box | None = None
    for font, text, lh in zip(fonts, TEXT_LINES, line_h, strict=True):
        draw.text((pad, y), text, font=font, fill=(*ink, 255))
        if title is None:
            x0, y0, x1, y1 = draw.textbbox((pad, y), text, font=font)
            title = (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
        y += lh
    array = np.asarray(layer)
    alpha = array[:, :, 3].astype(np.float32) / 255.0
    assert title is not None
    return Sprite(np.ascontiguousarray(array[:, :, :3]), alpha, alpha_bbox(alpha), [title])


def make_sprite(spec: Spec, rng: np.random.Generator) -> Sprite:
    long_side = round(spec.size * min(spec.canvas or (0, 0)))
    kind, _, name = spec.subject.partition(":")
    if kind == "patch":
        return sprite_patch(name, long_side)
    if kind == "shape":
        return sprite_shape(long_side, rng)
    if kind == "horse":
        return sprite_horse(long_side, rng)
    if kind == "text":
        return sprite_text(long_side, spec.background not in ("flat", "gradient"), rng)
    raise ValueError(spec.subject)


def composite(canvas: np.ndarray, sprite: Sprite, x: int, y: int) -> None:
    h, w = sprite.alpha.shape
    region = canvas[y : y + h, x : x + w].astype(np.float32)
    a = sprite.alpha[:, :, None]
    canvas[y : y + h, x : x + w] = (sprite.rgb.astype(np.float32) * a + region * (1 - a)).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# Scenes.


@dataclass
class Scene:
    pixels: np.ndarray
    subject: Box
    faces: list[Box]


def build_real(spec: Spec, rng: np.random.Generator) -> Scene:
    label = labels()["photos"][spec.photo]
    photo = load_photo(spec.photo)
    ph, pw = photo.shape[:2]
    if spec.canvas is None:
        scale = math.sqrt(spec.megapixels * 1e6 / (pw * ph))
        size = (round(pw * scale), round(ph * scale))
        pixels = resize_array(photo, size)
        sx, sy = size[0] / pw, size[1] / ph
        return Scene(
            add_grain(pixels, rng), scale_box(label["subject"], sx, sy), [scale_box(f, sx, sy) for f in label["faces"]]
        )
    cw, ch = spec.canvas
    # The photo takes `size` of the canvas height (wide canvas) or width (tall canvas).
    scale = spec.size * ch / ph if cw / ch > pw / ph else spec.size * cw / pw
    size = (min(cw, round(pw * scale)), min(ch, round(ph * scale)))
    x, y = round(spec.at[0] * (cw - size[0])), round(spec.at[1] * (ch - size[1]))
    canvas = background(spec.background, cw, ch, rng, photo)
    canvas[y : y + size[1], x : x + size[0]] = resize_array(photo, size)
    sx, sy = size[0] / pw, size[1] / ph
    return Scene(
        add_grain(canvas, rng),
        scale_box(label["subject"], sx, sy, x, y),
        [scale_box(f, sx, sy, x, y) for f in label["faces"]],
    )


def build_synthetic(spec: Spec, rng: np.random.Generator) -> Scene:
    assert spec.canvas is not None
    cw, ch = spec.canvas
    canvas = background(spec.background, cw, ch, rng)
    sprite = make_sprite(spec, rng)
    h, w = sprite.alpha.shape
    margin = round(0.01 * min(cw, ch))
    x = min(max(margin, round(spec.at[0] * cw - w / 2)), cw - w - margin)
    y = min(max(margin, round(spec.at[1] * ch - h / 2)), ch - h - margin)
    composite(canvas, sprite, x, y)
    sub = sprite.subject
    return Scene(
        add_grain(canvas, rng),
        (sub[0] + x, sub[1] + y, sub[2], sub[3]),
        [(f[0] + x, f[1] + y, f[2], f[3]) for f in sprite.faces],
    )


# --------------------------------------------------------------------------------------------------------------
# Storage.

# Stored pixels for an oriented image: orientation 6 is displayed by rotating the stored image 90 degrees
# clockwise, so the stored image is the oriented one rotated 90 degrees counter-clockwise; 8 the other way.
_STORE_ROTATION = {1: 0, 6: 1, 8: -1}


def save(scene: Scene, spec: Spec, path: Path) -> None:
    stored = np.rot90(scene.pixels, _STORE_ROTATION[spec.orientation]) if spec.orientation != 1 else scene.pixels
    image = Image.fromarray(np.ascontiguousarray(stored))
    if spec.fmt == "png":
        image.save(path, "PNG", compress_level=6)
        return
    exif = Image.Exif()
    if spec.orientation != 1:
        exif[0x0112] = spec.orientation
    image.save(path, "JPEG", quality=JPEG_QUALITY, exif=exif.tobytes())
    if spec.orientation != 1:  # the round trip through EXIF must give back the oriented scene
        with Image.open(path) as check:
            shown = ImageOps.exif_transpose(check)
            assert shown.size == (scene.pixels.shape[1], scene.pixels.shape[0]), (spec.id, shown.size)


def stamp(spec: Spec) -> str:
    material = json.dumps([BUILD_VERSION, {**asdict(spec), "quick": None}, labels()], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def build_case(spec: Spec) -> Case:
    rng = rng_for(spec.id)
    scene = build_real(spec, rng) if spec.family == "real" else build_synthetic(spec, rng)
    file = f"{spec.id}.{'png' if spec.fmt == 'png' else 'jpg'}"
    SET_DIR.mkdir(parents=True, exist_ok=True)
    save(scene, spec, SET_DIR / file)
    height, width = scene.pixels.shape[:2]
    case = Case(
        spec.id,
        file,
        width,
        height,
        scene.subject,
        scene.faces,
        list(spec.tags),
        spec.quick,
        stamp(spec),
        {"orientation": spec.orientation, "background": spec.background},
    )
    _check_labels(case)
    (SET_DIR / f"{spec.id}.json").write_text(json.dumps(asdict(case), indent=1), encoding="utf-8")
    return case


def _check_labels(case: Case) -> None:
    for x, y, w, h in [case.subject, *case.faces]:
        inside = min(w, h) > 0 and min(x, y) >= 0 and x + w <= case.width and y + h <= case.height
        if not inside:
            raise ValueError(f"{case.id}: label {(x, y, w, h)} outside {case.width}x{case.height}")


def load_case(spec: Spec) -> Case | None:
    sidecar = SET_DIR / f"{spec.id}.json"
    if not sidecar.exists():
        return None
    raw = json.loads(sidecar.read_text(encoding="utf-8"))
    case = Case(**{**raw, "subject": tuple(raw["subject"]), "faces": [tuple(f) for f in raw["faces"]]})
    if case.stamp != stamp(spec) or not case.path.exists():
        return None
    return case


def ensure_built(specs: Sequence[Spec], *, force: bool = False, verbose: bool = True) -> list[Case]:
    cases = []
    for spec in specs:
        case = None if force else load_case(spec)
        if case is None:
            started = time.perf_counter()
            case = build_case(spec)
            if verbose:
                print(
                    f"  built {case.file} {case.width}x{case.height} in {time.perf_counter() - started:.1f}s",
                    file=sys.stderr,
                )
        cases.append(case)
    manifest = {"version": BUILD_VERSION, "cases": [asdict(c) for c in cases]}
    (SET_DIR / ("manifest-quick.json" if all(s.quick for s in specs) else "manifest.json")).write_text(
        json.dumps(manifest, indent=1), encoding="utf-8"
    )
    return cases


def select_specs(quick: bool) -> list[Spec]:
    return [s for s in all_specs() if s.quick or not quick]


# --------------------------------------------------------------------------------------------------------------
# Preview: each case shrunk with its labels drawn (subject green, faces red), for checking labels by eye.


def write_preview(case: Case, max_side: int = 900) -> Path:
    with Image.open(case.path) as raw:
        image = ImageOps.exif_transpose(raw).convert("RGB")
    factor = max_side / max(image.size)
    image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for box, colour in [(case.subject, (0, 255, 0)), *[(f, (255, 0, 0)) for f in case.faces]]:
        x, y, w, h = (v * factor for v in box)
        draw.rectangle((x, y, x + w, y + h), outline=colour, width=3)
    out = SET_DIR / "preview"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{case.id}.jpg"
    image.save(path, quality=80)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="build only the quick third of the set")
    parser.add_argument("--force", action="store_true", help="rebuild even when the files are current")
    parser.add_argument("--preview", action="store_true", help="also write label previews to preview/")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cases = ensure_built(select_specs(args.quick), force=args.force)
    if args.preview:
        for case in cases:
            write_preview(case)
    families = {fam: sum(fam in c.tags for c in cases) for fam in ("real", "synthetic")}
    megapixels = [c.width * c.height / 1e6 for c in cases]
    print(
        f"{len(cases)} cases in {SET_DIR} ({families['real']} real, {families['synthetic']} synthetic, "
        f"{min(megapixels):.1f}-{max(megapixels):.1f} MP) in {time.perf_counter() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
