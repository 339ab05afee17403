"""``smart-resize``: the engine from the command line (``resize``), and the self-hosted API server (``serve``)."""

from __future__ import annotations

import argparse
import difflib
import errno
import io
import json
import os
import re
import stat
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, NoReturn, TextIO

from dotenv import find_dotenv, load_dotenv
from PIL import Image

from bot.config import ConfigError, load_limits
from bot.console import stopped_quietly_while_loading
from bot.engine import (
    EngineError,
    InvalidSize,
    Limits,
    Size,
    check_input_bytes,
    parse_focus,
    parse_size,
    resize,
    validate,
)
from bot.engine.core import MAX_SEED
from bot.engine.detectors import missing_warning
from bot.engine.types import FILL_CHOICES, MODES, OUTPUT_FORMATS, RESOLUTIONS, Output
from bot.presets import known_names, resolve_preset
from bot.spec import ResizeSpec

STDIN = "-"  # INPUT that reads the image from standard input


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr and exit 1, like every other error of this command."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smart-resize", description="Content-aware resizing into many sizes.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("resize", help="resize one image into one or more sizes")
    run.add_argument(
        "input",
        metavar="INPUT",
        help=f"image file (JPEG, PNG, WebP, HEIC, AVIF, GIF, BMP or TIFF); {STDIN} reads standard input",
    )
    run.add_argument(
        "--size",
        action="append",
        required=True,
        metavar="WxH|PRESET",
        help="target size (1080x1080) or preset or pack (instagram-story, social); repeat for more",
    )
    run.add_argument("--out", default=".", metavar="DIR", help="folder to write the images to (default: .)")
    run.add_argument("--mode", choices=MODES, default="auto")
    run.add_argument(
        "--format",
        dest="output_format",
        choices=("auto", *OUTPUT_FORMATS),
        default="auto",
        help="auto (default): JPEG for photos, PNG where there is transparency",
    )
    run.add_argument("--prompt", default="", metavar="TEXT", help='hint, e.g. "keep face centered"')
    run.add_argument("--variants", type=int, default=1, metavar="N", help="alternatives per size")
    run.add_argument("--seed", type=int, default=None, metavar="N", help=f"0 to {MAX_SEED}: same seed, same images")
    run.add_argument("--resolution", choices=RESOLUTIONS, default="1K", help="quality: 1K fast, 2K/4K sharper")
    run.add_argument(
        "--fill", choices=FILL_CHOICES, default="auto", help="an extended canvas: auto (per side), or one way for all"
    )
    run.add_argument(
        "--focus", metavar="X,Y", help="keep this point in every window: fractions across and down, like 0.3,0.4"
    )
    run.add_argument("--explain", metavar="PATH", help="also write the crop map here (.jpg, .png or .webp)")
    run.add_argument("--json", action="store_true", help="print one JSON object describing the outputs")
    run.add_argument("--max-pixels", type=int, default=None, help=argparse.SUPPRESS)

    serve = commands.add_parser(
        "serve",
        help="serve the engine over the Smart Resize API contract",
        description="Serve the engine over the hosted Smart Resize API's HTTP contract, at "
        "http://HOST:PORT/smart-resize/v1.",
        # What decides who may connect, and where requests are kept, are settings, not flags: name them here.
        epilog="Settings come from the environment or .env (README, 'A self-hosted twin'): SMART_RESIZE_API_KEYS "
        "(comma-separated; without keys the server answers on loopback only), DATABASE_URL, "
        "SMART_RESIZE_MEDIA_DIR, SMART_RESIZE_PUBLIC_URL.",
    )
    serve.add_argument("--host", default=None, help="default: 127.0.0.1 without API keys, else all interfaces")
    serve.add_argument("--port", type=_port, default=8080, help="default: 8080 (0: any free port)")
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:  # 0: any free port
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use a number from 1 to 65535")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_values_attached(sys.argv[1:] if argv is None else argv))
    load_dotenv(find_dotenv(usecwd=True))  # the app's .env: one DATABASE_URL, and the same MAX_* caps
    if args.command == "serve":
        stopped = "smart-resize serve: stopped before it began serving."
        with stopped_quietly_while_loading(stopped):
            # The server pulls in aiohttp; resize-only use does not need it.
            from bot.smart_resize_api.server.app import serve_forever
        try:
            return serve_forever(args.host, args.port)
        except KeyboardInterrupt:  # before the server's loop takes SIGINT over (it then stops gracefully, with 0)
            print(stopped, file=sys.stderr)
            return 130
    try:
        return _resize(args)
    except CliError as error:
        return _fail(str(error))
    except KeyboardInterrupt:  # Ctrl-C mid-resize: one line like any other early end, and the shell's code for it
        print("smart-resize: stopped; no image was left half written.", file=sys.stderr)
        return 130


