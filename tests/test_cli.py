"""The ``smart-resize`` command as people and scripts use it: a real subprocess on real files."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main
from tests.images import astronaut, jpeg_tiff_damaged, png_header_only, tiff_cut_short
from tests.images import photo as scene


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def _exit_and_stderr(args: list[str], cwd: Path) -> tuple[int, str]:
    result = _run(*args, cwd=cwd)
    return result.returncode, result.stderr


def _in_process(args: list[str], cwd: Path) -> tuple[int, str]:
    err = io.StringIO()
    # In a folder with no .env above it: main() loads one, and a developer's must not leak into this process.
    with contextlib.chdir(cwd), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_:  # argparse's way out
            code = int(exit_.code or 0)
    return code, err.getvalue()


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
        "--mode",  # auto makes a second 300x300 of a square photo only where it keeps the whole subject too
        "crop",
        "--seed",
        "3",
        "--focus",
        "0.5,0.6",
        "--explain",
        str(tmp_path / "map.jpg"),
        "--json",
        cwd=Path(__file__).parents[1],
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
        x, y, w, h = item["source_rect"]
        assert x <= 0.5 * 384 <= x + w and y <= 0.6 * 384 <= y + h  # --focus: the point is in every window
    with Image.open(tmp_path / "map.jpg") as crop_map:
        assert crop_map.size == (480, 480)  # a small source's map is enlarged to stay readable


def test_the_crop_map_is_written_in_the_format_its_name_asks_for(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(astronaut())
    for name, image_format in (("map.png", "PNG"), ("map.WEBP", "WEBP"), ("map.jpeg", "JPEG")):
        args = ["resize", str(photo), "--size", "100x50", "--out", str(tmp_path), "--explain", str(tmp_path / name)]
        code, stderr = _in_process(args, tmp_path)
        assert code == 0, stderr
        with Image.open(tmp_path / name) as crop_map:
            assert crop_map.format == image_format


def test_errors_are_one_plain_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(30000, 30000))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(astronaut())
    out = str(tmp_path / "out")
    cases = [
        (["resize", str(huge), "--size", "100x100"], "30000x30000"),
        (["resize", str(huge), "--size", "100x100"], "MAX_IMAGE_MEGAPIXELS setting"),
        (["resize", str(text), "--size", "100x100"], "isn't an image"),
        (["resize", str(tmp_path / "missing.jpg"), "--size", "100x100"], "No such file"),
        (["resize", str(tmp_path), "--size", "100x100", "--out", out], "is a folder"),
        (["resize", str(text), "--size", "100by100"], "WIDTHxHEIGHT"),
        (["resize", str(photo), "--size", "instagrm-story"], "Did you mean instagram-story?"),
        (["resize", str(photo), "--size", "10x10"], "between 16 and 8192"),
        (["resize", str(photo), "--size", "100x100", "--seed", "-5"], "seed must be a whole number from 0"),
        (["resize", str(photo), "--size", "100x100", "--seed", "five"], "invalid int value"),
        (["resize", str(photo), "--size", "100x100", "--variants", "11"], "between 1 and 10"),
        (["resize", str(photo), "--size", "social", "--variants", "6"], "MAX_OUTPUTS_PER_REQUEST"),
        (["resize", str(photo), "--size", "8192x8192", "--size", "6000x6000"], "MAX_OUTPUT_MEGAPIXELS setting"),
        (["resize", str(photo), "--size", "100x100", "--out", str(text)], "is a file; give a folder"),
        (["resize", str(photo), "--size", "100x100", "--explain", str(tmp_path / "no" / "m.jpg")], "does not exist"),
        (["resize", str(photo), "--size", "100x100", "--explain", str(tmp_path)], "is a folder"),
        (["resize", str(photo), "--size", "100x100", "--explain", str(tmp_path / "m.gif")], "name it like"),
        (["resize", str(photo), "--size", "100x100", "--format", "gif"], "invalid choice: 'gif'"),
        (["resize", str(photo), "--size", "100x100", "--focus", "2,3"], "isn't a focal point; give two fractions"),
        (["resize", str(photo)], "required: --size"),
        (["resize"], "required"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ]
    for number, (args, words) in enumerate(cases):
        # The first few as a real process (the installed entry point), the rest in this one: the same main().
        code, stderr = _exit_and_stderr(args, cwd=tmp_path) if number < 3 else _in_process(args, tmp_path)
        assert code == 1, (args, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in stderr, (args, stderr)
        assert "Slack" not in lines[0] and "share" not in lines[0].lower(), lines[0]
    # The folder and crop-map checks come before any work: nothing was written anywhere.
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("damaged", [tiff_cut_short, jpeg_tiff_damaged], ids=["cut-short", "jpeg-in-tiff"])
def test_a_damaged_file_is_one_line_with_nothing_of_the_reader_on_stderr(
    tmp_path: Path, damaged: Callable[[], bytes]
) -> None:
    # As a real process: under pytest, warnings are recorded by pytest rather than printed, and only a process of
    # its own shows what libtiff writes to its stderr from C.
    (tmp_path / "scan.tif").write_bytes(damaged())
    code, stderr = _exit_and_stderr(["resize", "scan.tif", "--size", "100x100"], cwd=tmp_path)
    assert code == 1
    assert stderr == "smart-resize: The image file is damaged or incomplete; export it again and retry.\n"


def _as_root_is_not_above_permissions() -> None:
    """Root writes anywhere by its capability to override file permissions: the child runs without it (dropped
    from its bounding set before exec, so the kernel grants it none), and a folder's mode binds it as anyone."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


