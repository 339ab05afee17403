"""The text model in 8-bit integers, made on first use from the installed float weights.

PP-OCR's detector spends most of a job's analysis in float convolutions. Quantised statically (int8 weights per
channel, uint8 activations, in onnxruntime's QDQ form) it runs about 2.7 times as fast on a CPU with VNNI and finds
as many of the labelled text blocks (bench/README.md, "Speed"). No quantised file is shipped or downloaded: the
weights still come from the ``rapidocr`` wheel, and what ships here is only ``text_ranges.json``, each activation's
range as measured on the tuning half's photos by ``bench/detectors/calibrate_text.py``. From those ranges,
onnxruntime's own quantiser rebuilds the same model (in about 1.5 s, once per machine: it is then kept in the
user's cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import runtime

RANGES = Path(__file__).with_name("data") / "text_ranges.json"
_OPSET = 13  # per-channel weight scales need DequantizeLinear's axis, which arrived in opset 13

log = logging.getLogger(__name__)


def text_model(fp32: Path, ranges: Path = RANGES, cache: Path | None = None) -> bytes | None:
    """The int8 model's bytes, or None (the caller runs the float model) when it cannot be made: the quantiser is not
    installed, or this onnxruntime optimises the graph into tensors the ranges do not name.

    Built once per machine and kept in ``cache`` (default: cache_dir()), named by a digest of everything it is made
    from, so a one-off CLI run does not pay the 1.5 s build each time and an upgrade builds afresh. The build runs in
    a child interpreter: the quantiser's imports take 30 MB and it leaves about 35 MB more behind, which a worker
    would otherwise hold for its whole life."""
    if importlib.util.find_spec("onnx") is None or not ranges.is_file():
        return None
    cached = kept_file(fp32, ranges, cache)
    with contextlib.suppress(OSError):
        return cached.read_bytes()
    # Workers start together: one builds while the others wait for its file, rather than each running a 180 MB
    # quantiser at once.
    with _building(cached):
        with contextlib.suppress(OSError):
            return cached.read_bytes()
        return _build_and_keep(fp32, ranges, cached)


def _build_and_keep(fp32: Path, ranges: Path, cached: Path) -> bytes | None:
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
    try:
        done = subprocess.run(  # noqa: S603 (this interpreter, running this module)
            [sys.executable, "-m", __name__, str(fp32), str(ranges)], env=env, capture_output=True, timeout=300
        )
        why = (done.stderr.decode(errors="replace").strip().splitlines() or ["no reason given"])[-1]
        built = done.stdout if done.returncode == 0 and done.stdout else None
    except (OSError, subprocess.TimeoutExpired) as error:
        why, built = str(error), None
    if built is None:
        log.warning(
            "the text model runs unquantised, about 2.7 times slower, because it could not be quantised (%s); "
            "if onnxruntime was upgraded, re-measure its ranges with bench/detectors/calibrate_text.py",
            why,
        )
        return None
    _keep(cached, built)
    return built


@contextlib.contextmanager
def _building(cached: Path) -> Iterator[None]:
    """An exclusive lock on a file beside ``cached``, held while it is built; none where the cache cannot be
    written, or the platform or the file system has no flock (then each process builds its own)."""
    try:
        import fcntl

        cached.parent.mkdir(parents=True, exist_ok=True)
        lock = open(cached.with_suffix(".lock"), "a")  # noqa: SIM115 (held across the yield)
    except (ImportError, OSError):
        yield
        return
    with lock:
        with contextlib.suppress(OSError):  # ENOLCK on a network file system without a lock daemon
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def kept_file(fp32: Path, ranges: Path = RANGES, cache: Path | None = None) -> Path:
    """Where the model built from these weights and ranges is kept."""
    return (cache or cache_dir()) / f"{_digest(fp32, ranges)}.onnx"


def cache_dir() -> Path:
    """$SMART_RESIZE_CACHE_DIR, else $XDG_CACHE_HOME/smart-resize, else ~/.cache/smart-resize (a temporary folder's
    when the user has no home, as under a container's arbitrary user id)."""
    if explicit := os.environ.get("SMART_RESIZE_CACHE_DIR"):
        return Path(explicit)
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg) / "smart-resize"
    try:
        return Path.home() / ".cache" / "smart-resize"
    except (RuntimeError, KeyError):
        return Path(tempfile.gettempdir()) / f"smart-resize-{os.getuid()}"


