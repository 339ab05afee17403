"""Memory: peak RSS of one worker process, each scenario in a fresh subprocess, side by side with the baseline.

    python bench/memory.py [--markdown]

Scenarios (every child imports the engine first, exactly like a pool worker):
  baseline  an interpreter that only imports the engine
  models    a worker's start-up: import, then load and run every detector once (its time is the start-up time)
  50mp      after that start-up, a 50 MP JPEG (8660x5774, made once in bench/out/) resized to 1080x1080,
            1920x1080 and 1080x1920 JPEGs in crop mode (goals: peak < 400 MiB with the models; the first goal,
            < 300 MiB, is reported too)
  bomb      after that start-up, a PNG whose header says 30000x30000 (900 MP) but which is only a few dozen bytes:
            the engine must refuse it from the header (goal: refused in < 1 s, peak barely above a started worker)
Peak RSS is the child's VmHWM, cross-checked with the kernel's per-child ru_maxrss from wait4.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import current_rss_mb, load_engine, machine_line, out_dir, peak_rss_mb, render_table

SIZES: tuple[tuple[int, int], ...] = ((1080, 1080), (1920, 1080), (1080, 1920))
BIG_SIZE = (8660, 5774)
PEAK_GOAL_MB = 300.0  # the first goal, before the learned detectors
PEAK_WITH_MODELS_GOAL_MB = 400.0  # issue 10: one worker with every model loaded
BOMB_SECONDS_GOAL = 1.0
BOMB_MARGIN_MB = 10.0  # "barely above the baseline"


# --------------------------------------------------------------------------------------------------------------
# Inputs.


def make_big_jpeg() -> Path:
    """A deterministic 50 MP JPEG (the coffee photo upscaled, plus grain), made with libvips so that making it
    streams instead of holding 150 MB of pixels."""
    path = out_dir() / "memory-50mp-v1.jpg"
    if path.exists():
        return path
    import pyvips
    from skimage import data

    source = pyvips.Image.new_from_array(data.coffee())
    width, height = BIG_SIZE
    big = source.resize(width / source.width, vscale=height / source.height, kernel="lanczos3")
    big = big.crop(0, 0, width, height)
    grain = pyvips.Image.gaussnoise(width, height, sigma=5.0, mean=0.0, seed=50)
    noisy = (big + grain).cast("uchar")
    tmp = path.with_suffix(".tmp.jpg")
    noisy.jpegsave(str(tmp), Q=85)
    tmp.rename(path)
    return path


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def make_bomb_png() -> Path:
    """A PNG with a valid IHDR claiming 30000x30000 RGB and a truncated first IDAT: tiny on disk, 2.7 GB if
    anything tried to decode it."""
    path = out_dir() / "memory-bomb-30000x30000.png"
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = zlib.compressobj().compress(b"\0" * 4096)[:16]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat))
    return path


# --------------------------------------------------------------------------------------------------------------
# Child side: one scenario, one fresh interpreter, one JSON line on stdout.


def child(scenario: str, path: str) -> dict[str, Any]:
    engine = load_engine()
    result: dict[str, Any] = {
        "scenario": scenario,
        "engine": engine.label,
        "banner": engine.banner(),
        "after_import_mb": round(current_rss_mb(), 1),
    }
    if scenario == "baseline":
        result.update(peak_mb=round(peak_rss_mb(), 1), seconds=0.0, outcome="imported")
        return result
    if not engine.stand_in:
        # What a worker does when it starts: load (and run once) every model, timed.
        from bot.engine.detectors import missing
        from bot.engine.importance import warm_up

        started = time.perf_counter()
        warm_up()
        result["warm_up_s"] = round(time.perf_counter() - started, 3)
        result["models_missing"] = [model.distribution for model in missing()]
    if scenario == "models":
        result.update(peak_mb=round(peak_rss_mb(), 1), seconds=result.get("warm_up_s", 0.0), outcome="models loaded")
        return result
    data = Path(path).read_bytes()
    result["input_mb"] = round(len(data) / 2**20, 2)
    result["peak_before_call_mb"] = round(peak_rss_mb(), 1)
    request = engine.request_type(
        sizes=tuple(engine.size_type(w, h) for w, h in SIZES), mode="crop", output_format="jpeg"
    )
    started = time.perf_counter()
    try:
        outputs = engine.resize(data, request, engine.limits_type()).outputs
        outcome = f"{len(outputs)} outputs, {sum(len(o.data) for o in outputs) / 1e6:.1f} MB"
    except Exception as exc:  # the refusal is the expected outcome for the bomb
        outcome = f"refused: {type(exc).__name__} ({getattr(exc, 'code', '?')}): {exc}"
    result.update(seconds=round(time.perf_counter() - started, 3), peak_mb=round(peak_rss_mb(), 1), outcome=outcome)
    return result


# --------------------------------------------------------------------------------------------------------------
# Parent side.


def run_child(scenario: str, path: Path | None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", scenario, str(path or "")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stderr is not None
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{scenario} child failed ({proc.returncode}):\n{stderr}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["ru_maxrss_mb"] = round(usage.ru_maxrss / 1024, 1)  # kB on Linux
    return result


def verdicts(results: dict[str, dict[str, Any]]) -> list[str]:
    base = results["baseline"]["peak_mb"]
    big, bomb, models = results["50mp"], results["bomb"], results["models"]
    return [
        f"{'met ' if big['peak_mb'] < PEAK_WITH_MODELS_GOAL_MB else 'MISSED'} 50 MP peak with every model loaded "
        f"{big['peak_mb']:.0f} MiB < {PEAK_WITH_MODELS_GOAL_MB:.0f} MiB"
        + (f" (models missing: {', '.join(models['models_missing'])})" if models.get("models_missing") else ""),
        f"     worker start-up (load and run each model once): {1000 * models.get('warm_up_s', 0):.0f} ms, "
        f"peak {models['peak_mb']:.0f} MiB (+{models['peak_mb'] - base:.0f} MiB over the baseline)",
        f"{'met ' if big['peak_mb'] < PEAK_GOAL_MB else 'MISSED'} 50 MP peak {big['peak_mb']:.0f} MiB "
        f"< {PEAK_GOAL_MB:.0f} MiB ({big['peak_mb'] / base:.1f}x baseline, +{big['peak_mb'] - base:.0f} MiB)",
        f"{'met ' if bomb['outcome'].startswith('refused') else 'MISSED'} 30000x30000 PNG refused "
        f"({bomb['outcome'][:90]})",
        f"{'met ' if bomb['seconds'] < BOMB_SECONDS_GOAL else 'MISSED'} refusal in {1000 * bomb['seconds']:.1f} ms "
        f"< {BOMB_SECONDS_GOAL:.0f} s",
        f"{'met ' if bomb['peak_mb'] - models['peak_mb'] < BOMB_MARGIN_MB else 'MISSED'} refusal peak "
        f"{bomb['peak_mb']:.0f} MiB = a started worker +{bomb['peak_mb'] - models['peak_mb']:.1f} MiB "
        f"(< +{BOMB_MARGIN_MB:.0f} MiB)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--make-inputs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if args.make_inputs:
        print(json.dumps([str(make_big_jpeg()), str(make_bomb_png())]))
        return 0

    # The parent stays small (no engine, no pyvips): a child's ru_maxrss starts from its parent's RSS at exec.
    started = time.perf_counter()
    made = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--make-inputs"], check=True, capture_output=True, text=True
    )
    big, bomb = (Path(p) for p in json.loads(made.stdout))
    inputs = {"baseline": None, "models": None, "50mp": big, "bomb": bomb}
    results = {name: run_child(name, path) for name, path in inputs.items()}
    print(results["baseline"]["banner"])
    base = results["baseline"]["peak_mb"]
    rows = [
        [
            name,
            f"{r.get('input_mb', 0):.2f}",
            f"{r['peak_mb']:.0f}",
            f"{r['ru_maxrss_mb']:.0f}",
            f"{r['peak_mb'] / base:.2f}x",
            f"{1000 * r['seconds']:.0f} ms",
            r["outcome"][:70],
        ]
        for name, r in results.items()
    ]
    print(f"\nMemory, one fresh worker process per scenario; ours = {results['baseline']['engine']}")
    print(f"{machine_line()}\n")
    print(
        render_table(
            ["scenario", "input MiB", "peak MiB (VmHWM)", "ru_maxrss MiB", "vs baseline", "time", "outcome"],
            rows,
            markdown=args.markdown,
        ),
        "\n",
    )
    for line in verdicts(results):
        print(line)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
