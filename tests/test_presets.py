from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.engine import Limits, Size, parse_size
from bot.presets import (
    ALIASES,
    BRAND_PREFIXES,
    DEFAULT_SIZES,
    GROUPS,
    PRESETS,
    canonical_name,
    known_names,
    presets_help,
    presets_markdown,
    resolve_preset,
)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("instagram-square", Size(1080, 1080)),
        ("instagram-portrait", Size(1080, 1350)),
        ("instagram-story", Size(1080, 1920)),
        ("facebook-post", Size(1200, 630)),
        ("facebook-cover", Size(1640, 624)),
        ("x-post", Size(1600, 900)),
        ("x-header", Size(1500, 500)),
        ("linkedin-post", Size(1200, 627)),
        ("linkedin-banner", Size(1584, 396)),
        ("og-image", Size(1200, 630)),
        ("youtube-thumbnail", Size(1280, 720)),
        ("pinterest-pin", Size(1000, 1500)),
        ("tiktok", Size(1080, 1920)),
        ("email-header", Size(600, 200)),
        ("web-banner", Size(1920, 600)),
    ],
)
def test_presets_have_the_published_sizes(name: str, size: Size) -> None:
    assert PRESETS[name].size == size
    assert resolve_preset(name) == [size]


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("Instagram-Story", "instagram-story"),
        ("INSTAGRAM_STORY", "instagram-story"),
        ("instagram story", "instagram-story"),
        ("  og_image ", "og-image"),
        ("story", "instagram-story"),
        ("reel", "instagram-story"),
        ("og", "og-image"),
        ("twitter-post", "x-post"),
        ("Twitter_Header", "x-header"),
        ("twitter", "x"),
        ("tweet", "x-post"),
        ("ig-story", "instagram-story"),
        ("insta_square", "instagram-square"),
        ("ig", "instagram"),
        ("fb-cover", "facebook-cover"),
        ("fb", "facebook"),
        ("yt-thumbnail", "youtube-thumbnail"),
        ("ig-reel", "instagram-story"),
        ("hd", "full-hd"),
        ("1080p", "full-hd"),
        ("Social", "social"),
    ],
)
def test_names_are_found_however_they_are_typed(typed: str, canonical: str) -> None:
    assert canonical_name(typed) == canonical
    assert resolve_preset(typed) == resolve_preset(canonical)


@pytest.mark.parametrize(
    "name", ["", "-", "_", "instagramm", "post", "twitter-posts", "1080x1080", "square-square", "x-x"]
)
def test_unknown_names_resolve_to_none(name: str) -> None:
    assert canonical_name(name) is None
    assert resolve_preset(name) is None


def test_packs_list_their_members_sizes_in_order() -> None:
    assert resolve_preset("social") == [Size(1080, 1080), Size(1080, 1350), Size(1080, 1920), Size(1200, 630)]
    assert resolve_preset("x") == [Size(1600, 900), Size(1500, 500)]
    assert resolve_preset("instagram") == [PRESETS[n].size for n in GROUPS["instagram"].members]


def test_default_sizes_are_the_social_pack() -> None:
    assert DEFAULT_SIZES == (Size(1080, 1080), Size(1080, 1350), Size(1080, 1920), Size(1200, 630))


def test_every_size_is_within_the_engine_limits() -> None:
    limits = Limits()
    for preset in PRESETS.values():
        assert parse_size(str(preset.size), limits) == preset.size


def test_table_is_consistent() -> None:
    spelled = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
    assert 15 <= len(PRESETS) <= 25
    for name, preset in PRESETS.items():
        assert name == preset.name and spelled.fullmatch(name) and preset.description
    for name, group in GROUPS.items():
        assert name == group.name and spelled.fullmatch(name) and group.description
        assert name not in PRESETS
        assert len(group.members) >= 2 and all(member in PRESETS for member in group.members)
    for alias, target in ALIASES.items():
        assert spelled.fullmatch(alias)
        assert alias not in PRESETS and alias not in GROUPS, f"{alias} would hide a preset"
        assert target in PRESETS or target in GROUPS
    for short, full in BRAND_PREFIXES.items():
        assert short not in PRESETS and short not in GROUPS and short not in ALIASES
        assert full in GROUPS or any(name.startswith(f"{full}-") for name in PRESETS)


def test_no_name_reads_as_a_size_or_an_option_word() -> None:
    # A preset named like a size or a format would make the command grammar ambiguous.
    for name in known_names():
        assert not re.fullmatch(r"\d+[x×]\d+", name)
        assert name not in {
            "png",
            "jpeg",
            "jpg",
            "webp",
            "crop",
            "extend",
            "auto",
            "help",
            "on",
            "off",
            "1k",
            "2k",
            "4k",
        }


def test_known_names_all_resolve_and_include_brand_forms() -> None:
    names = known_names()
    assert {"twitter-post", "ig-story", "fb-cover", "yt-banner", "story", "social"} <= set(names)
    assert all(resolve_preset(name) is not None for name in names)


def test_help_lists_every_preset_pack_and_alias() -> None:
    text = presets_help()
    for preset in PRESETS.values():
        assert f"• `{preset.name}` {preset.size}: {preset.description}" in text
    for group in GROUPS.values():
        assert f"`{group.name}` = {', '.join(group.members)}" in text
    for alias in ALIASES:
        assert f"`{alias}`" in text
    assert "**" not in text  # Slack's mrkdwn bold is one star
    assert len(text) < 3000  # fits one section block


def test_markdown_tables_are_well_formed() -> None:
    text = presets_markdown()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in rows)
    preset_rows = [line for line in rows if line.startswith("| `") and line.count("|") == 4]
    assert "| `instagram-story` | 1080x1920 | Instagram Story or Reel, full screen (9:16) |" in preset_rows
    assert "| `social` | 1080x1080, 1080x1350, 1080x1920, 1200x630 |" in text
    assert "| `story` | `instagram-story` |" in text
    assert "| `twitter-...` | `x-...` |" in text
    for table in text.strip().split("\n\n"):
        lines = table.splitlines()
        columns = {line.count("|") for line in lines}
        assert len(columns) == 1, table
        assert re.fullmatch(r"(\|---)+\|", lines[1])
    assert len(preset_rows) == len(PRESETS) + len(GROUPS)


@given(st.text(max_size=40))
def test_any_name_resolves_or_is_none(name: str) -> None:
    sizes = resolve_preset(name)
    assert sizes is None or (sizes and all(isinstance(size, Size) for size in sizes))
    assert (sizes is None) == (canonical_name(name) is None)
