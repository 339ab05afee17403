from __future__ import annotations

import dataclasses
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine import MAX_VARIANTS, Limits, ResizeRequest, Size, output_pixels, validate
from bot.grammar import (
    EMPTY_COMMAND_REASON,
    MAX_SEED,
    MAX_SIZES,
    AutoCommand,
    Command,
    Grammar,
    HelpCommand,
    ParseError,
    ResizeCommand,
    _suggestions,
    help_text,
    parse_command,
    parse_mention,
    parse_size_list,
)
from bot.net.fetch import parse_http_url
from bot.presets import DEFAULT_SIZES, known_names, presets_help, resolve_preset
from bot.spec import ResizeSpec

SQUARE, PORTRAIT, STORY, OG = Size(1080, 1080), Size(1080, 1350), Size(1080, 1920), Size(1200, 630)


def command(
    sizes: tuple[Size, ...] = (), url: str | None = None, notes: tuple[str, ...] = (), **options: object
) -> ResizeCommand:
    """What the grammar makes of a request for these sizes (none: the defaults) and options."""
    spec = ResizeSpec(sizes=sizes or DEFAULT_SIZES, **options)  # type: ignore[arg-type]
    return ResizeCommand(spec, url=url, notes=notes, sizes_named=bool(sizes))


def sizes(*pairs: tuple[int, int]) -> tuple[Size, ...]:
    return tuple(Size(w, h) for w, h in pairs)


def error_of(text: str, **kwargs: object) -> str:
    with pytest.raises(ParseError) as caught:
        parse_command(text, **kwargs)  # type: ignore[arg-type]
    assert caught.value.message == str(caught.value)
    return caught.value.message


# --- accepted forms ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1080x1080 1920x1080", command(sizes=sizes((1080, 1080), (1920, 1080)))),
        ("1080X1080 1920×1080", command(sizes=sizes((1080, 1080), (1920, 1080)))),
        ("1080 x 1080", command(sizes=(SQUARE,))),
        ("1080x 1080 1920 ×1080", command(sizes=sizes((1080, 1080), (1920, 1080)))),
        ("1080x1080px", command(sizes=(SQUARE,))),
        ("1080x1080,1200x630", command(sizes=(SQUARE, OG))),
        ("1080x1080, 1200x630.", command(sizes=(SQUARE, OG))),
        ("16x16 8192x8192", command(sizes=sizes((16, 16), (8192, 8192)))),
        ("instagram-story og-image", command(sizes=(STORY, OG))),
        ("Instagram_Story OG", command(sizes=(STORY, OG))),
        ("instagram story", command(sizes=(STORY,))),
        ("youtube thumbnail", command(sizes=sizes((1280, 720)))),
        ("instagram, story", command(sizes=sizes((1080, 1080), (1080, 1350), (1080, 566), (1080, 1920)))),
        ("twitter-post", command(sizes=sizes((1600, 900)))),
        ("social", command(sizes=DEFAULT_SIZES)),
        # Duplicates collapse and the first mention keeps its place.
        ("og-image 1080x1080 facebook-post square", command(sizes=(OG, SQUARE))),
        ("social 1200x630 story", command(sizes=DEFAULT_SIZES)),
        (
            "1200x628 https://example.com/p.jpg",
            command(sizes=sizes((1200, 628)), url="https://example.com/p.jpg"),
        ),
        ("<https://example.com/p.jpg> square", command(sizes=(SQUARE,), url="https://example.com/p.jpg")),
        ("<https://example.com/p.jpg|example.com/p.jpg>", command(url="https://example.com/p.jpg")),
        ("<http://e.com/a?x=1&amp;y=2|a picture>", command(url="http://e.com/a?x=1&y=2")),
        ("https://e.com/a?x=1&amp;y=2", command(url="https://e.com/a?x=1&y=2")),
        ("HTTPS://E.com/A.PNG", command(url="HTTPS://E.com/A.PNG")),
        ("<https://e.com/a.jpg> <https://e.com/a.jpg>", command(url="https://e.com/a.jpg")),
        ("<@U123ABC> square <#C42|general> <!here>", command(sizes=(SQUARE,))),
        ("--format webp", command(output_format="webp")),
        ("--format JPG", command(output_format="jpeg")),
        ("-f jpeg", command(output_format="jpeg")),
        ("--format=png", command(output_format="png")),
        ("-f=webp", command(output_format="webp")),
        ("—format webp", command(output_format="webp")),  # macOS turns -- into an em dash
        ("–format webp", command(output_format="webp")),
        ("--output_format webp", command(output_format="webp")),
        ("webp", command(output_format="webp")),
        ("webp --format webp", command(output_format="webp")),
        ("--mode crop", command(mode="crop")),
        ("-m EXTEND", command(mode="extend")),
        ("--mode auto", command(mode="auto")),
        ("extend", command(mode="extend")),
        ("--variants 3", command(variants=3)),
        ("-n 5", command(variants=5)),
        ("--variant=1", command(variants=1)),
        ("--seed 42", command(seed=42)),
        ("-s 0", command(seed=0)),
        (f"--seed={MAX_SEED}", command(seed=MAX_SEED)),
        ("--resolution 2k", command(resolution="2K")),
        ("-r 4K", command(resolution="4K")),
        ("--res=1k", command(resolution="1K")),
        ("4k", command(resolution="4K")),
        ('--prompt "keep face centered"', command(prompt="keep face centered")),
        ("--prompt “keep face centered”", command(prompt="keep face centered")),
        ("--prompt „keep face centered“", command(prompt="keep face centered")),
        ("--prompt ‘keep face centered’", command(prompt="keep face centered")),
        ("--prompt 'don't crop the dog'", command(prompt="don't crop the dog")),
        ("--prompt “don’t crop”", command(prompt="don’t crop")),
        ('--prompt="keep  face\ncentered"', command(prompt="keep face centered")),
        ('-p "a &amp; b &lt;c&gt;"', command(prompt="a & b <c>")),
        ('--prompt ""', command(prompt="")),
        ('--prompt "say --format png 1080x1080"', command(prompt="say --format png 1080x1080")),
        ('--prompt "unclosed, and --format webp', command(prompt="unclosed, and --format webp")),
        ("--prompt keep face centered", command(prompt="keep face centered")),
        ("--prompt=keep the logo, please", command(prompt="keep the logo, please")),
        ("--prompt keep help visible", command(prompt="keep help visible")),
        (
            "--prompt keep face centered 1080x1080 <https://e.com/p.jpg> --format webp",
            command(sizes=(SQUARE,), url="https://e.com/p.jpg", prompt="keep face centered", output_format="webp"),
        ),
        (
            '1200x628 https://example.com/p.jpg --format webp --variants 2 --prompt "keep face centered"',
            command(
                sizes=sizes((1200, 628)),
                url="https://example.com/p.jpg",
                output_format="webp",
                variants=2,
                prompt="keep face centered",
            ),
        ),
        ('"instagram-story" "webp"', command(sizes=(STORY,), output_format="webp")),
        ("“”", command()),
        (
            "crop 2K png square\u00a0story",
            command(sizes=(SQUARE, STORY), mode="crop", resolution="2K", output_format="png"),
        ),
    ],
)
def test_commands_are_read(text: str, expected: ResizeCommand) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize("text", ["help", "HELP", "?", "-h", "--help", "1080x1080 help", "<@U1> help"])
def test_help_is_asked_for(text: str) -> None:
    assert parse_command(text) == HelpCommand(reason=None)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "<@U123>"])
