"""Turn free-text ``prompt`` hints ("keep face centered, focus on the left") into engine behaviour.

The hosted API takes any instruction; we map the common ones to concrete knobs and report the rest as not
understood instead of failing, so a prompt written for the hosted API never breaks a local job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .errors import InvalidOption

Fill = Literal["auto", "blur", "mirror", "colour", "synthesize", "solid"]  # solid: one colour, as asked
Side = Literal["left", "right", "top", "bottom"]
# What "focus on the ..." names; the framer finds it among what the analysis detected.
FocusTarget = Literal["text", "person", "face", "left face", "right face", "subject"]

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
    crop: bool = False  # "crop to fill the frame": auto crops as crop mode does ("don't crop" wins over it)
    detail: bool = False  # decode and resample at higher quality
    text_priority: bool = False
    zoom: float = 1.0  # < 1 frames tighter than the largest window
    fill: Fill | None = None
    fill_colour: tuple[int, int, int] | None = None
    transparent_fill: bool = False
    thirds: bool = False
    focus_point: tuple[float, float] | None = None  # "focus on point (0.3, 0.4)": fractions of width and height
    focus_target: FocusTarget | None = None
    understood: list[str] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)


Rule = tuple[re.Pattern[str], str]

_FRACTION = r"(0(?:\.\d+)?|1(?:\.0+)?|\.\d+)"
# "focus on point (0.30, 0.40)" is how the hosted backend sends a focal point in a prompt; shorter forms work too.
# It is taken out before the prompt is split into clauses, because its comma and decimal points would split it.
FOCUS_POINT_PHRASE = "focus on point ({x:.2f}, {y:.2f}), as fractions of the width and height from the top left"
_FOCUS_POINT = re.compile(
    r"\bfocus(?:\s+point)?(?:\s+(?:on|at))?(?:\s+(?:the\s+)?point)?\s*\(?\s*"
    + _FRACTION
    + r"\s*[,;x ]\s*"
    + _FRACTION
    + r"\s*\)?(?:,?\s*as fractions of the width and height(?: from the top left)?)?",
    re.IGNORECASE,
)
_FOCUS_TARGET = re.compile(
    r"\b(?:focus|centre|center|zoom)\s+(?:on|in on)\s+(?:the\s+|a\s+|her\s+|his\s+|their\s+)?"
    r"(?:(?P<side>left|right)(?:most|-most|\s+most)?\s+)?"
    r"(?P<thing>signs?|text|words?|lettering|logo|labels?|title|person|people|man|woman|child|players?|faces?|"
    r"product|subject|animal|dog|cat|bird)\b",
    re.IGNORECASE,
)
_TARGETS: dict[str, FocusTarget] = {
    **dict.fromkeys(
        ("sign", "signs", "text", "word", "words", "lettering", "logo", "label", "labels", "title"), "text"
    ),
    **dict.fromkeys(("person", "people", "man", "woman", "child", "player", "players"), "person"),
    **dict.fromkeys(("face", "faces"), "face"),
    **dict.fromkeys(("product", "subject", "animal", "dog", "cat", "bird"), "subject"),
}


_FOCUS_VALUE = re.compile(r"\s*\(?\s*" + _FRACTION + r"\s*[, ]\s*" + _FRACTION + r"\s*\)?\s*")


def parse_focus(text: str) -> tuple[float, float]:
    """``"0.3,0.4"`` (across, then down, as fractions of the source) for ``--focus``; anything else is refused
    with the sentence a person needs."""
    match = _FOCUS_VALUE.fullmatch(text)
    if not match:
        raise InvalidOption(
            f"{text.strip()!r} isn't a focal point; give two fractions from 0 to 1, across then down, like 0.3,0.4."
        )
    return (float(match.group(1)), float(match.group(2)))


# How the hosted backend asks for a mode (the API has no field for it): this engine's own server reads them back.
MODE_PHRASES: dict[str, str] = {"crop": "crop to fill the frame", "extend": "don't crop"}


def focus_prompt(point: tuple[float, float]) -> str:
    """A focal point as a prompt clause: the hosted API takes words, and this engine reads the same words back."""
    return FOCUS_POINT_PHRASE.format(x=point[0], y=point[1])


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
    (_rx(r"\bcrop(ped)?\s+(it\s+)?to\s+fill\b|\bfill\s+the\s+(whole\s+)?(frame|canvas)\b"), "crop"),
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


def colour_name(colour: tuple[int, int, int]) -> str | None:
    """The word a prompt names ``colour`` by ("black"), or None for a colour no prompt word gives."""
    return next((name for name, rgb in _COLOURS.items() if rgb == colour), None)


def parse_prompt(prompt: str) -> Hints:
    hints = Hints()
    point = _FOCUS_POINT.search(prompt)
    if point:
        hints.focus_point = (float(point.group(1)), float(point.group(2)))
        hints.understood.append(point.group(0))
        prompt = prompt[: point.start()] + ";" + prompt[point.end() :]
    for clause in re.split(r"[,;.\n]+|\band\b|\bbut\b", prompt):
        clause = clause.strip()
        if not clause:
            continue
        matched = [name for pattern, name in _RULES if pattern.search(clause)]
        target = _FOCUS_TARGET.search(clause)
        if target:
            # "focus on the left face" names a thing to frame, not a side of the picture.
            thing = _TARGETS[target.group("thing").lower()]
            side = (target.group("side") or "").lower()
            hints.focus_target = f"{side} face" if thing == "face" and side else thing  # type: ignore[assignment]
            hints.face_priority = hints.face_priority or thing == "face"
            hints.text_priority = hints.text_priority or thing == "text"
            matched = [name for name in matched if name not in ("focus", "face", "text")] + ["target"]
        if not matched:
            if not all(_FILLER.match(word) for word in re.findall(r"[\w']+", clause)):
                hints.not_understood.append(clause)
            continue
        hints.understood.append(clause)
        for name in matched:
            _apply(hints, name, clause)
    return hints


def _apply(hints: Hints, name: str, clause: str) -> None:
    if name == "target":
        return  # applied where it was matched
    if name == "face":
        hints.face_priority = True
    elif name == "no_crop":
        hints.no_crop = True
    elif name == "crop":
        hints.crop = True
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
