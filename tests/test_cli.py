"""The ``smart-resize`` command as people and scripts use it: a real subprocess on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.images import astronaut, png_header_only


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_resize_json_describes_every_file_truthfully(tmp_path: Path) -> None:
    source = tmp_path / "astronaut.jpg"
    source.write_bytes(astronaut())
    result = _run(
        "resize",
        str(source),
        "--size",
        "300x300",
        "--size",
        "600x200",
        "--out",
        str(tmp_path / "out"),
        "--format",
        "webp",
        "--variants",
        "2",
        "--seed",
        "3",
        "--explain",
        str(tmp_path / "map.jpg"),
        "--json",
        cwd=Path(__file__).parents[3],
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    report = json.loads(result.stdout)
    assert [(o["target"], o["variant"]) for o in report["outputs"]] == [
        ("300x300", 0),
        ("300x300", 1),
        ("600x200", 0),
        ("600x200", 1),
    ]
    for item in report["outputs"]:
        with Image.open(item["path"]) as image:
            assert image.format == "WEBP"
            assert image.size == (item["width"], item["height"]) == tuple(map(int, item["target"].split("x")))
        assert item["mode"] in ("crop", "extend")
        assert len(item["source_rect"]) == 4 and len(item["placed_rect"]) == 4
    with Image.open(tmp_path / "map.jpg") as crop_map:
        assert crop_map.size == (384, 384)


def test_errors_are_one_plain_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(30000, 30000))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases = [
        (["resize", str(huge), "--size", "100x100"], "30000x30000"),
        (["resize", str(text), "--size", "100x100"], "isn't an image"),
        (["resize", str(tmp_path / "missing.jpg"), "--size", "100x100"], "No such file"),
        (["resize", str(text), "--size", "100by100"], "WIDTHxHEIGHT"),
    ]
    for args, words in cases:
        result = _run(*args, cwd=tmp_path)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr


def test_progress_bar_is_drawn_only_on_a_terminal(tmp_path: Path) -> None:
    import os
    import pty

    source = tmp_path / "a.jpg"
    source.write_bytes(astronaut())
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "resize",
            str(source),
            "--size",
            "100x100",
            "--size",
            "200x100",
            "--out",
            str(tmp_path),
        ],
        stderr=follower,
        stdout=subprocess.DEVNULL,
        cwd=Path(__file__).parents[3],
    ) as process:
        os.close(follower)
        assert process.wait(timeout=120) == 0
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert b"2/2 images" in drawn
