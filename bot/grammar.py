"""The user-facing grammar of ``/resize`` and of @mention text: sizes, presets, a link and options -> one Command.

Grammar, as decided here (``help_text`` is the user's version):

- Tokens are separated by any whitespace. Commas also separate sizes and presets (``1080x1080,1200x630``), and
  punctuation around a word is dropped (``story.``), so sentences in a mention still parse.
- A size is ``WIDTHxHEIGHT`` (``x``, ``X`` or ``×``, optional ``px`` suffix); ``1080 x 1080`` is read as one size.
  Sides are checked against ``Limits`` by the engine's ``parse_size``.
- A preset, pack or alias is any name ``bot.presets.resolve_preset`` knows; two or three words that together make a
  name are read as that name (``instagram story`` is ``instagram-story``, not the Instagram pack plus a story).
- The image link is ``http(s)://...`` bare, or Slack's ``<https://...>`` / ``<https://...|label>``; Slack's
  ``&amp; &lt; &gt;`` escapes are decoded. At most one link. ``<@U..>``, ``<#C..>`` and ``<!here>`` are ignored.
- Options: ``--format``/``-f``, ``--mode``/``-m``, ``--variants``/``-n``, ``--prompt``/``-p``, ``--seed``/``-s``,
  ``--resolution``/``-r``, ``--fill``, ``--focus X,Y`` (fractions across and down; ``0.3, 0.4`` with a space too);
  the value follows as the next word or after ``=``. Values are case-insensitive, ``jpg``
  means ``jpeg``. A dash typed as ``—`` or ``–`` (macOS and phones turn ``--`` into one) counts as ``--``. The same
  option given twice with different values is an error. Unambiguous values work alone: ``webp``, ``crop``, ``2K``.
- ``--prompt`` takes a quoted phrase (``"..."``, ``“...”``, ``'...'`` or ``‘...’``; a quote closes only before
  whitespace or the end, so ``'don't crop'`` works, and an unclosed quote runs to the end of the text). Unquoted, it
  takes the following words up to the next option, size or link, so ``--prompt keep face centered`` works last.
- ``help`` (or ``?``, ``-h``, ``--help``) anywhere in a command asks for help; ``auto on [sizes...]``, ``auto off``
  and ``auto`` (show) manage automatic resizing when ``auto`` comes first.

``parse_command`` is strict: the first problem raises ``ParseError`` with a sentence to show the user.
``parse_mention`` is lenient: it never raises, skips ordinary words, and reports what it had to drop or change in
``ResizeCommand.notes`` instead, because a mention is a sentence to a person, not a command line.

Both read at most ``MAX_TEXT_CHARS``: a command that is longer is refused, a mention is read up to there (and says
so), and a mention keeps at most ``MAX_NOTES`` notes, so any text is answered in bounded time with a bounded reply.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

from bot.engine import (
    MAX_VARIANTS,
    Fitted,
    InvalidOption,
    InvalidSize,
    Limits,
    Size,
    fit_outputs,
    parse_focus,
    parse_size,
)
from bot.engine.types import FILL_CHOICES, MODES, RESOLUTIONS, FillChoice, Mode, OutputFormat, Resolution
from bot.net.errors import InvalidUrl
from bot.net.fetch import parse_http_url
from bot.presets import DEFAULT_GROUP, DEFAULT_SIZES, canonical_name, known_names, presets_help, resolve_preset
from bot.smart_resize_api.contract import MAX_PROMPT_CHARS, MAX_SEED
from bot.spec import ResizeSpec

MAX_SIZES = 10
DEFAULT_LIMITS = Limits()
# Slack allows 40,000 characters in a message and a few thousand in a slash command; a request needs a few hundred.
# Read whole, a 40,000-character mention took 1.6 s of the event loop and was answered with 302,000 characters.
MAX_TEXT_CHARS = 4000
MAX_NOTES = 5  # what a mention left out, one sentence each; the rest are counted in one more


class ParseError(ValueError):
    """The text could not be read; ``message`` says what was wrong and what to write instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ResizeCommand:
    """Resize one image as ``spec`` says; ``url`` None means the image comes from Slack."""

    spec: ResizeSpec
    url: str | None = None
    # What a lenient parse dropped or changed, one sentence each; always empty from parse_command.
    notes: tuple[str, ...] = ()
    # False when the text named no size, so ``spec.sizes`` are the defaults (and, in a mention, not yet fitted to
    # the output caps with its variants: the channel's sizes may stand in for them, handlers.common.channel_spec).
    sizes_named: bool = True
    # A lenient parse left out something meant as a size (out of range, or a preset misspelt): with no size named,
    # the defaults would be a guess the user did not make.
    sizes_refused: bool = False


