"""Any text is read in bounded time with a bounded answer (issue 14: a 40,000-character mention took 1.6 s and was
answered with 302,000 characters)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.grammar import MAX_NOTES, MAX_TEXT_CHARS, Grammar, ParseError, ResizeCommand

GRAMMAR = Grammar()
# Slack's own ceiling for a message's text; every kind of word the grammar has to think about.
SLACK_MESSAGE_CHARS = 40_000
HOSTILE = {
    "misspelt presets": "instagrm ",
    "distinct misspellings": "".join(f"instagrm{n} " for n in range(6000)),
    "sizes out of range": "9999x9999 ",
    "unknown options": "--foo ",
    "conflicting formats": "png jpeg ",
    "links": "<https://a.example/1.jpg> <https://b.example/2.jpg> ",
    "unclosed quotes": '"a ',
    "one long word": "x",
}
# What one answer may carry: the notes, each a sentence of bounded length, well under a Slack section (3,000).
MAX_REPLY_CHARS = 2_000


def _hostile(unit: str) -> str:
    return (unit * (SLACK_MESSAGE_CHARS // len(unit) + 1))[:SLACK_MESSAGE_CHARS]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_40000_character_mention_is_read_quickly_with_a_short_answer(name: str) -> None:
    text = _hostile(HOSTILE[name])
    started = time.perf_counter()
    parsed = GRAMMAR.parse_mention(text)
    took = time.perf_counter() - started
    assert took < 0.2, f"{name}: {took:.2f} s"
    assert isinstance(parsed, ResizeCommand)
    assert len(parsed.notes) <= MAX_NOTES + 1
    assert len(" ".join(parsed.notes)) < MAX_REPLY_CHARS
    assert parsed.notes[0] == f"Your message is long, so I read only its first {MAX_TEXT_CHARS:,} characters."


def test_past_the_cap_the_rest_is_counted_in_one_note() -> None:
    parsed = GRAMMAR.parse_mention(" ".join(f"--opt{n}" for n in range(20)))
    assert isinstance(parsed, ResizeCommand)
    assert len(parsed.notes) == MAX_NOTES + 1
    assert parsed.notes[-1] == f"I also left out {20 - MAX_NOTES} more things I couldn't use."


def test_the_same_mistake_repeated_is_one_note() -> None:
    parsed = GRAMMAR.parse_mention("instagrm " * 50 + "story")
    assert isinstance(parsed, ResizeCommand)
    assert parsed.notes == ("I didn't recognise 'instagrm'; if you meant 'instagram', ask again.",)
    assert parsed.sizes_named


def test_a_long_mention_still_does_what_its_start_asks() -> None:
    parsed = GRAMMAR.parse_mention("1080x1080 --format webp " + "please " * 6000)
    assert isinstance(parsed, ResizeCommand)
    assert [str(size) for size in parsed.spec.sizes] == ["1080x1080"]
    assert parsed.spec.output_format == "webp"


def test_the_mention_is_cut_between_words() -> None:
    text = "a" * (MAX_TEXT_CHARS - 5) + " 1080x1080 1200x630"  # the first size straddles the cap
    parsed = GRAMMAR.parse_mention(text)
    assert isinstance(parsed, ResizeCommand)
    assert not parsed.sizes_named  # "1080x1080" was dropped whole, not read as "10"


def test_a_command_over_the_cap_is_refused_in_one_sentence() -> None:
    with pytest.raises(ParseError) as refused:
        GRAMMAR.parse_command("1080x1080 " * 1000)
    assert refused.value.message == (
        f"That is 10,000 characters; /resize reads at most {MAX_TEXT_CHARS:,}. "
        "Ask for fewer sizes at once, or use a pack such as social."
    )
    GRAMMAR.parse_command("1080x1080 " * 400)  # 4,000: still read


pieces = st.sampled_from([*"ab1x0-= \"'<>|:,.", "png", "--", "instagrm", "9999", "1080x1080 ", "https://"])


@settings(max_examples=100, deadline=None)
@given(st.lists(pieces, max_size=3000).map("".join))
def test_any_mention_gives_a_bounded_answer(text: str) -> None:
    parsed = GRAMMAR.parse_mention(text)
    notes = getattr(parsed, "notes", ())
    assert len(notes) <= MAX_NOTES + 1
    assert len(" ".join(notes)) < MAX_REPLY_CHARS


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=6000))
def test_any_command_is_read_or_refused_with_a_short_sentence(text: str) -> None:
    try:
        GRAMMAR.parse_command(text)
    except ParseError as error:
        assert len(error.message) < 600