def test_empty_command_shows_help_with_a_reason(text: str) -> None:
    command = parse_command(text)
    assert isinstance(command, HelpCommand)
    assert command.reason is not None and "size" in command.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", AutoCommand("show")),
        ("auto show", AutoCommand("show")),
        ("Auto Status", AutoCommand("show")),
        ("auto off", AutoCommand("off")),
        ("auto on", AutoCommand("on")),
        ("AUTO ON social", AutoCommand("on", DEFAULT_SIZES)),
        ("auto on 1200x628 story story", AutoCommand("on", sizes((1200, 628), (1080, 1920)))),
        ("auto on help", HelpCommand()),
    ],
)
def test_auto_commands(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


def test_auto_as_a_mode_value_is_not_the_auto_command() -> None:
    assert parse_command("square --mode auto") == command(sizes=(SQUARE,), mode="auto")


def test_defaults_are_the_engines() -> None:
    engine = ResizeRequest(sizes=())
    spec = ResizeSpec(sizes=())
    for name in ("mode", "variants", "prompt", "seed", "resolution"):
        assert getattr(spec, name) == getattr(engine, name)
    # The one deliberate difference: Slack picks JPEG or PNG per image unless a format is asked for.
    assert spec.output_format == "auto"


def test_the_spec_fills_in_the_default_sizes() -> None:
    text = "--format webp --variants 2 --seed 7 -r 2k -m crop -p 'keep face centered'"
    parsed = parse_command(text)
    assert isinstance(parsed, ResizeCommand) and not parsed.sizes_named
    assert parsed.spec.engine_request() == ResizeRequest(
        sizes=DEFAULT_SIZES,
        mode="crop",
        output_format="webp",
        prompt="keep face centered",
        variants=2,
        seed=7,
        resolution="2K",
    )
    own = Grammar(default_sizes=(Size(100, 100),)).parse_command(text)
    assert isinstance(own, ResizeCommand) and own.spec.sizes == (Size(100, 100),)
    named = parse_command(f"og-image {text}")
    assert isinstance(named, ResizeCommand) and named.sizes_named and named.spec.sizes == (OG,)


# --- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "instagramm",
            "I don't know the size or preset 'instagramm'. Did you mean 'instagram', 'instagram-story' or "
            "'instagram-square'? Try /resize help.",
        ),
        ("tweeter-post", "I don't know the size or preset 'tweeter-post'. Did you mean 'x-post'? Try /resize help."),
        ("banana", "I don't know the size or preset 'banana'. Try /resize help."),
        ("square please", "I don't know the size or preset 'please'. Try /resize help."),
        ("1080", "'1080' isn't a size; write sizes as WIDTHxHEIGHT, like 1080x1080."),
        ("16:9", "'16:9' isn't a size; write sizes as WIDTHxHEIGHT, like 1080x1080."),
        ("1080x1080x3", "'1080x1080x3' isn't a size; write sizes as WIDTHxHEIGHT, like 1080x1080."),
        ("10 80x1080", "'10' isn't a size; write sizes as WIDTHxHEIGHT, like 1080x1080."),
        ("20000x100", "20000x100 is outside the supported range; each side must be between 16 and 8192 pixels."),
        ("15x100", "15x100 is outside the supported range; each side must be between 16 and 8192 pixels."),
        ("2 x 3", "2x3 is outside the supported range; each side must be between 16 and 8192 pixels."),
        ("www.example.com/p.jpg", "Links need to start with https:// or http://, like https://www.example.com/p.jpg."),
        (
            "ftp://example.com/p.jpg",
            "I can't fetch that link: only http:// and https:// links are supported. "
            "Use a plain http:// or https:// link to the image.",
        ),
        (
            "<mailto:a@b.co|a@b.co>",
            "I can't fetch that link: only http:// and https:// links are supported. "
            "Use a plain http:// or https:// link to the image.",
        ),
        (
            "https://user:pw@e.com/p.jpg",
            "I can't fetch that link: links with a username or password in them aren't supported. "
            "Use a plain http:// or https:// link to the image.",
        ),
        ("https://a.com/1.jpg <https://b.com/2.jpg>", "Give one image link per request; this has two."),
        ("--format gif", "'gif' isn't a format I can make; use png, jpeg or webp, like --format webp."),
        ("--mode fit", "'fit' isn't a mode; use auto, crop or extend, like --mode crop."),
        ("--resolution 8K", "'8K' isn't a resolution; use 1K, 2K or 4K, like --resolution 2K."),
        ("--variants 0", f"--variants takes a whole number from 1 to {MAX_VARIANTS}, not '0'."),
        ("--variants 11", f"--variants takes a whole number from 1 to {MAX_VARIANTS}, not '11'."),
        ("--variants two", f"--variants takes a whole number from 1 to {MAX_VARIANTS}, not 'two'."),
        ("--variants ３", f"--variants takes a whole number from 1 to {MAX_VARIANTS}, not '３'."),
        ("--seed -5", f"--seed takes a whole number from 0 to {MAX_SEED}, not '-5'."),
        (f"--seed {MAX_SEED + 1}", f"--seed takes a whole number from 0 to {MAX_SEED}, not '{MAX_SEED + 1}'."),
        ("--seed " + "9" * 3900, f"--seed takes a whole number from 0 to {MAX_SEED}, not '{'9' * 40}…'."),
        ("--format", "--format needs a value, like --format webp."),
        ("--mode --format webp", "--mode needs a value, like --mode crop."),
        ("square --variants", "--variants needs a value, like --variants 3."),
        ("--prompt", '--prompt needs a value, like --prompt "keep face centered".'),
        ("--prompt 1080x1080", '--prompt needs a value, like --prompt "keep face centered".'),
        ("--prompt <https://e.com/p.jpg>", '--prompt needs a value, like --prompt "keep face centered".'),
        ("--prompt=", '--prompt needs a value, like --prompt "keep face centered".'),
        (
            "--colour red",
            "I don't know the option '--colour'. Options are --format, --mode, --variants, --prompt, --seed, "
            "--resolution, --fill and --focus.",
        ),
        (
            "--varients=3",
            "I don't know the option '--varients'. Did you mean --variants? Options are --format, --mode, "
            "--variants, --prompt, --seed, --resolution, --fill and --focus.",
        ),
        ("webp --format png", "You gave --format twice (webp and png); keep one."),
        ("--fill smear", "'smear' isn't a fill; use auto, blur, mirror, colour or synthesize, like --fill blur."),
        (
            "--focus 1.5,0.2",
            "'1.5,0.2' isn't a focal point; give two fractions from 0 to 1, across then down, like --focus 0.3,0.4.",
        ),
        ("--focus 0.2,0.2 --focus 0.3,0.3", "You gave --focus twice (0.2,0.2 and 0.3,0.3); keep one."),
        ("1k 2k", "You gave --resolution twice (1K and 2K); keep one."),
        ("-p a -p b", "You gave --prompt twice (a and b); keep one."),
        (
            '"keep face centered" square',
            "I don't know what 'keep face centered' means; to guide the framing, write --prompt 'keep face centered'.",
        ),
        ("auto maybe", "After auto, write on, off or nothing, like /resize auto on social."),
        ("auto 1080x1080", "After auto, write on, off or nothing, like /resize auto on social."),
        ("auto off now", "'auto off' takes nothing after it."),
        ("auto on square --format webp", "auto on takes sizes and presets only, like /resize auto on social 1200x628."),
        (
            "auto on square https://e.com/p.jpg",
            "auto on takes sizes and presets only, like /resize auto on social 1200x628.",
        ),
    ],
)
def test_refusals_say_what_to_write_instead(text: str, message: str) -> None:
    assert error_of(text) == message


