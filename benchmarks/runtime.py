"""Benchmark the device runtime (issue 4): one table, measured in one run.

    python benchmarks/runtime.py --data ../shared/data/mnist.npz [--model RUN/model.keras | --export-dir DIR]

1. Per format, single-image latency through ``Classifier.probabilities`` next to the raw backend loop on the
   very same interpreter (LiteRT ``set_tensor``/``invoke``/``get_tensor``; ONNX Runtime ``session.run``), in
   blocks that alternate so machine noise hits both alike; medians. For int8 the raw loop is shown twice:
   quantizing the input inline with numpy (what any caller must do) and fed pre-quantized int8 (the floor).
2. A 640x480 camera frame -> digit on one thread (OpenCV and the interpreter both single-threaded), int8,
   and the preprocessing alone.
3. Two fresh processes, each timed from ``Popen`` to its first prediction and measured for peak memory
   (``resource.getrusage`` ru_maxrss): the runtime (``edgekit.runtime``, int8 .tflite, a frame from a PNG),
   and the seed notebook's way (Keras ``load_model`` + ``model.predict`` per image).

Goals: runtime overhead within 5 % of the raw loop; frame -> digit <= 2 ms (int8, one thread); runtime process
<= 100 MB peak and <= 1 s to the first prediction. Writes benchmarks/results/runtime.json.

Two preprocessings side by side (issue 25: frame -> digit <= 1.2 ms of CPU), part 2 only, on the bundled int8 model
(or ``--export-dir``'s), writing benchmarks/results/runtime-preprocess.json; 4327865 is the last commit before
issue 25 changed the preprocessing:

    git show 4327865:runtime/preprocess.py > /tmp/old_preprocess.py
    python benchmarks/runtime.py --frame-only --old-preprocess /tmp/old_preprocess.py

Blocks of the 100 frames alternate between this checkout's ``find_digits`` and the file's (``--rounds`` each), so
machine noise hits both alike; medians. benchmarks/camera.py ``--old-preprocess`` checks that the two find the
same boxes and crops.

One script (~440 lines) on purpose: its parts share one set of exported models, frames and interpreters, and
their figures are only comparable when measured in one process, in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
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
GOAL_OVERHEAD = 0.05
GOAL_FRAME_MS = 2.0
GOAL_PEAK_MB = 100.0
GOAL_FIRST_S = 1.0


def train_model(data: str, out: Path) -> Path:
    """A quick model through edgekit's own trainer: the default recipe, 12,000 images, one epoch."""
    from edgekit.toolkit.train import TrainOptions, train

    return train(TrainOptions.preset("default", data=data, out=out / "run", limit=12000, epochs=1)).model_path


# -- 1. single-image latency: runtime vs raw loop -------------------------------------------------------------


def raw_calls(clf):
    """{name: one-image callable} driving the classifier's OWN interpreter/session directly (same instance,
    same weights in cache), taking model-input floats; and the int8 input quantization, if any."""
    runner = clf._runner
    if runner.format == "onnx":
        sess, name, out = runner.session, runner.input_name, [runner.output_name]
        return {"raw": lambda x: sess.run(out, {name: x})[0]}, None
    it = runner.interpreter
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    ii, oi = i["index"], o["index"]
    if i["dtype"] != np.int8:
        def raw(x):
            it.set_tensor(ii, x)
            it.invoke()
            return it.get_tensor(oi)

        return {"raw": raw}, None
    s, z = i["quantization"]
    os_, oz = o["quantization"]

    def raw_q(x):  # the obvious numpy quantize/dequantize around the interpreter
        it.set_tensor(ii, np.clip(np.round(x / s + z), -128, 127).astype(np.int8))
        it.invoke()
        return (it.get_tensor(oi).astype(np.float32) - oz) * os_

    def raw_int8(q):  # fed pre-quantized int8, output left quantized: the interpreter alone
        it.set_tensor(ii, q)
        it.invoke()
        return it.get_tensor(oi)

    return {"raw": raw_q, "raw_int8": raw_int8}, (s, z)


