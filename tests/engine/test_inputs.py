"""Every input kind the engine accepts decodes correctly, and every bad input is refused with a plain sentence."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from bot.engine import (
    CorruptImage,
    ImageTooLarge,
    InvalidOption,
    InvalidSize,
    Limits,
    NotAnImage,
    ResizeRequest,
    Size,
    TooManyOutputs,
    UnsupportedFormat,
    image_content_type,
    resize,
)
from bot.engine.decode import _container_format
from tests.images import (
    DATA,
    astronaut,
    astronaut_heic,
    encode,
    grey_linear_profile,
    logo_heic,
    photo,
    png_16_bit,
    png_header_only,
    png_with_bad_checksum,
    with_exif_orientation,
)

ONE = ResizeRequest(sizes=(Size(64, 64),))


def _decoded(data: bytes, request: ResizeRequest = ONE) -> Image.Image:
    result = resize(data, request)
    assert len(result.outputs) == len(request.sizes) * request.variants
    return Image.open(io.BytesIO(result.outputs[0].data))


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("JPEG", {"quality": 90}), ("PNG", {}), ("WEBP", {"quality": 90}), ("GIF", {}), ("BMP", {}), ("TIFF", {})],
)
def test_each_supported_format_resizes(fmt: str, params: dict[str, object]) -> None:
    source = photo(320, 240)
    result = resize(encode(source, fmt, **params), ResizeRequest(sizes=(Size(100, 100), Size(200, 50))))
    assert result.source_format == fmt
    assert result.source_size == Size(320, 240)
    assert [(o.width, o.height) for o in result.outputs] == [(100, 100), (200, 50)]
    for output in result.outputs:
        assert Image.open(io.BytesIO(output.data)).size == (output.width, output.height)


def test_gif_uses_the_first_frame() -> None:
    red, blue = Image.new("RGB", (80, 80), (255, 0, 0)), Image.new("RGB", (80, 80), (0, 0, 255))
    data = encode(red, "GIF", save_all=True, append_images=[blue])
    pixels = np.asarray(_decoded(data).convert("RGB"), dtype=int)
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 50


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])  # Pillow turns a TIFF itself: once, not twice
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation: int, fmt: str) -> None:
    # A white marker in the stored top-left corner lands where the orientation says the viewer sees it.
    stored = Image.new("RGB", (200, 100), (0, 0, 0))
    stored.paste((255, 255, 255), (0, 0, 40, 40))
    data = with_exif_orientation(stored, orientation, fmt)
    result = resize(data, ResizeRequest(sizes=(Size(50, 50),), mode="extend"))
    expected_size = Size(200, 100) if orientation == 3 else Size(100, 200)
    assert result.source_size == expected_size
    out = np.asarray(Image.open(io.BytesIO(result.outputs[0].data)).convert("L"), dtype=int)
    x, y, w, h = result.outputs[0].placed_rect
    placed = out[y : y + h, x : x + w]
    corner = {3: placed[-3:, -3:], 6: placed[:3, -3:], 8: placed[-3:, :3]}[orientation]
    assert corner.mean() > 200


@pytest.mark.parametrize(
    ("mode", "key", "colour"), [("RGB", (0, 0, 0), (255, 0, 0)), ("L", 0, 200), ("I;16", 0, 40000)]
)
@pytest.mark.parametrize("width", [200, 3000], ids=["as-is", "reduced"])
def test_a_png_colour_key_is_transparency(mode: str, key: object, colour: object, width: int) -> None:
    # What optipng and oxipng make of a logo's alpha: no alpha channel, one colour (tRNS) that means "clear".
    logo = Image.new(mode, (width, width // 2), colour)  # type: ignore[arg-type]
    logo.paste(key, (0, 0, width // 2, width // 2))  # type: ignore[arg-type]
    result = resize(encode(logo, "PNG", transparency=key), ResizeRequest(sizes=(Size(100, 50),)))
    out = Image.open(io.BytesIO(result.outputs[0].data))
    assert out.format == "PNG" and out.mode == "RGBA"
    assert out.getpixel((10, 25))[3] == 0 and out.getpixel((90, 25))[3] == 255


@pytest.mark.parametrize(
    ("key", "colour"),
    [((1000, 2000, 3000), (40000, 10000, 20000)), ((0, 0, 200), (0, 0, 60000)), ((1234,), (30000,))],
    ids=["rgb", "rgb-low-key", "grey"],
)
def test_a_16_bit_png_colour_key_is_transparency(key: tuple[int, ...], colour: tuple[int, ...]) -> None:
    # Pillow reads a 16-bit RGB PNG as 8-bit RGB but keeps its tRNS key in 16-bit values.
    pixels = np.zeros((100, 200, len(key)), np.uint16)
    pixels[:] = colour
    pixels[:, :100] = key
    data = png_16_bit(pixels if len(key) == 3 else pixels[..., 0], key)
    result = resize(data, ResizeRequest(sizes=(Size(100, 50),)))
    out = Image.open(io.BytesIO(result.outputs[0].data))
    assert out.format == "PNG" and out.mode == "RGBA"
    assert out.getpixel((10, 25))[3] == 0 and out.getpixel((90, 25))[3] == 255


def test_cmyk_jpeg_becomes_rgb() -> None:
    cyan = Image.new("CMYK", (64, 64), (255, 0, 0, 0))
    pixels = np.asarray(_decoded(encode(cyan, "JPEG", quality=95)).convert("RGB"), dtype=int)
    assert pixels[..., 0].mean() < 40 and pixels[..., 1].mean() > 200 and pixels[..., 2].mean() > 200


def test_icc_profile_is_converted_to_srgb() -> None:
    # Lab pixels (L byte 128 = L* 50, neutral a/b) tagged with a Lab profile: only a real colour transform turns
    # them into sRGB mid grey (about 119); the raw channel bytes would read as (128, 128, 128) or fail outright.
    lab_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
    tagged = encode(Image.new("LAB", (64, 64), (128, 128, 128)), "TIFF", icc_profile=lab_profile.tobytes())
    converted = np.asarray(_decoded(tagged).convert("RGB"), dtype=int)
    assert abs(converted.mean() - 119) < 4
    assert np.ptp(converted.mean(axis=(0, 1))) < 3  # neutral: no colour cast


def test_unreadable_icc_profile_is_ignored_with_a_note() -> None:
    result = resize(encode(photo(64, 64), "PNG", icc_profile=b"not a profile"), ONE)
    assert any("colour profile" in note for note in result.notes)


@pytest.mark.parametrize("mode", ["L", "LA"])
@pytest.mark.parametrize("width", [200, 3000], ids=["as-is", "reduced"])
def test_a_grey_profile_is_applied_with_or_without_alpha(mode: str, width: int) -> None:
    # Grey 100 in a linear grey space is sRGB 168; read as sRGB as it is, it would stay 100.
    grey = Image.new("L", (width, width // 2), 100)
    image = grey if mode == "L" else Image.merge("LA", (grey, Image.new("L", grey.size, 255)))
    if mode == "LA":
        image.paste((0, 0), (0, 0, width // 10, width // 10))  # some transparency, so the alpha is kept
    data = encode(image, "PNG", icc_profile=grey_linear_profile())
    result = resize(data, ResizeRequest(sizes=(Size(100, 50),), mode="crop", output_format="png"))
    assert not any("profile" in note for note in result.notes), result.notes
    out = Image.open(io.BytesIO(result.outputs[0].data))
    assert out.mode == ("RGBA" if mode == "LA" else "RGB")
    assert all(abs(v - 168) <= 2 for v in out.getpixel((70, 30))[:3]), out.getpixel((70, 30))
    if mode == "LA":
        assert out.getpixel((1, 1))[3] == 0 and out.getpixel((70, 30))[3] == 255


def test_greyscale_and_16_bit_images() -> None:
    grey = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1)), "L")
    assert _decoded(encode(grey, "PNG")).size == (64, 64)
    deep = Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1)))
    assert deep.mode.startswith("I;16")
    pixels = np.asarray(_decoded(encode(deep, "PNG"), ResizeRequest(sizes=(Size(64, 64),), mode="crop")).convert("L"))
    # The full 16-bit range maps onto the full 8-bit range instead of clipping to white.
    assert pixels[:, 0].mean() < 20 and pixels[:, -1].mean() > 235


@pytest.mark.parametrize(
    ("mode", "full_scale", "dtype"),
    [
        ("I", 2**31 - 1, np.int32),  # a true 32-bit scan, its values up to 0.9 of the full range
        ("I", 65535, np.int32),  # 16-bit values held as 32-bit integers
        ("F", 1.0, np.float32),  # float, 0 to 1
    ],
    ids=["int32", "int32-holding-16-bit", "float"],
)
def test_a_deep_tiff_keeps_its_levels(mode: str, full_scale: float, dtype: type) -> None:
    # A ramp from 0.1 to 0.9 of the full scale reads as 0.1 to 0.9 of 255: neither white (scaled as 16-bit) nor
    # stretched to black and white (by its own least and greatest value).
    levels = np.tile(np.linspace(0.1, 0.9, 64), (64, 1))
    image = Image.fromarray((levels * full_scale).astype(dtype), mode)
    out = _decoded(encode(image, "TIFF"), ResizeRequest(sizes=(Size(64, 64),), mode="crop", output_format="png"))
    pixels = np.asarray(out.convert("L"), dtype=float)
    assert abs(pixels[:, 0].mean() - 0.1 * 255) < 4 and abs(pixels[:, -1].mean() - 0.9 * 255) < 4, pixels[0]


def test_palette_with_transparency_keeps_alpha_in_png_and_webp_and_flattens_in_jpeg() -> None:
    rgba = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (20, 20, 60, 60))
    palette = rgba.convert("P")
    for fmt in ("png", "webp"):
        out = _decoded(encode(palette, "PNG", transparency=0), ResizeRequest(sizes=(Size(80, 80),), output_format=fmt))
        assert out.mode == "RGBA"
        assert out.getchannel("A").getextrema()[0] == 0
    flat = _decoded(encode(rgba, "PNG"), ResizeRequest(sizes=(Size(80, 80),), output_format="jpeg"))
    assert flat.mode == "RGB"
    assert np.asarray(flat)[2, 2].min() > 240  # transparent corners flatten to white, not black


def test_la_image_is_handled() -> None:
    la = Image.new("LA", (50, 50), (128, 100))
    assert _decoded(encode(la, "PNG"), ResizeRequest(sizes=(Size(40, 40),), output_format="png")).mode == "RGBA"


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", NotAnImage, "empty"),
        (b"hello, this is text", NotAnImage, "isn't an image"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", UnsupportedFormat, "web page"),
        (b"%PDF-1.7 ...", UnsupportedFormat, "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", CorruptImage, "damaged or incomplete"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00", CorruptImage, "damaged or incomplete"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", UnsupportedFormat, "SVG"),
    ],
)
def test_non_images_are_refused(data: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        resize(data, ONE)


@pytest.mark.parametrize(
    ("width", "height", "size"),
    # The large one's detector copy is decoded apart, in a thread, beside the outputs' decode: both fail alike.
    [(400, 300, ONE.sizes[0]), (4000, 3000, Size(1920, 1080))],
    ids=["small", "large"],
)
def test_truncated_jpeg_is_refused(width: int, height: int, size: Size) -> None:
    data = encode(photo(400, 300).resize((width, height)), "JPEG", quality=90)
    with pytest.raises(CorruptImage, match="damaged or incomplete"):
        resize(data[: len(data) // 2], ResizeRequest(sizes=(size,)))


@pytest.mark.parametrize("kept", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("size", [Size(64, 64), Size(384, 384)], ids=["drafted", "full size"])
def test_a_jpeg_cut_short_and_closed_with_an_end_marker_is_said_to_be(kept: float, size: Size) -> None:
    # Pillow refuses a JPEG cut short, unless something closed it with an end marker: then the rest is grey.
    data = astronaut()
    result = resize(data[: int(len(data) * kept)] + b"\xff\xd9", ResizeRequest(sizes=(size,)))
    assert any("looks cut short" in note for note in result.notes), result.notes


@pytest.mark.parametrize("case", ["whole", "grey border", "grey canvas", "all grey"])
def test_a_whole_jpeg_with_grey_in_it_is_not_said_to_be_cut_short(case: str) -> None:
    image = Image.open(io.BytesIO(astronaut())).convert("RGB")
    if case == "grey border":  # #808080, the mid-grey a truncated file shows, drawn across the bottom by a designer
        image.paste((128, 128, 128), (0, 320, 384, 384))
    if case == "grey canvas":  # an editor's "canvas size", grown right and down in #808080 around the photo
        canvas = Image.new("RGB", (448, 432), (128, 128, 128))
        canvas.paste(image, (0, 0))
        image = canvas
    if case == "all grey":
        image = Image.new("RGB", (200, 120), (128, 128, 128))
    for subsampling in (0, 2):  # 4:4:4 and 4:2:0, whose chroma blurs into the grey
        for size in (Size(64, 64), Size(384, 384)):
            data = encode(image, "JPEG", quality=95, subsampling=subsampling)
            assert not any("cut short" in note for note in resize(data, ResizeRequest(sizes=(size,))).notes)


def test_corrupt_png_is_refused() -> None:
    data = encode(photo(100, 100), "PNG")
    # A block missing from the middle of the compressed stream, as a broken transfer leaves it.
    with pytest.raises(CorruptImage, match="damaged or incomplete"):
        resize(data[:200] + data[1200:], ONE)


def test_a_png_whose_header_has_a_wrong_checksum_is_said_to_be_damaged_not_to_be_no_image() -> None:
    # The file starts as a PNG does, so it is a damaged image, not some other file.
    with pytest.raises(CorruptImage, match="damaged or incomplete; export it again"):
        resize(png_with_bad_checksum(photo(120, 80), b"IHDR"), ONE)


_ANCILLARY = st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"tIME", b"pHYs", b"eXIf", b"prVt"])


@settings(max_examples=25, deadline=None)
@given(
    broken=st.lists(
        st.tuples(_ANCILLARY, st.binary(max_size=40), st.sampled_from(["after IHDR", "before IEND"])),
        min_size=1,
        max_size=4,
    ),
    checksum=st.integers(0, 2**32 - 1),
)
def test_a_png_with_ancillary_chunks_whose_checksums_are_wrong_is_read_as_libpng_reads_it(
    broken: list[tuple[bytes, bytes, str]], checksum: int
) -> None:
    # Pillow refused the whole file for a comment an editor botched; libpng and browsers skip such a chunk, so did
    # everyone else this file was shown to. The pixels are the pixels of the same file without those chunks.
    clean = encode(photo(120, 80), "PNG")
    header_end, iend = 8 + 8 + 13 + 4, clean.rindex(b"IEND") - 4
    after_header, before_end = b"", b""
    for kind, payload, where in broken:
        if checksum == zlib.crc32(kind + payload):
            continue  # the right checksum after all
        chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", checksum)
        if where == "after IHDR":
            after_header += chunk
        else:
            before_end += chunk
    damaged = clean[:header_end] + after_header + clean[header_end:iend] + before_end + clean[iend:]
    assert resize(damaged, ONE).outputs[0].data == resize(clean, ONE).outputs[0].data


def test_a_heic_photo_from_a_phone_is_read_upright() -> None:
    upright = Image.open(io.BytesIO(astronaut())).convert("RGB").crop((0, 0, 384, 288))
    decoded = _decoded(astronaut_heic(), ResizeRequest(sizes=(Size(384, 288),), mode="extend"))
    assert decoded.size == (384, 288)
    assert _mean_difference(decoded.convert("RGB"), upright) < 4  # turned once, not twice or not at all


def test_an_avif_with_an_exif_turn_is_read_upright() -> None:
    upright = Image.open(io.BytesIO(astronaut())).convert("RGB").crop((0, 0, 384, 288))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side, as a camera writes it
    data = encode(upright.transpose(Image.Transpose.ROTATE_90), "AVIF", quality=90, exif=exif.tobytes())
    decoded = _decoded(data, ResizeRequest(sizes=(Size(384, 288),), mode="extend"))
    assert decoded.size == (384, 288)
    assert _mean_difference(decoded.convert("RGB"), upright) < 4


def test_a_transparent_heic_stays_transparent() -> None:
    decoded = _decoded(logo_heic(), ResizeRequest(sizes=(Size(120, 120),), output_format="png", mode="extend"))
    assert decoded.mode == "RGBA"
    alpha = np.asarray(decoded.getchannel("A"))
    assert alpha[0, 0] == 0 and alpha[60, 60] == 255  # the corner clear, the disc solid


def test_heic_and_avif_over_the_pixel_cap_are_refused_on_the_header() -> None:
    avif = encode(photo(400, 300), "AVIF")
    for data, size in ((astronaut_heic(), "384x288"), (avif, "400x300")):
        with pytest.raises(ImageTooLarge, match=f"The image is {size}") as caught:
            resize(data, ONE, Limits(max_pixels=50_000))
        assert caught.value.setting == "MAX_IMAGE_MEGAPIXELS"


def test_an_avif_whose_first_brand_is_the_generic_image_one_is_read_as_avif() -> None:
    # ftyp "mif1" first, "avif" among the compatible brands: the HEIF reader would claim it and fail on AV1.
    data = encode(photo(200, 150), "AVIF")
    assert data[4:12] == b"ftypavif" and b"mif1" in data[16:32]
    generic_first = data[:8] + b"mif1" + data[12:]
    assert _decoded(generic_first, ResizeRequest(sizes=(Size(100, 75),), output_format="png")).size == (100, 75)


_BRANDS = st.sampled_from([b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1", b"miaf", b"MA1B", b"isom", b"mp42"])


@given(st.binary(max_size=80))
def test_the_container_sniff_takes_any_bytes(head: bytes) -> None:
    assert _container_format(head) in (None, "HEIF", "AVIF")


@given(_BRANDS, st.lists(_BRANDS, max_size=10))
def test_the_container_is_named_by_its_codecs_brand_wherever_it_is_listed(
    major: bytes, compatible: list[bytes]
) -> None:
    box = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    head = (len(box) + 4).to_bytes(4, "big") + box
    brands = {major, *compatible}
    expected = (
        "AVIF" if brands & {b"avif", b"avis"} else "HEIF" if brands & {b"heic", b"heix", b"mif1", b"msf1"} else None
    )
    assert len(head) <= 64  # all of it within what the probe reads
    assert _container_format(head) == expected


def test_an_avif_whose_frame_will_not_decode_is_damaged_in_a_sentence() -> None:
    data = encode(photo(200, 150), "AVIF")
    start = data.index(b"mdat") + 4  # the coded frame, zeroed: libavif fails it with a RuntimeError at load
    with pytest.raises(CorruptImage, match="damaged or incomplete"):
        resize(data[:start] + bytes(64) + data[start + 64 :], ONE)


def test_an_avif_is_turned_by_its_exif_and_not_again_by_an_xmp_orientation() -> None:
    upright = Image.open(io.BytesIO(astronaut())).convert("RGB").crop((0, 0, 384, 288))
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    xmp += b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    data = encode(upright, "AVIF", quality=90, xmp=xmp)  # shown upright by browsers: no irot, no EXIF turn
    decoded = _decoded(data, ResizeRequest(sizes=(Size(384, 288),), mode="extend"))
    assert _mean_difference(decoded.convert("RGB"), upright) < 4


def test_a_heic_with_a_malformed_item_type_is_read_not_a_crash() -> None:
    # Run in a child interpreter: the decoders before pillow-heif 1.8 took the whole process down with it.
    code = (
        "import sys; from bot.engine import resize, ResizeRequest, Size; "
        "r = resize(sys.stdin.buffer.read(), ResizeRequest(sizes=(Size(32, 32),))); print(len(r.outputs))"
    )
    data = (DATA / "invalid_metadata_type.heic").read_bytes()
    done = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, b"1"), done.stderr[-500:]


def test_a_heic_cut_short_is_damaged_not_an_unknown_file() -> None:
    data = astronaut_heic()
    with pytest.raises(CorruptImage, match="damaged or incomplete"):
        resize(data[: len(data) // 2], ONE)


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


def test_unsupported_image_format_names_the_alternatives() -> None:
    with pytest.raises(UnsupportedFormat, match="ICO images aren't supported; convert it to a JPEG, PNG"):
        resize(encode(photo(32, 32), "ICO"), ONE)


def test_huge_image_is_refused_from_its_header_without_decoding() -> None:
    data = png_header_only(30000, 30000)
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="30000x30000 \\(900 MP\\); the limit is 100 MP"):
        resize(data, ONE)
    assert time.perf_counter() - started < 1.0


def test_pixel_cap_is_configurable() -> None:
    data = encode(photo(200, 200), "PNG")
    with pytest.raises(ImageTooLarge):
        resize(data, ONE, Limits(max_pixels=30_000))
    assert resize(data, ONE, Limits(max_pixels=40_000)).outputs


def test_input_bytes_cap() -> None:
    with pytest.raises(ImageTooLarge, match="MB"):
        resize(encode(photo(200, 200), "BMP"), ONE, Limits(max_input_bytes=1000))


def test_a_cap_sentence_says_the_limit_as_set_and_what_is_over_it_as_more() -> None:
    # Over by a hair, each reads larger than its limit (rounded up to a tenth), the limit as it was set; in the
    # unit the MB settings count in (MAX_DOWNLOAD_MB=1 is 2**20 bytes).
    with pytest.raises(ImageTooLarge, match=r"^The file is 1.1 MB; the limit is 1 MB\. "):
        resize(b"\xff" * (2**20 + 1), ONE, Limits(max_input_bytes=2**20))
    with pytest.raises(ImageTooLarge, match=r"^The file is 50.1 MB; the limit is 50 MB\. "):
        resize(b"\xff" * (50 * 2**20 + 20_000), ONE)
    with pytest.raises(ImageTooLarge, match=r"^The image is 1001x1000 \(1.1 MP\); the limit is 1 MP\. "):
        resize(png_header_only(1001, 1000), ONE, Limits(max_pixels=1_000_000))
    with pytest.raises(ImageTooLarge, match=r"^The image is 200x200 \(0.1 MP\); the limit is 0.03 MP\. "):
        resize(encode(photo(200, 200), "PNG"), ONE, Limits(max_pixels=30_000))
    # RGB is held 4 bytes a pixel: 2049x2048 takes a little over 16 MB.
    with pytest.raises(ImageTooLarge, match=r"takes 16.1 MB of memory, more than the 16 MB allowed\. "):
        resize(png_header_only(2049, 2048), ONE, Limits(max_decoded_bytes=16 * 2**20))


@pytest.mark.parametrize("size", [Size(8, 100), Size(100, 9000)])
def test_sizes_outside_the_range_are_refused(size: Size) -> None:
    with pytest.raises(InvalidSize, match="between 16 and 8192 pixels"):
        resize(encode(photo(64, 64), "PNG"), ResizeRequest(sizes=(size,)))


def test_too_many_outputs_are_refused_before_decoding() -> None:
    request = ResizeRequest(sizes=tuple(Size(100 + i, 100) for i in range(10)), variants=5)
    with pytest.raises(TooManyOutputs, match=r"50 images \(10 sizes x 5 variants\); the limit is 20"):
        resize(b"not even an image", request)


def test_too_many_output_pixels_are_refused_before_decoding() -> None:
    request = ResizeRequest(sizes=(Size(8192, 8192), Size(6000, 6000)))
    with pytest.raises(TooManyOutputs, match=r"103.2 megapixels of images in all; the limit is 100 per") as caught:
        resize(b"not even an image", request)
    assert caught.value.setting == "MAX_OUTPUT_MEGAPIXELS"
    # Under a deployment's own cap, the same request is within it.
    with pytest.raises(NotAnImage):
        resize(b"not even an image", request, Limits(max_output_pixels=200_000_000))


def test_no_sizes_and_bad_options_are_refused() -> None:
    data = encode(photo(64, 64), "PNG")
    with pytest.raises(InvalidSize, match="at least one size"):
        resize(data, ResizeRequest(sizes=()))
    with pytest.raises(InvalidOption, match="Variants"):
        resize(data, ResizeRequest(sizes=(Size(64, 64),), variants=0))
    with pytest.raises(InvalidOption, match="format"):
        resize(data, ResizeRequest(sizes=(Size(64, 64),), output_format="gif"))  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_orientation_and_colour_profile_survive_a_decode_that_reduces(fmt: str) -> None:
    # Stored 800x400 with "rotate 90" in EXIF: upright it is 400x800. Outputs a tiny fraction of it make the decode
    # reduce (strip by strip, for PNG; and past JPEG's 1/8 for the JPEG), and the reduced copy has no EXIF itself.
    stored = Image.new("RGB", (800, 400), (200, 30, 30))
    stored.paste((30, 30, 200), (0, 0, 400, 400))  # the left half blue: upright (rotated), it is the top
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    stored.save(buffer, fmt, exif=exif.tobytes(), icc_profile=srgb, **({"quality": 95} if fmt == "JPEG" else {}))
    result = resize(buffer.getvalue(), ResizeRequest(sizes=(Size(20, 40),), mode="crop", output_format="png"))
    assert result.source_size == Size(400, 800)
    with Image.open(io.BytesIO(result.outputs[0].data)) as output:
        top, bottom = output.convert("RGB").getpixel((10, 2)), output.convert("RGB").getpixel((10, 37))
    assert top[2] > 150 > top[0] and bottom[0] > 150 > bottom[2], (top, bottom)  # blue on top, red below
    assert not any("profile" in note for note in result.notes)  # the profile was found and applied


@pytest.mark.parametrize(
    ("fmt", "kind"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("GIF", "image/gif"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_an_image_served_unlabelled_is_known_by_its_bytes(fmt: str, kind: str) -> None:
    assert image_content_type(encode(photo(40, 30), fmt)) == kind


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_labelling_an_unlabelled_download_does_not_walk_its_header(fmt: str) -> None:
    """It runs on the app's event loop: a 50 MB file of empty segments before its pixels (13 million JPEG
    comments, 4 million PNG chunks) took Pillow's header reader 14 s there, and 1 GB."""
    image = encode(photo(16, 16), fmt)
    if fmt == "JPEG":
        data = image[:2] + b"\xff\xfe\x00\x02" * 13_000_000 + image[2:]
    else:  # a private ancillary chunk, empty, with its checksum right
        data = image[:33] + b"\x00\x00\x00\x00abCd\x78\x06\xe9\xb3" * 4_000_000 + image[33:]
    started = time.perf_counter()
    assert image_content_type(data) == f"image/{fmt.lower()}"
    assert time.perf_counter() - started < 1.0


