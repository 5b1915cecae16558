"""Benchmark `edgekit export --format all`: time per artifact, size against the parameter floor, accuracy.

    python benchmarks/export.py --data ../shared/data/mnist.npz [--model RUN/model.keras] [--sweep 100,1000]

1. Runs the real command, ``edgekit export --format all``, in a subprocess and times it end to end (Python
   start, TensorFlow import, model load, calibration, six conversions, manifest). Per-artifact seconds come from
   the manifest.
2. Sizes against the parameter floor: 1,022,858 parameters -> 4.09 MB as float32, 2.05 MB as float16,
   1.02 MB as int8.
3. Runs every artifact on the full MNIST test set with its real runtime (LiteRT / ONNX Runtime) next to Keras.
4. Calibration sweep: the int8 exports again with other ``--calib-samples`` values, to check the default.

Goals (issue 3): int8 TFLite <= 1.10 MB; all artifacts of ``--format all`` in <= 60 s on this machine.
Without ``--model`` a model is trained first (12,000 training images, one epoch, BN momentum 0.9, seed 0;
about a minute) so accuracies mean something. Prints a table; writes benchmarks/results/export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PARAMS = 1_022_858
FLOOR = {"none": PARAMS * 4, "float16": PARAMS * 2, "dynamic": PARAMS, "int8": PARAMS}
GOAL_INT8_TFLITE_BYTES = 1.10e6
GOAL_ALL_SECONDS = 60.0


def train_model(data: str, out: Path) -> Path:
    """A quick model through edgekit's own trainer: the default recipe, 12,000 images, one epoch."""
    from edgekit.toolkit.train import TrainOptions, train

    return train(TrainOptions.preset("default", data=data, out=out / "run", limit=12000, epochs=1)).model_path


