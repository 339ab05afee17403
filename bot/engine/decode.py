"""Open, vet and decode a source image once, as small as the requested outputs allow, in bounded memory.

Everything that can refuse an input (size in bytes, format, pixel count, the memory its pixels take as decoded)
runs on the header alone, before a single pixel is decoded. JPEGs use shrink-on-load (``draft``), so a 50 MP photo
bound for 1080 px outputs is decoded at 1/2, 1/4 or 1/8 scale. Other formats have no such thing in Pillow: they are
decoded whole (within ``Limits.max_decoded_bytes``) and reduced at once, strip by strip where the pixel layout needs
converting first, before anything else touches them; the full-size pixels are then released. The working copy is
at most ``Limits.max_working_pixels``, whatever the resolution asked for. Every pixel layout ends as 8-bit sRGB
(RGB, or RGBA when the image really has transparency).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import math
import re
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageCms, JpegImagePlugin, UnidentifiedImageError, features

from .errors import CorruptImage, ImageTooLarge, NotAnImage, UnsupportedFormat
from .sizes import MB, MP, check_input_bytes, exactly, rounded_up
from .types import Limits, Size

# Our own pixel cap (Limits.max_pixels) is checked on the header; Pillow's global bomb check would otherwise refuse
# or warn at a different, non-configurable threshold.
Image.MAX_IMAGE_PIXELS = None


def _heif_opener() -> bool:
    """iPhones' HEIC photos, through pillow-heif (libheif and libde265). It turns the pixels upright itself (HEIF's
    irot and imir), so no orientation is applied to them here. Thumbnails, depth maps and auxiliary images are never
    read."""
    try:
        import pillow_heif
    except ImportError:  # a source install without it: HEIC is refused in a sentence, as before
        return False
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True


def _quiet_libtiff() -> bool:
    """libtiff writes its errors and warnings (a damaged JPEG-in-TIFF's "JPEGLib: Quantization table 0x00 was not
    defined.") straight to stderr, from C, past Python's warnings and logging, and Pillow has no switch for it. The
    decode's own failure is the one sentence said of such a file, so libtiff's default handlers are unset: with
    none, libtiff says nothing, and its decoder still reports the failure to Pillow. False when no libtiff of
    Pillow's is found (a source build on a system library is then as noisy as before)."""
    here = Path(Image.__file__).parent
    wheel_copies = [*here.parent.glob("pillow.libs/libtiff*.so*"), *here.glob(".dylibs/libtiff*.dylib")]
    candidates = [str(path) for path in wheel_copies] or [name for name in [ctypes.util.find_library("tiff")] if name]
    for candidate in candidates:
        try:
            libtiff = ctypes.CDLL(candidate)  # already loaded by Pillow: this is that copy, not a second one
            libtiff.TIFFSetErrorHandler.restype = libtiff.TIFFSetWarningHandler.restype = ctypes.c_void_p
            libtiff.TIFFSetErrorHandler(None)
            libtiff.TIFFSetWarningHandler(None)
        except (OSError, AttributeError):
            continue
        return True
    return False


_quiet_libtiff()


# MPO is the multi-picture JPEG many phone cameras write; it decodes as a JPEG. HEIF (HEIC) and AVIF where their
# decoders are installed: pillow-heif's, and the libavif inside Pillow's wheels.
SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
if _heif_opener():
    SUPPORTED_FORMATS.add("HEIF")
if features.check("avif"):
    SUPPORTED_FORMATS.add("AVIF")
_FORMAT_NAMES = "JPEG, PNG, WebP, HEIC, AVIF, GIF, BMP or TIFF"


def readable_extensions() -> list[str]:
    """The file name extensions (``heic``, ``tif`` ...) of the formats this installation reads, for a file picker
    that filters by them (Slack's file input)."""
    registered = Image.registered_extensions()
    return sorted(ext.lstrip(".") for ext, kind in registered.items() if kind in SUPPORTED_FORMATS)


_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError)
# libavif and libheif report a frame that will not decode (damaged planes, a size its header lied about, past
# libheif's security limits) as RuntimeError, from load().
_CODEC_ERRORS = (RuntimeError,)
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


