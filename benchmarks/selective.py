"""Benchmark `edgekit export --quantize int8 --max-drop P` on a sound model and on a deliberately fragile one.

    python benchmarks/selective.py --model RUN/model.keras --data ../shared/data/mnist.npz [--max-drop 0.5]

For the model and for its fragile copy (``tests/export/test_selective.py``'s ``make_fragile``: one Dense(256)
unit x1024 after its BatchNormalization and /1024 in the weights reading it, the same float function), the int8
targets (TFLite, ONNX) are exported through the product without and with ``--max-drop``, and every artifact runs
through the device's runtime on all 10,000 MNIST test images (never used by the search, which measures on
held-out training images): accuracy, Δ to Keras, top-1 agreement, size, and the p50 of one-image calls (the two
artifacts of a pair timed in turn, several rounds, so a loaded machine moves both alike). For the fragile model it
also prints what TFLite's ``QuantizationDebugger`` says per layer (RMSE / scale), the statistic the search does not
rank by. Writes benchmarks/results/selective.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "export"), str(HERE.parent / "tests")]  # make_fragile, and what it imports
ROUNDS, RUNS = 5, 200  # latency: rounds of RUNS one-image calls per artifact, alternating


def latency_pair(a: Path, b: Path, x: np.ndarray) -> tuple[float, float]:
    from edgekit.export.measure import single_latency
    from edgekit.runtime.backends import open_runner

    ra, rb = open_runner(a, threads=1), open_runner(b, threads=1)
    pa, pb = [], []
    for _ in range(ROUNDS):
        pa.append(single_latency(ra.run, x, RUNS)[0])
        pb.append(single_latency(rb.run, x, RUNS)[0])
    return float(np.median(pa)), float(np.median(pb))


def debugger_rows(model_path: Path, data: str) -> list[dict]:
    """QuantizationDebugger's per-layer RMSE/scale for the int8 TFLite of the (BN-folded) model."""
    import keras
    import tensorflow as tf

    from edgekit.export.calibration import calibration_batches, load_representative
    from edgekit.export.fold import fold_batchnorm
    from edgekit.export.options import ExportContext, ExportOptions
    from edgekit.export.tflite import saved_model

    images = load_representative(data, 100)
    model, _ = fold_batchnorm(keras.saving.load_model(model_path, compile=False, safe_mode=True))

    def representative():
        for batch in calibration_batches(images):
            yield [batch]

    with tempfile.TemporaryDirectory() as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model(model, ExportContext(ExportOptions(), "", workdir=Path(tmp))))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative)
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for r in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(r["scale"])
        rows.append({"op": r["op_name"], "tensor": r["tensor_name"].split(";")[0], "scale": scale,
                     "rmse_over_scale": float(np.sqrt(float(r["mean_squared_error"]))) / scale if scale else None})
    return rows


def measure(model_path: Path, data: str, max_drop: float, mnist, workdir: Path) -> dict:
    import keras

    from edgekit.export import export_model
    from edgekit.export.measure import parity_metrics
    from edgekit.runtime.backends import open_runner
    from edgekit.runtime.contract import to_model_input

    x, labels = to_model_input(mnist.x_test), np.asarray(mnist.y_test).astype(np.int64)
    reference = keras.saving.load_model(model_path, compile=False, safe_mode=True).predict(x, batch_size=500, verbose=0)
    result = {"model": str(model_path), "keras_accuracy": 100 * float(np.mean(reference.argmax(1) == labels)), "artifacts": {}}
    manifests = {}
    for name, extra in (("plain", {}), ("max_drop", {"max_drop": max_drop})):
        start = time.perf_counter()
        manifests[name] = export_model(model_path, workdir / name, formats="all", quantizations="int8", data=data, **extra)
        result[f"{name}_export_seconds"] = round(time.perf_counter() - start, 1)
    for a in manifests["max_drop"].artifacts:
        row = result["artifacts"].setdefault(a.file, {"selective": a.selective})
        paths = [workdir / name / a.file for name in ("plain", "max_drop")]
        latency = latency_pair(*paths, x)
        for name, path, ms in zip(("plain", "max_drop"), paths, latency):
            p = np.concatenate([open_runner(path).run(x[i:i + 500]) for i in range(0, len(x), 500)])
            m = parity_metrics(reference, p, labels)
            row[name] = {"accuracy": m["accuracy"], "delta": m["delta_accuracy"], "agreement": m["agreement"],
                         "bytes": path.stat().st_size, "latency_ms_p50": ms}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-drop", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "selective.json")
    args = parser.parse_args()

    from edgekit.export.data import load_mnist
    from edgekit.runtime.contract import to_model_input
    from test_selective import make_fragile

    mnist = load_mnist(args.data)
    results = {"machine": f"{platform.processor() or platform.machine()} | {platform.python_version()}",
               "command": " ".join(sys.argv), "max_drop": args.max_drop, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fragile = tmp / "fragile" / "model.keras"
        fragile.parent.mkdir()
        results["fragile_unit"] = make_fragile(args.model, fragile, to_model_input(mnist.x_train[:500]))
        for name, path in (("sound", args.model), ("fragile", fragile)):
            (tmp / name).mkdir(exist_ok=True)
            results["models"][name] = measure(path, args.data, args.max_drop, mnist, tmp / name)
        results["fragile_debugger"] = debugger_rows(fragile, args.data)

    for name, r in results["models"].items():
        print(f"\n{name}: Keras {r['keras_accuracy']:.2f} % on the 10,000 test images")
        print(f"  {'artifact':<20}{'':<10}{'accuracy':>9}{'Δ':>8}{'agree':>8}{'MB':>7}{'p50 ms':>8}  kept float")
        for file, row in r["artifacts"].items():
            for kind in ("plain", "max_drop"):
                m = row[kind]
                kept = ", ".join(row["selective"]["float_layers"]) if kind == "max_drop" else ""
                print(f"  {file:<20}{kind:<10}{m['accuracy']:>8.2f}%{m['delta']:>+8.2f}{m['agreement']:>7.2f}%"
                      f"{m['bytes'] / 1e6:>7.2f}{m['latency_ms_p50']:>8.3f}  {kept}")
            s = row["selective"]
            print(f"  {'':<20}search: held-out drop {s['drop_int8']:.2f} -> {s['drop']:.2f} point(s), {s['seconds']:.1f} s")
    print("\nfragile model, QuantizationDebugger per layer (RMSE / scale):")
    for r in results["fragile_debugger"]:
        print(f"  {r['op']:<18}{r['tensor'][:70]:<72}{r['rmse_over_scale'] if r['rmse_over_scale'] is None else round(r['rmse_over_scale'], 3)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
