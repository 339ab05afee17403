from __future__ import annotations

import io

import numpy as np
from PIL import Image

from bot.engine import ResizeRequest, Size, resize
from tests.images import encode, scene_with_subject


def test_crop_map_draws_each_window_on_the_source() -> None:
    data = encode(scene_with_subject(1200, 600, (100, 150, 300, 300)), "PNG")
    result = resize(data, ResizeRequest(sizes=(Size(600, 600), Size(1200, 300)), mode="crop", explain=True))
    assert result.crop_map is not None
    crop_map = np.asarray(Image.open(io.BytesIO(result.crop_map)).convert("RGB"), dtype=int)
    assert crop_map.shape[:2] == (400, 800)  # the source's shape, at preview size
    # The first window's outline is drawn in red along its right edge (its left edge is the image's).
    x, y, w, h = result.outputs[0].source_rect
    assert x + w < 1100
    scale = 800 / 1200
    middle = int((y + h / 2) * scale)
    column = crop_map[middle - 20 : middle + 20, int((x + w) * scale) - 2]
    assert ((column[:, 0] > 200) & (column[:, 1] < 100)).mean() > 0.9
    assert resize(data, ResizeRequest(sizes=(Size(600, 600),))).crop_map is None