_AV1_BRANDS = {b"avif", b"avis"}
_HEVC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_ISOBMFF_IMAGE_BRANDS = {b"mif1", b"msf1"}  # "an image file", of either codec


def _container_format(head: bytes) -> str | None:
    """HEIF (HEVC) or AVIF (AV1) by the brands in the file's first box, there even when the rest of the file is not.
    A file may name the generic image brand (mif1) first and its codec among the compatible brands after it."""
    if head[4:8] != b"ftyp" or len(head) < 12:
        return None
    size = int.from_bytes(head[:4], "big")
    brands = {head[8:12]} | {head[at : at + 4] for at in range(16, min(size, len(head)) - 3, 4)}
    if brands & _AV1_BRANDS:
        return "AVIF"
    if brands & (_HEVC_BRANDS | _ISOBMFF_IMAGE_BRANDS):
        return "HEIF"
    return None


def _sniff_unsupported(data: bytes) -> str | None:
    head = data[:64]
    container = _container_format(head)
    if container == "HEIF" and container not in SUPPORTED_FORMATS:
        return "HEIC photos can't be read by this installation; export it as JPEG or PNG and try again."
    if container == "AVIF" and container not in SUPPORTED_FORMATS:
        return "AVIF images can't be read by this installation; export it as JPEG, PNG or WebP and try again."
    stripped = head.lstrip()
    if stripped.startswith((b"<svg", b"<?xml")):
        return "SVG is a vector format I can't resize; export it as PNG and try again."
    if stripped[:5].lower() in (b"<!doc", b"<html"):
        return "That's a web page, not an image; link to the image file itself or upload the image."
    if head.startswith(b"%PDF"):
        return "That's a PDF, not an image; export the page as PNG or JPEG and try again."
    return None