def _resize_into_a_locked_folder(tmp_path: Path, out: str, *more: str) -> subprocess.CompletedProcess[str]:
    """The CLI on a photo with ``--out`` (or what ``more`` adds) in ``tmp_path/locked``, a folder no one may write in
    (root included)."""
    (tmp_path / "photo.jpg").write_bytes(astronaut())
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", "resize", "photo.jpg", "--size", "100x100", "--out", out, *more],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
            preexec_fn=_as_root_is_not_above_permissions if os.geteuid() == 0 else None,
        )
    finally:
        locked.chmod(0o755)  # for pytest to clean up


def test_an_out_folder_it_may_not_write_in_is_said_before_any_work(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    result = _resize_into_a_locked_folder(tmp_path, str(locked))
    assert result.returncode == 1
    assert result.stderr == f"smart-resize: --out {locked}: can't write in that folder; choose one you may write to.\n"
    assert list(locked.iterdir()) == []


def test_presets_and_packs_work_as_sizes_and_photos_come_back_as_jpeg(tmp_path: Path) -> None:
    source = tmp_path / "astronaut.jpg"
    source.write_bytes(astronaut())
    result = _run(
        "resize", str(source), "--size", "instagram-story", "--size", "x", "--size", "1600x900", "--json",
        "--out", str(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)["outputs"]
    # The x pack is 1600x900 and 1500x500; asking for 1600x900 again makes it once.
    assert [o["target"] for o in outputs] == ["1080x1920", "1600x900", "1500x500"]
    assert all(o["path"].endswith(".jpg") for o in outputs)  # --format auto: a photo is a JPEG
    with Image.open(outputs[0]["path"]) as image:
        assert image.format == "JPEG"


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
        cwd=Path(__file__).parents[1],
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


def test_a_disk_that_fills_up_leaves_no_truncated_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A full disk cannot be made here (no tmpfs without privileges): the write fails half way, as ENOSPC does.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(astronaut())
    real_write = Path.write_bytes

    def disk_full(self: Path, data: bytes) -> int:  # type: ignore[override]
        if self.parent.name == "out":
            real_write(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    code, stderr = _in_process(["resize", str(photo), "--size", "100x100", "--out", str(tmp_path / "out")], tmp_path)
    assert code == 1 and stderr.strip().endswith("No space left on device.") and len(stderr.splitlines()) == 1
    assert list((tmp_path / "out").iterdir()) == []  # neither a half image nor the partial file


def _address_space_of_two_gb() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))


@pytest.mark.parametrize("source", ["sparse", "/dev/zero"])
def test_an_input_over_the_download_cap_is_refused_before_it_is_read(tmp_path: Path, source: str) -> None:
    # A 4 GB file (sparse: it takes no disk), and a device that never ends: read whole, either runs the process out
    # of its 2 GB of address space before the cap is checked. The file's size is taken from the disk, and anything
    # else is read no further than a byte past the cap.
    path = Path(source)
    if source == "sparse":
        path = tmp_path / "huge.jpg"
        with path.open("wb") as file:
            file.write(astronaut())
            file.truncate(4 * 2**30)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "resize", str(path), "--size", "100x100", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
        env={**os.environ, "MAX_DOWNLOAD_MB": "1"},
        preexec_fn=_address_space_of_two_gb,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    size = "4096" if source == "sparse" else "1.1"  # a device is read a byte past the cap: that much, at least
    assert lines == [
        f"smart-resize: The file is {size} MB; the limit is 1 MB. Use a smaller or more compressed version (the "
        "MAX_DOWNLOAD_MB setting sets this limit)."
    ]


@pytest.mark.parametrize(("focus", "expected"), [("0.9,0.9", "JPEG"), ("0.1,0.1", "PNG")])
def test_format_auto_is_png_only_where_the_output_has_transparency(tmp_path: Path, focus: str, expected: str) -> None:
    # An RGBA photo clear only in its top-left corner: a window away from the corner is opaque, so it is a JPEG.
    rgba = scene(800, 600).convert("RGBA")
    rgba.paste((0, 0, 0, 0), (0, 0, 40, 40))
    rgba.save(tmp_path / "corner.png")
    args = ["resize", "corner.png", "--size", "400x400", "--mode", "crop", "--focus", focus, "--out", "out"]
    code, stderr = _in_process(args, tmp_path)
    assert code == 0, stderr
    [written] = list((tmp_path / "out").iterdir())
    assert written.suffix == {"JPEG": ".jpg", "PNG": ".png"}[expected]
    with Image.open(written) as image:
        assert image.format == expected
        assert image.mode == ("RGB" if expected == "JPEG" else "RGBA")


def test_a_failed_run_leaves_no_out_folder_behind(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "scan.tif").write_bytes(tiff_cut_short())
    (tmp_path / "photo.jpg").write_bytes(astronaut())
    cases = [
        ("missing.jpg", "No such file"),
        ("notes.txt", "isn't an image"),
        ("scan.tif", "damaged or incomplete"),  # found only as it is decoded
    ]
    for source, words in cases:
        code, stderr = _in_process(["resize", source, "--size", "100x100", "--out", "new/nested"], tmp_path)
        assert code == 1 and words in stderr, stderr
        assert not (tmp_path / "new").exists(), source
    # Where it can't be created is still said before any work.
    code, stderr = _in_process(["resize", "missing.jpg", "--size", "100x100", "--out", "notes.txt/out"], tmp_path)
    assert code == 1 and stderr == "smart-resize: --out notes.txt/out: can't create that folder (Not a directory).\n"
    code, stderr = _in_process(["resize", "photo.jpg", "--size", "100x100", "--out", "new/nested"], tmp_path)
    assert code == 0, stderr
    assert [p.name for p in (tmp_path / "new" / "nested").iterdir()] == ["photo_100x100_0.jpg"]


def test_an_out_folder_it_may_not_create_is_said_before_any_work(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    result = _resize_into_a_locked_folder(tmp_path, "locked/a/b")
    assert result.returncode == 1
    assert result.stderr == "smart-resize: --out locked/a/b: can't create that folder (Permission denied).\n"
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("flag", ["--focus", "--foc"])
@pytest.mark.parametrize("value", ["-0.5,0.5", "-.5,0.5", "-1"])
def test_a_negative_focal_point_is_refused_by_the_focal_point_check(tmp_path: Path, flag: str, value: str) -> None:
    (tmp_path / "photo.jpg").write_bytes(astronaut())
    code, stderr = _in_process(["resize", "photo.jpg", "--size", "100x100", flag, value, "--out", "out"], tmp_path)
    assert code == 1
    assert stderr.startswith(f"smart-resize: {value!r} isn't a focal point; give two fractions"), stderr


def test_a_crop_map_folder_it_may_not_write_in_is_said_before_any_work(tmp_path: Path) -> None:
    # It was found only once the images were written: exit 1, with the images made all the same.
    result = _resize_into_a_locked_folder(tmp_path, "out", "--explain", "locked/map.jpg")
    assert result.returncode == 1
    assert result.stderr == (
        "smart-resize: --explain locked/map.jpg: can't write in locked; choose a folder you may write to.\n"
    )
    assert not (tmp_path / "out").exists()


def test_the_readme_example_runs_as_written_and_prints_what_the_readme_shows(tmp_path: Path) -> None:
    # The crop map's folder is the --out folder the same run creates: that was refused as "does not exist".
    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## The engine and the `smart-resize` command") :]
    command, shown = re.findall(r"```(?:sh)?\n(.*?)```", section, re.DOTALL)[:2]
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:2] == [".venv/bin/smart-resize", "resize"], words
    (tmp_path / "tests" / "data").mkdir(parents=True)
    (tmp_path / "tests" / "data" / "astronaut.jpg").write_bytes(
        (root / "tests" / "data" / "astronaut.jpg").read_bytes()
    )
    result = _run(*words[1:], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "astronaut_216x384_0.jpg",
        "astronaut_300x300_0.jpg",
        "astronaut_600x200_0.jpg",
        "crop-map.jpg",
    ]


@pytest.mark.parametrize("flag", ["--size", "--si"])
@pytest.mark.parametrize("value", ["-1080x1080", "-100x100", "-5x5"])
def test_a_negative_size_is_refused_by_the_size_check(tmp_path: Path, flag: str, value: str) -> None:
    # argparse took the value for an option: "argument --size: expected one argument", which says nothing of sizes.
    (tmp_path / "photo.jpg").write_bytes(astronaut())
    code, stderr = _in_process(["resize", "photo.jpg", flag, value, "--out", "out"], tmp_path)
    assert code == 1
    assert stderr == f"smart-resize: {value!r} isn't a size; write sizes as WIDTHxHEIGHT, like 1080x1080.\n", stderr


def _entry_point_command() -> list[str]:
    """What pip's ``smart-resize`` script runs (the entry point pyproject names), as a command for this Python."""
    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["smart-resize"].split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


def _signal_once_loaded(process: subprocess.Popen[str], library: str) -> None:
    """SIGINT the moment ``library``'s compiled module is mapped into ``process``: while its importer loads, on a
    fast machine or a slow one."""
    deadline = time.monotonic() + 30
    while library not in Path(f"/proc/{process.pid}/maps").read_text() and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGINT)


