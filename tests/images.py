"""Real images built in memory for tests: encoded files of every kind the engine accepts, and scenes with a known
subject position, so tests can assert where a window must go."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin

DATA = Path(__file__).parent / "data"


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x, y, w, h) boxes: how a found box is compared with a hand label."""
    across = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    down = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = across * down
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def astronaut() -> bytes:
    """A real photo with one frontal face, at about (130, 48, 75, 75) of its 384x384 pixels."""
    return (DATA / "astronaut.jpg").read_bytes()


def astronaut_heic() -> bytes:
    """The astronaut's top 384x288 as an iPhone stores a photo: HEIC, the pixels on their side, and the turn that
    makes them upright beside them (HEIF's irot, and EXIF orientation 6)."""
    return (DATA / "astronaut-sideways.heic").read_bytes()


def logo_heic() -> bytes:
    """A red disc on transparency, 240x120, as a HEIC with an alpha plane."""
    return (DATA / "logo.heic").read_bytes()


def sign() -> bytes:
    """A street sign of five lines of text (hand-labelled at (258, 20, 184, 246) of 800x600) and, at the right edge,
    a woman's profile (760, 382, 40, 44)."""
    return (DATA / "sign.jpg").read_bytes()


def portrait() -> bytes:
    """A head-and-shoulders portrait, 512x600, whose shoulders run to both sides of the frame."""
    return (DATA / "portrait.jpg").read_bytes()


def footballer() -> bytes:
    """A footballer in action, 548x342: his face (hand-labelled at (217, 92, 42, 39)) is small and turned."""
    return (DATA / "footballer.jpg").read_bytes()


def fruits() -> bytes:
    """A busy pile of fruit, 512x480, with neither a face nor text in it."""
    return (DATA / "fruits.jpg").read_bytes()


def textured_background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A dull, slightly noisy backdrop like a studio wall or sky: nothing in it should attract a crop."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = 120 + 20 * (xs / width) + 10 * (ys / height)
    noise = rng.normal(0, 4, (height, width))
    grey = np.clip(base + noise, 0, 255)
    return np.stack([grey * 0.9, grey * 0.95, grey], axis=2).astype(np.uint8)


def scene_with_subject(width: int, height: int, box: tuple[int, int, int, int], seed: int = 0) -> Image.Image:
    """A colourful, detailed subject (concentric rings and stripes) at ``box`` = (x, y, w, h) on a dull backdrop."""
    pixels = textured_background(width, height, seed)
    x, y, w, h = box
    ys, xs = np.mgrid[0:h, 0:w]
    radius = np.hypot((xs - w / 2) / (w / 2), (ys - h / 2) / (h / 2))
    rings = (np.sin(radius * 18) > 0).astype(np.float64)
    subject = np.stack([200 + 55 * rings, 40 + 120 * rings, 30 + 0 * rings], axis=2)
    inside = radius <= 1.0
    region = pixels[y : y + h, x : x + w]
    region[inside] = subject[inside].astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def sign_in_foliage(seed: int = 0) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """1600x900: a dense, high-contrast bush over the left 900 pixels, softer grass beyond, and a plain grey sign in
    the grass on the right. Returns the picture and the sign's box."""
    import cv2

    rng = np.random.default_rng(seed)
    height, width = 900, 1600
    leaves = np.zeros((height, width), np.float32)
    for scale in (2, 4, 9):
        noise = rng.normal(0, 1, (height // scale + 1, width // scale + 1)).astype(np.float32)
        leaves += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)[:height, :width]
    leaves = (leaves - leaves.min()) / (leaves.max() - leaves.min()) - 0.5
    contrast = np.where(np.arange(width)[None, :] < 900, 200.0, 30.0)
    green = 110 + contrast * leaves
    pixels = np.stack([0.6 * green, green, 0.45 * green], axis=2)
    box = (1230, 330, 220, 170)
    x, y, w, h = box
    pixels[y : y + h, x : x + w] = (150, 150, 160)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), box


def photo(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """A generic photo-like image with its subject in the middle."""
    side = min(width, height) // 3
    return scene_with_subject(width, height, ((width - side) // 2, (height - side) // 2, side, side), seed)


def with_exif_orientation(image: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    quality = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
    return encode(image, fmt, exif=exif.tobytes(), **quality)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but carries almost no data: decoding it would be a bomb."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def png_16_bit(pixels: np.ndarray, key: tuple[int, ...]) -> bytes:
    """A 16-bit PNG of ``pixels`` (grey if 2-D, else RGB) with a tRNS colour key ``key``, in 16-bit values: Pillow
    reads a 16-bit RGB one as 8-bit RGB, a grey one as I;16."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    height, width = pixels.shape[:2]
    colour_type = 0 if pixels.ndim == 2 else 2
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
        + chunk(b"tRNS", struct.pack(f">{len(key)}H", *key))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_with_bad_checksum(image: Image.Image, chunk: bytes) -> bytes:
    """``image`` as a PNG whose ``chunk`` has a wrong checksum: a tEXt comment added after the header (IHDR), or
    the header itself."""
    data = encode(image, "PNG")
    header_end = 8 + 8 + 13 + 4  # the signature, then IHDR: its length and type, 13 bytes, its checksum
    if chunk == b"IHDR":
        return data[: header_end - 4] + b"\0\0\0\0" + data[header_end:]
    payload = b"Comment\0hello"
    return data[:header_end] + struct.pack(">I", len(payload)) + chunk + payload + b"\0\0\0\0" + data[header_end:]


def tiff_cut_short() -> bytes:
    """A TIFF cut off inside its tag data (a long description stored after the directory, as Pillow writes it):
    Pillow warns of each tag it skips as it reads them, then fails to decode the pixels."""
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[270] = "x" * 5000  # ImageDescription
    data = encode(photo(64, 48), "TIFF", tiffinfo=info)
    return data[: data.index(b"xxxx") + 100]


def jpeg_tiff_damaged() -> bytes:
    """A JPEG-compressed TIFF whose quantisation table's marker is broken: libtiff's JPEG codec fails on it, and
    libtiff, left to itself, says so on stderr from C."""
    data = bytearray(encode(photo(256, 256), "TIFF", compression="jpeg"))
    data[data.index(b"\xff\xdb") + 1] = 0x00  # DQT
    return bytes(data)


def grey_linear_profile() -> bytes:
    """A grey ICC v2 profile (colour space GRAY, a D50 white point and a linear tone curve, gamma 1.0), as a
    scanner's or a grey working space's: its 100 is sRGB's 168 (sRGB's curve lifts the mid-tones)."""

    def tag(kind: bytes, payload: bytes) -> bytes:
        return kind + b"\0" * 4 + payload

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    description = b"Grey linear\0"
    tags = [
        (b"desc", tag(b"desc", struct.pack(">I", len(description)) + description + b"\0" * 78)),
        (b"cprt", tag(b"text", b"none\0")),
        (b"wtpt", tag(b"XYZ ", s15(0.9642) + s15(1.0) + s15(0.8249))),
        (b"kTRC", tag(b"curv", struct.pack(">IH", 1, 256))),  # one entry: gamma 1.0 (u8.8)
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = body = b""
    for signature, data in tags:
        body += b"\0" * (-(offset + len(body)) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    body += b"\0" * (-len(body) % 4)
    header = (
        struct.pack(">I", offset + len(body))
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrGRAYXYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acspAPPL"
        + b"\0" * 24
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"lcms"
        + b"\0" * 44
    )
    return header + struct.pack(">I", len(tags)) + table + body