_LOOKS_NEGATIVE = re.compile(r"-[\d.]")
# Options whose value can be mistyped with a leading "-" (the value's own check then says what is wrong with it),
# each with the shortest abbreviation argparse takes for it (--fo could be --format too).
_SIGNED_VALUES = {"--focus": "--foc", "--size": "--si"}


def _values_attached(argv: Sequence[str]) -> list[str]:
    """``--focus -0.5,0.5`` as ``--focus=-0.5,0.5`` (and ``--size -100x100`` likewise): argparse takes a word that
    starts with "-" (and is not one plain negative number) for an option, and would say "expected one argument"
    where the point's or the size's own check says what is wrong with it."""
    words: list[str] = []
    at = 0
    while at < len(argv):
        word = argv[at]
        if word == "--":  # the rest are not options
            words.extend(argv[at:])
            break
        # the option, or as argparse takes it abbreviated (--foc, --si), then a value that starts with "-"
        option = next(
            (name for name, short in _SIGNED_VALUES.items() if name.startswith(word) and word.startswith(short)), None
        )
        if option is not None and at + 1 < len(argv) and _LOOKS_NEGATIVE.match(argv[at + 1]):
            words.append(f"{option}={argv[at + 1]}")
            at += 2
            continue
        words.append(word)
        at += 1
    return words


class CliError(Exception):
    """A mistake on the command line or with a file: ``str()`` is the one line to print."""


def _resize(args: argparse.Namespace) -> int:
    try:
        limits = load_limits()
    except ConfigError as error:
        raise CliError(" ".join(error.problems)) from None
    if args.max_pixels is not None:
        limits = replace(limits, max_pixels=args.max_pixels)
    try:
        spec = ResizeSpec(
            sizes=_sizes(args.size, limits),
            mode=args.mode,
            output_format=args.output_format,
            prompt=args.prompt,
            variants=args.variants,
            seed=args.seed,
            resolution=args.resolution,
            fill=args.fill,
            focus=parse_focus(args.focus) if args.focus is not None else None,
        )
        request = spec.engine_request(explain=bool(args.explain))
        validate(request, limits)
        # Where the results go is checked before any work, so a typo costs nothing.
        out_dir = _output_folder(Path(args.out))
        explain = _crop_map_path(Path(args.explain), out_dir) if args.explain else None
        data = _read_input(args.input, limits)
        if (models := missing_warning()) is not None:
            print(f"smart-resize: warning: {models}", file=sys.stderr)
        progress = _Progress(sys.stderr)
        result = resize(data, request, limits, on_output=progress.update)
        progress.done()
    except EngineError as error:
        from bot.user_errors import cli_message  # only on failure: it imports the Slack side's errors too

        raise CliError(cli_message(error)) from None
    stem = "stdin" if args.input == STDIN else Path(args.input).stem
    _create_folder(out_dir)
    described = []
    for output in result.outputs:
        path = out_dir / _file_name(stem, output)
        _write(path, output.data)
        described.append(_describe(path, output))
    if explain is not None and result.crop_map is not None:
        _write_crop_map(explain, result.crop_map)
    if args.json:
        print(json.dumps({"outputs": described, "notes": list(result.notes)}, indent=2))
    else:
        for item in described:
            print(f"{item['path']}  {item['target']}  {item['mode']}")
        for note in result.notes:
            print(f"note: {note}")
    return 0


def _sizes(words: Sequence[str], limits: Limits) -> tuple[Size, ...]:
    """Each --size: WIDTHxHEIGHT, or a preset or pack by name; the same size twice is made once."""
    sizes: list[Size] = []
    for word in words:
        preset = resolve_preset(word)
        for size in preset if preset is not None else [_size(word, limits)]:
            if size not in sizes:
                sizes.append(parse_size(str(size), limits))  # a preset must fit the limits too
    return tuple(sizes)


def _size(word: str, limits: Limits) -> Size:
    try:
        return parse_size(word, limits)
    except InvalidSize:
        if any(c.isdigit() for c in word):
            raise
        close = difflib.get_close_matches(word.lower(), known_names(), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise CliError(
            f"--size {word!r} is neither a size nor a preset; write WIDTHxHEIGHT like 1080x1080, or a preset like "
            f"instagram-story.{hint}"
        ) from None


def _output_folder(path: Path) -> Path:
    """``path`` checked, before any work, as a folder the images can be written to, or one that can be created
    there; it is created only once they exist (``_create_folder``), so a run that fails leaves nothing behind."""
    if path.exists() and not path.is_dir():
        raise CliError(f"--out {path} is a file; give a folder to write the images to.")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):  # found now, not after the whole resize
            raise CliError(f"--out {path}: can't write in that folder; choose one you may write to.")
        return path
    existing = path.absolute()
    while not existing.exists():  # the nearest folder that is there, in which the rest would be created
        existing = existing.parent
    if not existing.is_dir():
        raise CliError(f"--out {path}: can't create that folder ({os.strerror(errno.ENOTDIR)}).")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"--out {path}: can't create that folder ({os.strerror(errno.EACCES)}).")
    return path


