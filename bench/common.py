"""Shared helpers for the bench scripts: engine loading, interleaved timing, robust statistics, peak RSS, tables.

Every script measures its contenders side by side in one process (or one parent driving fresh children) and reports
ratios against a named baseline: the machine is small and noisy, so absolute figures from different runs are not
comparable, ratios from one run are.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"  # git-ignored


def out_dir(*parts: str) -> Path:
    """A directory under bench/out/, created on demand."""
    path = OUT_DIR.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------------------------
# The one split every photo benchmark uses (quality, detectors, uncrop): fixed by the file's hash, so no choice can
# move a photo between the halves. Tune only on the tuning half.

HALVES = ("tuning", "held-out")


def half_of(sha256: str) -> str:
    """First hex digit of the file's SHA-256: 0-7 tuning, 8-f held-out."""
    return "tuning" if int(sha256[0], 16) < 8 else "held-out"


def checked_half(name: str, sha256: str, written: str) -> str:
    """The photo's half by the rule, refusing a data file whose written half disagrees with it."""
    half = half_of(sha256)
    if written != half:
        sys.exit(f"{name}: the data file says {written!r} but its SHA-256 puts it in the {half} half; fix the file")
    return half


# --------------------------------------------------------------------------------------------------------------
# The engine under test, or a clearly labelled stand-in while it cannot be imported.


@dataclass(frozen=True)
class Engine:
    resize: Callable[..., Any]
    request_type: Any  # ResizeRequest
    size_type: Any  # Size
    limits_type: Any  # Limits
    stand_in: bool
    import_error: str = ""

    @property
    def label(self) -> str:
        return "centre-crop STAND-IN (engine not importable)" if self.stand_in else "bot.engine"

    def banner(self) -> str:
        if not self.stand_in:
            return "ours = bot.engine.resize"
        line = "!" * 100
        return (
            f"{line}\n!!! ENGINE NOT IMPORTABLE ({self.import_error})\n"
            "!!! 'ours' below is bench/engine_standin.py: a plain CENTRE CROP, not the content-aware engine.\n"
            f"{line}"
        )


def load_engine() -> Engine:
    """Import the real engine; fall back to the centre-crop stand-in (and say so) while it is not importable.
    BENCH_ENGINE=standin forces the stand-in (to check the harness itself)."""
    try:
        if os.environ.get("BENCH_ENGINE") == "standin":
            raise ImportError("BENCH_ENGINE=standin")
        from bot.engine import Limits, ResizeRequest, Size, resize
    except Exception as exc:  # the engine is being written: any import-time failure means "not ready"
        from bench import engine_standin

        return Engine(
            resize=engine_standin.resize,
            request_type=engine_standin.ResizeRequest,
            size_type=engine_standin.Size,
            limits_type=engine_standin.Limits,
            stand_in=True,
            import_error=f"{type(exc).__name__}: {exc}",
        )
    return Engine(resize=resize, request_type=ResizeRequest, size_type=Size, limits_type=Limits, stand_in=False)


# --------------------------------------------------------------------------------------------------------------
# Timing: interleaved rounds, wall and CPU time, median and interquartile range.


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    q1: float
    q3: float
    minimum: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def spread(self) -> float:
        """IQR relative to the median (0.05 = the middle half of the samples lies within 5% of the median)."""
        return self.iqr / self.median if self.median else 0.0


def stats(values: Sequence[float]) -> Stats:
    if not values:
        nan = float("nan")
        return Stats(0, nan, nan, nan, nan)
    ordered = sorted(values)
    if len(ordered) == 1:
        q1 = q3 = ordered[0]
    else:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Stats(len(ordered), statistics.median(ordered), q1, q3, ordered[0])


def time_once(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and process CPU seconds of one call (CPU includes every thread, so CPU > wall means parallelism)."""
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def interleaved_rounds(
    methods: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    warmup: int = 1,
    every: Mapping[str, int] | None = None,
    progress: bool = True,
) -> dict[str, Samples]:
    """Run each method once per round, rotating the order every round so drift and noise hit all of them alike.

    ``every[name] = k`` runs that method only every k-th round (for the slow contenders).
    """
    names = list(methods)
    every = every or {}
    for _ in range(warmup):
        for name in names:
            methods[name]()
    samples = {name: Samples() for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            if round_no % every.get(name, 1):
                continue
            wall, cpu = time_once(methods[name])
            samples[name].wall.append(wall)
            samples[name].cpu.append(cpu)
        if progress:
            print(f"\r  round {round_no + 1}/{rounds}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return samples


# --------------------------------------------------------------------------------------------------------------
# Memory.


def _proc_status_kb(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (VmHWM), in MiB."""
    return _proc_status_kb("VmHWM") / 1024


def current_rss_mb() -> float:
    return _proc_status_kb("VmRSS") / 1024


# --------------------------------------------------------------------------------------------------------------
# Reporting.


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str]:
    info = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu_model(),
        "python": platform.python_version(),
    }
    try:
        import PIL

        info["pillow"] = PIL.__version__
    except ImportError:
        pass
    try:
        import pyvips

        info["libvips"] = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    except Exception as exc:  # pyvips is an optional bench extra
        info["libvips"] = f"unavailable ({type(exc).__name__})"
    return info


def machine_line() -> str:
    return ", ".join(f"{key} {value}" for key, value in machine_info().items())


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, markdown: bool = False) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells[1:])])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "n/a"