def test_too_many_sizes() -> None:
    many = " ".join(f"{100 + i}x100" for i in range(14))
    assert error_of(many) == "You asked for 14 sizes; the limit is 10 per request."
    assert error_of("social instagram x", max_sizes=5) == "You asked for 7 sizes; the limit is 5 per request."
    # Sizes that repeat are made once, so they don't count against the limit.
    parsed = parse_command("social social instagram, square, story", max_sizes=5)
    assert parsed == command(sizes=(*DEFAULT_SIZES, Size(1080, 566)))
    assert error_of("auto on " + many) == "You asked for 14 sizes; the limit is 10 per request."


def test_too_many_outputs() -> None:
    assert error_of("social youtube x --variants 10", limits=Limits(max_outputs=40)) == (
        "That would make 80 images (8 sizes x 10 variants); the limit is 40 per request, so ask for fewer sizes or "
        "variants."
    )
    # With no size the defaults are made, so they count too: the deployment's defaults, not the built-in ones.
    assert error_of("-n 9") == (
        "That would make 36 images (4 sizes x 9 variants); the limit is 20 per request, so ask for fewer sizes or "
        "variants."
    )
    six = tuple(Size(100 + i, 100) for i in range(6))
    assert error_of("-n 4", default_sizes=six) == (
        "That would make 24 images (6 sizes x 4 variants); the limit is 20 per request, so ask for fewer sizes or "
        "variants."
    )
    assert parse_command("social youtube --variants 6", limits=Limits(max_outputs=40)) == command(
        sizes=(*DEFAULT_SIZES, Size(1280, 720), Size(2560, 1440)), variants=6
    )


