"""Memory at the caps: one worker's peak RSS for hostile files that pass the pixel cap, per format.

    python bench/memory_caps.py [--markdown] [--code DIR]

Each file is 10000x10000 (100 MP, the default MAX_IMAGE_MEGAPIXELS), made once in bench/out/ and tiny on disk: a
lossless WebP canvas, a 16-bit grey PNG, a float TIFF, an RGBA PNG, an RGB PNG, a palette GIF; plus a 100 MP JPEG
for contrast (shrink-on-load). Each is resized to 1080x1080 and 1920x1080 at 1K, in a fresh interpreter that imports
the engine first (like a pool worker), which reports its VmHWM. ``--code DIR`` runs the engine from another checkout
(e.g. a worktree of an older commit), so two versions can be measured side by side. Goal: every accepted file under
600 MiB, refusals barely above the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_line, out_dir, render_table

GOAL_MB = 600.0
N = 10_000
KINDS = ("canvas.webp", "grey16.png", "float.tif", "rgba.png", "rgb.png", "palette.gif", "photo.jpg")


def make(kind: str) -> Path:
    path = out_dir() / f"caps-{N}-{kind}"
    if path.exists():
        return path
    from PIL import Image

    image, params = {
        "canvas.webp": (Image.new("RGB", (N, N), (10, 120, 200)), {"format": "WEBP", "lossless": True}),
        "grey16.png": (Image.new("I;16", (N, N), 40000), {"format": "PNG"}),
        "float.tif": (Image.new("F", (N, N), 0.25), {"format": "TIFF", "compression": "tiff_deflate"}),
        "rgba.png": (Image.new("RGBA", (N, N), (9, 90, 200, 128)), {"format": "PNG"}),
        "rgb.png": (Image.new("RGB", (N, N), (9, 90, 200)), {"format": "PNG"}),
        "palette.gif": (Image.new("P", (N, N), 7), {"format": "GIF"}),
        "photo.jpg": (Image.new("RGB", (N, N), (120, 90, 60)), {"format": "JPEG", "quality": 85}),
    }[kind]
    image.save(path, **params)
    return path


_CHILD = """
import json, sys, time
from bot.engine import EngineError, Limits, ResizeRequest, Size, resize
from bot.engine.importance import warm_up
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
warm_up()
base = hwm()
data = open(sys.argv[1], "rb").read()
started = time.perf_counter()
request = ResizeRequest(sizes=(Size(1080, 1080), Size(1920, 1080)))
try:
    outcome = f"{len(resize(data, request, Limits()).outputs)} outputs"
except EngineError as error:
    outcome = "refused: " + str(error)
print(json.dumps({"base": base, "peak": hwm(), "seconds": time.perf_counter() - started, "outcome": outcome}))
"""


def measure(path: Path, code: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, env=env, cwd=code, check=True
    )
    return dict(json.loads(done.stdout))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to run")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = []
    for kind in KINDS:
        path = make(kind)
        result = measure(path, args.code)
        peak = float(result["peak"])  # type: ignore[arg-type]
        accepted = not str(result["outcome"]).startswith("refused")
        verdict = ("met" if peak < GOAL_MB else "MISSED") if accepted else "refused"
        rows.append(
            [kind, f"{path.stat().st_size / 1024:.0f} KiB", f"{float(result['base']):.0f}",  # type: ignore[arg-type]
             f"{peak:.0f}", f"{float(result['seconds']):.1f} s", verdict, str(result["outcome"])[:80]]  # type: ignore[arg-type]
        )  # fmt: skip
    print(f"Memory at the caps ({N}x{N}), engine from {args.code}\n{machine_line()}\n")
    headers = ["file", "on disk", "baseline MiB", "peak MiB", "time", f"< {GOAL_MB:.0f} MiB", "outcome"]
    print(render_table(headers, rows, markdown=args.markdown))
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
