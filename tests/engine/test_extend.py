"""Extended canvases that look like the photo: each side's fill chosen from its border, no hard seam, white kept
white, transparency kept, and the fill used said in the notes."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from bot.engine import ResizeRequest, Size, resize
from bot.engine.extend import classify, extend
from tests.images import astronaut, encode

FILLS = ["auto", "blur", "mirror", "colour", "synthesize"]


def _photo() -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(astronaut())).convert("RGB"))


def _join_steps(canvas: npt.NDArray[np.uint8], left: int, right: int) -> tuple[float, float]:
    """The colour step across the joins, and the photo's own step between its neighbouring columns there."""
    image = canvas.astype(np.float32)

    def step(a: int, b: int) -> float:
        return float(np.abs(image[:, a] - image[:, b]).mean())

    across = (step(left, left - 1) + step(right, right - 1)) / 2
    own = (step(left + 1, left) + step(right - 1, right - 2)) / 2
    return across, own


@pytest.mark.parametrize("fill", FILLS)
def test_no_fill_leaves_a_hard_edge_on_a_real_photo(fill: str) -> None:
    photo = _photo()
    height, width = photo.shape[:2]
    extended = extend(photo, (width * 2, height), (width // 2, 0), fill)  # type: ignore[arg-type]
    across, own = _join_steps(extended.canvas, width // 2, width // 2 + width)
    assert across <= own * 1.5 + 1.0, (across, own)
    # And a little further out: the fill's own changes stay as gentle as the photo's.
    near = extended.canvas[:, width // 2 - 40 : width // 2].astype(np.float32)
    assert float(np.abs(np.diff(near, axis=1)).mean()) <= own * 1.5 + 1.0


def test_a_white_backdrop_is_continued_white_with_no_seam() -> None:
    # A product shot: the photo on white paper, the paper running out at the frame.
    product = np.full((400, 300, 3), 252, np.uint8)
    product[100:300, 80:220] = _photo()[100:300, 150:290]
    extended = extend(product, (900, 400), (300, 0), "auto")
    assert extended.sides == (("left", "colour"), ("right", "colour"))
    fill = np.concatenate([extended.canvas[:, :300], extended.canvas[:, 600:]], axis=1)
    assert fill.min() >= 248 and float(fill.std()) < 1.5  # white, not smeared with the product's colours
    across, own = _join_steps(extended.canvas, 300, 600)
    assert across <= own + 1.0


def test_a_soft_gradient_is_continued_as_a_gradient() -> None:
    rows = np.linspace(40, 200, 300, dtype=np.float32)
    backdrop = np.repeat(rows[:, None, None], 200, axis=1).repeat(3, axis=2).astype(np.uint8)
    extended = extend(backdrop, (600, 300), (200, 0), "auto")
    assert {how for _, how in extended.sides} == {"colour"}
    column = extended.canvas[:, 20, 0].astype(np.float32)  # far out on the left
    assert bool(np.all(np.diff(column) >= 0)) and column[-1] - column[0] > 60  # still a gradient, top to bottom
    middle = slice(60, 240)
    assert float(np.abs(column[middle] - rows[middle]).max()) < 12


def test_a_texture_keeps_its_grain_and_a_busy_border_is_not_mirrored_into_the_margin() -> None:
    import cv2

    rng = np.random.default_rng(3)  # a lawn: fine grain, no shapes
    grain = cv2.GaussianBlur(rng.normal(0, 1, (300, 300, 3)).astype(np.float32), (0, 0), 1.2)
    grass = np.clip(grain / grain.std() * 14 + np.array([90, 140, 70]), 0, 255).astype(np.uint8)
    assert classify(grass) == "synthesize"
    extended = extend(grass, (600, 300), (150, 0), "auto")
    margin = extended.canvas[:, 160 + 300 :].astype(np.float32)
    assert float(margin[:, :20].std()) > 5  # grain near the photo, not a flat band
    assert classify(_photo()) in ("colour", "synthesize")


def test_the_fill_used_is_said_in_the_notes() -> None:
    request = ResizeRequest(sizes=(Size(1200, 400),), mode="extend", output_format="jpeg")
    result = resize(astronaut(), request)
    [note] = [n for n in result.notes if "extended" in n]
    assert note.startswith("1200x400: extended left and right")
    forced = resize(astronaut(), ResizeRequest(sizes=(Size(1200, 400),), mode="extend", fill="blur"))
    assert "1200x400: extended left and right: a blurred reflection." in forced.notes


def test_extend_naturally_in_the_prompt_synthesizes() -> None:
    request = ResizeRequest(sizes=(Size(1200, 400),), mode="extend", prompt="extend naturally")
    result = resize(astronaut(), request)
    assert "1200x400: extended left and right: its texture continued." in result.notes


def test_a_transparent_logo_stays_transparent() -> None:
    logo = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    logo.paste(Image.new("RGBA", (120, 120), (200, 30, 30, 255)), (40, 40))
    result = resize(encode(logo, "PNG"), ResizeRequest(sizes=(Size(1500, 500),), output_format="png"))
    image = Image.open(io.BytesIO(result.outputs[0].data))
    assert image.mode == "RGBA"
    alpha = np.asarray(image.getchannel("A"))
    assert alpha[:, :400].max() == 0 and alpha[:, -400:].max() == 0  # the sides: transparent, not filled
    # Auto extended it, enlarged (200 px to 500): the notes say so, how, and why not a crop, and the last one how to
    # crop anyway.
    assert result.notes == (
        "1500x500: the source is smaller than this size, so it was enlarged 2.5x.",
        "1500x500: extended left and right: transparent (cropping would cut important content).",
        "To crop anyway, ask for crop mode.",
    )


def test_a_transparent_logo_as_a_jpeg_is_said_to_have_white_sides() -> None:
    logo = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    logo.paste(Image.new("RGBA", (120, 120), (200, 30, 30, 255)), (40, 40))
    request = ResizeRequest(sizes=(Size(1500, 500),), mode="extend", output_format="jpeg")
    result = resize(encode(logo, "PNG"), request)
    image = Image.open(io.BytesIO(result.outputs[0].data))
    assert image.format == "JPEG" and min(image.getpixel((100, 250))) > 245  # JPEG has no alpha: white
    assert "1500x500: extended left and right: white." in result.notes


@pytest.mark.parametrize(
    ("prompt", "colour", "words"),
    [
        ("black background", (0, 0, 0), "flat black"),
        ("white bars", (255, 255, 255), "flat white"),
        ("grey padding", (128, 128, 128), "flat grey"),
        ("letterbox", None, "a flat colour from its border"),
    ],
)
def test_a_solid_fill_is_said_to_be_flat(prompt: str, colour: tuple[int, int, int] | None, words: str) -> None:
    request = ResizeRequest(sizes=(Size(1200, 400),), mode="extend", output_format="png", prompt=prompt)
    result = resize(astronaut(), request)
    canvas = np.asarray(Image.open(io.BytesIO(result.outputs[0].data)).convert("RGB"), dtype=int)
    side = canvas[:, :300].reshape(-1, 3)
    assert (side == side[0]).all()  # one flat colour
    if colour is not None:
        assert tuple(side[0]) == colour
    assert f"1200x400: extended left and right: {words}." in result.notes, result.notes


def test_an_extension_that_enlarges_the_photo_says_so() -> None:
    # The 384x384 astronaut is placed at 1440x1440 on a 2560x1440 canvas: 3.75 times its size.
    request = ResizeRequest(sizes=(Size(2560, 1440), Size(1200, 400)), mode="extend")
    result = resize(astronaut(), request)
    assert result.outputs[0].placed_rect[2:] == (1440, 1440)
    assert "2560x1440: the source is smaller than this size, so it was enlarged 3.8x." in result.notes
    assert not any(note.startswith("1200x400: the source is smaller") for note in result.notes)  # 1.04x: as good


def test_a_story_from_a_landscape_photo_is_filled_fast() -> None:
    import time

    photo = np.asarray(Image.fromarray(_photo()).resize((1080, 608)))
    started = time.perf_counter()
    extend(photo, (1080, 1920), (0, 656), "auto")
    assert time.perf_counter() - started < 1.0  # well under that here (bench/README.md has the figures)