def test_too_many_output_pixels() -> None:
    assert error_of("8192x8192 8000x8000") == (
        "That would make 131.2 megapixels of images in all; the limit is 100 per request, so ask for fewer or "
        "smaller sizes."
    )
    assert error_of("4096x4096 -n 3", limits=Limits(max_output_pixels=40_000_000)) == (
        "That would make 50.4 megapixels of images in all; the limit is 40 per request, so ask for fewer or smaller "
        "sizes."
    )
    assert error_of("auto on 8192x8192 8000x8000").startswith("That would make 131.2 megapixels")
    # A mention does what fits and says so: one image of each of the first sizes that fit together.
    mention = parse_mention("8000x8000 1000x1000 7000x7000 -n 2")
    assert isinstance(mention, ResizeCommand)
    assert (mention.spec.sizes, mention.spec.variants) == ((Size(8000, 8000), Size(1000, 1000)), 1)
    assert mention.notes == (
        "That would make 228 megapixels of images in all; the limit is 100 per request, so ask for fewer or "
        "smaller sizes. I made one image of each of the first 2 sizes.",
    )
    # At the cap exactly is allowed.
    assert parse_command("10000x10000", limits=Limits(max_side=10000)) == command(sizes=(Size(10000, 10000),))


@given(
    st.lists(st.tuples(st.integers(16, 8192), st.integers(16, 8192)), min_size=1, max_size=10),
    st.integers(1, 4),
    st.integers(1, 200),
)
def test_whatever_fits_the_pixel_cap_is_read_and_the_rest_refused(
    sides: list[tuple[int, int]], variants: int, megapixels: int
) -> None:
    limits = Limits(max_output_pixels=megapixels * 1_000_000)
    cap = limits.max_output_pixels
    sizes = tuple(dict.fromkeys(Size(w, h) for w, h in sides))
    text = " ".join(str(size) for size in sizes) + f" -n {variants}"
    if len(sizes) * variants > limits.max_outputs:
        return  # the count's cap, tested above
    if output_pixels(sizes, variants) <= cap:
        assert parse_command(text, limits=limits).spec.sizes == sizes  # type: ignore[union-attr]
        return
    assert "megapixels of images in all" in error_of(text, limits=limits)
    kept = parse_mention(text, limits=limits)
    assert isinstance(kept, ResizeCommand)
    made = kept.spec.sizes
    if output_pixels(sizes, 1) <= cap:  # every size fits once: as many variants of all of them as fit
        assert made == sizes and kept.spec.variants == cap // output_pixels(sizes, 1) < variants
    else:  # one image each of the longest run of first sizes that fits, maybe none
        assert kept.spec.variants == 1 and made == sizes[: len(made)]
        assert output_pixels(made, 1) <= cap < output_pixels(sizes[: len(made) + 1], 1)
    assert len(kept.notes) == 1 and kept.notes[0].startswith("That would make")