@dataclass(frozen=True)
class HelpCommand:
    """Show the help; ``reason`` is a sentence to put before it, if the user didn't ask for help outright."""

    reason: str | None = None


AutoAction = Literal["on", "off", "show"]


@dataclass(frozen=True)
class AutoCommand:
    """Turn automatic resizing of uploads on (with these sizes; empty means the defaults), off, or show it."""

    action: AutoAction
    sizes: tuple[Size, ...] = ()
    notes: tuple[str, ...] = ()  # as in ResizeCommand


Command: TypeAlias = ResizeCommand | HelpCommand | AutoCommand

EMPTY_COMMAND_REASON = (
    "Tell me which sizes you want and which image: give sizes or presets and a link, or mention me on an upload."
)


@dataclass(frozen=True)
class Grammar:
    """The grammar with one deployment's limits and defaults: made once from the settings, used by every handler."""

    limits: Limits = DEFAULT_LIMITS
    max_sizes: int = MAX_SIZES
    default_sizes: tuple[Size, ...] = DEFAULT_SIZES
    reaction: str = "frame_with_picture"
    command_name: str = "/resize"

    def parse_command(self, text: str) -> Command:
        """Read the text of a ``/resize`` command; raises ParseError on the first thing it can't use."""
        if len(text) > MAX_TEXT_CHARS:
            raise ParseError(
                f"That is {len(text):,} characters; {self.command_name} reads at most {MAX_TEXT_CHARS:,}. "
                f"Ask for fewer sizes at once, or use a pack such as {DEFAULT_GROUP}."
            )
        return _Parser(self, strict=True).parse(text)

    def parse_mention(self, text: str) -> Command:
        """Read an @mention's text leniently: never raises; problems become ``ResizeCommand.notes``."""
        parser = _Parser(self, strict=False)
        if len(text) > MAX_TEXT_CHARS:
            # Up to the last break before the cap, so no word (or size) is read cut in half.
            cut = text.rfind(" ", MAX_TEXT_CHARS // 2, MAX_TEXT_CHARS + 1)
            text = text[: cut if cut > 0 else MAX_TEXT_CHARS]
            parser.note(f"Your message is long, so I read only its first {MAX_TEXT_CHARS:,} characters.")
        return parser.parse(text)

    def parse_size_list(self, text: str, *, max_sizes: int | None = None) -> tuple[Size, ...]:
        """Sizes and presets only (settings such as DEFAULT_SIZES, the form's custom sizes); ParseError otherwise."""
        grammar = replace(self, max_sizes=max_sizes or self.max_sizes)
        parsed = grammar.parse_command(text)
        # Anything but sizes (a link, an option, help, auto) makes the parse differ from a bare list of its sizes.
        if not isinstance(parsed, ResizeCommand) or parsed != ResizeCommand(ResizeSpec(sizes=parsed.spec.sizes)):
            raise ParseError(f"{text.strip()!r} should be sizes or presets only, like 'social 1200x628'.")
        return parsed.spec.sizes

    def default_command(self) -> ResizeCommand:
        return ResizeCommand(ResizeSpec(sizes=self.default_sizes), sizes_named=False)

    def help_text(self, command_name: str | None = None) -> str:
        """The help, for ``command_name`` if the command the user typed goes by another name."""
        return help_text(
            command_name or self.command_name,
            limits=self.limits,
            max_sizes=self.max_sizes,
            default_sizes=self.default_sizes,
            reaction=self.reaction,
        )


def parse_command(text: str, **grammar: Any) -> Command:
    """``Grammar(**grammar).parse_command(text)``."""
    return Grammar(**grammar).parse_command(text)


def parse_mention(text: str, **grammar: Any) -> Command:
    """``Grammar(**grammar).parse_mention(text)``."""
    return Grammar(**grammar).parse_mention(text)


def parse_size_list(text: str, **grammar: Any) -> tuple[Size, ...]:
    """``Grammar(**grammar).parse_size_list(text)``."""
    return Grammar(**grammar).parse_size_list(text)


# --- tokens -----------------------------------------------------------------------------------------------------

_DOUBLE_OPEN, _DOUBLE_CLOSE = '"“”„', '"“”'
_SINGLE_OPEN, _SINGLE_CLOSE = "'‘’‚", "'‘’"


@dataclass(frozen=True)
class _Token:
    text: str
    kind: Literal["word", "angle"]
    # Where in ``text`` a quoted phrase began, if any. Quoted text is taken literally, never as a size or option;
    # a quote after "=" (``--prompt="..."``) leaves the option name before it readable.
    quoted_from: int | None = None

    @property
    def quoted(self) -> bool:
        return self.quoted_from is not None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "<":
            # Slack escapes a typed "<" as &lt;, so a raw one always opens Slack markup.
            end = text.find(">", i)
            if end != -1:
                tokens.append(_Token(text[i + 1 : end], "angle"))
                i = end + 1
                continue
        start = i
        chars: list[str] = []
        quoted_from: int | None = None
        while i < n and not text[i].isspace():
            ch = text[i]
            if (ch in _DOUBLE_OPEN or ch in _SINGLE_OPEN) and (i == start or text[i - 1] == "="):
                closers = _DOUBLE_CLOSE if ch in _DOUBLE_OPEN else _SINGLE_CLOSE
                close = _closing_quote(text, i + 1, closers)
                if quoted_from is None:
                    quoted_from = len("".join(chars))
                chars.append(text[i + 1 : close])
                i = close + 1
                continue
            chars.append(ch)
            i += 1
        tokens.append(_Token("".join(chars), "word", quoted_from))
    return tokens


def _closing_quote(text: str, start: int, closers: str) -> int:
    """Index of the quote that closes a phrase opened before ``start``; ``len(text)`` if it never closes."""
    for k in range(start, len(text)):
        # A quote mid-word is an apostrophe (don't, it’s), so only one before whitespace or the end closes.
        if text[k] in closers and (k + 1 == len(text) or text[k + 1].isspace()):
            return k
    return len(text)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


_OPTION = re.compile(r"(?:--?|[—–])([A-Za-z][\w-]*)(?:=(.*))?", re.DOTALL)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_LINKISH = re.compile(r"(www\.|[\w-]+(\.[\w-]+)+/)", re.IGNORECASE)
_SIZE_SHAPE = re.compile(r"\d+[xX×]\d+")
_SPACED_SIZE = re.compile(r"\d+ ?[xX×] ?\d+")
_PX = re.compile(r"px$", re.IGNORECASE)
_STRIP = "([{\"'“”‘’.,;:!?)]}"

_OPTIONS: dict[str, str] = {
    "format": "format",
    "f": "format",
    "output-format": "format",
    "mode": "mode",
    "m": "mode",
    "variants": "variants",
    "variant": "variants",
    "n": "variants",
    "num-images": "variants",
    "prompt": "prompt",
    "p": "prompt",
    "seed": "seed",
    "s": "seed",
    "resolution": "resolution",
    "res": "resolution",
    "r": "resolution",
    "fill": "fill",
    "focus": "focus",
}
_EXAMPLES = {
    "format": "--format webp",
    "mode": "--mode crop",
    "variants": "--variants 3",
    "prompt": '--prompt "keep face centered"',
    "seed": "--seed 42",
    "resolution": "--resolution 2K",
    "fill": "--fill synthesize",
    "focus": "--focus 0.3,0.4",
}
_FIELDS = {name: "output_format" if name == "format" else name for name in _EXAMPLES}
_HELP_WORDS = frozenset({"help", "?", "-h", "--help", "—help", "–help"})
_AUTO_ACTIONS: dict[str, AutoAction] = {"on": "on", "off": "off", "show": "show", "status": "show"}
_FORMAT_WORDS: dict[str, OutputFormat] = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
_MODE_WORDS: dict[str, Mode] = {"crop": "crop", "extend": "extend"}  # "auto" alone is the auto command
_RESOLUTION_WORDS: dict[str, Resolution] = {r.lower(): r for r in RESOLUTIONS}
_HALF_FOCUS = re.compile(r"(0(\.\d+)?|1(\.0+)?|\.\d+),?")
_FILL_WORDS: dict[str, FillChoice] = {**{f: f for f in FILL_CHOICES}, "color": "colour", "synthesise": "synthesize"}


def _value_text(value: object) -> str:
    """An option's value as the user typed it: a focal point as ``0.3,0.4``."""
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else str(value)


def _is_plain(token: _Token) -> bool:
    return token.kind == "word" and not token.quoted


def _is_option(token: _Token) -> bool:
    return token.kind == "word" and token.quoted_from != 0 and _OPTION.fullmatch(token.text) is not None


def _is_link(token: _Token) -> bool:
    if token.kind == "angle":
        return token.text[:1] not in ("@", "#", "!")
    return _is_plain(token) and _SCHEME.match(token.text) is not None


def _parts(word: str) -> list[str]:
    """The comma-separated pieces of a plain word, with surrounding punctuation dropped."""
    return [part for piece in _unescape(word).split(",") if (part := piece.strip(_STRIP))]


def _size_text(part: str) -> str:
    return _PX.sub("", part)


def _shown(value: str) -> str:
    value = " ".join(value.split())
    return f"'{value[:40]}…'" if len(value) > 40 else f"'{value}'"


def _either(options: Sequence[str]) -> str:
    quoted = [f"'{option}'" for option in options]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


@functools.lru_cache(maxsize=1024)  # the same unknown word repeated costs one difflib search, not hundreds
def _suggestions(word: str, cutoff: float) -> tuple[str, ...]:
    names = [*known_names(), "help", "auto", *_FORMAT_WORDS, *_MODE_WORDS]
    found: list[str] = []
    for match in difflib.get_close_matches(word.lower(), names, n=8, cutoff=cutoff):
        name = canonical_name(match) or match
        if name not in found and name != word.lower():  # "did you mean 'help'?" of "help" helps nobody
            found.append(name)
    return tuple(found[:3])  # a tuple: the cache hands the same value to every caller


# --- parser -----------------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, grammar: Grammar, *, strict: bool) -> None:
        self.grammar = grammar
        self.strict = strict
        self.limits = grammar.limits
        self.max_sizes = grammar.max_sizes
        self.command_name = grammar.command_name
        self.sizes: list[Size] = []
        self.url: str | None = None
        # Any: each value is checked against its field's choices before it is stored here.
        self.values: dict[str, Any] = {}
        self.notes: list[str] = []
        self.more_notes = 0  # past MAX_NOTES: counted, not kept
        self.help = False
        self.sizes_refused = False

    @property
    def notes_full(self) -> bool:
        return len(self.notes) >= MAX_NOTES

    def note(self, text: str) -> None:
        if text in self.notes:  # the same word a hundred times is one note
            return
        if self.notes_full:
            self.more_notes += 1
        else:
            self.notes.append(text)

    def final_notes(self) -> tuple[str, ...]:
        if not self.more_notes:
            return tuple(self.notes)
        things = "thing" if self.more_notes == 1 else "things"
        return (*self.notes, f"I also left out {self.more_notes} more {things} I couldn't use.")

    def problem(self, message: str, consequence: str = "I left it out.") -> None:
        if self.strict:
            raise ParseError(message)
        self.note(f"{message} {consequence}")

    def parse(self, text: str) -> Command:
        tokens = [t for t in _tokenize(text) if t.kind == "word" or _is_link(t)]
        if not tokens:
            return HelpCommand(EMPTY_COMMAND_REASON) if self.strict else self.grammar.default_command()
        first = tokens[0].text.lower() if _is_plain(tokens[0]) else ""
        if first in _HELP_WORDS:
            return HelpCommand()
        if first == "auto":
            auto = self.auto(tokens[1:])
            if auto is not None:
                return auto
        self.run(tokens)
        if self.help:
            return HelpCommand()
        return self.resize_command()

    def auto(self, rest: list[_Token]) -> Command | None:
        if not rest:
            return AutoCommand("show")
        action = _AUTO_ACTIONS.get(rest[0].text.lower()) if _is_plain(rest[0]) else None
        if action is None:
            if self.strict:
                raise ParseError(
                    f"After auto, write on, off or nothing, like {self.command_name} auto on {DEFAULT_GROUP}."
                )
            return None  # a mention that merely starts with "auto" is read as an ordinary request
        if action != "on":
            if rest[1:] and self.strict:
                raise ParseError(f"'auto {rest[0].text}' takes nothing after it.")
            return AutoCommand(action)
        self.run(rest[1:])
        if self.url is not None or self.values:
            self.problem(
                f"auto on takes sizes and presets only, like {self.command_name} auto on {DEFAULT_GROUP} 1200x628.",
                "I left out the link and options.",
            )
        if self.help:
            return HelpCommand()
        sizes = self.fitted(self.final_sizes(), 1).sizes  # each upload will make one image per size
        return AutoCommand("on", sizes, self.final_notes())

    def run(self, tokens: list[_Token]) -> None:
        i = 0
        while i < len(tokens) and not self.help:
            token = tokens[i]
            if _is_link(token):
                self.link(token)
                i += 1
            elif self.strict and _is_plain(token) and token.text.lower() in _HELP_WORDS:
                self.help = True
            elif _is_option(token):
                i = self.option(tokens, i)
            elif token.quoted:
                self.quoted(token.text)
                i += 1
            else:
                i += self.joined(tokens, i) or self.words(token.text)

    def joined(self, tokens: list[_Token], i: int) -> int:
        """Read 2-3 words that only make sense together (``1080 x 1080``, ``youtube thumbnail``); how many."""
        for count in (3, 2):
            group = tokens[i : i + count]
            if len(group) < count or not all(_is_plain(t) and not _is_option(t) and not _is_link(t) for t in group):
                continue
            parts = [_parts(t.text) for t in group]
            # A comma ends a name: "instagram, story" is the pack and the story, "instagram story" is the story.
            if any(len(p) != 1 for p in parts) or any("," in t.text for t in group[:-1]):
                continue
            words = [p[0] for p in parts]
            if _SPACED_SIZE.fullmatch(_size_text(" ".join(words))):
                self.size("".join(_size_text(" ".join(words)).split()))
                return count
            if (sizes := resolve_preset("-".join(words))) is not None:
                self.preset(sizes)
                return count
        return 0

    def words(self, text: str) -> int:
        for part in _parts(text):
            self.word(part)
        return 1

    def word(self, part: str) -> None:
        key = part.lower()
        if (sizes := resolve_preset(part)) is not None:
            self.preset(sizes)
        elif key in _FORMAT_WORDS:
            self.set("format", _FORMAT_WORDS[key])
        elif key in _MODE_WORDS:
            self.set("mode", _MODE_WORDS[key])
        elif key in _RESOLUTION_WORDS:
            self.set("resolution", _RESOLUTION_WORDS[key])
        elif key == "auto":  # first, it is the auto command (parse); after a size, the mode
            self.set("mode", "auto")
        elif key in _HELP_WORDS:
            self.help = self.help or self.strict  # a mention's "can you help with this?" is an ordinary word
        elif part[0].isdigit() and (self.strict or _SIZE_SHAPE.fullmatch(_size_text(part))):
            self.size(_size_text(part))
        elif self.strict:
            if _LINKISH.match(part):
                raise ParseError(f"Links need to start with https:// or http://, like https://{part}.")
            suggestions = _suggestions(part, 0.6)
            hint = f" Did you mean {_either(suggestions)}?" if suggestions else ""
            raise ParseError(f"I don't know the size or preset {_shown(part)}.{hint} Try {self.command_name} help.")
        elif len(part) >= 4 and not self.notes_full and (suggestions := _suggestions(part, 0.85)):
            # Suggestions are the slow part (difflib): none once the notes are full, nobody would see them.
            self.note(f"I didn't recognise {_shown(part)}; if you meant {_either(suggestions)}, ask again.")
            self.sizes_refused = self.sizes_refused or any(resolve_preset(name) for name in suggestions)

    def quoted(self, text: str) -> None:
        parts = text.split()
        if not parts:
            return
        if len(parts) == 1:
            self.word(parts[0].strip(_STRIP) or parts[0])
        elif self.strict:
            raise ParseError(
                f"I don't know what {_shown(text)} means; to guide the framing, write --prompt {_shown(text)}."
            )

    def preset(self, sizes: list[Size]) -> None:
        # A deployment may lower the limits below a preset's figures; refuse here rather than in the engine.
        for size in sizes:
            self.size(str(size))

    def size(self, text: str) -> None:
        try:
            self.sizes.append(parse_size(text, self.limits))
        except InvalidSize as error:
            self.sizes_refused = True
            self.problem(str(error))

    def link(self, token: _Token) -> None:
        url = _unescape(token.text.split("|", 1)[0] if token.kind == "angle" else token.text)
        try:
            parse_http_url(url)
        except InvalidUrl as error:
            self.problem(str(error))
            return
        if self.url is None:
            self.url = url
        elif url != self.url:
            self.problem("Give one image link per request; this has two.", "I used the first.")

    def option(self, tokens: list[_Token], i: int) -> int:
        """Read the option at ``tokens[i]`` and its value; the index after them."""
        token = tokens[i]
        match = _OPTION.fullmatch(token.text)
        assert match is not None  # run() only calls this for option tokens
        written = match.group(1).lower().replace("_", "-")
        name = _OPTIONS.get(written)
        if name is None:
            known = [f"--{option}" for option in _EXAMPLES]
            close = difflib.get_close_matches(f"--{written}", known, n=1, cutoff=0.6)
            hint = f"Did you mean {close[0]}? " if close else ""
            self.problem(
                f"I don't know the option {_shown(token.text.split('=', 1)[0])}. {hint}"
                f"Options are {', '.join(known[:-1])} and {known[-1]}."
            )
            return i + 1
        value, quoted, after = match.group(2), token.quoted, i + 1
        # A size or link after --prompt means the prompt was left out, not that it is the prompt.
        if (
            value is None
            and after < len(tokens)
            and tokens[after].kind == "word"
            and not _is_option(tokens[after])
            and (name != "prompt" or not self.ends_prompt(tokens[after]))
        ):
            value, quoted, after = tokens[after].text, tokens[after].quoted, after + 1
        # "--focus 0.3, 0.4": the comma's space split the point in two words.
        if (
            name == "focus"
            and value
            and _HALF_FOCUS.fullmatch(value)
            and after < len(tokens)
            and tokens[after].kind == "word"
            and _HALF_FOCUS.fullmatch(tokens[after].text.lstrip(","))
        ):
            value, after = value.rstrip(",") + "," + tokens[after].text.lstrip(","), after + 1
        if name == "prompt" and not quoted:
            words = [value] if value else []
            while after < len(tokens) and not self.ends_prompt(tokens[after]):
                words.append(tokens[after].text)
                after += 1
            value = " ".join(words) or None
        if value is None:
            self.problem(f"--{name} needs a value, like {_EXAMPLES[name]}.")
            return after
        self.option_value(name, _unescape(value))
        return after

    @staticmethod
    def ends_prompt(token: _Token) -> bool:
        if token.kind != "word" or _is_option(token) or _is_link(token):
            return True
        parts = _parts(token.text) if not token.quoted else []
        return bool(parts) and all(_SIZE_SHAPE.fullmatch(_size_text(part)) for part in parts)

    def option_value(self, name: str, value: str) -> None:
        key = value.strip().lower()
        if name == "format":
            if key in _FORMAT_WORDS:
                self.set(name, _FORMAT_WORDS[key])
            else:
                self.problem(f"{_shown(value)} isn't a format I can make; use png, jpeg or webp, like --format webp.")
        elif name == "mode":
            if key in MODES:
                self.set(name, key)
            else:
                self.problem(f"{_shown(value)} isn't a mode; use auto, crop or extend, like --mode crop.")
        elif name == "resolution":
            if key in _RESOLUTION_WORDS:
                self.set(name, _RESOLUTION_WORDS[key])
            else:
                self.problem(f"{_shown(value)} isn't a resolution; use 1K, 2K or 4K, like --resolution 2K.")
        elif name == "fill":
            fill = _FILL_WORDS.get(key)
            if fill is not None:
                self.set(name, fill)
            else:
                self.problem(
                    f"{_shown(value)} isn't a fill; use auto, blur, mirror, colour or synthesize, like --fill blur."
                )
        elif name == "focus":
            try:
                point: tuple[float, float] | None = parse_focus(key)
            except InvalidOption:
                point = None
            if point is not None:
                self.set(name, point)
            else:
                self.problem(
                    f"{_shown(value)} isn't a focal point; give two fractions from 0 to 1, across then down, "
                    "like --focus 0.3,0.4."
                )
        elif name == "variants":
            number = _whole_number(key)
            if number is not None and 1 <= number <= MAX_VARIANTS:
                self.set(name, number)
            else:
                self.problem(f"--variants takes a whole number from 1 to {MAX_VARIANTS}, not {_shown(value)}.")
        elif name == "seed":
            number = _whole_number(key)
            if number is not None and number <= MAX_SEED:
                self.set(name, number)
            else:
                self.problem(f"--seed takes a whole number from 0 to {MAX_SEED}, not {_shown(value)}.")
        else:
            prompt = " ".join(value.split())
            if len(prompt) > MAX_PROMPT_CHARS:
                self.problem(f"The prompt has {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS}.")
            else:
                self.set(name, prompt)

    def set(self, name: str, value: object) -> None:
        old = self.values.get(name, value)
        if old != value:
            first, second = _value_text(old), _value_text(value)
            self.problem(f"You gave --{name} twice ({first} and {second}); keep one.", f"I used {second}.")
        self.values[name] = value

    def final_sizes(self) -> tuple[Size, ...]:
        sizes = tuple(dict.fromkeys(self.sizes))  # duplicates cost nothing, so they don't count
        if len(sizes) > self.max_sizes:
            self.problem(
                f"You asked for {len(sizes)} sizes; the limit is {self.max_sizes} per request.",
                f"I made the first {self.max_sizes}.",
            )
            sizes = sizes[: self.max_sizes]
        return sizes

    def fitted(self, sizes: tuple[Size, ...], variants: int) -> Fitted:
        """What fits the output caps (bot.engine.fit_outputs), each cut noted; a command is refused instead."""
        fitted = fit_outputs(sizes, variants, self.limits)
        for message, made_instead in fitted.cuts:
            self.problem(message, made_instead)
        return fitted

    def resize_command(self) -> ResizeCommand:
        named = self.final_sizes()
        fields = {_FIELDS[name]: value for name, value in self.values.items()}
        spec = ResizeSpec(sizes=named or self.grammar.default_sizes, **fields)
        if named or self.strict:  # a mention naming none is fitted once its sizes are known (ResizeCommand)
            fitted = self.fitted(spec.sizes, spec.variants)
            spec = replace(spec, sizes=fitted.sizes, variants=fitted.variants)
        return ResizeCommand(
            spec,
            url=self.url,
            notes=self.final_notes(),
            sizes_named=bool(named),
            sizes_refused=self.sizes_refused,
        )


def _whole_number(text: str) -> int | None:
    # ASCII digits only, and few of them: int() would accept "٣", "1_0" and "+3", and refuse 5000-digit strings.
    return int(text) if re.fullmatch(r"[0-9]{1,12}", text) else None


# --- help -------------------------------------------------------------------------------------------------------


def help_text(
    command_name: str = "/resize",
    *,
    limits: Limits = DEFAULT_LIMITS,
    max_sizes: int = MAX_SIZES,
    default_sizes: Sequence[Size] = DEFAULT_SIZES,
    reaction: str = "frame_with_picture",
) -> str:
    """The help message in Slack mrkdwn. Paragraphs are separated by blank lines and each stays under Slack's
    3,000-character limit for one section block, so a caller can put each in its own block."""
    c = command_name
    defaults = ", ".join(str(size) for size in default_sizes)
    return "\n\n".join(
        [
            "*Smart resize* makes every size you need from one picture and keeps the important part in frame.",
            f"*How to ask*\n`{c} SIZES-OR-PRESETS [LINK] [OPTIONS]`\n"
            f"• A size is WIDTHxHEIGHT in pixels, {limits.min_side} to {limits.max_side} a side, like `1080x1080`; "
            f"up to {max_sizes} sizes at once.\n"
            "• A preset names a destination, like `instagram-story` or `og-image`; a pack such as `social` "
            "gives several sizes.\n"
            f"• With no size you get {defaults}.\n"
            "• The image is a link starting with http:// or https://, or an image posted in Slack (see below).",
            "*Options*\n"
            "• `--format png|jpeg|webp` (`-f`): the file type; unless you say, JPEG for photos and PNG where there is "
            "transparency.\n"
            "• `--mode auto|crop|extend` (`-m`): crop to fit, extend the canvas, or let the app choose (auto).\n"
            f"• `--variants N` (`-n`): 1 to {MAX_VARIANTS} different framings of each size.\n"
            '• `--prompt "keep face centered"` (`-p`): a hint for the framing; quote it, or put it last.\n'
            "• `--seed N` (`-s`): the same seed gives the same result.\n"
            "• `--resolution 1K|2K|4K` (`-r`): output quality, 1K unless you say.\n"
            "• `--fill auto|blur|mirror|colour|synthesize`: how an extended canvas is filled; auto looks at each "
            "side's edge (a backdrop's colour continued, a texture's grain kept).\n"
            "• `--focus X,Y`: keep this point in every image, as fractions across and down (`--focus 0.3,0.4`); "
            'or say it in the prompt: `--prompt "focus on the sign"`.\n'
            "`--format=webp` works too, and `webp`, `crop` or `2K` alone are enough.",
            "*Examples*\n"
            f"`{c} 1080x1080 1920x1080`\n"
            f"`{c} instagram-story og-image`\n"
            f'`{c} 1200x628 https://example.com/p.jpg --format webp --variants 2 --prompt "keep face centered"`\n'
            f"`{c} auto on social`",
            "*Other ways to ask*\n"
            "• Mention the app in a message with an image, with sizes or presets if you like: "
            "`@Smart Resize instagram-story 1200x628`.\n"
            f"• Add the :{reaction}: reaction to a message with an image to get the channel's auto-resize sizes, "
            "or the default ones where it has none.\n"
            "• Choose *Smart resize* from a message's ⋯ menu (More actions).\n"
            f"• `{c} auto on [sizes]` resizes every image posted in this channel; `{c} auto off` stops it and "
            f"`{c} auto` shows the setting.",
            presets_help(),
        ]
    )