def latency(path: Path, x: np.ndarray, reps: int) -> dict:
    """Blocks of len(x) single-image calls, one method per block, methods alternating block by block
    (reps rounds), all on one interpreter; medians of the per-call times."""
    from edgekit.runtime import Classifier

    clf = Classifier(path, threads=1)
    raws, q = raw_calls(clf)
    singles = [x[k : k + 1] for k in range(len(x))]
    quantized = [np.clip(np.round(a / q[0] + q[1]), -128, 127).astype(np.int8) for a in singles] if q else None
    methods = {"runtime": (clf.probabilities, singles), **{n: (f, quantized if n == "raw_int8" else singles) for n, f in raws.items()}}
    times: dict[str, list[float]] = {k: [] for k in methods}
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    pc, tt = time.perf_counter, time.thread_time
    for f, args in methods.values():  # warm-up
        for a in args[:20]:
            f(a)
    names = list(methods)
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            f, args = methods[name]
            bucket, cbucket = times[name], cpu[name]
            for a in args:
                c, t = tt(), pc()
                f(a)
                bucket.append(pc() - t)
                cbucket.append(tt() - c)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    mcpu = {k: float(np.median(v)) * 1e3 for k, v in cpu.items()}
    return {
        "file": path.name,
        "format": clf.format,
        "quantization": clf.quantization,
        "bytes": path.stat().st_size,
        "runtime_ms": med["runtime"],
        "raw_ms": med["raw"],
        "raw_int8_ms": med.get("raw_int8"),
        "overhead": med["runtime"] / med["raw"] - 1.0,
        "runtime_cpu_ms": mcpu["runtime"],
        "raw_cpu_ms": mcpu["raw"],
        "overhead_cpu": mcpu["runtime"] / mcpu["raw"] - 1.0,
        "calls": len(times["runtime"]),
    }


# -- 2. frame -> digit ---------------------------------------------------------------------------------------


