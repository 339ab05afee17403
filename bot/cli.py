"""``smart-resize``: the engine from the command line (``resize``), and the self-hosted API server (``serve``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from bot.config import ConfigError, load_limits
from bot.engine import EngineError, parse_size, resize
from bot.engine.types import MODES, OUTPUT_FORMATS, RESOLUTIONS, Output
from bot.spec import ResizeSpec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smart-resize", description="Content-aware resizing into many sizes.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("resize", help="resize one image into one or more sizes")
    run.add_argument("input", metavar="INPUT", help="image file (JPEG, PNG, WebP, GIF, BMP or TIFF)")
    run.add_argument("--size", action="append", required=True, metavar="WxH", help="target size; repeat for more")
    run.add_argument("--out", default=".", metavar="DIR", help="where to write the images (default: .)")
    run.add_argument("--mode", choices=MODES, default="auto")
    run.add_argument("--format", dest="output_format", choices=OUTPUT_FORMATS, default="png")
    run.add_argument("--prompt", default="", metavar="TEXT", help='hint, e.g. "keep face centered"')
    run.add_argument("--variants", type=int, default=1, metavar="N", help="alternatives per size")
    run.add_argument("--seed", type=int, default=None, metavar="N")
    run.add_argument("--resolution", choices=RESOLUTIONS, default="1K", help="quality: 1K fast, 2K/4K sharper")
    run.add_argument("--explain", metavar="PATH", help="also write the crop map (a JPEG) here")
    run.add_argument("--json", action="store_true", help="print one JSON object describing the outputs")
    run.add_argument("--max-pixels", type=int, default=None, help=argparse.SUPPRESS)

    serve = commands.add_parser("serve", help="serve the engine over the Smart Resize API contract")
    serve.add_argument("--host", default=None, help="default: 127.0.0.1 without API keys, else all interfaces")
    serve.add_argument("--port", type=int, default=8080)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from dotenv import find_dotenv, load_dotenv

        from bot.smart_resize_api.server.app import (
            serve_forever,  # the server pulls in aiohttp; resize-only use does not need it
        )

        load_dotenv(find_dotenv(usecwd=True))  # the same .env as the app: one DATABASE_URL for both
        return serve_forever(args.host, args.port)
    return _resize(args)


def _resize(args: argparse.Namespace) -> int:
    try:
        limits = load_limits()
    except ConfigError as error:
        return _fail(" ".join(error.problems))
    if args.max_pixels is not None:
        limits = replace(limits, max_pixels=args.max_pixels)
    try:
        spec = ResizeSpec(
            sizes=tuple(parse_size(text, limits) for text in args.size),
            mode=args.mode,
            output_format=args.output_format,
            prompt=args.prompt,
            variants=args.variants,
            seed=args.seed,
            resolution=args.resolution,
        )
        data = Path(args.input).read_bytes()
        progress = _Progress(sys.stderr)
        result = resize(data, spec.engine_request(explain=bool(args.explain)), limits, on_output=progress.update)
        progress.done()
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = Path(args.input).stem
        described = []
        for output in result.outputs:
            path = out_dir / _file_name(stem, output)
            path.write_bytes(output.data)
            described.append(_describe(path, output))
        if args.explain and result.crop_map is not None:
            Path(args.explain).write_bytes(result.crop_map)
    except EngineError as error:
        return _fail(str(error))
    except FileNotFoundError:
        return _fail(f"No such file: {args.input}")
    except IsADirectoryError:
        return _fail(f"{args.input} is a folder; give the path of an image file.")
    except PermissionError as error:
        return _fail(f"Permission denied: {error.filename}")
    if args.json:
        print(json.dumps({"outputs": described, "notes": list(result.notes)}, indent=2))
    else:
        for item in described:
            print(f"{item['path']}  {item['target']}  {item['mode']}")
        for note in result.notes:
            print(f"note: {note}")
    return 0


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
