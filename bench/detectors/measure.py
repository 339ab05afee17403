"""Measure detectors against the hand labels in bench/quality/photos.json (photos under $PHOTOS).

    .venv/bin/python measure.py run      # run every detector config on every photo (cached in results/)
    .venv/bin/python measure.py report   # metrics per half -> results/tables.md

Settings are chosen on the "tune" half (sha256 first hex digit 0-7) and the
held-out half (8-f) is reported next to it, never used for choosing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import detectors as D
import extra_detectors as E
import numpy as np
from common import all_paths, half, load_labels, load_rgb

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
Boxes = list[tuple[int, int, int, int, float]]

# ---------------------------------------------------------------- configs
# each base config: name -> (kind, working-size note, fn). fn returns boxes.
# post-hoc score filters derive sub-configs from a base run (same timing).
FACE: dict[str, tuple[str, Callable[[np.ndarray], Boxes]]] = {
    "haar_384 (engine today)": ("grey long 384", lambda r: D.haar_faces(r, 384)),
    "haar_640": ("grey long 640", lambda r: D.haar_faces(r, 640)),
}
for s in (0.5, 0.65, 0.8):
    FACE[f"blaze_short_s{s}"] = ("128 letterbox", lambda r, s=s: D.blazeface_faces(r, "short", s, 0, head_box=False))
for g in (0, 1, 2, 3):
    for s in (0.5, 0.6, 0.7):
        note = "192 letterbox" + ("" if g == 0 else f" + 192 tiles (grid {g})")
        FACE[f"blaze_full_g{g}_s{s}"] = (note, lambda r, s=s, g=g: D.blazeface_faces(r, "full", s, g, head_box=False))
FACE["dlib_hog_640_u1"] = ("RGB long 640, upsample 1", lambda r: E.dlib_hog_faces(r, 640, 1, -0.5))
FACE["dlib_hog_1024_u0"] = ("RGB long 1024, upsample 0", lambda r: E.dlib_hog_faces(r, 1024, 0, -0.5))
FACE["mtcnn_800"] = ("RGB long 800, min face 16", lambda r: E.mtcnn_faces(r, 800, 16, 0.7, "cv2"))
FACE["dlib_cnn_640"] = ("RGB long 640, upsample 0", lambda r: E.dlib_cnn_faces(r, 640, 0))
FACE_POSTHOC = {  # base -> thresholds applied to scores afterwards
    "dlib_hog_640_u1": (-0.5, 0.0, 0.5),
    "dlib_hog_1024_u0": (-0.5, 0.0, 0.5),
    "mtcnn_800": (0.9, 0.95, 0.99),
}

TEXT_SIZES = (640, 960, 1280)  # long side
TEXT_PIXELS = (400_000, 600_000, 1_000_000)  # pixel budget
TEXT_BOX_THRESH = (0.5, 0.6, 0.7)
PEOPLE_SIZES = (480, 640, 800)
PEOPLE_THRESH = (0.0, 0.5, 1.0)


def run() -> None:
    os.makedirs(OUT, exist_ok=True)
    cache_path = os.path.join(OUT, "detections.json")
    cache: dict = json.load(open(cache_path)) if os.path.exists(cache_path) else {}
    dummy = np.zeros((480, 640, 3), np.uint8)
    loads: dict[str, float] = {}
    for name, fn in [
        ("haar", lambda: D.haar_faces(dummy)),
        ("blaze_short", lambda: D.blazeface_faces(dummy, "short")),
        ("blaze_full", lambda: D.blazeface_faces(dummy, "full")),
        ("ppocr_cv2", lambda: D.ppocr_prob_map(dummy)),
        ("hog", lambda: D.hog_people(dummy)),
        ("dlib_hog", lambda: E.dlib_hog_faces(dummy)),
        ("mtcnn", lambda: E.mtcnn_faces(dummy, backend="cv2")),
        ("dlib_cnn", lambda: E.dlib_cnn_faces(dummy)),
    ]:
        t = time.perf_counter()
        fn()
        loads[name] = (time.perf_counter() - t) * 1000  # in-process first call (load + one run on 640x480)
    for i, path in enumerate(all_paths()):
        entry = cache.setdefault(path, {})
        rgb = load_rgb(path)

        def timed(key: str, fn: Callable[[], Boxes]) -> None:
            if key not in entry:
                t = time.perf_counter()
                boxes = fn()
                entry[key] = {"ms": (time.perf_counter() - t) * 1000, "boxes": boxes}

        for name, (_, fn) in FACE.items():
            timed("face/" + name, lambda fn=fn: fn(rgb))
        timed("text/heuristic_384 (engine today)", lambda: D.heuristic_text(rgb, 384))
        for tag, kw in [(f"L{n}", {"long_side": n, "max_pixels": None}) for n in TEXT_SIZES] + [
            (f"P{n // 1000}k", {"max_pixels": n}) for n in TEXT_PIXELS
        ]:
            if f"text/ppocr_{tag}_b{TEXT_BOX_THRESH[0]}" not in entry:
                t = time.perf_counter()
                prob, sx, sy = D.ppocr_prob_map(rgb, backend="cv2", **kw)
                t_prob = (time.perf_counter() - t) * 1000
                for bt in TEXT_BOX_THRESH:
                    t = time.perf_counter()
                    boxes = D.db_boxes(prob, sx, sy, rgb.shape[1], rgb.shape[0], 0.3, bt, 1.6)
                    entry[f"text/ppocr_{tag}_b{bt}"] = {
                        "ms": t_prob + (time.perf_counter() - t) * 1000,
                        "boxes": boxes,
                        "work": [round(rgb.shape[1] * sx), round(rgb.shape[0] * sy)],
                    }
            timed(f"time/ppocr_ort_{tag}", lambda kw=kw: (D.ppocr_prob_map(rgb, backend="onnxruntime", **kw), [])[1])
        for size in PEOPLE_SIZES:
            timed(f"people/hog_L{size}", lambda size=size: D.hog_people(rgb, size, -10.0))
        entry["_shape"] = {"ms": 0, "boxes": list(rgb.shape)}
        json.dump(cache, open(cache_path, "w"))
        print(f"{i + 1:3d} {path}  {rgb.shape[1]}x{rgb.shape[0]}", flush=True)
    json.dump(loads, open(os.path.join(OUT, "first_call_ms.json"), "w"), indent=1)


# ---------------------------------------------------------------- metrics
def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def greedy_match(dets: Boxes, labels: list, thr: float) -> tuple[set[int], int]:
    """Greedy by score; returns (matched label indices, matched detection count)."""
    matched: set[int] = set()
    hits = 0
    for d in sorted(dets, key=lambda d: -d[4]):
        best, best_iou = -1, thr
        for j, g in enumerate(labels):
            if j not in matched:
                v = iou(d, g)
                if v >= best_iou:
                    best, best_iou = j, v
        if best >= 0:
            matched.add(best)
            hits += 1
    return matched, hits


def coverage(dets: Boxes, labels: list, size: tuple[int, int]) -> tuple[int, int]:
    """(labels covered >= 50% by union of dets, dets with >= 50% area inside union of labels)."""
    w, h = size
    k = min(1.0, 1000 / max(w, h))
    W, H = max(1, round(w * k)), max(1, round(h * k))

    def mask(boxes) -> np.ndarray:
        m = np.zeros((H, W), bool)
        for b in boxes:
            x1, y1 = int(b[0] * k), int(b[1] * k)
            x2, y2 = max(x1 + 1, int(np.ceil((b[0] + b[2]) * k))), max(y1 + 1, int(np.ceil((b[1] + b[3]) * k)))
            m[y1:y2, x1:x2] = True
        return m

    dm, lm = mask(dets), mask(labels)
    found = sum(1 for g in labels if mask([g]).sum() and (mask([g]) & dm).sum() >= 0.5 * mask([g]).sum())
    correct = sum(1 for d in dets if mask([d]).sum() and (mask([d]) & lm).sum() >= 0.5 * mask([d]).sum())
    return found, correct


def work_size(shape: list[int], key: str) -> list[int]:
    tag = key.split("_")[1]
    n = int(tag[1:].rstrip("k"))
    sc = (
        D.working_scale(shape[0], shape[1], None, n)
        if tag[0] == "L"
        else D.working_scale(shape[0], shape[1], n * 1000, None)
    )
    return [max(32, round(shape[1] * sc / 32) * 32), max(32, round(shape[0] * sc / 32) * 32)]


def head_box(b, size) -> tuple:
    _x1, y1, _x2, y2 = D.head_corners(np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]], float))
    y1, y2 = max(0.0, y1), min(float(size[1]), y2)
    return (b[0], round(y1), b[2], round(y2 - y1), b[4])


def pct(a: float, b: float) -> str:
    return "-" if b == 0 else f"{100 * a / b:.0f}%"


def face_row(name: str, note: str, items: list[tuple[dict, Boxes, float]]) -> list[str]:
    n_img = len(items)
    lab = det = 0
    m5 = m3 = h5 = h3 = 0
    small_l = small_m5 = small_m3 = multi_l = multi_m5 = multi_m3 = s10_l = s10_m3 = 0
    animal_fp = 0
    ms = []
    for lbl, dets, t in items:
        faces = lbl.get("faces", [])
        short = min(lbl["size"])
        lab += len(faces)
        det += len(dets)
        ms.append(t)
        a5, b5 = greedy_match(dets, faces, 0.5)
        a3, b3 = greedy_match(dets, faces, 0.3)
        m5 += len(a5)
        h5 += b5
        m3 += len(a3)
        h3 += b3
        for j, g in enumerate(faces):
            if g[3] < 0.05 * short:
                small_l += 1
                small_m5 += j in a5
                small_m3 += j in a3
            if g[3] < 0.10 * short:
                s10_l += 1
                s10_m3 += j in a3
            if len(faces) >= 2:
                multi_l += 1
                multi_m5 += j in a5
                multi_m3 += j in a3
        for d in dets:
            if (
                max((iou(d, g) for g in faces), default=0) < 0.3
                and max((iou(d, g) for g in lbl.get("animal_faces", [])), default=0) >= 0.2
            ):
                animal_fp += 1
    return [
        name,
        note,
        f"{m5}/{lab} {pct(m5, lab)}",
        f"{m3}/{lab} {pct(m3, lab)}",
        pct(h5, det),
        pct(h3, det),
        f"{(det - h3) / n_img:.2f}",
        str(animal_fp),
        f"{small_m5}/{small_l}",
        f"{small_m3}/{small_l}",
        f"{s10_m3}/{s10_l}",
        f"{multi_m5}/{multi_l}",
        f"{multi_m3}/{multi_l}",
        f"{np.mean(ms):.0f} / {np.median(ms):.0f}",
    ]


def cover_row(
    name: str, note: str, key: str, items: list[tuple[dict, Boxes, float]], with_iou: bool = False
) -> list[str]:
    n_img = len(items)
    lab = det = found = correct = m5 = h5 = 0
    ms = []
    for lbl, dets, t in items:
        gt = lbl.get(key, [])
        f, c = coverage(dets, gt, tuple(lbl["size"]))
        lab += len(gt)
        det += len(dets)
        found += f
        correct += c
        ms.append(t)
        if with_iou:
            a, b = greedy_match(dets, gt, 0.5)
            m5 += len(a)
            h5 += b
    row = [
        name,
        note,
        f"{found}/{lab} {pct(found, lab)}",
        f"{correct}/{det} {pct(correct, det)}",
        f"{(det - correct) / n_img:.2f}",
    ]
    if with_iou:
        row += [f"{m5}/{lab} {pct(m5, lab)}", pct(h5, det)]
    return [*row, f"{np.mean(ms):.0f} / {np.median(ms):.0f}"]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def report() -> None:
    cache = json.load(open(os.path.join(OUT, "detections.json")))
    labels = load_labels()
    paths = [p for p in all_paths() if p in labels and p in cache]
    halves = {"tune": [p for p in paths if half(p) == "tune"], "held": [p for p in paths if half(p) == "held"]}
    out = [
        f"Labelled photos used: {len(paths)} of {len(all_paths())} "
        f"(tune half {len(halves['tune'])}, held-out half {len(halves['held'])}).\n"
    ]
    for hname, hp in halves.items():
        nf = sum(len(labels[p].get("faces", [])) for p in hp)
        nt = sum(len(labels[p].get("texts", [])) for p in hp)
        npp = sum(len(labels[p].get("people", [])) for p in hp)
        out.append(f"## {hname} half: {len(hp)} photos, {nf} faces, {nt} text blocks, {npp} people\n")
        # faces
        rows = []
        bases = list(FACE.items())
        for name, (note, _) in bases:
            variants = [(name, None, False)]
            if name in FACE_POSTHOC:
                variants = [(f"{name}_s{t}", t, False) for t in FACE_POSTHOC[name]]
            if name.startswith("blaze_full"):
                variants.append((name + " +head", None, True))
            for vname, thr, head in variants:
                items = []
                for p in hp:
                    e = cache[p]["face/" + name]
                    dets = [tuple(b) for b in e["boxes"] if thr is None or b[4] >= thr]
                    if head:
                        dets = [head_box(b, labels[p]["size"]) for b in dets]
                    items.append((labels[p], dets, e["ms"]))
                rows.append(face_row(vname, note, items))
        out.append("### Faces\n")
        out.append(
            table(
                [
                    "detector",
                    "working size",
                    "recall IoU.5",
                    "recall IoU.3",
                    "prec IoU.5",
                    "prec IoU.3",
                    "FP/img (IoU.3)",
                    "FP on animal faces",
                    "<5% rec .5",
                    "<5% rec .3",
                    "<10% rec .3",
                    "multi-face rec .5",
                    "multi-face rec .3",
                    "ms mean / median",
                ],
                rows,
            )
            + "\n"
        )
        # text
        rows = []
        for key in [k for k in cache[hp[0]] if k.startswith("text/")]:
            if "heuristic" in key:
                note = "grey long 384"
            else:
                works = [cache[p][key].get("work") or work_size(cache[p]["_shape"]["boxes"], key) for p in hp]
                tag = key.split("_")[1]
                note = (
                    f"long {tag[1:]}" if tag[0] == "L" else f"{tag[1:]} px budget"
                ) + f" (median {int(np.median([a * b for a, b in works]) / 1000)}k px, mult. of 32)"
            for blob in [False] if "heuristic" in key else [False, True]:
                items = [
                    (
                        labels[p],
                        [
                            tuple(b)
                            for b in cache[p][key]["boxes"]
                            if not (blob and D.is_text_blob(tuple(b), *labels[p]["size"]))
                        ],
                        cache[p][key]["ms"],
                    )
                    for p in hp
                ]
                row = cover_row(key[5:] + (" +blobfilter" if blob else ""), note, "texts", items)
                no_shot = [
                    it for it, p in zip(items, hp, strict=False) if "screenshot" not in labels[p].get("tags", [])
                ]
                r2 = cover_row("", "", "texts", no_shot)
                rows.append([*row[:-1], r2[2], r2[3], r2[4], row[-1]])
        for key in [k for k in cache[hp[0]] if k.startswith("time/ppocr_ort")]:
            ms = [cache[p][key]["ms"] for p in hp]
            rows.append(
                [
                    f"(prob map only, onnxruntime, {key.split('_')[-1]})",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"{np.mean(ms):.0f} / {np.median(ms):.0f}",
                ]
            )
        out.append("### Text\n")
        out.append(
            table(
                [
                    "detector",
                    "working size",
                    "recall (blocks >=50% covered)",
                    "precision (dets >=50% inside)",
                    "FP/img",
                    "recall excl. screenshots",
                    "precision excl. screenshots",
                    "FP/img excl. screenshots",
                    "ms mean / median (cv2.dnn incl. post-proc)",
                ],
                rows,
            )
            + "\n"
        )
        # people
        rows = []
        for size in PEOPLE_SIZES:
            for thr in PEOPLE_THRESH:
                k = f"people/hog_L{size}"
                items = [
                    (labels[p], [tuple(b) for b in cache[p][k]["boxes"] if b[4] >= thr], cache[p][k]["ms"]) for p in hp
                ]
                rows.append(cover_row(f"hog_L{size}_s{thr}", f"grey long {size}", "people", items, with_iou=True))
        out.append("### People\n")
        out.append(
            table(
                [
                    "detector",
                    "working size",
                    "recall (coverage)",
                    "precision (coverage)",
                    "FP/img (coverage)",
                    "recall IoU.5",
                    "prec IoU.5",
                    "ms mean / median",
                ],
                rows,
            )
            + "\n"
        )
    text = "\n".join(out)
    open(os.path.join(OUT, "tables.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "all"
    if cmd in ("run", "all"):
        run()
    if cmd in ("report", "all"):
        report()