@given(st.binary(max_size=300))
def test_bytes_that_are_no_image_have_no_image_type(data: bytes) -> None:
    assert image_content_type(b"<html>" + data) is None


def _padded(fmt: str, blocks: int) -> bytes:
    """A small image with ``blocks`` empty blocks before its pixels: JPEG comments, private PNG chunks, or one GIF
    comment of one-byte sub-blocks."""
    image = encode(photo(64, 48), fmt)
    if fmt == "JPEG":
        return image[:2] + b"\xff\xfe\x00\x02" * blocks + image[2:]
    if fmt == "PNG":
        return image[:33] + b"\x00\x00\x00\x00abCd\x78\x06\xe9\xb3" * blocks + image[33:]
    first_image = 13 + (3 << ((image[10] & 7) + 1))  # past the global colour table: the first image
    assert image[10] & 0x80 and image[first_image] == 0x2C
    return image[:first_image] + b"\x21\xfe" + b"\x01A" * blocks + b"\x00" + image[first_image:]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_an_image_padded_with_empty_metadata_blocks_is_refused_before_pillow_walks_them(fmt: str) -> None:
    """50 MB of them made Pillow's reader take 14-18 s and 0.6-1.8 GB of a worker for a 64x48 image, past every
    cap; each block is counted in a few bytes, so 400 KB is enough to go over."""
    with pytest.raises(CorruptImage, match=r"more than 100,000 blocks of metadata or padding"):
        resize(_padded(fmt, 100_001), ResizeRequest(sizes=(Size(32, 32),)))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_metadata_blocks_within_the_cap_are_read_as_ever(fmt: str) -> None:
    result = resize(_padded(fmt, 2_000), ResizeRequest(sizes=(Size(32, 32),)))
    assert result.source_size == Size(64, 48)


def test_a_gif_with_xmp_and_frames_is_read_as_ever() -> None:
    """XMP in a GIF is an application extension whose bytes read as sub-block lengths, then a 258-byte trailer."""
    frames = [photo(64, 48, seed=i).convert("P") for i in range(300)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], xmp=b"<x:xmpmeta>" + b"x" * 5000 + b"</>")
    assert resize(buffer.getvalue(), ResizeRequest(sizes=(Size(32, 32),))).source_size == Size(64, 48)
