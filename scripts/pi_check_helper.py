"""The Python half of scripts/pi_check.sh: one subcommand per job, standard library (and numpy/cv2 where said).

  requirements WHEEL [--extra NAME]   the wheel's Requires-Dist for the base install (or base + one extra)
  import-check                        (runs ON the emulated Pi) edgekit.runtime imports, no TensorFlow anywhere
  images MNIST N OUT                  the first N real MNIST test images as PNGs; prints "file<TAB>label" lines
  compare MODEL NATIVE PI IMAGES ...  native vs emulated `edgekit predict --json`: digits equal, confidences close
  probabilities FOLDER MODELS IMAGES N  (runs on both sides) Classifier.probabilities at full precision, as JSON
  compare-probabilities NATIVE PI OUT  max |Δp| per model against the tolerances below
  frames MNIST N OUT INPUTS           camera-like JPEG frames of MNIST test digits that the bundled model reads
                                      right on this host (x86-64), and their preprocessed model inputs (.npy)
  bundled FRAMES INPUTS               (runs on both sides) Classifier() — no path: the bundled model — on the frames
  compare-bundled ...                 `edgekit predict FRAMES` without a model on both sides: the note, the digits,
                                      the probabilities (same input: int8 tolerance), the same model file
  test-verdict JUNIT RC OUT           the emulated test stage: fails unless tests ran and all passed (none skipped)
  sizes ...                           device install vs workstation install, as JSON
  report ...                          the summary table and the JSON results file (written atomically)

Why one file of ~700 lines: pi_check.sh copies one helper into the emulated Pi's root and calls it for every job;
the jobs share its tolerances and readers, and one subcommand per job is what the shell script reads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import zipfile
from pathlib import Path

# Tolerances between x86-64 and the emulated Cortex-A72, for the full-precision probabilities (`probabilities`) and
# for the confidence `edgekit predict --json` prints (4 decimals, so one unit of 1e-4 more).
#
# Float models: the kernels differ (AVX-512 vs NEON summation order), allowed 1e-5 (measured at most 6.6e-7 over
# 20 images x 10 classes, two models, see docs/raspberry-pi.md "Tolerances").
#
# int8 models: the output is itself int8 on a grid — TFLite's softmax output has scale 1/256, the ONNX QDQ export's
# 1/255 (calibrated on [0, 1]). x86-64 and aarch64 run different int8 kernels (AVX-512 VNNI or AVX2 vs NEON) whose
# requantization can round a half the other way; one such step in a hidden layer can move an output by a step or
# more. So the tolerance counts output steps, with margin above what was measured, and sits between two steps,
# never on one: a limit of exactly one step (1/256, as before) failed on a one-step difference of an ONNX model,
# whose step (1/255) is a hair larger, and would trip on a step's float round-off on any grid. 3.5 steps of 1/256
# is 3.49 steps of 1/255: up to 3 steps pass on either grid, 4 fail. Measured at most one step (1/256, TFLite, in 2
# of 200 images of each of two models; ONNX 0 steps) over 200 images x 10 classes, three exports; margin 2.5 steps.
# A host without AVX-512 VNNI used to fail here, rightly: ONNX Runtime's u8s8 kernels there sum products in a
# saturating int16, and an int8 ONNX with full-range weights moved by 43 steps of 1/255 (qemu's Haswell). The export
# now quantizes ONNX weights to 7 bits (export/onnx.py, metadata `int8_scheme`), which cannot saturate: the same
# outputs to the bit on VNNI and emulated Haswell (tests/export/test_int8_on_older_x86.py). A file exported before
# that has no `int8_scheme`; the comparison names it when it fails, so the fix (re-export) is on the line.
#
# `edgekit predict` also runs the camera-frame preprocessing (OpenCV), and OpenCV's aarch64 (NEON) and x86-64 (AVX)
# kernels round differently: the same PNG gives 28x28 inputs that differ by 1-2 grey levels in 60-100 of 784
# pixels (measured), and the digit box is the same. So predict is held to: digits identical, boxes identical,
# confidences within PREDICT_TOLERANCE (measured up to 0.023 on a digit read with 0.85 confidence); the inputs
# themselves within PIXEL_TOLERANCE; the models, given the same input, within TOLERANCE above.
PRINTED = 1e-4
INT8_STEPS = (1.0 / 256, 1.0 / 255)  # the output grids: TFLite int8, ONNX QDQ int8
INT8_TOLERANCE = 3.5 / 256
TOLERANCE = {"float32": 1e-5, "float16": 1e-5, "dynamic": 1e-5, "int8": INT8_TOLERANCE}
PREDICT_TOLERANCE = 0.05
PIXEL_TOLERANCE = 4.5 / 255  # between grey levels, never on one (worst measured: 2 levels on the PNGs)
WORKSTATION_ONLY = ("tensorflow", "keras", "tf2onnx", "tf_keras", "tensorboard", "jax")


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


# --- requirements -------------------------------------------------------------------------------------
def requirements(args) -> None:
    with zipfile.ZipFile(args.wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        req_part, _, marker = req.partition(";")
        if "extra ==" in marker:
            if args.extra is None or f'extra == "{args.extra}"' not in marker:
                continue
            rest = [m.strip() for m in marker.split(" and ") if "extra ==" not in m]
            req = req_part.strip() + (("; " + " and ".join(rest)) if rest else "")
        print(req)


# --- import-check (on the device) ---------------------------------------------------------------------
def import_check(args) -> None:
    import importlib
    import pkgutil

    import edgekit.runtime as rt

    modules = ["edgekit.runtime"]
    for info in pkgutil.walk_packages(rt.__path__, "edgekit.runtime."):
        importlib.import_module(info.name)
        modules.append(info.name)
    import edgekit.toolkit.cli  # noqa: F401  (the CLI frame the device runs `edgekit predict` through)

    leaked = sorted(m for m in sys.modules if m.split(".")[0] in WORKSTATION_ONLY)
    if leaked:
        raise SystemExit(f"workstation-only modules imported on the device: {', '.join(leaked[:5])}")
    installed = []
    for name in ("tensorflow", "keras", "tf2onnx"):
        try:
            importlib.import_module(name)
            installed.append(name)
        except ImportError:
            pass
    if installed:
        raise SystemExit(f"the device install contains {', '.join(installed)}; it must not")
    versions = {}
    for name in ("numpy", "cv2", "onnxruntime", "ai_edge_litert"):
        mod = importlib.import_module(name)
        versions[name] = getattr(mod, "__version__", None) or _dist_version(name)
    data = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "modules": modules,
        "versions": versions,
        "summary": (
            f"{platform.machine()} Python {platform.python_version()}: {len(modules)} edgekit.runtime modules + CLI "
            f"imported, no tensorflow/keras installed or imported; "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
        ),
    }
    json.dump(data, sys.stdout)


def _dist_version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for dist in (module, module.replace("_", "-"), "opencv-python"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


# --- images -------------------------------------------------------------------------------------------
def images(args) -> None:
    import cv2
    import numpy as np

    with np.load(args.mnist, allow_pickle=False) as d:
        x, y = d["x_test"][: args.n], d["y_test"][: args.n]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(x, y)):
        name = f"mnist_test_{i:04d}_label{int(label)}.png"
        if not cv2.imwrite(str(out / name), img):
            raise SystemExit(f"could not write {out / name}")
        print(f"{name}\t{int(label)}")


# --- compare ------------------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> dict[str, dict]:
    rows = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            rows[Path(row["path"]).name] = row
    return rows


def compare(args) -> None:
    quant = args.model.split("_", 1)[1].split(".")[0]
    tol = PREDICT_TOLERANCE
    labels = dict(line.split("\t") for line in Path(args.images).read_text().splitlines())
    native, pi = _read_jsonl(Path(args.native)), _read_jsonl(Path(args.pi))
    t_native, t_pi = (float(t) for t in Path(args.times).read_text().split())
    problems = []
    for side, rows, err in (("x86-64", native, args.native_err), ("aarch64", pi, args.pi_err)):
        if len(rows) != len(labels):
            last = (Path(err).read_text().strip().splitlines() or ["no output"])[-1]
            problems.append(f"{side}: {len(rows)} of {len(labels)} images predicted ({last})")
    rows_out, max_diff, digits_equal, correct = [], 0.0, 0, 0
    for name in sorted(labels):
        a, b = native.get(name), pi.get(name)
        if a is None or b is None:
            continue
        same = a.get("digit") == b.get("digit")
        diff = abs((a.get("confidence") or 0.0) - (b.get("confidence") or 0.0))
        max_diff = max(max_diff, diff)
        digits_equal += same
        correct += b.get("digit") is not None and str(b.get("digit")) == labels[name]
        if not same:
            problems.append(f"{name}: digit {a.get('digit')} on x86-64, {b.get('digit')} on aarch64")
        elif diff > tol:
            problems.append(f"{name}: confidence {a.get('confidence')} vs {b.get('confidence')} (|diff| {diff:.2g} > {tol:.2g})")
        if a.get("box") != b.get("box"):
            problems.append(f"{name}: digit box {a.get('box')} on x86-64, {b.get('box')} on aarch64")
        rows_out.append({"image": name, "label": int(labels[name]), "x86_64": {k: a.get(k) for k in ("digit", "confidence", "box")},
                         "aarch64": {k: b.get(k) for k in ("digit", "confidence", "box")}, "abs_confidence_diff": diff})
    result = {
        "model": args.model, "quantization": quant, "tolerance": tol, "images": len(labels),
        "digits_equal": digits_equal, "correct_vs_label_aarch64": correct, "max_abs_confidence_diff": max_diff,
        "seconds_x86_64": t_native, "seconds_aarch64_emulated": t_pi, "ok": not problems, "problems": problems,
        "rows": rows_out,
    }
    _write_json(Path(args.out), result)
    if problems:
        print("; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
        raise SystemExit(1)
    print(f"{digits_equal}/{len(labels)} digits equal, max |Δconfidence| {max_diff:.2g} ≤ {tol:.2g}; "
          f"{correct}/{len(labels)} match the label; x86-64 {t_native:.1f}s, emulated {t_pi:.1f}s")


# --- probabilities (runs on both sides) ------------------------------------------------------------------
def probabilities(args) -> None:
    """Classifier.probabilities of each model on the first N images of the PNG folder, at full precision."""
    import time

    import cv2
    import numpy as np

    from edgekit.runtime import Classifier
    from edgekit.runtime.contract import to_model_input

    from edgekit.runtime.preprocess import frame_to_input

    all_files = sorted(Path(args.images).glob("*.png"))
    files = all_files[: args.n]
    x = to_model_input(np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]))
    preprocessed = {}
    for f in all_files:  # what `edgekit predict` feeds the model, from the same PNG
        got = frame_to_input(cv2.imread(str(f), cv2.IMREAD_UNCHANGED))
        preprocessed[f.name] = None if got is None else {"box": [int(v) for v in got[1]],
                                                         "x": np.asarray(got[0], np.float64).ravel().tolist()}
    out = {}
    for name in args.models.split(","):
        t0 = time.perf_counter()
        clf = Classifier(Path(args.folder) / name)
        t1 = time.perf_counter()
        p = clf.probabilities(x[:1])  # one image first, then the rest one by one: the device's per-frame case
        t2 = time.perf_counter()
        rows = [p[0]] + [clf.probabilities(x[i : i + 1])[0] for i in range(1, len(x))]
        t3 = time.perf_counter()
        from edgekit.runtime.metadata import read_metadata

        scheme = (read_metadata(Path(args.folder) / name) or {}).get("int8_scheme")
        out[name] = {"p": np.asarray(rows, dtype=np.float64).tolist(), "load_s": t1 - t0, "first_s": t2 - t1,
                     "int8_scheme": scheme, "host_vnni": _has_vnni(),
                     "per_image_ms": 1000 * (t3 - t2) / max(1, len(x) - 1)}
    json.dump({"images": [f.name for f in files], "models": out, "preprocessed": preprocessed}, sys.stdout)


def _has_vnni() -> bool:
    """Whether this x86-64 host has VNNI (ONNX Runtime's non-saturating int8 kernels); True elsewhere."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return True
    return platform.machine() not in ("x86_64", "AMD64") or any(f in flags.split() for f in ("avx512_vnni", "avx_vnni"))


def _steps(r: dict) -> str:
    return f" ({r['max_abs_diff_steps']:g} steps of 1/{round(1 / r['output_step'])})" if "output_step" in r else ""


def compare_probabilities(args) -> None:
    a, b = json.loads(Path(args.native).read_text()), json.loads(Path(args.pi).read_text())
    problems, result = [], {}
    for name, na in a["models"].items():
        pa, pb = na["p"], b["models"].get(name, {}).get("p")
        quant = name.split("_", 1)[1].split(".")[0]
        tol = TOLERANCE.get(quant, 1e-5)
        if pb is None or len(pb) != len(pa):
            problems.append(f"{name}: no probabilities from aarch64")
            continue
        diff = max(abs(x - y) for ra, rb in zip(pa, pb) for x, y in zip(ra, rb))
        argmax_equal = sum(max(range(10), key=ra.__getitem__) == max(range(10), key=rb.__getitem__) for ra, rb in zip(pa, pb))
        result[name] = {"max_abs_diff": diff, "tolerance": tol, "top1_equal": argmax_equal, "images": len(pa),
                        "emulated_per_image_ms": b["models"][name]["per_image_ms"],
                        "x86_64_per_image_ms": na["per_image_ms"]}
        if quant == "int8":
            step = INT8_STEPS[name.endswith(".onnx")]
            result[name].update(output_step=step, max_abs_diff_steps=round(diff / step, 3), tolerance_steps=round(tol / step, 3))
        if diff > tol or argmax_equal != len(pa):
            hint = ""
            if quant == "int8" and name.endswith(".onnx") and not (na.get("int8_scheme") or {}).get("reduce_range"):
                hint = (" (exported with full-range int8 weights, which ONNX Runtime's kernels saturate on an x86-64 "
                        f"without VNNI{'' if na.get('host_vnni', True) else ', as this host is'}: re-export it)")
            problems.append(f"{name}: max |Δp| {diff:.2g}{_steps(result[name])} (tolerance {tol:.2g}), "
                            f"top-1 equal {argmax_equal}/{len(pa)}{hint}")
    pre_a, pre_b = a.get("preprocessed", {}), b.get("preprocessed", {})
    max_px, n_px, total_px = 0.0, 0, 0
    for name, ra in pre_a.items():
        rb = pre_b.get(name)
        if (ra is None) != (rb is None) or (ra and ra["box"] != rb["box"]):
            problems.append(f"{name}: preprocessing found {ra and ra['box']} on x86-64, {rb and rb['box']} on aarch64")
            continue
        if ra:
            d = [abs(p - q) for p, q in zip(ra["x"], rb["x"])]
            max_px, n_px, total_px = max(max_px, max(d)), n_px + sum(v > 1e-9 for v in d), total_px + len(d)
    if max_px > PIXEL_TOLERANCE:
        problems.append(f"preprocessing: max |Δpixel| {max_px * 255:.1f}/255 > {PIXEL_TOLERANCE * 255:.1f}/255")
    pre = {"images": len(pre_a), "boxes_equal": not any("preprocessing found" in p for p in problems),
           "max_abs_pixel_diff": max_px, "max_abs_pixel_diff_grey_levels": round(max_px * 255, 2),
           "pixels_differing": n_px, "pixels": total_px, "tolerance": PIXEL_TOLERANCE}
    _write_json(Path(args.out), {"ok": not problems, "problems": problems, "models": result, "preprocessing": pre})
    if problems:
        print("; ".join(problems))
        raise SystemExit(1)
    print("; ".join(f"{n.removeprefix('model_')}: max |Δp| {r['max_abs_diff']:.2g}{_steps(r)}" for n, r in result.items())
          + f" over {len(a['images'])} images x 10 classes; preprocessing of {len(pre_a)} PNGs: boxes equal, "
          + f"{n_px} of {total_px} pixels differ, by at most {max_px * 255:.0f}/255")


# --- the bundled model on camera-like frames ------------------------------------------------------------------
# `edgekit predict FRAME` with no model argument, on the device as installed from the wheel: the model bundled in
# the wheel reads a photographed digit as on x86-64. Frames come from toolkit/synthetic.py (an MNIST test digit
# written on paper, lighting gradient, noise, blur, JPEG), seeded; kept are the first ones, one per digit, that the
# bundled model reads right on x86-64 with a lead of BUNDLED_MARGIN over the runner-up, so that the comparison is
# of a reading, not of a coin toss between two digits.
BUNDLED_NOTE = "using the bundled one"
BUNDLED_PATH_TAIL = "runtime/bundled/model_int8.tflite"
BUNDLED_MARGIN = 0.5
BUNDLED_SEED = 0
BUNDLED_CANDIDATES = 200
# A camera frame's preprocessing (a 640x480 JPEG: grey, ink, crop, a large downscale to 28x28) rounds differently
# on NEON in more places than an MNIST PNG's: measured over the first 60 MNIST test digits as frames (seed 0,
# JPEG quality 90), the JPEGs decode identically on both sides and the boxes are all equal, but the 28x28 inputs
# differ by up to 5/255 (2 frames of 60 above 4/255, up to 22 of 784 pixels), which moved the bundled model's
# probabilities by up to 2 steps of 1/256 end to end (same input: 1 step). Allowed 8.5/255: 3.5 grey levels above
# the worst measured, and between two levels, never on one.
CAMERA_PIXEL_TOLERANCE = 8.5 / 255


def frames(args) -> None:
    import cv2
    import numpy as np

    from edgekit.runtime import Classifier
    from edgekit.runtime.preprocess import frame_to_input
    from edgekit.toolkit.synthetic import mnist_frames

    with np.load(args.mnist, allow_pickle=False) as d:
        x, y = d["x_test"][:BUNDLED_CANDIDATES], d["y_test"][:BUNDLED_CANDIDATES]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clf = Classifier()  # the bundled model, as this host's edgekit has it
    kept, inputs, seen = [], [], set()
    for i, (frame, label, _) in enumerate(mnist_frames(x, y, seed=BUNDLED_SEED)):
        if label in seen:
            continue
        name = f"camera_{i:04d}_label{label}.jpg"
        if not cv2.imwrite(str(out / name), frame, [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise SystemExit(f"could not write {out / name}")
        photo = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)  # what `edgekit predict` will read
        got = frame_to_input(photo)
        p = None if got is None else clf.probabilities(got[0])[0]
        if p is None or int(np.argmax(p)) != label or np.diff(np.sort(p)[-2:])[0] < BUNDLED_MARGIN:
            (out / name).unlink()
            continue
        kept.append(f"{name}\t{label}")
        inputs.append(got[0][0])
        seen.add(label)
        if len(kept) == args.n:
            break
    if not kept:
        raise SystemExit(f"the bundled model read none of {BUNDLED_CANDIDATES} camera frames right on this host")
    np.save(args.inputs, np.stack(inputs).astype(np.float32))
    print("\n".join(kept))


def bundled(args) -> None:
    """Classifier() (the bundled model) on each frame: its own preprocessing and, on the host's model inputs, the
    model alone. Also which file it loaded (path, sha256, the sha256 recorded beside it, metadata)."""
    import hashlib

    import numpy as np

    from edgekit.runtime import Classifier
    from edgekit.runtime.bundled_model import recorded_sha256
    from edgekit.runtime.images import read_image
    from edgekit.runtime.metadata import read_metadata
    from edgekit.runtime.preprocess import frame_to_input

    clf = Classifier()
    meta = read_metadata(clf.path) or {}
    files = sorted(Path(args.frames).glob("*.jpg"))
    host_inputs = np.load(args.inputs)
    out = {}
    for f, xh in zip(files, host_inputs):
        got = frame_to_input(read_image(f)[0])
        row = {"p_host_input": clf.probabilities(xh[None])[0].astype(np.float64).tolist(), "box": None}
        if got is not None:
            row.update(box=[int(v) for v in got[1]], x=np.asarray(got[0], np.float64).ravel().tolist(),
                       p_own=clf.probabilities(got[0])[0].astype(np.float64).tolist())
        out[f.name] = row
    json.dump({"model": {"path": str(clf.path), "sha256": hashlib.sha256(Path(clf.path).read_bytes()).hexdigest(),
                         "recorded_sha256": recorded_sha256(), "quantization": meta.get("quantization"),
                         "recipe": (meta.get("training") or {}).get("recipe")},
               "frames": out}, sys.stdout)


def _note(err_path: Path) -> str | None:
    lines = [ln for ln in Path(err_path).read_text().splitlines() if BUNDLED_NOTE in ln]
    return lines[0] if len(lines) == 1 else None


def _argmax(p: list[float]) -> int:
    return max(range(len(p)), key=p.__getitem__)


def compare_bundled(args) -> None:
    labels = dict(line.split("\t") for line in Path(args.frames).read_text().splitlines() if line.strip())
    problems = []
    if not labels:
        problems.append("no camera frame to predict: the stage ran nothing")
    sides = {}
    for side, jsonl, err, probs in (("x86-64", args.native, args.native_err, args.native_probs),
                                    ("aarch64", args.pi, args.pi_err, args.pi_probs)):
        rows = _read_jsonl(Path(jsonl)) if Path(jsonl).is_file() else {}
        note = _note(Path(err)) if Path(err).is_file() else None
        try:
            p = json.loads(Path(probs).read_text())
        except (OSError, ValueError):
            p = None
        sides[side] = {"rows": rows, "note": note, "probs": p}
        if len(rows) != len(labels):
            last = ((Path(err).read_text() if Path(err).is_file() else "").strip().splitlines() or ["no output"])[-1]
            problems.append(f"{side}: `edgekit predict` read {len(rows)} of {len(labels)} frames ({last})")
        if note is None:
            problems.append(f"{side}: no one-line '{BUNDLED_NOTE}' note on stderr: was the bundled model used?")
        elif BUNDLED_PATH_TAIL not in note:
            problems.append(f"{side}: the note names another model: {note}")
        if p is None:
            problems.append(f"{side}: no probabilities from Classifier()")
        elif len(p["frames"]) != len(labels):
            problems.append(f"{side}: Classifier() read {len(p['frames'])} of {len(labels)} frames")
    a, b = sides["x86-64"], sides["aarch64"]
    model = {}
    if a["probs"] and b["probs"]:
        ma, mb = a["probs"]["model"], b["probs"]["model"]
        model = {"x86_64": ma, "aarch64": mb}
        if args.device_site and not mb["path"].startswith(str(Path(args.device_site).resolve()) + os.sep):
            problems.append(f"aarch64: Classifier() loaded {mb['path']}, not the bundled model of the device install")
        if not (ma["sha256"] == mb["sha256"] == ma["recorded_sha256"] == mb["recorded_sha256"]):
            problems.append(f"not the same bundled model: sha256 {ma['sha256'][:12]} (recorded {str(ma['recorded_sha256'])[:12]}) "
                            f"on x86-64, {mb['sha256'][:12]} (recorded {str(mb['recorded_sha256'])[:12]}) on aarch64")
    tol = TOLERANCE.get((model.get("aarch64") or {}).get("quantization") or "int8", INT8_TOLERANCE)
    rows_out, max_conf, max_p, max_p_own, max_px = [], 0.0, 0.0, 0.0, 0.0
    for name in sorted(labels):
        label = int(labels[name])
        ra, rb = a["rows"].get(name), b["rows"].get(name)
        row = {"frame": name, "label": label}
        if ra is not None and rb is not None:
            conf = abs((ra.get("confidence") or 0.0) - (rb.get("confidence") or 0.0))
            max_conf = max(max_conf, conf)
            row.update(x86_64={k: ra.get(k) for k in ("digit", "confidence", "box")},
                       aarch64={k: rb.get(k) for k in ("digit", "confidence", "box")}, abs_confidence_diff=conf)
            if not (ra.get("digit") == rb.get("digit") == label):
                problems.append(f"{name}: digit {ra.get('digit')} on x86-64, {rb.get('digit')} on aarch64 (written: {label})")
            elif conf > PREDICT_TOLERANCE:
                problems.append(f"{name}: confidence {ra.get('confidence')} vs {rb.get('confidence')} "
                                f"(|diff| {conf:.2g} > {PREDICT_TOLERANCE:.2g})")
            if ra.get("box") != rb.get("box"):
                problems.append(f"{name}: digit box {ra.get('box')} on x86-64, {rb.get('box')} on aarch64")
        pa = (a["probs"] or {}).get("frames", {}).get(name)
        pb = (b["probs"] or {}).get("frames", {}).get(name)
        if pa is not None and pb is not None:
            # the model alone, on the same input (preprocessed on x86-64): the int8 tolerance
            d = max(abs(x - y) for x, y in zip(pa["p_host_input"], pb["p_host_input"]))
            max_p = max(max_p, d)
            row["max_abs_p_diff"] = d
            if d > tol or _argmax(pa["p_host_input"]) != _argmax(pb["p_host_input"]):
                problems.append(f"{name}: Classifier() probabilities |Δp| {d:.2g} ({d * 256:g} steps of 1/256, tolerance "
                                f"{tol:.2g}), top-1 {_argmax(pa['p_host_input'])} vs {_argmax(pb['p_host_input'])}")
            # each side's own preprocessing (OpenCV rounds differently on NEON): boxes equal, pixels close
            if pa["box"] != pb["box"]:
                problems.append(f"{name}: preprocessing found {pa['box']} on x86-64, {pb['box']} on aarch64")
            elif pa["box"] is not None:
                px = max(abs(x - y) for x, y in zip(pa["x"], pb["x"]))
                own = max(abs(x - y) for x, y in zip(pa["p_own"], pb["p_own"]))
                max_px, max_p_own = max(max_px, px), max(max_p_own, own)
                row.update(max_abs_pixel_diff=px, max_abs_p_diff_own_preprocessing=own)
                if px > CAMERA_PIXEL_TOLERANCE:
                    problems.append(f"{name}: preprocessing |Δpixel| {px * 255:.1f}/255 > {CAMERA_PIXEL_TOLERANCE * 255:.1f}/255")
                if own > PREDICT_TOLERANCE:
                    problems.append(f"{name}: end-to-end |Δp| {own:.2g} > {PREDICT_TOLERANCE:.2g}")
        rows_out.append(row)
    t_native, t_pi = (float(t) for t in Path(args.times).read_text().split())
    ok = not problems
    result = {"frames": len(labels), "ok": ok, "problems": problems, "model": model,
              "notes": {"x86_64": a["note"], "aarch64": b["note"]},
              "tolerance_probabilities": tol, "tolerance_confidence": PREDICT_TOLERANCE, "tolerance_pixel": CAMERA_PIXEL_TOLERANCE,
              "max_abs_p_diff": max_p, "max_abs_p_diff_steps": round(max_p * 256, 3),
              "max_abs_p_diff_own_preprocessing": max_p_own, "max_abs_confidence_diff": max_conf,
              "max_abs_pixel_diff_grey_levels": round(max_px * 255, 2),
              "seconds_x86_64": t_native, "seconds_aarch64_emulated": t_pi, "rows": rows_out}
    _write_json(Path(args.out), result)
    if problems:
        print("; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
        raise SystemExit(1)
    recipe = (model.get("aarch64") or {}).get("recipe")
    print(f"{len(labels)}/{len(labels)} frames read alike (digits {''.join(labels[n] for n in sorted(labels))}) with "
          f"the bundled model ({recipe} recipe, sha256 {model['aarch64']['sha256'][:12]}), note shown; "
          f"|Δp| {max_p:.2g} ({max_p * 256:g} steps) on the same input, {max_p_own:.2g} end to end; "
          f"x86-64 {t_native:.1f}s, emulated {t_pi:.1f}s")


# --- test-verdict -------------------------------------------------------------------------------------
def test_verdict(args) -> None:
    """The emulated test stage's verdict from pytest's JUnit XML: ok only if tests ran and every one passed.

    A run where nothing ran (all deselected, nothing collected) or where any test skipped proved nothing about
    the device, so it fails like a failing test does; so does a run that left no results (a crash, a timeout).
    """
    import xml.etree.ElementTree as ET

    rc, junit = int(args.rc), Path(args.junit)
    tests, problems = [], []
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError) as e:
        root = None
        problems.append(f"pytest exit {rc} and no results ({type(e).__name__}: {junit.name})")
    for case in root.iter("testcase") if root is not None else ():
        outcome, reason = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                reason = next(iter((child.get("message") or "").strip().splitlines()), "")[:200]
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        tests.append({"test": name, "outcome": outcome, "seconds": float(case.get("time") or 0), "reason": reason})
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")}
    if root is not None and not tests:
        problems.append(f"no test ran (pytest exit {rc}): the selection matched nothing on the device")
    for t in tests:
        if t["outcome"] != "passed":
            problems.append(f"{t['test']} {t['outcome']}" + (f": {t['reason']}" if t["reason"] else ""))
    if rc != 0 and tests and not problems:
        problems.append(f"pytest exit {rc}")
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    _write_json(Path(args.out), {"ok": not problems, "pytest_exit": rc, "counts": counts, "tests": tests,
                                 "problems": problems})
    if problems:
        print(f"{summary or 'nothing ran'}: " + "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
        raise SystemExit(1)
    print(f"{counts['passed']} passed, none skipped: " + ", ".join(t["test"].split("::")[-1] for t in tests))


# --- sizes --------------------------------------------------------------------------------------------
def _tree_bytes(path: Path) -> int:
    """Space on disk (allocated blocks; a hard-linked file counted once), like du -s."""
    total, seen = 0, set()
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _wheels(path: Path) -> tuple[int, int, dict[str, int]]:
    files = sorted(path.glob("*.whl"))
    per = {f.name.split("-")[0]: f.stat().st_size for f in files}
    return len(files), sum(per.values()), dict(sorted(per.items(), key=lambda kv: -kv[1]))


def _deb_installed_kb(debs: Path, names: set[str]) -> tuple[int, int]:
    import subprocess

    kb, n = 0, 0
    for deb in debs.glob("*.deb"):
        if deb.name.split("_")[0] in names:
            out = subprocess.run(["dpkg-deb", "-f", str(deb), "Installed-Size"], capture_output=True, text=True)
            kb += int(out.stdout.strip() or 0)
            n += 1
    return n, kb


def sizes(args) -> None:
    mb = 1e6
    n, wheel_bytes, per = _wheels(Path(args.device_wheels))
    data = {
        "device": {
            "wheels": n, "wheels_mb": round(wheel_bytes / mb, 1),
            "largest_wheels_mb": {k: round(v / mb, 1) for k, v in list(per.items())[:6]},
            "installed_mb": round(_tree_bytes(Path(args.device_site)) / mb, 1),
        },
        "root": {"installed_mb": round(_tree_bytes(Path(args.root)) / mb, 1)},
    }
    # What the opencv-python wheel's X11/GL libraries add to the root beyond Python itself (apt's own closures).
    debs = Path(args.debs)
    if args.base_closure and Path(args.base_closure).is_file():
        base = set(Path(args.base_closure).read_text().split())
        gui = {d.name.split("_")[0] for d in debs.glob("*.deb")} - base
        gn, gkb = _deb_installed_kb(debs, gui)
        data["root"]["opencv_gui_libs"] = {"apt": args.opencv_gui_debs, "packages": gn,
                                           "installed_mb": round(gkb * 1024 / mb, 1)}
    if args.workstation_wheels:
        wn, wbytes, wper = _wheels(Path(args.workstation_wheels))
        data["workstation"] = {
            "wheels": wn, "wheels_mb": round(wbytes / mb, 1),
            "largest_wheels_mb": {k: round(v / mb, 1) for k, v in list(wper.items())[:6]},
            "installed_mb": round(_tree_bytes(Path(args.workstation_site)) / mb, 1),
        }
    d = data["device"]
    summary = f"device install: {d['wheels']} wheels, {d['wheels_mb']} MB downloaded, {d['installed_mb']} MB on disk"
    if "workstation" in data:
        w = data["workstation"]
        summary += (f"; workstation (edgekit[train], x86-64): {w['wheels']} wheels, {w['wheels_mb']} MB downloaded, "
                    f"{w['installed_mb']} MB on disk")
    data["summary"] = summary
    json.dump(data, sys.stdout, indent=2)


# --- report -------------------------------------------------------------------------------------------
def report(args) -> None:
    work = Path(args.work)
    stages = []
    for line in Path(args.stages).read_text().splitlines():
        name, seconds, status, detail = (line.split("\t") + [""] * 4)[:4]
        stages.append({"stage": name, "seconds": float(seconds), "status": status, "detail": detail})
    width = max(len(s["stage"]) for s in stages)
    print()
    print(f"{'stage':<{width}}  {'wall s':>7}  status  detail")
    for s in stages:
        mark = {"ok": "✓ ok  ", "FAIL": "✗ FAIL", "skip": "- skip"}.get(s["status"], s["status"])
        print(f"{s['stage']:<{width}}  {s['seconds']:>7.1f}  {mark}  {s['detail']}")
    print(f"{'total':<{width}}  {float(args.total):>7.1f}")

    def load(name):
        p = work / name
        return json.loads(p.read_text()) if p.is_file() and p.stat().st_size else None

    result = {
        "what": f"edgekit's device install on emulated Raspberry Pi 4 software ({args.release} arm64, Python "
                f"{(load('import.json') or {}).get('python', '?')}) under qemu-user; predictions compared with x86-64",
        "benchmark": load("benchmark.json"),
        "host": {"machine": platform.machine(), "python": platform.python_version(), "qemu": args.qemu},
        "ok": all(s["status"] != "FAIL" for s in stages),
        "total_seconds": float(args.total),
        "stages": stages,
        "device": load("import.json"),
        "images": int(args.images),
        "predict": {m: load(f"compare-{m}.json") for m in args.models.split()},
        "probabilities": load("compare-probabilities.json"),
        "bundled": load("compare-bundled.json"),
        "tests": load("tests.json"),
        "sizes": load("sizes.json"),
    }
    _write_json(Path(args.json), result)
    print(f"results: {args.json}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="pi_check_helper")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("requirements"); s.add_argument("wheel"); s.add_argument("--extra")
    s.set_defaults(fn=requirements)
    sub.add_parser("import-check").set_defaults(fn=import_check)
    s = sub.add_parser("images"); s.add_argument("mnist"); s.add_argument("n", type=int); s.add_argument("out")
    s.set_defaults(fn=images)
    s = sub.add_parser("compare")
    for a in ("model", "native", "pi", "images", "native_err", "pi_err", "times", "out"):
        s.add_argument(a)
    s.set_defaults(fn=compare)
    s = sub.add_parser("probabilities")
    for a in ("folder", "models", "images"):
        s.add_argument(a)
    s.add_argument("n", type=int)
    s.set_defaults(fn=probabilities)
    s = sub.add_parser("compare-probabilities")
    for a in ("native", "pi", "out"):
        s.add_argument(a)
    s.set_defaults(fn=compare_probabilities)
    s = sub.add_parser("frames")
    s.add_argument("mnist"); s.add_argument("n", type=int); s.add_argument("out"); s.add_argument("inputs")
    s.set_defaults(fn=frames)
    s = sub.add_parser("bundled"); s.add_argument("frames"); s.add_argument("inputs")
    s.set_defaults(fn=bundled)
    s = sub.add_parser("compare-bundled")
    for a in ("--frames", "--native", "--pi", "--native-err", "--pi-err", "--native-probs", "--pi-probs", "--times", "--out"):
        s.add_argument(a, required=True)
    s.add_argument("--device-site", help="the device install: the aarch64 side's bundled model must come from it")
    s.set_defaults(fn=compare_bundled)
    s = sub.add_parser("test-verdict")
    for a in ("junit", "rc", "out"):
        s.add_argument(a)
    s.set_defaults(fn=test_verdict)
    s = sub.add_parser("sizes")
    for a in ("--device-wheels", "--device-site", "--root", "--debs", "--opencv-gui-debs", "--base-closure",
              "--workstation-wheels", "--workstation-site"):
        s.add_argument(a)
    s.set_defaults(fn=sizes)
    s = sub.add_parser("report")
    for a in ("--stages", "--work", "--total", "--qemu", "--models", "--images", "--json"):
        s.add_argument(a, required=True)
    s.add_argument("--release", default="Debian 12 bookworm")
    s.set_defaults(fn=report)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
