"""Memory is bounded by design: hostile files at the caps, made here, decoded in a fresh process whose peak RSS
(VmHWM, reset before each case) may grow by no more than the caps allow.

The caps are scaled down four times (25 MP, 100 MB) to keep the test quick; the bound is the same rule as at the
defaults, where it keeps a worker under 600 MB (bench/memory.py measures those)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MB = 1024 * 1024
LIMITS = {"max_pixels": 25_000_000, "max_decoded_bytes": 100 * MB, "max_working_pixels": 6_000_000}
# What one decode may add: its decoded pixels, a working copy of 4 bytes a pixel, and room for strips and outputs.
GROWTH_MB = (LIMITS["max_decoded_bytes"] + LIMITS["max_working_pixels"] * 4) / MB + 32

_CHILD = textwrap.dedent(
    """
    import gc, io, json, sys
    from PIL import Image
    from bot.engine import EngineError, Limits, ResizeRequest, Size, resize
    from bot.engine.importance import warm_up

    def status_mb(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024

    def make(kind):
        n = 5_000  # 25 MP: the pixel cap here
        image, params = {
            "grey16.png": (Image.new("I;16", (n, n), 40000), {"format": "PNG", "compress_level": 1}),
            "rgba.png": (Image.new("RGBA", (n, n), (9, 90, 200, 128)), {"format": "PNG", "compress_level": 1}),
            "float.tif": (Image.new("F", (n, n), 0.25), {"format": "TIFF", "compression": "tiff_deflate"}),
            "palette.gif": (Image.new("P", (n, n), 7), {"format": "GIF"}),
            "canvas.webp": (Image.new("RGB", (n, n), (10, 120, 200)), {"format": "WEBP", "lossless": True}),
        }[kind]
        buffer = io.BytesIO()
        image.save(buffer, **params)
        return buffer.getvalue()

    warm_up()
    limits = Limits(**json.loads(sys.argv[1]))
    results = []
    for kind, resolution in json.loads(sys.argv[2]):
        data = make(kind)
        gc.collect()
        open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM: what follows is the decode's own peak
        before = status_mb("VmRSS")
        request = ResizeRequest(sizes=(Size(1080, 1080), Size(1920, 1080)), resolution=resolution, explain=True)
        try:
            outcome = f"{len(resize(data, request, limits).outputs)} outputs"
        except EngineError as error:
            outcome = str(error)
        results.append({"kind": kind, "resolution": resolution, "growth_mb": status_mb("VmHWM") - before,
                        "outcome": outcome})
    print(json.dumps(results))
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc to reset peak RSS")
def test_files_at_the_caps_decode_within_them_or_are_refused_before_decoding() -> None:
    cases = [
        ("grey16.png", "1K"),  # a mode reduce can't take: converted strip by strip, to 8 bits only once reduced
        ("rgba.png", "4K"),  # every pixel asked for, yet reduced to the working cap (Pillow's own reduce of RGBA
        # would make a full-size premultiplied copy)
        ("canvas.webp", "1K"),  # a few hundred bytes; Pillow's WebP decoder would take three copies
    ]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(LIMITS), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    results = json.loads(done.stdout)
    for result in results[:-1]:
        assert result["outcome"] == "2 outputs", result
        assert result["growth_mb"] < GROWTH_MB, result
    webp = results[-1]
    assert "decoding it takes 286.2 MB of memory, more than the 100 MB allowed" in webp["outcome"], webp
    assert webp["growth_mb"] < 20, webp  # refused on the header alone


_OUT_OF_MEMORY = textwrap.dedent(
    """
    import io, resource
    from PIL import Image
    from bot.engine import EngineError, Limits, ResizeRequest, Size, detectors, resize

    # Loaded, not run: a first pass would leave freed heap inside VmData for the decode to reuse under the limit.
    detectors._face_net(), detectors._text_net()
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 8000), (1, 2, 3)).save(buffer, "PNG", compress_level=1)
    for line in open("/proc/self/status"):
        if line.startswith("VmData:"):
            limit = int(line.split()[1]) * 1024 + 150 * 2**20  # less than the 256 MB this decode needs
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))  # as an operator's ulimit or a container would
    try:
        resize(buffer.getvalue(), ResizeRequest(sizes=(Size(300, 300),)), Limits())
        print("resized")
    except EngineError as error:
        print(type(error).__name__, "|", error, "|", error.setting)
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmData from /proc")
def test_running_out_of_memory_is_an_image_too_large_not_a_damaged_file() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _OUT_OF_MEMORY], capture_output=True, text=True, timeout=120, check=True,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert done.stdout.strip() == (
        "ImageTooLarge | This image needs more memory than the app allows; use a smaller version. | MAX_DECODED_MB"
    )
