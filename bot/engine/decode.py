"""Open, vet and decode a source image once, as small as the requested outputs allow.

Everything that can refuse an input (size in bytes, format, pixel count) runs on the header alone, before a single
pixel is decoded. Decoding then uses JPEG shrink-on-load (``draft``) so a 50 MP photo bound for 1080 px outputs is
decoded at 1/2, 1/4 or 1/8 scale, and normalises every pixel layout to 8-bit sRGB (RGB, or RGBA when the image
really has transparency).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import CorruptImage, ImageTooLarge, NotAnImage, UnsupportedFormat
from .types import Limits, Size

# Our own pixel cap (Limits.max_pixels) is checked on the header; Pillow's global bomb check would otherwise refuse
# or warn at a different, non-configurable threshold.
Image.MAX_IMAGE_PIXELS = None

# MPO is the multi-picture JPEG many phone cameras write; it decodes as a JPEG.
SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
_FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP or TIFF"
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, MemoryError)
_SRGB = ImageCms.createProfile("sRGB")


@dataclass
class Decoded:
    image: Image.Image  # "RGB" or "RGBA", orientation applied, sRGB
    scale: float  # decoded pixels per source pixel (1.0, 0.5, 0.25 or 0.125)
    source_size: Size  # orientation-corrected size of the original
    source_format: str
    notes: list[str]


@dataclass(frozen=True)
class Probe:
    image: Image.Image  # opened, not decoded
    source_size: Size
    orientation: int
    source_format: str


def _sniff_unsupported(data: bytes) -> str | None:
    head = data[:64]
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc"):
        return "HEIC photos aren't supported yet; export it as JPEG or PNG and try again."
    if head[4:12] in (b"ftypavif", b"ftypavis"):
        return "AVIF images aren't supported yet; export it as JPEG, PNG or WebP and try again."
    stripped = head.lstrip()
    if stripped.startswith((b"<svg", b"<?xml")):
        return "SVG is a vector format I can't resize; export it as PNG and try again."
    if stripped[:5].lower() in (b"<!doc", b"<html"):
        return "That's a web page, not an image; link to the image file itself or upload the image."
    if head.startswith(b"%PDF"):
        return "That's a PDF, not an image; export the page as PNG or JPEG and try again."
    return None


def probe(data: bytes, limits: Limits) -> Probe:
    """Read only the header: refuse anything we will not decode, with a sentence saying what to do instead."""
    if not data:
        raise NotAnImage("The file is empty; export the image again and use that file.")
    if len(data) > limits.max_input_bytes:
        raise ImageTooLarge(
            f"The file is {len(data) / 1e6:.0f} MB; the limit is {limits.max_input_bytes / 1e6:.0f} MB. "
            "Use a smaller or more compressed version.",
            setting="MAX_DOWNLOAD_MB",
        )
    sniffed = _sniff_unsupported(data)
    if sniffed:
        raise UnsupportedFormat(sniffed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise NotAnImage(f"That file isn't an image I can read; use a {_FORMAT_NAMES} file.") from None
    except _DECODE_ERRORS:
        raise CorruptImage("The image file is damaged or incomplete; export it again and retry.") from None
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedFormat(f"{image.format} images aren't supported; convert it to a {_FORMAT_NAMES} file.")
    width, height = image.size
    if width < 1 or height < 1:
        raise CorruptImage("The image has no pixels; export it again and retry.")
    pixels = width * height
    if pixels > limits.max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} ({pixels / 1e6:.0f} MP); the limit is "
            f"{limits.max_pixels / 1e6:.0f} MP. Use a smaller version.",
            setting="MAX_IMAGE_MEGAPIXELS",
        )
    try:
        orientation = int(_header_exif(image).get(0x0112, 1))
    except _DECODE_ERRORS:
        orientation = 1
    if orientation not in range(1, 9):
        orientation = 1
    oriented = Size(height, width) if orientation in _SWAPS_AXES else Size(width, height)
    return Probe(image=image, source_size=oriented, orientation=orientation, source_format=str(image.format))


def _header_exif(image: Image.Image) -> Image.Exif:
    """EXIF from the header only: Pillow's PNG ``getexif`` decodes every pixel to look for a trailing eXIf chunk."""
    if image.format != "PNG":
        return image.getexif()
    exif = Image.Exif()
    raw = image.info.get("exif")
    if isinstance(raw, bytes):
        exif.load(raw)
    return exif


def decode(probed: Probe, min_scale: float) -> Decoded:
    """Decode once, at the smallest JPEG DCT scale that still gives ``min_scale`` decoded pixels per source pixel."""
    image = probed.image
    notes: list[str] = []
    scale = 1.0
    if probed.source_format in ("JPEG", "MPO") and min_scale < 1.0:
        stored_w, stored_h = image.size
        want = (max(1, math.ceil(stored_w * min_scale)), max(1, math.ceil(stored_h * min_scale)))
        drafted = image.draft(None, want)
        if drafted is not None:
            scale = drafted[1][2] / stored_w
    try:
        image.load()
    except _DECODE_ERRORS:
        raise CorruptImage("The image file is damaged or incomplete; export it again and retry.") from None
    try:
        if probed.orientation != 1:
            image = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        notes.append("Ignored unreadable orientation metadata.")
    image = _to_srgb(image, notes)
    return Decoded(
        image=image, scale=scale, source_size=probed.source_size, source_format=probed.source_format, notes=notes
    )


def _to_srgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """Any of Pillow's pixel layouts -> 8-bit RGB or RGBA in sRGB."""
    icc = image.info.get("icc_profile")
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _high_bit_depth_to_l(image)
        mode = "L"
    if mode == "P" or mode == "PA" or mode in ("LA", "La", "RGBa"):
        image = image.convert("RGBA")
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    base_mode = image.mode if image.mode in ("RGB", "L", "CMYK", "LAB", "YCbCr") else "RGB"
    base = image.convert(base_mode) if image.mode != base_mode else image
    rgb: Image.Image | None = None
    if icc:
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            rgb = ImageCms.profileToProfile(base, source_profile, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            notes.append("Ignored an unreadable colour profile; colours may be slightly off.")
    if rgb is None:
        rgb = base.convert("RGB") if base.mode != "RGB" else base
    if alpha is not None and int(alpha.getextrema()[0]) < 255:  # type: ignore[arg-type]
        rgb.putalpha(alpha)
    return rgb


def _high_bit_depth_to_l(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
    else:
        low, high = 0.0, 65535.0 if values.max() > 255 or image.mode.startswith("I;16") else 255.0
    span = high - low if high > low else 1.0
    scaled = np.clip((np.nan_to_num(values) - low) * (255.0 / span), 0, 255)
    return Image.fromarray(np.round(scaled).astype(np.uint8), "L")
