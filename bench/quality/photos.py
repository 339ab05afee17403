"""Framing on real photos the engine was never tuned on: bench/quality/photos.json (87 hand-labelled photos from 20
package releases of 19 packages, none from the scikit-image wheel), split into a tuning half and a held-out half
fixed by file hash (bench.common.half_of).

    sh bench/quality/fetch_photos.sh DIR
    python bench/quality/photos.py --photos DIR [--markdown] [--half tuning|held-out|both]

Crop mode: the share of the subject box kept by ours, centre crop, libvips attention, smartcrop and the ceiling
(the max-extent window slid to keep the most subject), per family and half. Auto mode (ours, the default every user
gets): the share of case-targets that keep >= 95% of the subject and every key region (faces, animal faces, text
blocks, products) whole, and how much of the output is real photo. Faces: the engine's detector against the labels.
Photos whose SHA-256 differs from the labels' are refused, so a figure is always about the labelled files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import HALVES, checked_half, load_engine, machine_line, render_table
from bench.quality.build_set import Case
from bench.quality.evaluate import Run, evaluate
from bench.quality.geometry import Rect, intersection, kept_share
from bench.quality.methods import TARGETS, Target, check_vips_offsets, crop_methods

LABELS = Path(__file__).with_name("photos.json")
KEPT_ENOUGH = 0.95  # auto's goal: this much of the subject, and of every key region, in every output


@dataclass
class PhotoCase(Case):
    source: Path = field(default_factory=Path)
    family: str = ""
    half: str = ""
    keys: list[Rect] = field(default_factory=list)  # every region that must not be cut
    labelled_faces: list[Rect] = field(default_factory=list)
    labelled_texts: list[Rect] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.source


def load_cases(photos: Path) -> tuple[list[PhotoCase], list[str]]:
    doc = json.loads(LABELS.read_text(encoding="utf-8"))
    cases, refused = [], []
    for name, label in doc["photos"].items():
        check = label.get("check", {"file": name, "sha256": label["sha256"]})
        checked = photos / check["file"]
        if not checked.exists() or hashlib.sha256(checked.read_bytes()).hexdigest() != check["sha256"]:
            refused.append(name)
            continue
        half = checked_half(name, label["sha256"], label["half"])
        keys = [tuple(b) for kind in ("faces", "animal_faces", "texts", "products") for b in label[kind]]
        width, height = label["size"]
        cases.append(
            PhotoCase(
                id=name,
                file=name,
                width=width,
                height=height,
                subject=tuple(label["subject"]),  # type: ignore[arg-type]
                # The crop baselines and the ceiling count cuts of these, and the ceiling avoids them.
                faces=keys,  # type: ignore[arg-type]
                tags=[label["family"], half, *label["tags"]],
                quick=False,
                stamp=label["sha256"],
                source=photos / name,
                family=label["family"],
                half=half,
                keys=keys,  # type: ignore[arg-type]
                labelled_faces=[tuple(b) for b in label["faces"]],  # type: ignore[misc]
                labelled_texts=[tuple(b) for b in label["texts"]],  # type: ignore[misc]
            )
        )
    return cases, refused


@dataclass
class AutoScore:
    case: PhotoCase
    target: str
    subject: float  # share of the subject box inside the source window used
    keys_whole: bool  # every key region >= KEPT_ENOUGH inside
    photo_share: float  # share of the output that is the photo (1.0 for a crop)
    mode: str


def auto_scores(
    engine: Any, cases: Sequence[PhotoCase], targets: Sequence[Target]
) -> tuple[list[AutoScore], dict[str, dict[str, int]]]:
    """Auto-mode scores per output, and per half the engine's face counts against the labels."""
    scores: list[AutoScore] = []
    halves: dict[str, dict[str, int]] = {}
    for index, case in enumerate(cases, start=1):
        print(f"\r  auto {index}/{len(cases)} {case.id:<40}", end="", file=sys.stderr, flush=True)
        request = engine.request_type(sizes=tuple(engine.size_type(t.width, t.height) for t in targets))
        result = engine.resize(case.path.read_bytes(), request, engine.limits_type())
        by_size = {}
        for output in result.outputs:
            by_size.setdefault((output.target.width, output.target.height), output)
        for t in targets:
            output = by_size[(t.width, t.height)]
            window = output.source_rect
            keys_whole = all(intersection(key, window) / (key[2] * key[3]) >= KEPT_ENOUGH for key in case.keys)
            placed = output.placed_rect
            scores.append(
                AutoScore(
                    case=case,
                    target=t.name,
                    subject=kept_share(case.subject, window),
                    keys_whole=keys_whole,
                    photo_share=placed[2] * placed[3] / (t.width * t.height),
                    mode=output.mode,
                )
            )
        found = [tuple(f) for f in getattr(result, "faces", ())]
        faces = halves.setdefault(case.half, {"labelled": 0, "found": 0, "matched": 0, "images": 0})
        faces["images"] += 1
        faces["labelled"] += len(case.labelled_faces)
        faces["found"] += len(found)
        faces["matched"] += matches(case.labelled_faces, found)
    print(file=sys.stderr)
    return scores, halves


