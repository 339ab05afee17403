"""Named sizes for common destinations, the packs that group them, and the names people type for them.

Figures are the platforms' own recommended upload sizes as of 2024-2025; platforms change them now and then, so
this table is the one place to update. A name is looked up case-insensitively, with ``_`` or spaces read as ``-``,
brand short forms expanded (``ig-``, ``fb-``, ``yt-``, and ``twitter-`` for the renamed ``x-``), then aliases,
then presets, then packs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bot.engine import Size


@dataclass(frozen=True)
class Preset:
    name: str
    size: Size
    description: str


@dataclass(frozen=True)
class PresetGroup:
    """A pack of presets asked for by one name, e.g. ``social``."""

    name: str
    members: tuple[str, ...]
    description: str

    @property
    def sizes(self) -> tuple[Size, ...]:
        return tuple(PRESETS[member].size for member in self.members)


def _table(*presets: Preset) -> Mapping[str, Preset]:
    return MappingProxyType({preset.name: preset for preset in presets})


PRESETS: Mapping[str, Preset] = _table(
    Preset("instagram-square", Size(1080, 1080), "Instagram square feed post (1:1)"),
    Preset("instagram-portrait", Size(1080, 1350), "Instagram portrait feed post (4:5), the tallest the feed shows"),
    Preset("instagram-landscape", Size(1080, 566), "Instagram landscape feed post (1.91:1)"),
    Preset("instagram-story", Size(1080, 1920), "Instagram Story or Reel, full screen (9:16)"),
    Preset("facebook-post", Size(1200, 630), "Facebook feed or link image (1.91:1)"),
    Preset("facebook-cover", Size(1640, 624), "Facebook Page cover, twice the 820x312 desktop view"),
    Preset("x-post", Size(1600, 900), "X (Twitter) in-feed image (16:9)"),
    Preset("x-header", Size(1500, 500), "X (Twitter) profile header (3:1)"),
    Preset("linkedin-post", Size(1200, 627), "LinkedIn shared image (1.91:1)"),
    Preset("linkedin-banner", Size(1584, 396), "LinkedIn profile background (4:1)"),
    Preset("youtube-thumbnail", Size(1280, 720), "YouTube video thumbnail (16:9)"),
    Preset("youtube-banner", Size(2560, 1440), "YouTube channel banner; only the centre 1546x423 shows everywhere"),
    Preset("pinterest-pin", Size(1000, 1500), "Pinterest standard pin (2:3)"),
    Preset("tiktok", Size(1080, 1920), "TikTok video cover, full screen (9:16)"),
    Preset("og-image", Size(1200, 630), "Open Graph link preview, shown by Slack, LinkedIn and Facebook unfurls"),
    Preset("email-header", Size(600, 200), "Email header at the usual 600 px email width"),
    Preset("web-banner", Size(1920, 600), "Full-width website hero banner"),
    Preset("full-hd", Size(1920, 1080), "Full HD slide or video frame (16:9)"),
    Preset("avatar", Size(512, 512), "Square profile picture"),
)

GROUPS: Mapping[str, PresetGroup] = MappingProxyType(
    {
        group.name: group
        for group in (
            PresetGroup(
                "social",
                ("instagram-square", "instagram-portrait", "instagram-story", "og-image"),
                "The everyday set: square, portrait and story posts plus a link preview",
            ),
            PresetGroup(
                "instagram",
                ("instagram-square", "instagram-portrait", "instagram-landscape", "instagram-story"),
                "Every Instagram post shape and the story",
            ),
            PresetGroup("facebook", ("facebook-post", "facebook-cover"), "Facebook post and Page cover"),
            PresetGroup("x", ("x-post", "x-header"), "X (Twitter) post and header"),
            PresetGroup("linkedin", ("linkedin-post", "linkedin-banner"), "LinkedIn post and profile background"),
            PresetGroup("youtube", ("youtube-thumbnail", "youtube-banner"), "YouTube thumbnail and channel banner"),
            PresetGroup("web", ("og-image", "web-banner", "email-header"), "Link preview, hero banner, email header"),
        )
    }
)

# Short names people actually type; each points at a preset or a pack.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "square": "instagram-square",
        "portrait": "instagram-portrait",
        "story": "instagram-story",
        "reel": "instagram-story",
        "instagram-reel": "instagram-story",
        "tweet": "x-post",
        "og": "og-image",
        "open-graph": "og-image",
        "link-preview": "og-image",
        "thumbnail": "youtube-thumbnail",
        "pin": "pinterest-pin",
        "pinterest": "pinterest-pin",
        "tiktok-video": "tiktok",
        "email": "email-header",
        "hero": "web-banner",
        "hd": "full-hd",
        "1080p": "full-hd",
        "slide": "full-hd",
        "profile-picture": "avatar",
        "profile-photo": "avatar",
    }
)

# Applied to the first word of a name before anything else, so every ``twitter-*`` finds its ``x-*`` and ``fb`` alone
# is the Facebook pack.
BRAND_PREFIXES: Mapping[str, str] = MappingProxyType(
    {"twitter": "x", "ig": "instagram", "insta": "instagram", "fb": "facebook", "yt": "youtube"}
)

DEFAULT_GROUP = "social"
DEFAULT_SIZES: tuple[Size, ...] = GROUPS[DEFAULT_GROUP].sizes

_SEPARATORS = re.compile(r"[\s_\-]+")


def canonical_name(name: str) -> str | None:
    """The preset or pack a typed name stands for (``"Twitter_Post"`` -> ``"x-post"``), or None."""
    key = _SEPARATORS.sub("-", name.strip().lower()).strip("-")
    first, dash, rest = key.partition("-")
    if first in BRAND_PREFIXES:
        key = BRAND_PREFIXES[first] + dash + rest
    key = ALIASES.get(key, key)
    return key if key in PRESETS or key in GROUPS else None


def resolve_preset(name: str) -> list[Size] | None:
    """The sizes a preset, pack or alias stands for, in table order; None if the name is unknown."""
    key = canonical_name(name)
    if key is None:
        return None
    if key in PRESETS:
        return [PRESETS[key].size]
    return list(GROUPS[key].sizes)


def known_names() -> tuple[str, ...]:
    """Every spelling ``resolve_preset`` accepts up to case and separators (for "did you mean" suggestions)."""
    names = [*PRESETS, *GROUPS, *ALIASES]
    for short, full in BRAND_PREFIXES.items():
        names += [short + name[len(full) :] for name in (*PRESETS, *GROUPS) if name.partition("-")[0] == full]
    return tuple(names)


def presets_help() -> str:
    """The presets, packs and aliases as Slack mrkdwn, for the help message."""
    lines = ["*Presets*"]
    lines += [f"• `{p.name}` {p.size}: {p.description}" for p in PRESETS.values()]
    lines += ["", "*Packs* (several sizes at once)"]
    lines += [f"• `{g.name}` = {', '.join(g.members)}" for g in GROUPS.values()]
    shorts = ", ".join(f"`{alias}`" for alias in ALIASES)
    prefixes = ", ".join(f"`{short}`" for short in BRAND_PREFIXES)
    lines += [
        "",
        f"*Short names:* {shorts}; and {prefixes} stand for the brand in any name. Case and `_` don't matter.",
    ]
    return "\n".join(lines)


def presets_markdown() -> str:
    """The same tables as GitHub markdown, for the README."""
    lines = ["| Preset | Size | For |", "|---|---|---|"]
    lines += [f"| `{p.name}` | {p.size} | {p.description} |" for p in PRESETS.values()]
    lines += ["", "| Pack | Sizes | For |", "|---|---|---|"]
    lines += [f"| `{g.name}` | {', '.join(str(size) for size in g.sizes)} | {g.description} |" for g in GROUPS.values()]
    lines += ["", "| Short name | Means |", "|---|---|"]
    lines += [f"| `{alias}` | `{target}` |" for alias, target in ALIASES.items()]
    lines += [f"| `{short}-...` | `{full}-...` |" for short, full in BRAND_PREFIXES.items()]
    return "\n".join(lines) + "\n"
