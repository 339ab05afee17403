"""The importance map's parts, where a whole resize would not single one out."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from bot.engine import importance

SUBJECT = (250, 70, 90, 80)  # x, y, w, h in the 384x216 analysis copy
MAP_SIZE = (128, 72)


def _busy_left_plain_subject_right(seed: int) -> npt.NDArray[np.uint8]:
    """Grain over the whole left half (foliage, gravel at this size) and a flat, brighter panel on the right."""
    grey = np.full((216, 384), 120, np.float32)
    grey[:, :192] += np.random.default_rng(seed).normal(0, 20, (216, 192))
    x, y, w, h = SUBJECT
    grey[y : y + h, x : x + w] = 200
    return np.clip(grey, 0, 255).astype(np.uint8)


def _standing(grey: npt.NDArray[np.uint8]) -> float:
    """How far the panel's outline stands above the grain, in the detail map: its peak over the grain's mean."""
    detail = importance._detail(grey, MAP_SIZE)
    f = MAP_SIZE[0] / grey.shape[1]
    x, y, w, h = SUBJECT
    outline = detail[int(y * f) : int((y + h) * f) + 1, int(x * f) : int((x + w) * f) + 1]
    grain = detail[:, : int(192 * f) - 2]
    return float(outline.max() / grain.mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uniform_grain_is_damped_by_its_surroundings_so_a_plain_outline_stands_out(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    grey = _busy_left_plain_subject_right(seed)
    damped = _standing(grey)
    monkeypatch.setattr(importance, "TEXTURE_SURROUND", 0.0)
    undamped = _standing(grey)
    # Grain fills its own neighbourhood, an outline does not: taking off the surround's level must lift the outline
    # clearly above the grain (measured: about 5 against 2.6 without the damping).
    assert damped > 1.5 * undamped
    assert damped > 4.0
