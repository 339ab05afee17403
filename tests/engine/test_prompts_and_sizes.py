from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.engine import InvalidOption, InvalidSize, Limits, Size, parse_focus, parse_size
from bot.engine.prompts import focus_prompt, parse_prompt


@pytest.mark.parametrize(
    ("prompt", "field", "value"),
    [
        ("keep face centered", "face_priority", True),
        ("keep face centered", "centre", True),
        ("Focus on the left", "focus", ["left"]),
        ("focus on the top and the right side", "focus", ["top", "right"]),
        ("don't crop", "no_crop", True),
        ("do not cut anything", "no_crop", True),
        ("crop to fill the frame", "crop", True),
        ("fill the whole frame", "crop", True),
        ("preserve details", "detail", True),
        ("blur background", "fill", "blur"),
        ("mirror the edges", "fill", "mirror"),
        ("black bars", "fill_colour", (0, 0, 0)),
        ("keep the logo", "text_priority", True),
        ("zoom in", "zoom", 0.8),
        ("rule of thirds", "thirds", True),
    ],
)
def test_common_instructions_map_to_behaviour(prompt: str, field: str, value: object) -> None:
    hints = parse_prompt(prompt)
    assert getattr(hints, field) == value
    assert hints.not_understood == []


def test_unknown_instructions_are_reported_not_fatal() -> None:
    hints = parse_prompt("keep face centered, make it pop; add unicorns")
    assert hints.face_priority
    assert hints.not_understood == ["make it pop", "add unicorns"]


def test_empty_prompt_changes_nothing() -> None:
    hints = parse_prompt("")
    assert (hints.understood, hints.not_understood, hints.focus, hints.fill) == ([], [], [], None)


@given(st.text(max_size=300))
def test_any_prompt_is_accepted(prompt: str) -> None:
    hints = parse_prompt(prompt)
    assert all(clause.strip() for clause in hints.not_understood + hints.understood)
    assert 0 < hints.zoom <= 1.25


@given(st.integers(16, 8192), st.integers(16, 8192), st.sampled_from(["x", "X", "×"]), st.sampled_from(["", " "]))
def test_valid_sizes_parse(width: int, height: int, sep: str, pad: str) -> None:
    assert parse_size(f"{pad}{width}{pad}{sep}{pad}{height}{pad}") == Size(width, height)


@given(st.text(max_size=20))
def test_anything_else_is_invalid_size_or_a_size(text: str) -> None:
    try:
        size = parse_size(text)
    except InvalidSize as error:
        assert "WIDTHxHEIGHT" in str(error) or "between" in str(error)
    else:
        assert 16 <= size.width <= 8192 and 16 <= size.height <= 8192


@given(st.integers(0, 15) | st.integers(8193, 10**40), st.integers(16, 8192))
def test_out_of_range_sides_are_refused(bad: int, good: int) -> None:
    for text in (f"{bad}x{good}", f"{good}x{bad}"):
        with pytest.raises(InvalidSize, match="is outside the supported range; each side must be between 16 and 8192"):
            parse_size(text)


def test_a_side_too_long_to_read_is_out_of_range_and_shown_cut_short() -> None:
    with pytest.raises(InvalidSize) as info:
        parse_size("1000000x1000000")
    assert str(info.value).startswith("1000000x1000000 is outside the supported range")
    with pytest.raises(InvalidSize) as info:
        parse_size(f"{'9' * 5000}x0100")  # longer than Python will turn into an int, and a zero-padded side
    assert str(info.value).startswith("999999999…x100 is outside the supported range")


def test_limits_change_the_range() -> None:
    assert parse_size("10000x100", Limits(max_side=12000)) == Size(10000, 100)


_FRACTIONS = st.floats(0, 1, allow_nan=False).map(lambda v: round(v, 2))


@given(_FRACTIONS, _FRACTIONS, st.sampled_from(["{x},{y}", "{x}, {y}", "{x} {y}", "({x}, {y})", " {x},{y} "]))
def test_focal_points_parse(x: float, y: float, form: str) -> None:
    assert parse_focus(form.format(x=x, y=y)) == (x, y)


@given(st.text(max_size=20))
def test_anything_else_is_refused_as_a_focal_point_with_a_sentence(text: str) -> None:
    try:
        x, y = parse_focus(text)
    except InvalidOption as error:
        assert str(error).endswith("like 0.3,0.4.")
    else:
        assert 0 <= x <= 1 and 0 <= y <= 1


@given(_FRACTIONS, _FRACTIONS, st.sampled_from(["", "keep face centered", "white background"]))
def test_the_focus_phrase_sent_to_the_hosted_api_reads_back_as_the_same_point(x: float, y: float, rest: str) -> None:
    hints = parse_prompt("; ".join(part for part in (rest, focus_prompt((x, y))) if part))
    assert hints.focus_point == (x, y)
    assert hints.not_understood == []


@pytest.mark.parametrize(
    ("prompt", "target"),
    [
        ("focus on the sign", "text"),
        ("Focus on the logo", "text"),
        ("focus on the text", "text"),
        ("focus on the person", "person"),
        ("focus on the left face", "left face"),
        ("focus on the rightmost face", "right face"),
        ("focus on the face", "face"),
        ("zoom in on the product", "subject"),
    ],
)
def test_focus_on_a_thing_names_what_to_frame_not_a_side(prompt: str, target: str) -> None:
    hints = parse_prompt(prompt)
    assert hints.focus_target == target
    assert hints.focus == []
    assert hints.not_understood == []
