from __future__ import annotations

import io

import numpy as np
from PIL import Image

from bot.engine import ResizeRequest, Size, resize
from tests.images import astronaut, encode, scene_with_subject


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


def test_crop_map_shows_what_was_detected_and_the_focal_point() -> None:
    data = astronaut()  # a face the detector finds
    result = resize(data, ResizeRequest(sizes=(Size(300, 300),), mode="crop", explain=True, focus=(0.2, 0.8)))
    assert result.faces and result.crop_map is not None
    crop_map = np.asarray(Image.open(io.BytesIO(result.crop_map)).convert("RGB"), dtype=int)
    scale = crop_map.shape[1] / 384  # the astronaut source is 384 px: enlarged to be readable
    assert crop_map.shape[1] >= 480
    # The face's box is outlined in white on the dimmed photo.
    x, y, _, h = result.faces[0]
    row = crop_map[int((y + h / 2) * scale), max(0, int(x * scale) - 1) : int(x * scale) + 2]
    assert (row.min(axis=1) > 210).any()
    # The focal point is a yellow cross.
    fx, fy = int(0.2 * 384 * scale), int(0.8 * 384 * scale)
    arm = crop_map[fy - 1 : fy + 2, fx - 8 : fx + 8]
    yellow = (arm[..., 0] > 200) & (arm[..., 1] > 200) & (arm[..., 2] < 80)
    assert yellow.mean() > 0.3


def test_the_crop_map_carries_none_of_the_sources_metadata() -> None:
    # A comment in the source (a photographer's note, where it came from) stays out of the map, as out of the outputs.
    source = Image.open(io.BytesIO(astronaut()))
    data = encode(source, "JPEG", quality=90, comment=b"taken at home, 12 Elm Street")
    result = resize(data, ResizeRequest(sizes=(Size(300, 200),), explain=True))
    assert result.crop_map is not None
    assert "comment" not in Image.open(io.BytesIO(result.crop_map)).info
    assert "comment" not in Image.open(io.BytesIO(result.outputs[0].data)).info
