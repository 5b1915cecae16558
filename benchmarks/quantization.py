"""Benchmark the quantized exports against Keras, before and after the BN fold, over several trained models.

    python benchmarks/quantization.py --data ../shared/data/mnist.npz [--runs DIR] [--models default-s0,...]

For each model (default: the default recipe with seeds 0, 1, 2 and the full recipe with seed 0, as run folders
``DIR/default-s0`` ... ``DIR/full-s0``; a folder without ``metrics.json`` is trained first with ``edgekit
train``), the quantized targets (TFLite dynamic, TFLite int8, ONNX int8) are exported twice through the product
itself (``export_model(..., fold_bn=False)`` and ``fold_bn=True``, the default), and every artifact runs through
the device's runtime (``edgekit.runtime.Classifier``: LiteRT / ONNX Runtime) on all 10,000 MNIST test images
next to Keras. One table per model: Keras accuracy, then per artifact Δ accuracy (points) and top-1 agreement
with Keras, before and after. Writes benchmarks/results/quantization.json; models measured by an earlier run
and not named in ``--models`` this time are kept from that file (so runs that finish late can be added).

Goal (issue 11): after the fold, every int8 and dynamic artifact of every model within 0.05 point of Keras and
>= 99.85 % top-1 agreement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = ("default-s0", "default-s1", "default-s2", "full-s0")
QUANTIZATIONS = ("dynamic", "int8")  # with --format all: tflite dynamic, tflite int8, onnx int8
GOAL_MAX_DROP = 0.05  # points
GOAL_MIN_AGREEMENT = 99.85  # percent
BATCH = 500
THREADS = (1, 2)  # runtime thread counts the folded artifacts are also measured with


def ensure_trained(runs: Path, name: str, data: str) -> Path:
    """``runs/name/model.keras``, trained with `edgekit train` first when the run is not finished."""
    folder = runs / name
    if not (folder / "metrics.json").is_file():
        recipe, seed = name.rsplit("-s", 1)
        cmd = [sys.executable, "-m", "edgekit.toolkit.cli", "train", "--data", data, "--out", str(folder),
               "--recipe", recipe, "--seed", seed]
        print("training:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return folder / "model.keras"


def probabilities(predict, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(predict(x[i:i + BATCH])) for i in range(0, len(x), BATCH)])


def measure(model_path: Path, data: str, mnist, x: np.ndarray, workdir: Path) -> dict:
    import keras

    from edgekit.export import export_model
    from edgekit.export.validate import load_artifact, parity_metrics

    labels = np.asarray(mnist.y_test).astype(np.int64)
    reference = probabilities(keras.saving.load_model(model_path, compile=False, safe_mode=True).predict_on_batch, x)
    result = {"model": str(model_path), "keras_accuracy": parity_metrics(reference, reference, labels)["accuracy"],
              "artifacts": {}}
    for fold in (False, True):
        out = workdir / ("fold" if fold else "nofold")
        start = time.perf_counter()
        manifest = export_model(model_path, out, formats="all", quantizations=list(QUANTIZATIONS), data=data,
                                fold_bn=fold)
        seconds = time.perf_counter() - start
        for a in manifest.artifacts:
            m = parity_metrics(reference, probabilities(load_artifact(out / a.file).probabilities, x), labels)
            row = result["artifacts"].setdefault(a.file, {})
            row["after" if fold else "before"] = {
                "accuracy": m["accuracy"], "delta_accuracy": m["delta_accuracy"], "agreement": m["agreement"],
                "max_abs_diff": m["max_abs_diff"], "rewrites": a.rewrites, "bytes": a.bytes,
            }
            if fold:  # the same artifact at other thread counts: does the runtime's arithmetic move the answer?
                row["after"]["delta_by_threads"] = {
                    str(n): parity_metrics(reference, probabilities(load_artifact(out / a.file, threads=n).probabilities, x),
                                           labels)["delta_accuracy"] for n in THREADS}
        result[f"export_seconds_{'fold' if fold else 'nofold'}"] = round(seconds, 1)
    return result


def table(name: str, r: dict) -> str:
    lines = [f"{name}: Keras {r['keras_accuracy']:.2f} % on 10,000 test images",
             f"  {'artifact':<22}{'Δ acc before':>13}{'agree before':>14}{'Δ acc after':>13}{'agree after':>13}  goal"]
    for file, row in r["artifacts"].items():
        b, a = row["before"], row["after"]
        ok = -a["delta_accuracy"] <= GOAL_MAX_DROP and a["agreement"] >= GOAL_MIN_AGREEMENT
        lines.append(f"  {file:<22}{b['delta_accuracy']:>+13.2f}{b['agreement']:>12.2f} %"
                     f"{a['delta_accuracy']:>+13.2f}{a['agreement']:>11.2f} %  {'✓' if ok else '✗'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="MNIST .npz (Keras layout)")
    ap.add_argument("--runs", default="runs", help="folder holding (or receiving) the run folders")
    ap.add_argument("--models", default=",".join(MODELS), help="run folder names, comma-separated")
    ap.add_argument("--out", default=str(HERE / "results" / "quantization.json"))
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from edgekit.runtime.contract import to_model_input
    from edgekit.toolkit.data import load_mnist

    mnist = load_mnist(args.data)
    x = to_model_input(mnist.x_test)
    out = Path(args.out)
    results = json.loads(out.read_text())["models"] if out.is_file() else {}
    for name in [m for m in args.models.split(",") if m]:
        model_path = ensure_trained(Path(args.runs), name, args.data)
        with tempfile.TemporaryDirectory(prefix=f"quant-{name}-") as tmp:
            results[name] = measure(model_path, args.data, mnist, x, Path(tmp))
        print(table(name, results[name]), flush=True)

    for name in results:
        if name not in args.models.split(","):
            print(table(name, results[name]) + "\n  (from the earlier run in " + str(out) + ")", flush=True)
    worst_drop = max(-a["after"]["delta_accuracy"] for r in results.values() for a in r["artifacts"].values())
    worst_agree = min(a["after"]["agreement"] for r in results.values() for a in r["artifacts"].values())
    met = worst_drop <= GOAL_MAX_DROP and worst_agree >= GOAL_MIN_AGREEMENT
    print(f"\nafter the fold, worst: accuracy drop {worst_drop:.2f} point(s), agreement {worst_agree:.2f} % "
          f"(goal ≤ {GOAL_MAX_DROP} point, ≥ {GOAL_MIN_AGREEMENT} %): {'met' if met else 'NOT met'}")
    doc = {"machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
           "goal": {"max_drop": GOAL_MAX_DROP, "min_agreement": GOAL_MIN_AGREEMENT},
           "worst_after": {"accuracy_drop": worst_drop, "agreement": worst_agree, "met": met},
           "worst_before": {
               "accuracy_drop": max(-a["before"]["delta_accuracy"] for r in results.values() for a in r["artifacts"].values()),
               "agreement": min(a["before"]["agreement"] for r in results.values() for a in r["artifacts"].values())},
           "models": results}
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