def _digest(fp32: Path, ranges: Path) -> str:
    import importlib.metadata  # here: its 37 modules would cost every process that imports the engine 6 MB

    digest = hashlib.sha256(ranges.read_bytes())
    # The installed weights by where they are, their size and when they were written, not by their 10 MB of
    # content: hashing that cost every start (a worker's, a one-off CLI run's) 34 ms. Reinstalling writes them anew.
    weights = fp32.stat()
    digest.update(f"{fp32.resolve()};{weights.st_size};{weights.st_mtime_ns};".encode())
    for package in ("onnxruntime", "onnx"):
        digest.update(f"{package}=={importlib.metadata.version(package)};".encode())
    return f"text-int8-{digest.hexdigest()[:24]}"


def _keep(path: Path, model: bytes) -> None:
    """Write atomically (workers starting together may each build it); a cache that cannot be written only costs
    the next start its build."""
    partial: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".partial-", delete=False) as file:
            partial = Path(file.name)
            file.write(model)
        os.replace(partial, path)
    except OSError:
        if partial is not None:
            partial.unlink(missing_ok=True)
        log.info("could not keep the quantised text model in %s; the next start builds it again", path.parent)


def _build(fp32: Path, ranges: Path) -> bytes:
    runtime.onnxruntime()  # imported with its telemetry off, before the quantiser imports it
    with tempfile.TemporaryDirectory(prefix="smart-resize-int8-") as work:
        int8 = Path(work) / "int8.onnx"
        _quantise(_fused(fp32, Path(work)), int8, ranges)
        return int8.read_bytes()


def measure_ranges(fp32: Path, inputs: Iterable[npt.NDArray[np.float32]], ranges: Path = RANGES) -> None:
    """Run the float model on ``inputs`` (what ``detectors.text_input`` gives) and write each activation's range,
    the smallest and largest value seen, to ``ranges``."""
    import onnx

    runtime.onnxruntime()
    from onnxruntime.quantization import CalibrationDataReader

    ranges.unlink(missing_ok=True)  # else the quantiser would read it back instead of measuring
    with tempfile.TemporaryDirectory(prefix="smart-resize-int8-") as work:
        fused = _fused(fp32, Path(work))
        name = onnx.load(str(fused)).graph.input[0].name
        blobs = iter(inputs)

        class Inputs(CalibrationDataReader):  # type: ignore[misc]
            def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
                blob = next(blobs, None)
                return None if blob is None else {name: blob}

        _quantise(fused, Path(work) / "int8.onnx", ranges, Inputs())
    # The quantiser writes tensors in set order; sorted, the same photos give the same file.
    measured = json.loads(ranges.read_text())
    ranges.unlink()  # the quantiser's file is private to its owner; this one ships
    ranges.write_text(json.dumps(measured, sort_keys=True) + "\n")


def _fused(fp32: Path, work: Path) -> Path:
    """The float graph at opset 13, with its convolutions' batch norms and additions folded in (onnxruntime's basic
    optimisations): it quantises into fewer, larger integer kernels than the graph as exported, and it is the graph
    the ranges name."""
    import onnx  # here, not at the top: only a worker that detects pays for importing it
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    opset13, fused = work / "opset13.onnx", work / "fused.onnx"
    onnx.save(version_converter.convert_version(onnx.load(str(fp32)), _OPSET), str(opset13))
    quant_pre_process(str(opset13), str(fused), skip_symbolic_shape=True)
    return fused


def _quantise(fused: Path, out: Path, ranges: Path, inputs: Any = None) -> None:
    """onnxruntime's static quantiser: from ``inputs`` when given (writing the ranges they show), else from the
    ranges file alone."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(fused),
        str(out),
        calibration_data_reader=inputs,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
        calibration_cache_path=str(ranges),
    )


if __name__ == "__main__":  # the child text_model starts: the model's bytes on stdout, or one line on stderr
    try:
        sys.stdout.buffer.write(_build(Path(sys.argv[1]), Path(sys.argv[2])))
    except (ValueError, KeyError) as error:  # a tensor the ranges do not name: another onnxruntime's fusions
        sys.exit(f"the shipped ranges do not cover this onnxruntime's graph: {str(error).split('.')[0]}")