def predict(path: Path, x: np.ndarray) -> np.ndarray:
    if path.suffix == ".onnx":
        import onnxruntime as ort

        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], x.shape)
    interp.allocate_tensors()
    if inp["dtype"] == np.int8:
        s, z = inp["quantization"]
        x = np.clip(np.round(x / s + z), -128, 127).astype(np.int8)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    y = interp.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        s, z = out["quantization"]
        y = (y.astype(np.float32) - z) * s
    return y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("EDGEKIT_TEST_DATA", str(HERE.parent.parent / "shared/data/mnist.npz")))
    ap.add_argument("--model", default=None, help="a trained model.keras (default: train a small one first)")
    ap.add_argument("--sweep", default="100,1000", help="other --calib-samples values for the int8 sweep ('' = none)")
    ap.add_argument("--out", default=str(HERE / "results" / "export.json"))
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up even when redirected to a file
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-export-"))
    model = Path(args.model) if args.model else None
    if model is None:
        t = time.perf_counter()
        model = train_model(args.data, work)
        print(f"trained a benchmark model in {time.perf_counter() - t:.0f} s: {model}")

    # 1. the real command, timed end to end
    out = work / "export"
    cmd = [sys.executable, "-m", "edgekit.toolkit.cli", "export", "--model", str(model), "--format", "all",
           "--data", args.data, "--out", str(out)]
    t = time.perf_counter()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True)
    cli_seconds = time.perf_counter() - t
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli_cpu_seconds = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    load_during = os.getloadavg()
    if done.returncode != 0:
        sys.exit(f"edgekit export failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    print(done.stdout.rstrip())
    manifest = json.loads((out / "manifest.json").read_text())

    # 3. accuracy on the full test set, each artifact in its own runtime, next to Keras
    import keras

    from edgekit.runtime.contract import to_model_input
    from edgekit.toolkit.data import load_mnist

    mnist = load_mnist(args.data)
    x, y = to_model_input(mnist.x_test), mnist.y_test
    ref = np.asarray(keras.saving.load_model(model, compile=False, safe_mode=True).predict(x, batch_size=500, verbose=0))
    keras_acc = float(np.mean(ref.argmax(1) == y))

    rows = []
    for a in manifest["artifacts"]:
        p = predict(out / a["file"], x)
        rows.append({
            "file": a["file"], "format": a["format"], "quantization": a["quantization"], "bytes": a["bytes"],
            "floor_bytes": FLOOR[a["quantization"]], "size_over_floor": a["bytes"] / FLOOR[a["quantization"]],
            "export_seconds": a["export_seconds"], "accuracy": float(np.mean(p.argmax(1) == y)),
            "top1_agreement_with_keras": float(np.mean(p.argmax(1) == ref.argmax(1))),
            "max_abs_dprob": float(np.abs(p - ref).max()),
        })

    # 4. calibration sweep (int8 only), in process
    from edgekit.export import export_model

    sweep = []
    for n in [int(v) for v in args.sweep.split(",") if v.strip()]:
        folder = work / f"calib{n}"
        t = time.perf_counter()
        m = export_model(model, folder, formats="all", quantizations="int8", data=args.data, calib_samples=n)
        wall = time.perf_counter() - t
        for a in m.artifacts:
            p = predict(folder / a.file, x)
            sweep.append({"calib_samples": n, "file": a.file, "export_seconds": a.export_seconds,
                          "accuracy": float(np.mean(p.argmax(1) == y)),
                          "top1_agreement_with_keras": float(np.mean(p.argmax(1) == ref.argmax(1)))})
        print(f"calib {n}: int8 exports in {wall:.1f} s")
    default_rows = [{"calib_samples": 300, "file": r["file"], "export_seconds": r["export_seconds"],
                     "accuracy": r["accuracy"], "top1_agreement_with_keras": r["top1_agreement_with_keras"]}
                    for r in rows if r["quantization"] == "int8"]
    sweep = sorted(sweep + default_rows, key=lambda r: (r["file"], r["calib_samples"]))

    int8_tflite = next(r["bytes"] for r in rows if r["file"] == "model_int8.tflite")
    goals = {
        "int8_tflite_bytes_le_1.10MB": {"measured": int8_tflite, "goal": GOAL_INT8_TFLITE_BYTES,
                                        "pass": int8_tflite <= GOAL_INT8_TFLITE_BYTES},
        "format_all_cli_seconds_le_60": {"measured": round(cli_seconds, 1), "goal": GOAL_ALL_SECONDS,
                                         "pass": cli_seconds <= GOAL_ALL_SECONDS},
    }

    print(f"\nKeras reference accuracy on {len(y):,} MNIST test images: {keras_acc:.2%}")
    print(f"{'artifact':<22}{'MB':>7}{'floor MB':>10}{'x floor':>9}{'export s':>10}{'accuracy':>10}{'top-1 =':>9}{'max |dp|':>11}")
    for r in rows:
        print(f"{r['file']:<22}{r['bytes'] / 1e6:>7.2f}{r['floor_bytes'] / 1e6:>10.2f}{r['size_over_floor']:>9.3f}"
              f"{r['export_seconds']:>10.1f}{r['accuracy']:>10.2%}{r['top1_agreement_with_keras']:>9.2%}{r['max_abs_dprob']:>11.2e}")
    print(f"{'sum of artifacts':<22}{'':>36}{sum(r['export_seconds'] for r in rows):>10.1f}")
    print(f"{'edgekit export --format all, end to end':<48}{cli_seconds:>20.1f} s wall, {cli_cpu_seconds:.1f} s CPU "
          f"(load average {load_during[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'edgekit export --format all, peak RSS':<48}{usage.ru_maxrss / 1024:>20.0f} MB")
    print("\ncalibration sweep (int8):")
    print(f"{'artifact':<22}{'calib':>7}{'export s':>10}{'accuracy':>10}{'top-1 =':>9}")
    for r in sweep:
        print(f"{r['file']:<22}{r['calib_samples']:>7}{r['export_seconds']:>10.1f}{r['accuracy']:>10.2%}"
              f"{r['top1_agreement_with_keras']:>9.2%}")
    for name, g in goals.items():
        print(f"goal {name}: {g['measured']} -> {'PASS' if g['pass'] else 'FAIL'}")

    result = {
        "command": " ".join(["python", "benchmarks/export.py", *sys.argv[1:]]),
        "export_command": " ".join(cmd[2:]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "model": {"path": str(model), "trained_by_benchmark": args.model is None, "keras_accuracy": keras_acc},
        "cli_seconds": cli_seconds, "cli_cpu_seconds": cli_cpu_seconds, "cli_peak_rss_mb": usage.ru_maxrss / 1024,
        "loadavg_during_cli": load_during, "artifacts": rows, "calibration_sweep": sweep, "goals": goals,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