def test_limits_are_the_callers() -> None:
    small = Limits(min_side=100, max_side=2000)
    assert error_of("50x50", limits=small) == (
        "50x50 is outside the supported range; each side must be between 100 and 2000 pixels."
    )
    # Presets are checked too: a deployment may set limits below a preset's figures.
    assert error_of("youtube-banner", limits=small) == (
        "2560x1440 is outside the supported range; each side must be between 100 and 2000 pixels."
    )
    assert error_of("youtube banner", limits=small).startswith("2560x1440 is outside")
    command = parse_mention("youtube", limits=small)
    assert isinstance(command, ResizeCommand) and command.spec.sizes == (Size(1280, 720),) and len(command.notes) == 1


def test_command_name_appears_in_messages() -> None:
    with pytest.raises(ParseError, match=r"Try /rs help\.$"):
        parse_command("banana", command_name="/rs")


# --- mentions ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@U1>", command()),
        ("<@U1> thanks!", command()),
        ("<@U1> help", HelpCommand()),
        (
            "<@U1> can you make this a square and a story please? webp",
            command(sizes=(SQUARE, STORY), output_format="webp"),
        ),
        ("<@U1> 1080 x 1080 and 1200x630, in crop mode", command(sizes=(SQUARE, OG), mode="crop")),
        (
            "<@U1> resize <https://e.com/p.jpg|this> for instagram story",
            command(sizes=(STORY,), url="https://e.com/p.jpg"),
        ),
        ("hey <@U1>, social --prompt keep the logo", command(sizes=DEFAULT_SIZES, prompt="keep the logo")),
        ("<@U1> make 2 versions of 1080x1080", command(sizes=(SQUARE,))),
        ("<@U1> auto on social", AutoCommand("on", DEFAULT_SIZES)),
        ("<@U1> auto off", AutoCommand("off")),
        ("<@U1> automatically, please", command()),
        ("<@U1> auto-magic square", command(sizes=(SQUARE,))),
    ],
)
def test_mentions_pick_out_what_they_can(text: str, expected: Command) -> None:
    assert parse_mention(text) == expected


@pytest.mark.parametrize(
    ("text", "expected", "notes", "refused"),
    [
        (
            "<@U1> 1080x1080 --variants 99",
            command(sizes=(SQUARE,)),
            (f"--variants takes a whole number from 1 to {MAX_VARIANTS}, not '99'. I left it out.",),
            False,
        ),
        (
            "<@U1> 20000x5 and 1200x630",
            command(sizes=(OG,)),
            ("20000x5 is outside the supported range; each side must be between 16 and 8192 pixels. I left it out.",),
            True,
        ),
        (
            "<@U1> instagramm please",
            command(),
            ("I didn't recognise 'instagramm'; if you meant 'instagram', ask again.",),
            True,
        ),
        (
            "<@U1> <https://a.com/1.jpg> <https://b.com/2.jpg>",
            command(url="https://a.com/1.jpg"),
            ("Give one image link per request; this has two. I used the first.",),
            False,
        ),
        (
            "<@U1> webp and png",
            command(output_format="png"),
            ("You gave --format twice (webp and png); keep one. I used png.",),
            False,
        ),
        (
            "<@U1> <mailto:a@b.co|a@b.co> square",
            command(sizes=(SQUARE,)),
            (
                "I can't fetch that link: only http:// and https:// links are supported. Use a plain http:// or "
                "https:// link to the image. I left it out.",
            ),
            False,
        ),
        (
            "<@U1> auto on social --format webp",
            AutoCommand("on", DEFAULT_SIZES),
            (
                "auto on takes sizes and presets only, like /resize auto on social 1200x628. "
                "I left out the link and options.",
            ),
            False,
        ),
        (
            "<@U1> social youtube x --variants 10",
            command(
                sizes=(*DEFAULT_SIZES, *sizes((1280, 720), (2560, 1440), (1600, 900), (1500, 500))),
                variants=2,
            ),
            (
                "That would make 80 images (8 sizes x 10 variants); the limit is 20 per request, so ask for fewer "
                "sizes or variants. I made 2 variants per size.",
            ),
            False,
        ),
    ],
)
def test_mentions_explain_what_they_dropped(
    text: str, expected: Command, notes: tuple[str, ...], refused: bool
) -> None:
    changes = {"notes": notes, "sizes_refused": refused} if isinstance(expected, ResizeCommand) else {"notes": notes}
    assert parse_mention(text) == dataclasses.replace(expected, **changes)  # type: ignore[type-var]


