"""The engine's request and result models: plain, immutable, picklable (they cross the process pool)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["auto", "crop", "extend"]
UsedMode = Literal["crop", "extend"]
OutputFormat = Literal["png", "jpeg", "webp"]
# "auto": JPEG for opaque images, PNG where there is transparency (the Slack app's default; not in the API contract).
FormatChoice = Literal["png", "jpeg", "webp", "auto"]
Resolution = Literal["1K", "2K", "4K"]
# How an extended canvas is filled: "auto" chooses per side from what the border holds (bot.engine.extend).
FillChoice = Literal["auto", "blur", "mirror", "colour", "synthesize"]
Rect = tuple[int, int, int, int]  # x, y, width, height
# A focal point: fractions (0-1) of the orientation-corrected source's width and height, from its top left.
Focus = tuple[float, float]

MODES: tuple[Mode, ...] = ("auto", "crop", "extend")
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("png", "jpeg", "webp")
RESOLUTIONS: tuple[Resolution, ...] = ("1K", "2K", "4K")
FILL_CHOICES: tuple[FillChoice, ...] = ("auto", "blur", "mirror", "colour", "synthesize")
CONTENT_TYPES: dict[OutputFormat, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True, order=True)
class Size:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @classmethod
    def parse(cls, text: str) -> Size:
        """``"1080x1080"`` as stored by this app (already checked); user input goes through ``parse_size``."""
        width, height = text.split("x")
        return cls(int(width), int(height))

    @property
    def aspect(self) -> float:
        return self.width / self.height


@dataclass(frozen=True)
class Limits:
    """Refusals happen before any pixel is decoded; every cap is configurable."""

    max_pixels: int = 100_000_000
    min_side: int = 16
    max_side: int = 8192
    max_outputs: int = 20  # sizes x variants; MAX_OUTPUTS_PER_REQUEST
    max_output_pixels: int = 100_000_000  # every output of a request together; MAX_OUTPUT_MEGAPIXELS
    max_input_bytes: int = 50 * 1024 * 1024
    # What one decode may hold: the pixels as decoded (bit depth and bands count: 16-bit grey is 2 bytes a pixel,
    # float 4, RGB(A) 4 in Pillow's memory) plus a working copy of at most max_working_pixels. Together with the
    # process itself these keep a worker's source side under about 600 MB for anything the caps accept (the outputs,
    # capped in count and pixels, come on top: README, "Memory").
    max_decoded_bytes: int = 400 * 1024 * 1024
    max_working_pixels: int = 24_000_000


@dataclass(frozen=True)
class ResizeRequest:
    sizes: tuple[Size, ...]
    mode: Mode = "auto"
    output_format: FormatChoice = "png"
    prompt: str = ""
    variants: int = 1
    seed: int | None = None
    resolution: Resolution = "1K"
    explain: bool = False
    fill: FillChoice = "auto"  # an extended canvas: per side as its border calls for, or one way for every side
    focus: Focus | None = None  # kept inside every window, which is centred on it as far as the source allows


@dataclass(frozen=True)
class Output:
    data: bytes
    content_type: str
    width: int
    height: int
    target: Size
    variant: int
    mode: UsedMode
    # Region of the orientation-corrected source that was used, in source pixels.
    source_rect: Rect
    # Where that region sits in the output (the whole output for a crop).
    placed_rect: Rect

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}[self.content_type]


@dataclass(frozen=True)
class ResizeResult:
    outputs: tuple[Output, ...]
    notes: tuple[str, ...]
    source_size: Size  # after EXIF orientation
    source_format: str
    crop_map: bytes | None = None  # JPEG: the source with each output's window drawn, when asked for
    faces: tuple[Rect, ...] = field(default=())