needs_proc = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to tell what is loaded")


@needs_proc
def test_ctrl_c_while_the_engine_loads_is_one_line_and_exit_130(tmp_path: Path) -> None:
    # It was a KeyboardInterrupt traceback out of whichever module (numpy, OpenCV, Pillow) was being imported.
    scene(600, 400).save(tmp_path / "photo.jpg")
    command = [*_entry_point_command(), "resize", "photo.jpg", "--size", "100x100", "--out", "out"]
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    _signal_once_loaded(process, "numpy")  # imported by the engine, with OpenCV and the detectors still to come
    _, stderr = process.communicate(timeout=30)
    assert (process.returncode, stderr) == (130, "smart-resize: stopped before it began; nothing was written.\n")
    assert not (tmp_path / "out").exists()


@needs_proc
def test_ctrl_c_while_serve_starts_has_no_traceback(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*_entry_point_command(), "serve", "--port", "0"], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    _signal_once_loaded(process, "aiohttp")  # the server's stack, imported once serve is asked for
    _, stderr = process.communicate(timeout=30)
    # Before the server's loop takes SIGINT over it ends at once, after it with a graceful stop: either way quietly.
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    if process.returncode == 130:
        assert stderr.endswith("smart-resize serve: stopped before it began serving.\n"), stderr
    else:
        assert process.returncode == 0, stderr