def test_mentions_cap_sizes_keeping_the_first() -> None:
    many = " ".join(f"{100 + i}x100" for i in range(14))
    command = parse_mention(many)
    assert isinstance(command, ResizeCommand)
    assert command.spec.sizes == tuple(Size(100 + i, 100) for i in range(MAX_SIZES))
    assert command.notes == ("You asked for 14 sizes; the limit is 10 per request. I made the first 10.",)


# --- help -------------------------------------------------------------------------------------------------------


def test_help_text_covers_syntax_options_examples_presets_and_other_triggers() -> None:
    text = help_text()
    for piece in (
        "`/resize SIZES-OR-PRESETS [LINK] [OPTIONS]`",
        "16 to 8192",
        f"up to {MAX_SIZES} sizes",
        "1080x1080, 1080x1350, 1080x1920, 1200x630",
        "`--format png|jpeg|webp`",
        "`--mode auto|crop|extend`",
        "`--variants N`",
        '`--prompt "keep face centered"`',
        "`--seed N`",
        "`--resolution 1K|2K|4K`",
        "`/resize 1080x1080 1920x1080`",
        "`/resize instagram-story og-image`",
        '`/resize 1200x628 https://example.com/p.jpg --format webp --variants 2 --prompt "keep face centered"`',
        "`/resize auto on social`",
        ":frame_with_picture:",
        "*Smart resize*",
        "Mention the app",
        presets_help(),
    ):
        assert piece in text, piece
    assert "`/rs auto off`" in help_text("/rs")
    assert ":art:" in help_text(reaction="art")
    assert "up to 3 sizes" in help_text(max_sizes=3)
    assert all(len(paragraph) < 3000 for paragraph in text.split("\n\n"))


def test_help_examples_parse() -> None:
    examples = [
        line.strip("`") for line in help_text().splitlines() if line.startswith("`/resize ") and "[" not in line
    ]
    assert len(examples) == 4
    for example in examples:
        assert not isinstance(parse_command(example.removeprefix("/resize ")), HelpCommand)


# --- parse_size_list --------------------------------------------------------------------------------------------


def test_size_lists_for_settings() -> None:
    assert parse_size_list("social 1200x628") == (*DEFAULT_SIZES, Size(1200, 628))
    assert parse_size_list("1080x1080,story") == (SQUARE, STORY)
    for bad in ("", "help", "social --format webp", "auto on", "https://e.com/p.jpg"):
        with pytest.raises(ParseError):
            parse_size_list(bad)
    with pytest.raises(ParseError, match="the limit is 2"):
        parse_size_list("social", max_sizes=2)


# --- properties -------------------------------------------------------------------------------------------------

_SOUP = st.sampled_from(
    [
        *" \t\n\"'“”‘’„<>|@#!&;=-—–xX×,.:/0123456789",
        "px",
        "https://",
        "http://e.com/",
        "--prompt",
        "--format",
        "-n",
        "--seed",
        "1080x1080",
        "16",
        "x",
        "auto",
        "on",
        "help",
        "&amp;",
        "&lt;",
        "story",
        "instagram",
        "<@U1>",
        "webp",
        "<https://a.co/p|l>",
        "<mailto:a@b>",
        "crop",
        "2K",
        "social",
        "=",
        "“keep",
    ]
)
_ANY_TEXT = st.one_of(st.text(max_size=60), st.lists(_SOUP, max_size=25).map("".join))


def _check_invariants(command: Command, limits: Limits) -> None:
    if isinstance(command, HelpCommand):
        return
    if isinstance(command, AutoCommand):
        assert len(command.sizes) == len(set(command.sizes)) <= MAX_SIZES
        assert command.action in ("on", "off", "show")
        assert not command.sizes or command.action == "on"
        return
    spec = command.spec
    assert spec.sizes and len(spec.sizes) == len(set(spec.sizes))
    assert len(spec.sizes) <= MAX_SIZES or not command.sizes_named
    assert 1 <= spec.variants <= MAX_VARIANTS
    assert len(spec.sizes) * spec.variants <= limits.max_outputs
    assert spec.seed is None or 0 <= spec.seed <= MAX_SEED
    if command.url is not None:
        parse_http_url(command.url)
    validate(spec.engine_request(), limits)  # every field has a value the engine accepts


