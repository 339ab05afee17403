"""What comes out of the engine: exactly the images asked for, distinct where variants were asked for, and carrying
nothing of the source file but its pixels."""

from __future__ import annotations

import io

import pytest
from PIL import Image, JpegImagePlugin, PngImagePlugin

from bot.engine import ResizeRequest, Size, resize
from tests.images import encode, photo

_SECRET = b"12 Elm Street"


def _with_metadata(fmt: str) -> bytes:
    """A photo whose file says where it was taken: EXIF with GPS, XMP, and (where the format has them) a comment or
    text chunk, each naming the place."""
    exif = Image.Exif()
    exif[0x010E] = _SECRET.decode()  # ImageDescription
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 12.0)  # GPSLatitude
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description dc:description="' + _SECRET + b'"/>'
    xmp += b"</rdf:RDF></x:xmpmeta>"
    source = photo(320, 240)
    if fmt == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_text("Comment", _SECRET.decode())
        text.add_itxt("XML:com.adobe.xmp", xmp.decode())
        return encode(source, "PNG", exif=exif.tobytes(), pnginfo=text)
    comment = {"comment": _SECRET} if fmt == "JPEG" else {}
    return encode(source, fmt, quality=95, exif=exif.tobytes(), xmp=xmp, **comment)


@pytest.mark.parametrize("source_format", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("output_format", ["jpeg", "png", "webp"])
@pytest.mark.parametrize("resolution", ["1K", "2K", "4K"])
def test_outputs_carry_none_of_the_sources_metadata(source_format: str, output_format: str, resolution: str) -> None:
    # Results are posted for a channel to see: where the photo was taken, and what its file says of it, stay out,
    # at every resolution (2K and 4K are resampled by Pillow, which copies the file's metadata along).
    data = _with_metadata(source_format)
    assert _SECRET in data
    request = ResizeRequest(
        sizes=(Size(200, 200), Size(480, 180)), output_format=output_format, resolution=resolution, mode="crop"
    )
    for output in resize(data, request).outputs:
        assert _SECRET not in output.data
        info = Image.open(io.BytesIO(output.data)).info
        assert not {"exif", "xmp", "comment", "Comment", "XML:com.adobe.xmp", "icc_profile"} & set(info), info


@pytest.mark.parametrize(("resolution", "sampling"), [("1K", 2), ("2K", 2), ("4K", 0)])
def test_jpeg_chroma_is_halved_except_at_4k(resolution: str, sampling: int) -> None:
    result = resize(
        encode(photo(320, 240), "PNG"),
        ResizeRequest(sizes=(Size(200, 150),), output_format="jpeg", resolution=resolution),
    )
    out = Image.open(io.BytesIO(result.outputs[0].data))
    assert out.format == "JPEG" and JpegImagePlugin.get_sampling(out) == sampling  # 2: 4:2:0, 0: 4:4:4
