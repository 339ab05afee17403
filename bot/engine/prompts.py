"""Turn free-text ``prompt`` hints ("keep face centered, focus on the left") into engine behaviour.

The hosted API takes any instruction; we map the common ones to concrete knobs and report the rest as not
understood instead of failing, so a prompt written for the hosted API never breaks a local job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Fill = Literal["auto", "blur", "mirror", "colour", "synthesize", "solid"]  # solid: one colour, as asked
Side = Literal["left", "right", "top", "bottom"]

_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
}


@dataclass
class Hints:
    face_priority: bool = False  # faces dominate importance, centred in the window
    centre: bool = False  # strong centre prior
    focus: list[Side] = field(default_factory=list)
    no_crop: bool = False
    detail: bool = False  # decode and resample at higher quality
    text_priority: bool = False
    zoom: float = 1.0  # < 1 frames tighter than the largest window
    fill: Fill | None = None
    fill_colour: tuple[int, int, int] | None = None
    transparent_fill: bool = False
    thirds: bool = False
    understood: list[str] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)


Rule = tuple[re.Pattern[str], str]


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_RULES: list[Rule] = [
    (_rx(r"\b(face|faces|person|people|portrait|head)s?\b"), "face"),
    (
        _rx(
            r"\b(don'?t|do not|never|no|without)\s+(crop|cropping|cut|cutting)\b|\bkeep (everything|it all|the whole)"
            r"|\b(whole|entire|full) (image|photo|picture)\b|\buncropped\b|\bfit\b"
        ),
        "no_crop",
    ),
    (
        _rx(r"\b(on|to|towards?|at)?\s*the\s+(left|right|top|bottom)\b|\b(left|right|top|bottom)\s+(side|half|part)\b"),
        "focus",
    ),
    (
        _rx(
            r"\b(preserve|keep|retain)\s+(the\s+)?(details?|sharpness)\b|\bsharp(er)?\b|\bhigh[- ]quality\b"
            r"|\bdetailed\b"
        ),
        "detail",
    ),
    (_rx(r"\b(text|logo|title|headline|caption|words?|lettering)\b"), "text"),
    (_rx(r"\bblur(red|ry)?\b"), "blur"),
    (_rx(r"\b(mirror(ed)?|reflect(ed|ion)?)\b"), "mirror"),
    (_rx(r"\btransparent\b"), "transparent"),
    (
        _rx(
            r"\b(extend(ed)?|continue[ds]?|fill(ed)?)\s+(it\s+)?(naturally|seamlessly|realistically)\b|\bnatural\s+(fill|extension)\b"
        ),
        "synthesize",
    ),
    (_rx(r"\b(white|black|grey|gray)\s+(background|bars?|borders?|padding|fill)\b"), "colour"),
    (_rx(r"\b(solid|letterbox(ed)?|pillarbox(ed)?|bars|padding|pad)\b"), "solid"),
    (_rx(r"\b(zoom(ed)? in|tight(er|ly)?|close[- ]?up|closer)\b"), "zoom_in"),
    (_rx(r"\b(zoom(ed)? out|wide(r)?|loose|more context|breathing room)\b"), "zoom_out"),
    (_rx(r"\brule of thirds\b|\bthirds\b"), "thirds"),
    (_rx(r"\b(cent(er|re)(ed)?|middle)\b"), "centre"),
]
_SIDE = _rx(r"\b(left|right|top|bottom)\b")
_COLOUR = _rx(r"\b(white|black|grey|gray)\b")
# Words that carry no instruction by themselves; a clause made only of them is not reported as not understood.
_FILLER = _rx(r"^(please|and|the|a|an|it|image|photo|picture|keep|make|background|subject|main|on|in|of|with)$")


def parse_prompt(prompt: str) -> Hints:
    hints = Hints()
    for clause in re.split(r"[,;.\n]+|\band\b|\bbut\b", prompt):
        clause = clause.strip()
        if not clause:
            continue
        matched = [name for pattern, name in _RULES if pattern.search(clause)]
        if not matched:
            if not all(_FILLER.match(word) for word in re.findall(r"[\w']+", clause)):
                hints.not_understood.append(clause)
            continue
        hints.understood.append(clause)
        for name in matched:
            _apply(hints, name, clause)
    return hints


def _apply(hints: Hints, name: str, clause: str) -> None:
    if name == "face":
        hints.face_priority = True
    elif name == "no_crop":
        hints.no_crop = True
    elif name == "focus":
        side = _SIDE.search(clause)
        if side:
            hints.focus.append(side.group(1).lower())  # type: ignore[arg-type]
    elif name == "detail":
        hints.detail = True
    elif name == "text":
        hints.text_priority = True
    elif name == "blur":
        hints.fill = "blur"
    elif name == "mirror":
        hints.fill = "mirror"
    elif name == "synthesize":
        hints.fill = "synthesize"
    elif name == "transparent":
        hints.transparent_fill = True
        hints.fill = "solid"
    elif name == "colour":
        colour = _COLOUR.search(clause)
        hints.fill = "solid"
        if colour:
            hints.fill_colour = _COLOURS[colour.group(1).lower()]
    elif name == "solid":
        hints.fill = "solid"
    elif name == "zoom_in":
        hints.zoom = 0.8
    elif name == "zoom_out":
        hints.zoom = 1.25
    elif name == "thirds":
        hints.thirds = True
    elif name == "centre":
        hints.centre = True