def frame_to_digit(path: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    import cv2

    from edgekit.runtime import Classifier
    from edgekit.runtime.preprocess import find_digits
    from edgekit.toolkit.synthetic import mnist_frames

    cv2.setNumThreads(1)
    clf = Classifier(path, threads=1)
    frames = list(mnist_frames(images, labels, seed=42))
    for f, _, _ in frames[:5]:
        clf.classify(f)
    full, cpu, pre, correct = [], [], [], 0
    for _ in range(3):
        for f, label, _ in frames:
            t, c = time.perf_counter(), time.thread_time()
            p = clf.classify(f)
            full.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
            t = time.perf_counter()
            find_digits(f)
            pre.append(time.perf_counter() - t)
            correct += p.digit == label
    return {
        "file": path.name,
        "frame": "640x480 BGR JPEG-decoded",
        "frame_to_digit_ms": float(np.median(full)) * 1e3,
        "frame_to_digit_p95_ms": float(np.percentile(full, 95)) * 1e3,
        "frame_to_digit_cpu_ms": float(np.median(cpu)) * 1e3,
        "preprocess_ms": float(np.median(pre)) * 1e3,
        "frames": len(frames),
        "accuracy": correct / (3 * len(frames)),
    }


def load_preprocess(path: str):
    """Another preprocess.py (e.g. an earlier commit's, from ``git show``) as a module of its own."""
    spec = importlib.util.spec_from_file_location("edgekit_other_preprocess", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def preprocessing(find_digits):
    """``Classifier.classify`` with another ``find_digits`` (the classifier module's own name for it), restored after."""
    from edgekit.runtime import classifier

    own = classifier.find_digits
    classifier.find_digits = find_digits
    try:
        yield
    finally:
        classifier.find_digits = own


def frame_to_digit_pair(path: Path, images: np.ndarray, labels: np.ndarray, old, rounds: int) -> dict:
    """frame -> digit and the preprocessing alone, CPU time per frame, this checkout's ``find_digits`` ("new")
    against ``old.find_digits``: blocks of all frames alternate new/old, old/new, ... ``rounds`` times each."""
    import cv2

    from edgekit.runtime import Classifier
    from edgekit.runtime.preprocess import find_digits
    from edgekit.toolkit.synthetic import mnist_frames

    cv2.setNumThreads(1)
    clf = Classifier(path, threads=1)
    frames = list(mnist_frames(images, labels, seed=42))
    impl = {"new": find_digits, "old": old.find_digits}
    full = {k: [] for k in impl}
    pre = {k: [] for k in impl}
    correct = dict.fromkeys(impl, 0)
    tt = time.thread_time
    for name, fd in impl.items():  # warm-up
        with preprocessing(fd):
            for f, _, _ in frames[:5]:
                clf.classify(f)
    for r in range(2 * rounds):
        name = ("new", "old")[(r + r // 2) % 2]  # new old old new new old ...
        fd = impl[name]
        with preprocessing(fd):
            for f, label, _ in frames:
                c = tt()
                p = clf.classify(f)
                full[name].append(tt() - c)
                c = tt()
                fd(f)
                pre[name].append(tt() - c)
                correct[name] += p.digit == label
    out = {"file": path.name, "frame": "640x480 BGR JPEG-decoded", "frames": len(frames), "rounds": rounds}
    for name in impl:
        out[name] = {"frame_to_digit_cpu_ms": float(np.median(full[name])) * 1e3,
                     "frame_to_digit_cpu_p95_ms": float(np.percentile(full[name], 95)) * 1e3,
                     "preprocess_cpu_ms": float(np.median(pre[name])) * 1e3,
                     "accuracy": correct[name] / (rounds * len(frames))}
    out["ratio_frame_to_digit"] = out["new"]["frame_to_digit_cpu_ms"] / out["old"]["frame_to_digit_cpu_ms"]
    out["ratio_preprocess"] = out["new"]["preprocess_cpu_ms"] / out["old"]["preprocess_cpu_ms"]
    return out


def frame_only(args, mnist) -> None:
    """Part 2 alone, old and new preprocessing side by side (``--frame-only --old-preprocess FILE``)."""
    from edgekit.runtime.bundled_model import bundled_model_path

    model = Path(args.export_dir) / "model_int8.tflite" if args.export_dir else bundled_model_path()
    old = load_preprocess(args.old_preprocess)
    print(f"frame -> digit, {args.old_preprocess} against this checkout, {args.rounds} rounds each ...", file=sys.stderr)
    r = frame_to_digit_pair(model, mnist.x_test[:100], mnist.y_test[:100], old, args.rounds)
    lines = [f"640x480 frame -> digit, CPU ms per frame (thread time; median of {args.rounds} x {r['frames']} frames each; "
             f"{model.name}, one thread; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", "",
             f"{'preprocessing':<16}{'frame->digit':>14}{'p95':>8}{'preprocessing':>15}{'read right':>12}"]
    for name in ("old", "new"):
        x = r[name]
        lines.append(f"{name:<16}{x['frame_to_digit_cpu_ms']:>14.3f}{x['frame_to_digit_cpu_p95_ms']:>8.3f}"
                     f"{x['preprocess_cpu_ms']:>15.3f}{x['accuracy']:>12.1%}")
    lines.append(f"{'new / old':<16}{r['ratio_frame_to_digit']:>14.3f}{'':>8}{r['ratio_preprocess']:>15.3f}")
    print("\n".join(lines))
    result = {"machine": {"python": platform.python_version(), "cpu": platform.machine(), "cores": os.cpu_count(),
                          "load_average_1m_at_end": os.getloadavg()[0]},
              "command": " ".join(sys.argv), "old_preprocess": args.old_preprocess, "frame_to_digit": r}
    out = Path(args.out or HERE / "results" / "runtime-preprocess.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}", file=sys.stderr)


# -- 3. fresh processes: start -> first prediction, peak memory --------------------------------------------

PEAK_KB = """
import resource
def peak_kb():
    # VmHWM: this process's own peak RSS. ru_maxrss is also reported, but Linux carries it over from the
    # parent across fork+exec, so a child of a big process (this benchmark has TensorFlow loaded) reads high.
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

CHILD_RUNTIME = PEAK_KB + """
import sys, time, json

import cv2
from edgekit.runtime import Classifier
clf = Classifier(sys.argv[1], threads=1)
frame = cv2.imread(sys.argv[2])
p = clf.classify(frame)
first = time.time()
for _ in range(100):
    clf.classify(frame)
mods = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print(json.dumps({"first": first, "digit": p.digit, "peak_kb": peak_kb(), "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "heavy": mods}))
"""

CHILD_SEED = PEAK_KB + """
import os, sys, time, json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras
model = keras.models.load_model(sys.argv[1], safe_mode=True)
x = np.load(sys.argv[2])
p = model.predict(x[:1], verbose=0)
first = time.time()
times = []
for k in range(1, len(x)):
    t = time.perf_counter()
    model.predict(x[k : k + 1], verbose=0)
    times.append(time.perf_counter() - t)
print(json.dumps({"first": first, "digit": int(p.argmax()), "peak_kb": peak_kb(), "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "per_image_ms": float(np.median(times)) * 1e3}))
"""


def child(script: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.time()
    run = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"benchmark child failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
    out = json.loads(run.stdout.strip().splitlines()[-1])
    out["start_to_first_s"] = out.pop("first") - start
    out["peak_mb"] = out.pop("peak_kb") / 1024.0
    out["ru_maxrss_mb"] = out.pop("ru_maxrss_kb") / 1024.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("EDGEKIT_DATA", str(HERE.parent.parent / "shared" / "data" / "mnist.npz")))
    ap.add_argument("--model", help="a trained .keras (default: train a quick one)")
    ap.add_argument("--export-dir", help="use the artifacts already exported here instead of exporting")
    ap.add_argument("--images", type=int, default=200, help="test images per latency measurement")
    ap.add_argument("--reps", type=int, default=10, help="alternating rounds over those images")
    ap.add_argument("--frame-only", action="store_true", help="part 2 only, on the bundled int8 model (or --export-dir's)")
    ap.add_argument("--old-preprocess", help="with --frame-only: another preprocess.py to time against this checkout's")
    ap.add_argument("--rounds", type=int, default=6, help="with --old-preprocess: blocks of 100 frames per preprocessing")
    ap.add_argument("--out", help="the JSON (default results/runtime.json; with --frame-only results/runtime-preprocess.json)")
    args = ap.parse_args()

    from edgekit.runtime.contract import to_model_input
    from edgekit.toolkit.data import load_mnist

    mnist = load_mnist(args.data)
    if args.frame_only:
        if not args.old_preprocess:
            ap.error("--frame-only needs --old-preprocess FILE")
        frame_only(args, mnist)
        return
    args.out = args.out or str(HERE / "results" / "runtime.json")
    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-runtime-"))
    model = Path(args.model) if args.model else None
    if args.export_dir:
        export_dir = Path(args.export_dir)
    else:
        from edgekit.export import export_model

        if model is None:
            print("training a quick model (12,000 images, one epoch) ...", file=sys.stderr)
            model = train_model(args.data, work)
        export_dir = work / "export"
        print("exporting tflite float32/int8 and onnx float32/int8 ...", file=sys.stderr)
        export_model(model, export_dir, formats=("tflite", "onnx"), quantizations=("none", "int8"), data=args.data)
    files = [export_dir / n for n in ("model_float32.tflite", "model_int8.tflite", "model_float32.onnx", "model_int8.onnx")]
    files = [f for f in files if f.is_file()]
    int8 = export_dir / "model_int8.tflite"

    x = to_model_input(mnist.x_test[: args.images])
    print("measuring single-image latency ...", file=sys.stderr)
    rows = [latency(f, x, args.reps) for f in files]
    print("measuring frame -> digit ...", file=sys.stderr)
    frame = frame_to_digit(int8, mnist.x_test[:100], mnist.y_test[:100])

    import cv2

    from edgekit.toolkit.synthetic import camera_frame

    png = work / "frame.png"
    f, _ = camera_frame(mnist.x_test[0], np.random.default_rng(0))
    cv2.imwrite(str(png), f)
    print("measuring fresh processes (runtime, then Keras) ...", file=sys.stderr)
    runtime_proc = child(CHILD_RUNTIME, str(int8), str(png))
    seed_proc = None
    if model is not None:
        npy = work / "x.npy"
        np.save(npy, x[:51])
        seed_proc = child(CHILD_SEED, str(model), str(npy))

    result = {
        "machine": {"python": platform.python_version(), "cpu": platform.machine(), "cores": os.cpu_count(),
                    "load_average_1m_at_end": os.getloadavg()[0]},
        "goals": {"overhead": GOAL_OVERHEAD, "frame_ms": GOAL_FRAME_MS, "peak_mb": GOAL_PEAK_MB, "first_s": GOAL_FIRST_S},
        "latency": rows, "frame_to_digit": frame, "runtime_process": runtime_proc, "seed_process": seed_proc,
    }
    int8_row = next(r for r in rows if r["file"] == int8.name)
    ok = lambda good: "ok " if good else "MISS"  # noqa: E731
    lines = [
        f"edgekit runtime benchmark (one thread; medians; single images; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
        "",
        f"{'artifact':<22}{'size MB':>8}{'runtime ms':>12}{'raw ms':>9}{'raw int8 ms':>13}{'overhead':>10}"
        f"{'CPU: runtime':>14}{'raw':>7}{'overhead':>10}  goal <= 5 % (CPU)",
    ]
    for r in rows:
        raw8 = f"{r['raw_int8_ms']:.3f}" if r["raw_int8_ms"] else "-"
        lines.append(f"{r['file']:<22}{r['bytes'] / 1e6:>8.2f}{r['runtime_ms']:>12.3f}{r['raw_ms']:>9.3f}{raw8:>13}"
                     f"{r['overhead'] * 100:>9.1f}%{r['runtime_cpu_ms']:>14.3f}{r['raw_cpu_ms']:>7.3f}{r['overhead_cpu'] * 100:>9.1f}%"
                     f"  {ok(r['overhead_cpu'] <= GOAL_OVERHEAD)}")
    lines += [
        "",
        f"640x480 frame -> digit (int8, 1 thread): {frame['frame_to_digit_ms']:.2f} ms median wall, p95 {frame['frame_to_digit_p95_ms']:.2f} ms; "
        f"{frame['frame_to_digit_cpu_ms']:.2f} ms CPU (thread time, immune to waiting for a core) "
        f"goal <= {GOAL_FRAME_MS} ms {ok(frame['frame_to_digit_ms'] <= GOAL_FRAME_MS)} wall / {ok(frame['frame_to_digit_cpu_ms'] <= GOAL_FRAME_MS)} CPU",
        f"  preprocessing alone {frame['preprocess_ms']:.2f} ms; digits read right on {frame['frames']} frames: {frame['accuracy']:.1%}",
        "",
        f"{'process':<36}{'start->first pred s':>20}{'peak MB':>9}{'per image ms':>14}  (28x28 image, model only)",
        f"{'edgekit.runtime (int8 .tflite)':<36}{runtime_proc['start_to_first_s']:>20.2f}{runtime_proc['peak_mb']:>9.0f}"
        f"{int8_row['runtime_ms']:>14.2f}  goals <= {GOAL_FIRST_S} s {ok(runtime_proc['start_to_first_s'] <= GOAL_FIRST_S)}"
        f" <= {GOAL_PEAK_MB:.0f} MB {ok(runtime_proc['peak_mb'] <= GOAL_PEAK_MB)}",
    ]
    if seed_proc:
        lines.append(f"{'seed way (Keras model.predict/image)':<36}{seed_proc['start_to_first_s']:>20.2f}{seed_proc['peak_mb']:>9.0f}"
                     f"{seed_proc['per_image_ms']:>14.2f}")
    if runtime_proc["heavy"]:
        lines.append(f"WARNING: the runtime process imported {runtime_proc['heavy']}")
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"\nwrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