def _create_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"--out {path}: can't create that folder ({error.strerror or error}).") from None


# The engine draws the crop map as a JPEG; a name asking for PNG or WebP gets that format, not JPEG bytes.
_CROP_MAP_FORMATS = {".jpg": None, ".jpeg": None, ".png": "PNG", ".webp": "WEBP"}


def _crop_map_path(path: Path, out_dir: Path) -> Path:
    """``path`` checked, before any work, as a crop map's name in a folder it can be written to: one that exists,
    or the ``--out`` folder, which is made with the images (``--out out/ --explain out/crop-map.jpg``)."""
    if path.is_dir():
        raise CliError(f"--explain {path} is a folder; give a file name for the crop map, like {path / 'map.jpg'}.")
    folder = path.parent
    if os.path.abspath(folder) != os.path.abspath(out_dir):  # --out's own folder was checked as that
        if not folder.is_dir():
            raise CliError(f"--explain {path}: the folder {folder} does not exist; create it or choose another.")
        if not os.access(folder, os.W_OK | os.X_OK):  # found now, not after the images are written
            raise CliError(f"--explain {path}: can't write in {folder}; choose a folder you may write to.")
    if path.suffix.lower() not in _CROP_MAP_FORMATS:
        raise CliError(
            f"--explain {path}: the crop map can be .jpg, .png or .webp; name it like {path.with_suffix('.jpg')}."
        )
    return path


def _write_crop_map(path: Path, jpeg: bytes) -> None:
    image_format = _CROP_MAP_FORMATS[path.suffix.lower()]
    if image_format is not None:
        out = io.BytesIO()
        Image.open(io.BytesIO(jpeg)).save(out, image_format)
        jpeg = out.getvalue()
    _write(path, jpeg)


def _read_input(name: str, limits: Limits) -> bytes:
    """The bytes of the file ``name`` (``-``: standard input), refused over MAX_DOWNLOAD_MB before they are all read:
    a regular file by its size on disk, anything else (a pipe, a device) by reading at most one byte more than the
    cap."""
    path = "standard input" if name == STDIN else name
    try:
        with _open_input(name) as file:
            status = os.fstat(file.fileno())
            if stat.S_ISREG(status.st_mode):
                check_input_bytes(status.st_size, limits)
            data = file.read(limits.max_input_bytes + 1)  # a file that grew since, too
            check_input_bytes(len(data), limits)
            return data
    except FileNotFoundError:
        raise CliError(f"No such file: {path}") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a folder; give the path of an image file.") from None
    except OSError as error:
        raise CliError(f"Can't read {path}: {error.strerror or error}.") from None


def _open_input(name: str) -> BinaryIO:
    if name != STDIN:
        return Path(name).open("rb")
    if sys.stdin is None or sys.stdin.isatty():  # reading would wait for the user to type an image
        raise CliError(
            f"INPUT {STDIN} reads the image from standard input, and none is piped in: pipe one in "
            f"(smart-resize resize {STDIN} --size ... < photo.jpg) or give the image's path."
        )
    return open(sys.stdin.fileno(), "rb", closefd=False)


def _write(path: Path, data: bytes) -> None:
    """``data`` at ``path`` whole, or nothing there: written beside it first, then renamed (a full disk leaves no
    truncated image behind)."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise CliError(f"Can't write {path}: {error.strerror or error}.") from None
    except KeyboardInterrupt:  # Ctrl-C half way: no partial file left behind either
        partial.unlink(missing_ok=True)
        raise


def _file_name(stem: str, output: Output) -> str:
    return f"{stem}_{output.target}_{output.variant}.{output.extension}"


def _describe(path: Path, output: Output) -> dict[str, object]:
    return {
        "path": str(path),
        "width": output.width,
        "height": output.height,
        "target": str(output.target),
        "variant": output.variant,
        "mode": output.mode,
        "source_rect": list(output.source_rect),
        "placed_rect": list(output.placed_rect),
    }


def _fail(message: str) -> int:
    print(f"smart-resize: {message}", file=sys.stderr)
    return 1


class _Progress:
    """A one-line bar on stderr, only for people: not when stderr is a pipe or a file, nor for a single output."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        if total > 1 and self.stream.isatty():
            filled = round(30 * done / total)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} images")
            self.stream.flush()
            self.drawn = True

    def done(self) -> None:
        if self.drawn:
            self.stream.write("\n")


if __name__ == "__main__":
    sys.exit(main())