def image_content_type(data: bytes) -> str | None:
    """The media type of an image this engine reads, from its bytes (its signature only); None for anything else.
    For files served without a type of their own (application/octet-stream), which are labelled by what they are.

    Only the first bytes are looked at, never Pillow's reading of the header: this runs in the app's own process,
    where Pillow's JPEG and PNG readers walk every segment before the pixels in Python, and a 50 MB file of empty
    segments held the event loop for 14 s and took 1 GB. A file that starts as an image and is not one is then
    refused by the decode, in the worker, as damaged."""
    head = data[:64]
    container = _container_format(head)
    if container is not None:
        kind = container
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        kind = "WEBP"
    elif head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        kind = "BMP"
    else:
        kind = next((name for signature, name in _SIGNATURE_FORMATS if head.startswith(signature)), "")
    return _MEDIA_TYPES.get(kind) if kind in SUPPORTED_FORMATS else None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image's header; None when it is not one Pillow reads, or when its header is padded
    past what is read (as in ``probe``): for images checked in the app's own process, such as the hosted API's."""
    if _header_blocks(data) > _MAX_HEADER_BLOCKS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, *_DECODE_ERRORS, *_CODEC_ERRORS):
        return None


def probe(data: bytes, limits: Limits) -> Probe:
    """Read only the header: refuse anything we will not decode, with a sentence saying what to do instead."""
    if not data:
        raise NotAnImage("The file is empty; export the image again and use that file.")
    check_input_bytes(len(data), limits)
    sniffed = _sniff_unsupported(data)
    if sniffed:
        raise UnsupportedFormat(sniffed)
    if _header_blocks(data) > _MAX_HEADER_BLOCKS:
        raise CorruptImage(
            f"The image file holds more than {_MAX_HEADER_BLOCKS:,} blocks of metadata or padding around its "
            "pixels, which I don't read through; export the image again and use that file."
        )
    if data.startswith(_PNG_SIGNATURE):
        data = _png_without_broken_ancillary_chunks(data)
    container = _container_format(data[:64])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Opened by the plugin for its codec only: both would claim a file whose first brand is mif1.
            image = Image.open(io.BytesIO(data), formats=[container] if container else None)
    except UnidentifiedImageError:
        # A HEIC or AVIF whose boxes are cut short or broken, or a file that starts as an image does and fails
        # further on (a PNG whose header chunk's checksum is wrong, which Pillow refuses).
        if container is not None or data.startswith(_IMAGE_SIGNATURES):
            raise CorruptImage("The image file is damaged or incomplete; export it again and retry.") from None
        raise NotAnImage(f"That file isn't an image I can read; use a {_FORMAT_NAMES} file.") from None
    except RuntimeError:
        if container is None:
            raise
        # libheif's answer to an item coded in something it was not built with (JPEG, VVC, uncompressed in HEIF).
        raise UnsupportedFormat(
            f"This {'HEIC' if container == 'HEIF' else container} file is compressed in a way I can't read; export "
            "it as JPEG or PNG and try again."
        ) from None
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
            f"The image is {width}x{height} ({rounded_up(pixels, MP)} MP); the limit is "
            f"{exactly(limits.max_pixels, MP)} MP. Use a smaller version.",
            setting="MAX_IMAGE_MEGAPIXELS",
        )
    try:
        with warnings.catch_warnings():  # a truncated TIFF's tags warn as they are read: the decode says it once
            warnings.simplefilter("ignore")
            orientation = int(_header_exif(image).get(0x0112, 1))
    except _DECODE_ERRORS:
        orientation = 1
    if orientation not in range(1, 9) or _orients_itself(image):
        orientation = 1
    oriented = Size(height, width) if orientation in _SWAPS_AXES else Size(width, height)
    return Probe(image=image, source_size=oriented, orientation=orientation, source_format=str(image.format))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# How the formats read here begin: a file that does and that Pillow cannot open is damaged, not something else.
_IMAGE_SIGNATURES = (_PNG_SIGNATURE, b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_SIGNATURE_FORMATS = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heic",
    "AVIF": "image/avif",
}
# The sizes of the info header a BMP's file header is followed by (BITMAPCOREHEADER to BITMAPV5HEADER, OS/2's):
# "BM" alone begins too many other files.
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


# Pillow's JPEG, PNG and GIF readers walk a file's segments, chunks and extension blocks (and the junk bytes between
# them) one at a time in Python, keeping many: 50 MB of empty ones took 14-18 s and 0.6-1.8 GB in a worker, past
# every cap here, for an image of a few pixels. Real files hold tens (a PNG written a row per IDAT, thousands).
_MAX_HEADER_BLOCKS = 100_000
_GIF_BLOCK_STARTS = re.compile(rb"[\x21\x2c\x3b]")  # an extension, an image, the trailer


def _header_blocks(data: bytes) -> int:
    """How many blocks (or stray bytes) Pillow's reader would step through one by one: a JPEG's before its first
    scan, a PNG's chunks, a GIF's before its first image; counted no further than one past the cap."""
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg_blocks(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_blocks(data)
    if data.startswith((b"GIF87a", b"GIF89a")):
        return _gif_blocks(data)
    return 0


def _jpeg_blocks(data: bytes) -> int:
    count, at = 0, 2
    while count <= _MAX_HEADER_BLOCKS:
        marker_at = data.find(b"\xff", at)
        if marker_at < 0 or marker_at + 1 >= len(data):
            break
        count += marker_at - at + 1  # junk between segments is skipped a byte at a time
        marker = data[marker_at + 1]
        if marker == 0xDA:  # start of scan: the rest is libjpeg's
            break
        if marker in (0x00, 0x01, 0xFF) or 0xD0 <= marker <= 0xD9:  # padding, an escaped 0xFF, a bare marker
            at = marker_at + 1
        else:
            at = marker_at + 2 + int.from_bytes(data[marker_at + 2 : marker_at + 4], "big")
    return count


def _png_without_broken_ancillary_chunks(data: bytes) -> bytes:
    """``data`` less its ancillary chunks (text, times, profiles: a lowercase first letter) whose checksum is wrong,
    as libpng and browsers read such a file (they skip those, with a warning), where Pillow refuses the whole file.
    A critical chunk with a wrong checksum (the header, the palette, the pixels) is left for the reader to refuse.
    ``data`` itself, uncopied, when nothing is dropped."""
    kept, at, dropped = [data[:8]], 8, False
    while at + 12 <= len(data):
        end = at + 12 + int.from_bytes(data[at : at + 4], "big")
        if end > len(data):
            break  # cut short: the reader says so
        kind = data[at + 4 : at + 8]
        if kind[0] & 0x20 and zlib.crc32(data[at + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            dropped = True
        else:
            kept.append(data[at:end])
        at = end
    return b"".join([*kept, data[at:]]) if dropped else data


def _png_blocks(data: bytes) -> int:
    count, at = 0, 8
    while count <= _MAX_HEADER_BLOCKS and at + 8 <= len(data):
        count += 1
        if data[at + 4 : at + 8] == b"IEND":
            break
        at += 12 + int.from_bytes(data[at : at + 4], "big")
    return count


def _gif_blocks(data: bytes) -> int:
    if len(data) < 13:
        return 0
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # past the global colour table
    count = 0
    while count <= _MAX_HEADER_BLOCKS and at < len(data):
        found = _GIF_BLOCK_STARTS.search(data, at)
        if found is None:
            break
        count += found.start() - at  # stray bytes, skipped one at a time
        at = found.start()
        if data[at] != 0x21:  # the first image, or the trailer
            break
        at += 2  # the introducer and the extension's label, then its sub-blocks up to an empty one
        while at < len(data) and count <= _MAX_HEADER_BLOCKS:
            count += 1
            size = data[at]
            at += 1 + size
            if size == 0:
                break
    return count


def _orients_itself(image: Image.Image) -> bool:
    """Whether the reader applies the file's orientation itself, so that turning it here would turn it twice:
    Pillow's TIFF reader does since it keeps the stored size apart (``_tile_size``), reporting the oriented size at
    open and turning the pixels on load; libheif turns a HEIF by its irot and imir (and what the file's EXIF or XMP
    says beside them is not to be applied again)."""
    return (image.format == "TIFF" and hasattr(image, "_tile_size")) or image.format == "HEIF"


def _header_exif(image: Image.Image) -> Image.Exif:
    """EXIF from the header only, and only from the EXIF block: Pillow's PNG ``getexif`` decodes every pixel to look
    for a trailing eXIf chunk, and its ``getexif`` falls back to an XMP orientation, which an AVIF (whose own irot
    and imir Pillow puts in its EXIF) must not be turned by again."""
    if image.format not in ("PNG", "AVIF"):
        return image.getexif()
    exif = Image.Exif()
    raw = image.info.get("exif")
    if isinstance(raw, bytes):
        exif.load(raw)
    return exif


def decode(probed: Probe, min_scale: float, limits: Limits) -> Decoded:
    """Decode once, at ``min_scale`` decoded pixels per source pixel or a little more (never less, unless the
    working-copy cap needs it), releasing the full-size pixels as soon as the reduced copy exists."""
    image = probed.image
    source_mode = image.mode
    icc = image.info.get("icc_profile")  # read now: the reduced copy carries none of the file's metadata
    # A PNG's tRNS colour key (what optimisers make of a logo's alpha): that colour is transparency, not a colour.
    key = _colour_key(image)
    notes: list[str] = []
    stored_w, stored_h = image.size
    # The working copy's cap wins over what the outputs would like: bounded memory, at the price of a softer 4K.
    memory_scale = min(1.0, math.sqrt(limits.max_working_pixels / (stored_w * stored_h)))
    target = min(min_scale, memory_scale)
    scale = 1.0
    if probed.source_format in ("JPEG", "MPO") and target < 1.0:
        want = (max(1, math.ceil(stored_w * target)), max(1, math.ceil(stored_h * target)))
        drafted = image.draft(None, want)
        if drafted is not None:
            scale = drafted[1][2] / stored_w
    copies = _DECODE_COPIES.get(str(image.format), 1)
    deep_heif = image.format == "HEIF" and int(image.info.get("bit_depth") or 8) > 8
    if deep_heif:
        copies = _DEEP_HEIF_COPIES
    elif image.format == "AVIF" and image.mode == "RGBA":
        copies = _AVIF_ALPHA_COPIES
    per_pixel = _BYTES_PER_PIXEL.get(image.mode, 4) * copies + (key is not None)
    decoded_bytes = round(image.width * image.height * per_pixel)
    if decoded_bytes > limits.max_decoded_bytes:
        deep = image.mode.startswith("I") or image.mode == "F" or deep_heif
        depth = " with more than 8 bits per channel" if deep else ""
        raise ImageTooLarge(
            f"The image is {stored_w}x{stored_h}{depth}: decoding it takes {rounded_up(decoded_bytes, MB)} MB of "
            f"memory, more than the {exactly(limits.max_decoded_bytes, MB)} MB allowed. Use a smaller version"
            + (", or one with 8 bits per channel." if deep else "."),
            setting="MAX_DECODED_MB",
        )
    alpha: Image.Image | None = None
    try:
        with warnings.catch_warnings():  # Pillow warns of a truncated file as well as failing: one sentence is enough
            warnings.simplefilter("ignore")
            image.load()
        alpha = None if key is None else _keyed_alpha(image, key)
        if probed.source_format in ("JPEG", "MPO") and _cut_short(image, scale):
            notes.append(
                "The image file looks cut short (its bottom is plain grey, which is how a decoder fills what a file "
                "lacks); if the results show a grey band, export the image again and use that file."
            )
        factor = _reduce_factor(image.size, scale, min_scale, limits.max_working_pixels)
        if factor > 1:
            reduced = _reduce(image, factor)
            image.close()  # the full-size pixels go now, before any conversion copies the reduced ones
            image = reduced
            alpha = None if alpha is None else alpha.reduce(factor)  # soft at the key's edges, as a reduced alpha is
            # Reduced sizes are rounded up, so one axis can read a little larger: the smaller keeps every box inside.
            scale = min(image.width / stored_w, image.height / stored_h)
            if scale < min_scale * 0.999:
                notes.append(
                    "The image is large for the memory the app allows, so it was worked on at "
                    f"{image.width}x{image.height}; the biggest outputs may be a little softer."
                )
    except (*_DECODE_ERRORS, *_CODEC_ERRORS):  # (a MemoryError is no damaged file: resize() says what it is)
        raise CorruptImage("The image file is damaged or incomplete; export it again and retry.") from None
    if probed.orientation in _TRANSPOSE:  # from the header, since a reduced copy has no EXIF of its own
        image = image.transpose(_TRANSPOSE[probed.orientation])
        alpha = None if alpha is None else alpha.transpose(_TRANSPOSE[probed.orientation])
    image = _to_srgb(image, notes, icc=icc, sixteen_bit=source_mode.startswith("I;16"))
    if alpha is not None:
        image = image.convert("RGB") if image.mode != "RGB" else image
        image.putalpha(alpha if alpha.size == image.size else alpha.resize(image.size))
    # Outputs carry none of the file's metadata: where no step above made a new image, this is the file's own, and
    # Pillow copies ``info`` through every resize and writes parts of it back (a JPEG's comment into a JPEG, the
    # profile into a PNG), so 2K and 4K outputs, resampled by Pillow, kept what 1K's (resampled by OpenCV) did not.
    image.info.clear()
    return Decoded(
        image=image, scale=scale, source_size=probed.source_size, source_format=probed.source_format, notes=notes
    )


_KEYED_MODES = ("L", "RGB", "I;16", "I;16B", "I;16L", "I;16N", "I")
_MID_GREY = 128  # a JPEG block with every coefficient zero


def _cut_short(image: Image.Image, scale: float) -> bool:
    """A JPEG cut short and closed with an end marker (Pillow refuses one without) decodes without an error, the
    missing blocks filled with exact mid-grey from where the data stopped: the rest of one row of blocks (MCUs), then
    whole rows to the bottom. That step is the sign: every pixel row of the last row of blocks grey from the same
    block boundary to its right end, and not before it. A grey border a designer drew has no such step (at most a
    row the chroma blurs into). ``scale``: decoded pixels per stored pixel (a drafted decode shrinks the blocks)."""
    width, height = image.size
    if image.mode not in ("RGB", "L", "CMYK") or height < 4 or width < 2:
        return False
    sampling = JpegImagePlugin.get_sampling(image)  # 4:2:0 and 4:2:2 blocks are 16 px wide, 4:2:0 16 px tall too
    block_w = max(1, round((8 if sampling <= 0 else 16) * scale))
    block_h = max(1, round((16 if sampling == 2 else 8) * scale))

    def grey_rows(top: int, bottom: int) -> npt.NDArray[np.bool_]:
        strip = np.asarray(image.crop((0, top, width, bottom)).convert("L" if image.mode == "L" else "RGB"))
        return (strip.reshape(bottom - top, width, -1) == _MID_GREY).all(axis=2)

    if not grey_rows(height - 2, height).all():
        return False
    bottom = height - 2
    while bottom > 0:  # up to the last row that is not all grey
        top = max(0, bottom - 16)
        whole = grey_rows(top, bottom).all(axis=1)
        if not whole.all():
            last = top + int(np.flatnonzero(~whole)[-1])
            # Chroma upsampling blurs a pixel row across each edge of a block row, and a pixel across each block's
            # left edge: the step is looked for without its block row's first row, and on the row above the lowest
            # one that is not all grey as well as on it, with a pixel of slack at the block boundary.
            return any(_grey_step(grey_rows, end, max(1, block_h - 2), block_w, width) for end in (last, last - 1))
        bottom = top
    return False  # a wholly grey image


def _grey_step(
    grey_rows: Callable[[int, int], npt.NDArray[np.bool_]], end: int, count: int, block_w: int, width: int
) -> bool:
    """Whether the ``count`` pixel rows up to ``end`` are grey from one block boundary to their right end, and only
    there, while the rows above them are not: a photo pasted top left on a grey canvas (an editor's "canvas size")
    has the same step, but its grey runs up the whole right side, where data cut short leaves decoded rows above."""
    first = end - count + 1
    if first < 0:
        return False
    step = grey_rows(first, end + 1)
    start = int(np.argmin(step[-1][::-1])) if step[-1][-1] else 0  # the grey run at the right end
    edge = width - start
    if start == 0 or edge == 0 or edge % block_w > 1:
        return False
    if not (step[:, edge:].all() and not step[:, :edge].any()):
        return False
    above = first - 2  # clear of the row the chroma blurs into from the step's block row
    # (and of the column it blurs into from the block at the step's left, on a canvas's side)
    return above < 0 or not grey_rows(above, above + 1)[0, min(width - 1, edge + 2) :].all()


def _colour_key(image: Image.Image) -> object:
    """A PNG's tRNS colour key as the loaded pixels have it (read before they are). Pillow loads a 16-bit RGB PNG as
    8-bit RGB, each sample's high byte, but keeps its key in 16-bit values: the key is cut to its high bytes the
    same way (so a pixel within 1/256 of the key colour in every channel is clear too, as it looks). A 16-bit grey
    PNG loads as 16-bit (I;16), its key as it is."""
    if image.mode not in _KEYED_MODES:
        return None
    key = image.info.get("transparency")
    rawmodes = {getattr(tile, "args", None) for tile in getattr(image, "tile", ())}  # how the file stores them
    sixteen_bit_rgb = image.mode == "RGB" and "RGB;16B" in rawmodes
    if sixteen_bit_rgb and isinstance(key, tuple) and all(isinstance(v, int) for v in key):
        return tuple(v >> 8 for v in key)
    return key


def _keyed_alpha(image: Image.Image, key: object) -> Image.Image | None:
    """The alpha a colour key means: 0 where a pixel is exactly ``key`` (a grey level, or an RGB triple), else 255;
    None for a key that is not one (a malformed chunk)."""
    pixels = np.asarray(image)
    try:
        wanted = np.asarray(key, dtype=pixels.dtype)
    except (TypeError, ValueError, OverflowError):
        return None
    if wanted.shape != pixels.shape[2:]:
        return None
    transparent = (pixels == wanted).all(axis=2) if pixels.ndim == 3 else pixels == wanted
    return Image.fromarray((~transparent).astype(np.uint8) * np.uint8(255), "L")


# Bytes a pixel takes in Pillow's memory, by mode (3- and 4-band images alike are stored 4 bytes a pixel).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "I": 4, "F": 4}
# Pillow's WebP decoder holds libwebp's RGBA buffer, a bytes copy of it and the image at once (measured: a 100 MP
# canvas peaked at 1.5 GB): it takes three times what the pixels do. libavif's and libheif's buffers sit beside
# Pillow's image too. Measured as peak RSS over the pixels (12-24 MP): AVIF 2.2 (8-bit) to 4.2 (10- or 12-bit with
# alpha), an 8-bit HEIC 1.8-2.0, a 10-bit one 3.4-4.2. An AVIF's depth is not known at open, so its alpha decides.
_DECODE_COPIES: dict[str, float] = {"WEBP": 3, "AVIF": 3.5, "HEIF": 2}
_AVIF_ALPHA_COPIES = 4.5
_DEEP_HEIF_COPIES = 4.5
# Modes Image.reduce cannot take, and what each is converted to, a strip at a time, before it is reduced.
_REDUCE_AS = {"1": "L", "P": "RGBA", "PA": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}
# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose has it).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_STRIP_PIXELS = 4_000_000


def _reduce_factor(size: tuple[int, int], scale: float, min_scale: float, max_working_pixels: int) -> int:
    """How many times smaller to make the decoded image: as much as the outputs allow, and enough for the cap."""
    width, height = size
    allowed = math.floor(scale / min_scale) if min_scale > 0 else 1
    needed = math.ceil(math.sqrt(width * height / max_working_pixels)) if width * height > max_working_pixels else 1
    return max(1, allowed, needed)


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)`` (box averaging) a strip at a time: Pillow's own makes a full-size premultiplied copy
    of an RGBA image first, and some modes must be converted before they can be reduced at all."""
    mode = _REDUCE_AS.get(image.mode, image.mode)
    width, height = image.size
    out = Image.new(mode, (math.ceil(width / factor), math.ceil(height / factor)))
    rows = factor * max(1, _STRIP_PIXELS // (width * factor))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        out.paste((strip.convert(mode) if strip.mode != mode else strip).reduce(factor), (0, top // factor))
    return out


def _to_srgb(image: Image.Image, notes: list[str], *, icc: bytes | None, sixteen_bit: bool = False) -> Image.Image:
    """Any of Pillow's pixel layouts -> 8-bit RGB or RGBA in sRGB, through the file's colour profile ``icc``.
    ``sixteen_bit``: the source was 16-bit, though reducing it may have made it 32-bit integers."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _high_bit_depth_to_l(image, sixteen_bit=sixteen_bit)
        mode = "L"
    alpha: Image.Image | None = None
    if mode in ("LA", "La"):
        # Grey and alpha apart: a grey profile transforms the grey band only (as RGBA it would build no transform).
        grey_alpha = image.convert("LA") if mode == "La" else image
        image, alpha = grey_alpha.getchannel("L"), grey_alpha.getchannel("A")
    elif mode in ("P", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        alpha = image.getchannel("A")
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


def _high_bit_depth_to_l(image: Image.Image, *, sixteen_bit: bool) -> Image.Image:
    """Integers from 0 to the full scale of the depth they are stored at: 16-bit (however held: Pillow reads a
    16-bit TIFF or PNG as I;16, a reduced one as I) from 0 to 65535, and 32-bit integers (mode I) by what they hold:
    8-bit values to 255, 16-bit ones to 65535, and beyond that to the smallest whole number of bits that holds their
    maximum (2**31 - 1 for a full-range 32-bit scan), so a level keeps its brightness rather than the brightest
    pixel going white. Floats from 0 to 1 where they lie in it (the convention for float images), else stretched
    from their least to their greatest value (their range is then unknown)."""
    # float32 is plenty for mapping to 256 levels, and half float64's memory.
    values = np.asarray(image, dtype=np.float32)
    if image.mode == "F":
        with warnings.catch_warnings():  # an all-NaN image: no range, read as 0 to 1
            warnings.simplefilter("ignore")
            low, high = float(np.nanmin(values)), float(np.nanmax(values))
        if not (math.isfinite(low) and math.isfinite(high)) or (low >= 0.0 and high <= 1.0):
            low, high = 0.0, 1.0
    elif sixteen_bit or image.mode.startswith("I;16"):
        low, high = 0.0, 65535.0
    else:
        greatest = int(image.getextrema()[1])  # type: ignore[arg-type]  # exactly: float32 rounds 32-bit integers
        low = 0.0
        high = 255.0 if greatest <= 255 else 65535.0 if greatest <= 65535 else float(2 ** greatest.bit_length() - 1)
    span = high - low if high > low else 1.0
    scaled = np.clip((np.nan_to_num(values) - low) * (255.0 / span), 0, 255)
    return Image.fromarray(np.round(scaled).astype(np.uint8), "L")
