"""The argument parser, fuzzed: whatever is typed, the command answers with output or one line and exit 1."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cli import main
from tests.images import encode, photo

_WORK = Path(tempfile.mkdtemp(prefix="cli-fuzz-"))
_IMAGE = _WORK / "small.png"
_IMAGE.write_bytes(encode(photo(64, 48), "PNG"))
_TOKENS = [
    "resize", "serve", str(_IMAGE), str(_WORK / "missing.png"), str(_WORK), "--size", "100x100", "40x30", "story",
    "social", "banana", "0x0", "--out", str(_WORK / "out"), str(_IMAGE), "--format", "auto", "webp", "gif", "--mode",
    "crop", "sideways", "--variants", "2", "0", "99", "--seed", "7", "-5", "x", "--resolution", "2K", "8K", "--explain",
    str(_WORK / "map.jpg"), str(_WORK / "nope" / "map.jpg"), "--json", "--prompt", "keep face centered", "--bogus", "",
]  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), max_size=9).filter(lambda argv: "serve" not in argv))
def test_any_arguments_give_output_or_one_line_and_exit_1(argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    # In a folder with no .env above it: main() loads one, and a developer's must not leak into this process.
    with contextlib.chdir(_WORK), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's way out, for mistakes and for --help
            code = int(exit_.code or 0)
    message = err.getvalue()
    assert "Traceback" not in message
    if code == 0:
        assert message == ""
    else:
        assert code == 1 and message.count("\n") == 1 and message.startswith("smart-resize"), message


def test_serve_help_says_the_defaults_and_the_settings_that_decide_who_may_connect() -> None:
    out = io.StringIO()
    with contextlib.chdir(_WORK), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["serve", "--help"])
    said = " ".join(out.getvalue().split())
    assert "/smart-resize/v1" in said and "--port PORT default: 8080" in said
    assert "SMART_RESIZE_API_KEYS (comma-separated; without keys the server answers on loopback only)" in said


def test_resize_help_names_every_format_the_engine_reads() -> None:
    out = io.StringIO()
    with contextlib.chdir(_WORK), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["resize", "--help"])
    said = " ".join(out.getvalue().split())
    assert "image file (JPEG, PNG, WebP, HEIC, AVIF, GIF, BMP or TIFF)" in said