def text_counts(cases: Sequence[PhotoCase]) -> dict[str, dict[str, int]]:
    """Per half, the engine's text detector against the labelled text blocks, by the detector comparison's rule: a
    block is found when detections cover >= 50% of it; a detection is false when < 50% of it lies on labelled text."""
    import numpy as np
    from PIL import Image

    from bot.engine import detectors

    halves: dict[str, dict[str, int]] = {}
    for case in cases:
        rgb = np.asarray(Image.open(case.path).convert("RGB"))
        found = detectors.text_lines(rgb) or []
        height, width = rgb.shape[:2]
        detected, labelled = np.zeros((height, width), bool), np.zeros((height, width), bool)
        for x, y, w, h in found:
            detected[round(y) : round(y + h), round(x) : round(x + w)] = True
        for x, y, w, h in case.labelled_texts:
            labelled[y : y + h, x : x + w] = True
        counts = halves.setdefault(case.half, {"labelled": 0, "matched": 0, "found": 0, "false": 0, "images": 0})
        counts["images"] += 1
        counts["labelled"] += len(case.labelled_texts)
        counts["matched"] += sum(detected[y : y + h, x : x + w].mean() >= 0.5 for x, y, w, h in case.labelled_texts)
        counts["found"] += len(found)
        counts["false"] += sum(
            labelled[round(y) : round(y + h), round(x) : round(x + w)].mean() < 0.5 for x, y, w, h in found
        )
    return halves


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = intersection(a, b)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def matches(labelled: Sequence[Sequence[float]], found: Sequence[Sequence[float]], threshold: float = 0.5) -> int:
    """Greedy one-to-one matching at IoU >= threshold."""
    free = list(found)
    matched = 0
    for face in labelled:
        best = max(free, key=lambda f: _iou(face, f), default=None)
        if best is not None and _iou(face, best) >= threshold:
            free.remove(best)
            matched += 1
    return matched


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def crop_table(run: Run, cases: Sequence[PhotoCase], methods: Sequence[str], half: str, md: bool) -> str:
    families = sorted({c.family for c in cases if c.half == half})
    rows = []
    for family in [*families, "all"]:
        chosen = {c.id for c in cases if c.half == half and (family == "all" or c.family == family)}
        row = [family, str(len(chosen))]
        for method in methods:
            row.append(f"{100 * _mean([s.share for s in run.scores if s.method == method and s.case in chosen]):.1f}")
        rows.append(row)
    return render_table(["family", "photos", *methods], rows, markdown=md)


def auto_table(scores: Sequence[AutoScore], half: str, md: bool) -> str:
    families = sorted({s.case.family for s in scores if s.case.half == half})
    rows = []
    for family in [*families, "all"]:
        chosen = [s for s in scores if s.case.half == half and (family == "all" or s.case.family == family)]
        safe = [s.subject >= KEPT_ENOUGH and s.keys_whole for s in chosen]
        rows.append(
            [
                family,
                str(len(chosen)),
                f"{100 * _mean([float(v) for v in safe]):.0f}",
                str(len(safe) - sum(safe)),
                f"{100 * _mean([s.subject for s in chosen]):.1f}",
                f"{100 * _mean([float(s.keys_whole) for s in chosen]):.0f}",
                f"{100 * _mean([s.photo_share for s in chosen]):.0f}",
                f"{100 * _mean([float(s.mode == 'extend') for s in chosen]):.0f}",
            ]
        )
    headers = [
        "family",
        "outputs",
        "safe %",
        "not safe",
        "subject kept %",
        "keys whole %",
        "photo area %",
        "extended %",
    ]
    return render_table(headers, rows, markdown=md)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="the folder fetch_photos.sh unpacked into")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--half", choices=(*HALVES, "both"), default="both")
    args = parser.parse_args(argv)
    engine = load_engine()
    print(engine.banner())
    check_vips_offsets()
    cases, refused = load_cases(args.photos)
    if refused:
        print(f"REFUSED (missing, or not the labelled file): {', '.join(refused)}")
    halves = HALVES if args.half == "both" else (args.half,)
    cases = [c for c in cases if c.half in halves]
    methods = crop_methods(engine)
    run = evaluate(cases, methods, TARGETS)
    autos, faces = auto_scores(engine, cases, TARGETS)
    md = args.markdown
    print(f"\n{len(cases)} labelled photos x {len(TARGETS)} targets; ours = {engine.label}; {machine_line()}\n")
    for half in halves:
        print(f"Crop mode, {half} half: mean share of the subject box kept (%)\n")
        print(crop_table(run, cases, list(methods), half, md), "\n")
        print(
            f"Auto mode, {half} half: safe = subject >= {100 * KEPT_ENOUGH:.0f}% kept and every face, text block "
            "and product whole; photo area = share of the output that is photo, not fill\n"
        )
        print(auto_table(autos, half, md), "\n")
    for half in halves:
        counts = faces[half]
        recall = counts["matched"] / max(1, counts["labelled"])
        false = (counts["found"] - counts["matched"]) / max(1, counts["images"])
        print(
            f"Faces, {half} half (the engine's detector, IoU >= 0.5): recall {recall:.2f} of {counts['labelled']} "
            f"labelled; {false:.2f} false positives per photo"
        )
    for half, counts in text_counts(cases).items():
        print(
            f"Text, {half} half (the engine's detector; a block is found when >= 50% covered): recall "
            f"{counts['matched'] / max(1, counts['labelled']):.2f} of {counts['labelled']} labelled blocks; "
            f"{counts['false'] / max(1, counts['images']):.2f} false detections per photo"
        )
    for failure in run.failures:
        print(f"FAILED {failure}")
    return 1 if run.failures or refused else 0


if __name__ == "__main__":
    sys.exit(main())