@settings(max_examples=150)
@given(_ANY_TEXT)
def test_any_text_gives_a_command_or_a_parse_error(text: str) -> None:
    limits = Limits()
    try:
        command = parse_command(text, limits=limits)
    except ParseError as error:
        assert error.message.strip() and "\n" not in error.message
        return
    _check_invariants(command, limits)
    if isinstance(command, ResizeCommand):
        assert command.notes == ()
    if isinstance(command, (ResizeCommand, AutoCommand)):
        # What the strict reading accepts, the lenient one reads the same way.
        assert parse_mention(text, limits=limits) == command


@settings(max_examples=150)
@given(_ANY_TEXT, st.integers(1, 12), st.integers(1, 60))
def test_mentions_never_raise(text: str, max_sizes: int, max_outputs: int) -> None:
    limits = Limits(max_outputs=max_outputs)
    command = parse_mention(text, limits=limits, max_sizes=max_sizes)
    assert isinstance(command, (ResizeCommand, HelpCommand, AutoCommand))
    if isinstance(command, AutoCommand):
        assert len(command.sizes) <= max_sizes
    if not isinstance(command, HelpCommand):
        assert all(note.strip() for note in command.notes)
    if isinstance(command, ResizeCommand):
        assert len(command.spec.sizes) <= max_sizes or not command.sizes_named
        assert len(command.spec.sizes) * command.spec.variants <= max(max_outputs, len(DEFAULT_SIZES))


# Round trip: build a valid request, write it the many ways a person (and Slack) might, and read it back.

_OPTION_NAMES = {
    "format": ["--format", "-f", "—format", "--output-format"],
    "mode": ["--mode", "-m", "–mode"],
    "variants": ["--variants", "-n", "--variant"],
    "prompt": ["--prompt", "-p", "—prompt"],
    "seed": ["--seed", "-s"],
    "resolution": ["--resolution", "-r", "--res"],
}
_SPELLINGS = {"png": ["png", "PNG"], "jpeg": ["jpeg", "jpg", "JPG"], "webp": ["webp", "WebP"]}
_QUOTES = [('"', '"'), ("“", "”"), ("„", "“"), ("'", "'"), ("‘", "’")]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def _spellings(draw: st.DrawFn, name: str) -> str:
    """A preset name with random case and separators."""
    return "".join(draw(st.sampled_from([c, c.upper()])) if c != "-" else draw(st.sampled_from("-_")) for c in name)


@st.composite
def _size_text(draw: st.DrawFn, size: Size) -> str:
    sep = draw(st.sampled_from(["x", "X", "×", " x ", "x ", " ×"]))
    return f"{size.width}{sep}{size.height}{draw(st.sampled_from(['', 'px']))}"


