"""Shared helpers for the detector comparison: photos and labels from bench/quality/photos.json, halves by hash.

The photos are read from $PHOTOS (the folder bench/quality/fetch_photos.sh unpacked into)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from bench/detectors: make `bench` importable

from bench.common import checked_half

LABELS = Path(__file__).resolve().parents[1] / "quality" / "photos.json"
ROOT = os.environ.get("PHOTOS", "photos").rstrip("/") + "/"


def load_rgb(path: str) -> np.ndarray:
    im = Image.open(ROOT + path)
    im.seek(0)
    if im.mode in ("RGBA", "LA", "P", "PA") or "transparency" in im.info:
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (128, 128, 128, 255))
        im = Image.alpha_composite(bg, im)
    return np.asarray(im.convert("RGB"))


def load_labels() -> dict:
    return json.loads(LABELS.read_text(encoding="utf-8"))["photos"]


def all_paths() -> list[str]:
    return list(load_labels())


def half(path: str) -> str:
    label = load_labels()[path]
    return "tune" if checked_half(path, label["sha256"], label["half"]) == "tuning" else "held"
