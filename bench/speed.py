"""Speed: one 12 MP JPEG photo to 1080x1080, 1920x1080 and 1080x1920 JPEGs, warm, side by side in one process.

    python bench/speed.py [--rounds N] [--markdown]

Contenders, each producing the same three JPEGs (quality 85) from the same bytes, in interleaved rounds:
  ours       engine resize(..., mode="crop", output_format="jpeg"): all three sizes in one call
  pyvips     thumbnail_buffer(data, w, height=h, crop="attention") per size (three decodes, as people use it)
  smartcrop  smartcrop (PyPI) SmartCrop().crop(image, w, h) + Pillow crop/resize per size, one decode (slow: fewer
             rounds)
  floor      Pillow decode with draft (shrink-on-load) + one LANCZOS resize per size of the centred window + encode;
             no analysis at all (same resampler settings as the engine's renderer); "floor decode only" is its
             decode step alone, for reference
Reports median wall time, interquartile range and CPU time, and the ratios ours/pyvips (goal <= 1),
smartcrop/ours (goal >= 10) and ours/floor (the cost of the analysis).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Engine,
    Samples,
    interleaved_rounds,
    load_engine,
    machine_line,
    ms,
    out_dir,
    render_table,
    stats,
)

SIZES: tuple[tuple[int, int], ...] = ((1080, 1080), (1920, 1080), (1080, 1920))
QUALITY = 85
PHOTO_VERSION = 1


def make_photo() -> Path:
    """A deterministic 4000x3000 (12 MP) JPEG, quality 90: the coffee photo cropped to 4:3, upscaled, with sensor-
    like noise and fine grain so the file has realistic detail and size (about 3 MB)."""
    path = out_dir() / f"speed-12mp-v{PHOTO_VERSION}.jpg"
    if path.exists():
        return path
    from skimage import data

    source = data.coffee()[:, 33:566]  # 533x400, 4:3
    big = np.asarray(Image.fromarray(source).resize((4000, 3000), Image.Resampling.LANCZOS), np.float32)
    rng = np.random.default_rng(12)
    big += rng.normal(0, 5, big.shape[:2]).astype(np.float32)[:, :, None]  # luminance grain
    big += rng.normal(0, 2, big.shape).astype(np.float32)  # chroma grain
    Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return path


# --------------------------------------------------------------------------------------------------------------
# Contenders: each returns the encoded outputs, so the last call can be checked.


def run_ours(engine: Engine, data: bytes) -> list[bytes]:
    request = engine.request_type(
        sizes=tuple(engine.size_type(w, h) for w, h in SIZES), mode="crop", output_format="jpeg"
    )
    return [o.data for o in engine.resize(data, request, engine.limits_type()).outputs]


def run_pyvips(data: bytes) -> list[bytes]:
    import pyvips

    return [
        pyvips.Image.thumbnail_buffer(data, w, height=h, crop="attention").write_to_buffer(".jpg", Q=QUALITY)
        for w, h in SIZES
    ]


def encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def run_smartcrop(data: bytes) -> list[bytes]:
    from smartcrop import SmartCrop

    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    cropper = SmartCrop()
    outputs = []
    for w, h in SIZES:
        top = cropper.crop(image, w, h)["top_crop"]
        box = (top["x"], top["y"], top["x"] + top["width"], top["y"] + top["height"])
        outputs.append(encode(image.crop(box).resize((w, h), Image.Resampling.LANCZOS)))
    return outputs


def centred_box(width: int, height: int, w: int, h: int) -> tuple[float, float, float, float]:
    if width * h > w * height:
        cw, ch = height * w / h, float(height)
    else:
        cw, ch = float(width), width * h / w
    x, y = (width - cw) / 2, (height - ch) / 2
    return (x, y, x + cw, y + ch)


def floor_decode(data: bytes) -> tuple[Image.Image, tuple[int, int]]:
    """Decode with draft: shrink on load only as far as every window keeps at least its output's pixel count."""
    image = Image.open(io.BytesIO(data))
    full_w, full_h = image.size
    need = max(
        max(w / (b[2] - b[0]), h / (b[3] - b[1])) for (w, h), b in ((s, centred_box(full_w, full_h, *s)) for s in SIZES)
    )
    image.draft("RGB", (math.ceil(full_w * need), math.ceil(full_h * need)))
    return image.convert("RGB"), (full_w, full_h)


def run_floor(data: bytes) -> list[bytes]:
    image, (full_w, full_h) = floor_decode(data)
    factor = image.width / full_w
    outputs = []
    for w, h in SIZES:
        x0, y0, x1, y1 = centred_box(full_w, full_h, w, h)
        box = (x0 * factor, y0 * factor, x1 * factor, y1 * factor)
        outputs.append(encode(image.resize((w, h), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)))
    return outputs


def check_outputs(name: str, outputs: object) -> None:
    assert isinstance(outputs, list), name
    sizes = []
    for blob in outputs:
        with Image.open(io.BytesIO(blob)) as image:
            sizes.append(image.size)
            assert image.format == "JPEG", (name, image.format)
    assert sorted(sizes) == sorted(SIZES), (name, sizes)


# --------------------------------------------------------------------------------------------------------------
# Report.


def report(samples: dict[str, Samples], md: bool) -> str:
    rows = []
    for name, sample in samples.items():
        wall, cpu = stats(sample.wall), stats(sample.cpu)
        rows.append(
            [
                name,
                str(wall.n),
                ms(wall.median),
                f"{ms(wall.q1)}-{ms(wall.q3)}",
                f"{100 * wall.spread:.0f}%",
                ms(cpu.median),
            ]
        )
    return render_table(["method (3 JPEGs)", "n", "median wall", "IQR", "IQR/median", "median CPU"], rows, markdown=md)


def ratio_lines(samples: dict[str, Samples], md: bool) -> str:
    med = {name: stats(s.wall).median for name, s in samples.items()}
    checks: list[tuple[str, float, str, Callable[[float], bool]]] = [
        ("ours / pyvips", med["ours"] / med["pyvips"], "<= 1.0", lambda r: r <= 1.0),
        ("smartcrop / ours", med["smartcrop"] / med["ours"], ">= 10", lambda r: r >= 10),
        ("ours / floor", med["ours"] / med["floor"], "(analysis + overhead)", lambda r: True),
    ]
    rows = [[label, f"{value:.2f}", goal, "yes" if ok(value) else "NO"] for label, value, goal, ok in checks]
    return render_table(["ratio of medians", "value", "goal", "met"], rows, markdown=md)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds (smartcrop runs every 4th)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    engine = load_engine()
    print(engine.banner())
    path = make_photo()
    data = path.read_bytes()
    methods: dict[str, Callable[[], object]] = {
        "ours": lambda: run_ours(engine, data),
        "pyvips": lambda: run_pyvips(data),
        "smartcrop": lambda: run_smartcrop(data),
        "floor": lambda: run_floor(data),
        "floor decode only": lambda: floor_decode(data),
    }
    for name, method in methods.items():  # also the warm-up
        if name != "floor decode only":
            check_outputs(name, method())
    samples = interleaved_rounds(methods, args.rounds, warmup=0, every={"smartcrop": 4})

    with Image.open(path) as image:
        source = f"{path.name}: {image.width}x{image.height} JPEG, {len(data) / 1e6:.1f} MB"
    print(f"\nSpeed, {source} -> {', '.join(f'{w}x{h}' for w, h in SIZES)} JPEG q{QUALITY}, warm, interleaved")
    print(f"ours = {engine.label}; {machine_line()}\n")
    print(report(samples, args.markdown), "\n")
    print(ratio_lines(samples, args.markdown))
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
