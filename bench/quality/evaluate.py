"""Score crop placement on the labelled set: the share of the subject box kept inside each method's window, and
face cuts (a key region partly inside a window that could have held it whole).

    python bench/quality/evaluate.py [--quick] [--markdown] [--only TEXT] [--worst N] [--json PATH]

Methods, side by side on the same sources and targets: ours (the engine in crop mode, its source_rect), centre
crop, libvips attention (thumbnail crop="attention"), smartcrop (PyPI, on a 512 px copy), and the ceiling (the
max-extent window slid to keep the most subject). The set is built (or reused) by build_set.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import OUT_DIR, load_engine, machine_line, render_table
from bench.quality.build_set import Case, ensure_built, select_specs
from bench.quality.geometry import Rect, face_cut, kept_share, max_extent
from bench.quality.methods import (
    TARGETS,
    Method,
    Target,
    check_vips_offsets,
    crop_methods,
)

CEILING = "ceiling"
NEAR = 0.02  # "near the ceiling": within 2 points of its kept share


@dataclass(frozen=True)
class Score:
    case: str
    tags: tuple[str, ...]
    target: str
    method: str
    window: Rect
    share: float
    cuts: int
    chances: int  # faces a window of this size could hold whole
    extent: float  # window area / max-extent window area (1.0 for every baseline)


def score_windows(case: Case, method: str, windows: dict[str, Rect], targets: Sequence[Target]) -> list[Score]:
    scores = []
    for t in targets:
        window = windows[t.name]
        verdicts = [face_cut(face, window) for face in case.faces]
        full_w, full_h = max_extent(case.width, case.height, t.width, t.height)
        scores.append(
            Score(
                case=case.id,
                tags=tuple(case.tags),
                target=t.name,
                method=method,
                window=window,
                share=kept_share(case.subject, window),
                cuts=sum(v is True for v in verdicts),
                chances=sum(v is not None for v in verdicts),
                extent=window[2] * window[3] / (full_w * full_h),
            )
        )
    return scores


@dataclass
class Run:
    scores: list[Score]
    seconds: dict[str, list[float]]
    failures: list[str]


def evaluate(cases: Sequence[Case], methods: dict[str, Method], targets: Sequence[Target]) -> Run:
    run = Run([], {name: [] for name in methods}, [])
    for index, case in enumerate(cases, start=1):
        print(f"\r  {index}/{len(cases)} {case.id:<40}", end="", file=sys.stderr, flush=True)
        per_case: list[Score] = []
        try:
            for name, method in methods.items():
                started = time.perf_counter()
                windows = method(case, targets)
                run.seconds[name].append(time.perf_counter() - started)
                per_case += score_windows(case, name, windows, targets)
        except Exception as exc:  # one failing case must not hide the others; it is reported and left out
            run.failures.append(f"{case.id}: {name}: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
            continue
        run.scores += per_case
    print(file=sys.stderr)
    return run


# --------------------------------------------------------------------------------------------------------------
# Aggregation and reports.


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def select(scores: Sequence[Score], method: str, keep: Callable[[Score], bool] = lambda s: True) -> list[Score]:
    return [s for s in scores if s.method == method and keep(s)]


def summary_row(scores: Sequence[Score], method: str, targets: Sequence[Target]) -> list[str]:
    mine = select(scores, method)
    ceiling_by_key = {(s.case, s.target): s.share for s in select(scores, CEILING)}
    per_aspect = [pct(_mean([s.share for s in mine if s.target == t.name])) for t in targets]
    overall = _mean([s.share for s in mine])
    gap = _mean([ceiling_by_key[(s.case, s.target)] - s.share for s in mine])
    near = _mean([float(s.share >= ceiling_by_key[(s.case, s.target)] - NEAR) for s in mine])
    cuts, chances = sum(s.cuts for s in mine), sum(s.chances for s in mine)
    return [method, *per_aspect, pct(overall), f"{100 * gap:.1f}", pct(near), f"{cuts}/{chances}"]


def table_by_aspect(scores: Sequence[Score], methods: Sequence[str], targets: Sequence[Target], md: bool) -> str:
    headers = ["method", *[t.name for t in targets], "mean", "gap", "near", "face cuts"]
    return render_table(headers, [summary_row(scores, m, targets) for m in methods], markdown=md)


GROUPS: tuple[tuple[str, Callable[[tuple[str, ...]], bool]], ...] = (
    ("real, as shot (roughly centred)", lambda t: "real" in t and "centred" in t),
    ("real, off-centre", lambda t: "real" in t and "off-centre" in t),
    ("synthetic, centred", lambda t: "synthetic" in t and "centred" in t),
    ("synthetic, off-centre", lambda t: "synthetic" in t and "off-centre" in t),
    ("small subject", lambda t: "small" in t),
    ("busy background", lambda t: "busy" in t),
    ("text block", lambda t: "text" in t),
    ("pasted photo patch", lambda t: "patch" in t),
    ("EXIF-rotated", lambda t: "exif" in t),
)


def table_by_group(scores: Sequence[Score], methods: Sequence[str], md: bool) -> str:
    rows = []
    for label, keep in GROUPS:
        cases = {s.case for s in scores if keep(s.tags)}
        if not cases:
            continue
        row = [label, str(len(cases))]
        row += [pct(_mean([s.share for s in select(scores, m) if keep(s.tags)])) for m in methods]
        rows.append(row)
    return render_table(["cases", "n", *methods], rows, markdown=md)


def worst(scores: Sequence[Score], method: str, n: int, md: bool) -> str:
    ceiling_by_key = {(s.case, s.target): s for s in select(scores, CEILING)}
    centre_by_key = {(s.case, s.target): s for s in select(scores, "centre")}
    mine = sorted(select(scores, method), key=lambda s: s.share - ceiling_by_key[(s.case, s.target)].share)[:n]
    rows = [
        [
            s.case,
            s.target,
            pct(s.share),
            pct(centre_by_key[(s.case, s.target)].share),
            pct(ceiling_by_key[(s.case, s.target)].share),
            str(s.window),
        ]
        for s in mine
    ]
    return render_table(["case", "target", method, "centre", CEILING, f"{method} window"], rows, markdown=md)


COLOURS = {
    "ours": (255, 40, 40),
    "centre": (255, 255, 255),
    "vips-attention": (40, 120, 255),
    "smartcrop": (255, 200, 0),
    CEILING: (0, 230, 0),
}


def draw_windows(cases: Sequence[Case], scores: Sequence[Score], n: int) -> Path:
    """Previews of the n case-targets where ours is furthest below the ceiling: every method's window drawn on
    the source (subject box dashed-thin green), into bench/out/quality-windows/."""
    from PIL import Image, ImageDraw, ImageOps

    out = OUT_DIR / "quality-windows"
    out.mkdir(parents=True, exist_ok=True)
    by_id = {c.id: c for c in cases}
    ceiling_by_key = {(s.case, s.target): s.share for s in select(scores, CEILING)}
    mine = sorted(select(scores, "ours"), key=lambda s: s.share - ceiling_by_key[(s.case, s.target)])[:n]
    for item in mine:
        case = by_id[item.case]
        with Image.open(case.path) as raw:
            raw.draft("RGB", (900, 900))
            image = ImageOps.exif_transpose(raw).convert("RGB")
        image.thumbnail((900, 900))
        k = image.width / case.width
        draw = ImageDraw.Draw(image)
        x, y, w, h = case.subject
        draw.rectangle((x * k, y * k, (x + w) * k, (y + h) * k), outline=(0, 120, 0), width=1)
        for s in scores:
            if s.case == item.case and s.target == item.target:
                x, y, w, h = s.window
                draw.rectangle((x * k, y * k, (x + w) * k - 1, (y + h) * k - 1), outline=COLOURS[s.method], width=3)
        image.save(out / f"{item.case}-{item.target.replace(':', 'x')}.jpg", quality=80)
    return out


def timing_table(run: Run, md: bool) -> str:
    rows = [
        [name, f"{1000 * statistics.median(secs):.0f}", f"{sum(secs):.1f}"]
        for name, secs in run.seconds.items()
        if secs
    ]
    return render_table(["method", "median ms / source (6 targets)", "total s"], rows, markdown=md)


def plausibility(scores: Sequence[Score], methods: Sequence[str]) -> list[str]:
    """Checks the figures must pass; each line says what was checked and the outcome."""
    ceiling_by_key = {(s.case, s.target): s.share for s in select(scores, CEILING)}
    lines = []
    for method in methods:
        if method == CEILING:
            continue
        over = [s for s in select(scores, method) if s.share > ceiling_by_key[(s.case, s.target)] + 1e-9]
        lines.append(
            f"{'OK ' if not over else 'BAD'} ceiling >= {method} on every case and target"
            + (f" (violations: {[(s.case, s.target) for s in over[:5]]})" if over else "")
        )
    centred = select(scores, "centre", lambda s: "centred" in s.tags)
    if centred:
        gap = _mean([ceiling_by_key[(s.case, s.target)] - s.share for s in centred])
        lines.append(
            f"{'OK ' if gap < 0.05 else 'BAD'} centre crop on centred subjects is {100 * gap:.1f} points "
            "below the ceiling (expected small)"
        )
    shrunk = [s for s in select(scores, "ours") if s.extent < 0.99]
    if shrunk:
        lines.append(
            f"NOTE ours used a window smaller than max extent in {len(shrunk)} case-targets "
            f"(mean extent {_mean([s.extent for s in shrunk]):.2f}); its share is scored on that window"
        )
    return lines


def composition(cases: Sequence[Case]) -> str:
    real = sum("real" in c.tags for c in cases)
    mp = [c.width * c.height / 1e6 for c in cases]
    portrait = sum(c.height > c.width for c in cases)
    return (
        f"{len(cases)} sources ({real} real-photo, {len(cases) - real} synthetic; {portrait} portrait, "
        f"{sum(c.width > c.height for c in cases)} landscape, {sum(c.width == c.height for c in cases)} square; "
        f"{min(mp):.1f}-{max(mp):.1f} MP) x {len(TARGETS)} targets"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fixed third of the set (< 60 s)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for bench/README.md)")
    parser.add_argument("--only", default="", help="only cases whose id contains this text")
    parser.add_argument(
        "--worst", type=int, default=8, help="list the N case-targets where ours is furthest below the ceiling"
    )
    parser.add_argument(
        "--draw",
        type=int,
        default=0,
        metavar="N",
        help="draw every method's window for the N worst case-targets of ours into bench/out/quality-windows/",
    )
    parser.add_argument("--json", type=Path, default=OUT_DIR / "quality-results.json", help="per-window results")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    engine = load_engine()
    print(engine.banner())
    check_vips_offsets()
    cases = [c for c in ensure_built(select_specs(args.quick)) if args.only in c.id]
    methods = crop_methods(engine)
    run = evaluate(cases, methods, TARGETS)
    names = list(methods)
    md = args.markdown

    print(f"\nCrop placement, {composition(cases)}{' (--quick)' if args.quick else ''}")
    print(f"ours = {engine.label}; {machine_line()}\n")
    print(
        "Mean share of the subject box kept (%), per target aspect. gap = points below the ceiling; near = % of "
        f"windows within {100 * NEAR:.0f} points of it; face cuts = cut / could-be-whole.\n"
    )
    print(table_by_aspect(run.scores, names, TARGETS, md), "\n")
    print("Mean kept share (%) by kind of source:\n")
    print(table_by_group(run.scores, names, md), "\n")
    print(f"Where ours is furthest below the ceiling (kept share %):\n\n{worst(run.scores, 'ours', args.worst, md)}\n")
    print(f"Time per source (informative only; bench/speed.py is the speed benchmark):\n\n{timing_table(run, md)}\n")
    for line in plausibility(run.scores, names):
        print(line)
    for failure in run.failures:
        print(f"FAILED {failure}")

    if args.draw:
        print(
            f"window drawings (ours red, centre white, vips blue, smartcrop yellow, ceiling green): "
            f"{draw_windows(cases, run.scores, args.draw)}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(s) for s in run.scores]), encoding="utf-8")
    print(f"\nper-window results: {args.json}; {time.perf_counter() - started:.0f} s")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