def test_ctrl_c_mid_run_is_one_line_and_exit_130_with_nothing_written(tmp_path: Path) -> None:
    # It was a KeyboardInterrupt traceback. The input is a pipe whose writer has sent half the image: the run is
    # certainly under way (past the checks, reading) when the signal lands, however fast the machine.
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "resize", "photo.jpg", "--size", "100x100", "--out", "out"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    image = astronaut()
    with fifo.open("wb") as writer:  # opens once the run has opened the pipe to read it
        writer.write(image[: len(image) // 2])
        writer.flush()
        time.sleep(0.2)  # the half is read; the run waits for the rest
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert (process.returncode, stderr) == (130, "smart-resize: stopped; no image was left half written.\n")
    assert not (tmp_path / "out").exists()


def test_an_image_piped_to_standard_input_is_read_as_the_input(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "resize", "-", "--size", "120x80", "--out", "out", "--json"],
        input=astronaut(),
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [described] = json.loads(result.stdout)["outputs"]
    assert described["path"] == str(Path("out") / "stdin_120x80_0.jpg")
    with Image.open(tmp_path / described["path"]) as written:
        assert written.size == (120, 80)


def test_standard_input_from_a_terminal_is_refused_instead_of_waiting(tmp_path: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "resize", "-", "--size", "120x80", "--out", "out"],
            stdin=follower,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    finally:
        os.close(leader)
        os.close(follower)
    assert result.returncode == 1
    assert result.stderr == (
        "smart-resize: INPUT - reads the image from standard input, and none is piped in: pipe one in "
        "(smart-resize resize - --size ... < photo.jpg) or give the image's path.\n"
    )
    assert not (tmp_path / "out").exists()