def _option(draw: st.DrawFn, option: str, value: str, *, alone: bool = False) -> str:
    """``--option value``, ``-o=value``, ... or, where the value can't be anything else, the value alone."""
    forms = ["{} {}", "{}={}", *(["{1}"] if alone else [])]
    return draw(st.sampled_from(forms)).format(draw(st.sampled_from(_OPTION_NAMES[option])), value)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, ResizeCommand]:
    """Command text and what it means. Sizes and presets keep their order (it is part of the meaning); the link,
    options and Slack mentions are shuffled in among them."""
    named: list[tuple[str, str]] = []  # (kind, text) of sizes and presets, in order
    wanted: list[Size] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            size = Size(draw(st.integers(16, 8192)), draw(st.integers(16, 8192)))
            wanted.append(size)
            named.append(("size", draw(_size_text(size))))
        else:
            name = draw(st.sampled_from(known_names()))
            wanted += resolve_preset(name) or []
            named.append(("preset", draw(_spellings(name))))
    unique = tuple(dict.fromkeys(wanted))
    if len(unique) > MAX_SIZES or output_pixels(unique, 1) > Limits().max_output_pixels:
        unique, named = (), []  # refused or trimmed: test_too_many_sizes and test_too_many_output_pixels
    expected: dict[str, object] = {"sizes": unique}
    others: list[tuple[str, str]] = []

    if draw(st.booleans()):
        host = draw(st.from_regex(r"[a-z][a-z0-9]{0,9}\.(com|org|io)", fullmatch=True))
        path = draw(st.from_regex(r"(/[A-Za-z0-9_.~-]{0,12}){0,3}", fullmatch=True))
        query = draw(st.sampled_from(["", "?w=1", "?a=1&b=x%20y"]))
        expected["url"] = url = f"{draw(st.sampled_from(['https', 'http', 'HTTPS']))}://{host}{path}{query}"
        escaped = _slack_escape(url)  # Slack escapes & < > in command text
        others.append(("url", draw(st.sampled_from([escaped, f"<{escaped}>", f"<{escaped}|{host}>"]))))
    if draw(st.booleans()):
        expected["output_format"] = fmt = draw(st.sampled_from(["png", "jpeg", "webp"]))
        others.append(("option", _option(draw, "format", draw(st.sampled_from(_SPELLINGS[fmt])), alone=True)))
    if draw(st.booleans()):
        expected["mode"] = mode = draw(st.sampled_from(["auto", "crop", "extend"]))
        spelling = draw(st.sampled_from([mode, mode.upper()]))
        others.append(("option", _option(draw, "mode", spelling, alone=mode != "auto")))
    if draw(st.booleans()):
        made = unique or DEFAULT_SIZES
        most = min(
            MAX_VARIANTS, Limits().max_outputs // len(made), Limits().max_output_pixels // output_pixels(made, 1)
        )
        expected["variants"] = variants = draw(st.integers(1, most))
        others.append(("option", _option(draw, "variants", str(variants))))
    if draw(st.booleans()):
        expected["seed"] = seed = draw(st.integers(0, MAX_SEED))
        others.append(("option", _option(draw, "seed", str(seed))))
    if draw(st.booleans()):
        expected["resolution"] = resolution = draw(st.sampled_from(["1K", "2K", "4K"]))
        spelling = draw(st.sampled_from([resolution, resolution.lower()]))
        others.append(("option", _option(draw, "resolution", spelling, alone=True)))
    if draw(st.booleans()):
        words = draw(st.text(alphabet=string.ascii_letters + string.digits + " ,.;!?&<>-", max_size=50))
        expected["prompt"] = " ".join(words.split())
        opening, closing = draw(st.sampled_from(_QUOTES))
        others.append(("option", _option(draw, "prompt", f"{opening}{_slack_escape(words)}{closing}")))
    if draw(st.booleans()):
        others.append(("mention", draw(st.sampled_from(["<@U024BE7LH>", "<#C12345|general>", "<!here>"]))))

    others = list(draw(st.permutations(others)))
    order: list[tuple[str, str]] = []
    while named or others:
        take_named = bool(named) and (not others or draw(st.booleans()))
        order.append(named.pop(0) if take_named else others.pop(0))
    parts: list[str] = []
    for i, (kind, text) in enumerate(order):
        # Adjacent preset names would read as one name ("instagram story"); a comma keeps them apart. Mentions
        # are dropped before names are joined, so look past them.
        following = [k for k, _ in order[i + 1 :] if k != "mention"]
        next_is_preset = bool(following) and following[0] == "preset"
        comma = kind in ("size", "preset") and (next_is_preset or draw(st.booleans()))
        parts.append(text + ("," if comma else ""))
    spacing = draw(st.sampled_from([" ", "  ", "\n", "\u00a0"]))
    return spacing.join(parts), command(**expected)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(_requests())
def test_round_trip(case: tuple[str, ResizeCommand]) -> None:
    text, expected = case
    # With nothing but Slack mentions in it, a command asks for help instead.
    assert parse_command(text) in (expected, HelpCommand(EMPTY_COMMAND_REASON) if expected == command() else None)
    assert parse_mention(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1080x1080 auto", command(sizes=(SQUARE,), mode="auto")),  # after a size, the mode (first: the command)
        ("1080x1080 help", HelpCommand()),
    ],
)
def test_auto_and_help_after_a_size_are_the_mode_and_the_help(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


def test_a_mention_that_asks_for_help_in_a_sentence_is_an_ordinary_request() -> None:
    assert parse_mention("<@U1> can you help with this?") == command()


def test_a_mention_naming_no_size_leaves_its_variants_to_be_fitted_to_the_sizes_it_gets() -> None:
    # 4 default sizes x 6 variants is over the cap; a channel's 2 sizes x 6 is not (handlers.common.channel_spec).
    assert parse_mention("<@U1> --variants 6") == command(variants=6)
    with pytest.raises(ParseError, match="24 images"):  # a command knows its sizes now: refused at once
        parse_command("--variants 6")


@given(st.text(alphabet=string.ascii_letters + "-", min_size=1, max_size=20))
def test_a_suggestion_is_never_the_word_itself(word: str) -> None:
    assert word.lower() not in _suggestions(word, 0.6)
