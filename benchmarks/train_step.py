"""Where a training step's time goes: the seed CNN's step in float32 and mixed bfloat16, with Keras' own
BatchNormalization and with training's fused one.

    python benchmarks/train_step.py --data ../shared/data/mnist.npz [--batch 64] [--steps 40] [--repeats 3]

Each of the four variants runs in its own process (a fresh TensorFlow, one dtype policy) and times ``--steps``
steps of ``model.fit`` on real MNIST batches after 10 warm-up steps, ``--repeats`` times in turn; the median
counts. The ratios are what to read on a shared machine: each column is measured in the same round as the others.
Prints a table, writes benchmarks/results/train_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "train_step.json"
VARIANTS = [("float32", False), ("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True)]


def time_steps(data: str, policy: str, fused: bool, batch: int, steps: int) -> float:
    """Seconds per training step (Adam, label smoothing, as the default recipe) after 10 warm-up steps."""
    import keras
    import numpy as np
    import tensorflow as tf

    from edgekit.toolkit.model import build_model

    with np.load(data) as d:
        x = (d["x_train"][: batch * 8].astype(np.float32) / 255.0)[..., None]
        y = np.eye(10, dtype=np.float32)[d["y_train"][: batch * 8]]
    keras.utils.set_random_seed(0)
    model = build_model(bn_momentum=0.9, dtype=policy, fused_bn=fused)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).repeat().prefetch(4)
    model.fit(ds, steps_per_epoch=10, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEKIT_DATA"), required="EDGEKIT_DATA" not in os.environ)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=RESULTS)
    p.add_argument("--one", nargs=2, metavar=("POLICY", "FUSED"), help=argparse.SUPPRESS)  # a child process
    args = p.parse_args(argv)
    if args.one:
        print(time_steps(args.data, args.one[0], args.one[1] == "fused", args.batch, args.steps))
        return 0

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    seconds: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for policy, fused in VARIANTS:
            name = f"{policy} {'fused' if fused else 'keras'}"
            cmd = [sys.executable, __file__, "--data", args.data, "--batch", str(args.batch), "--steps", str(args.steps),
                   "--one", policy, "fused" if fused else "keras"]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            seconds.setdefault(name, []).append(float(out.strip().splitlines()[-1]))
            print(f"{name}: {seconds[name][-1] * 1000:.1f} ms/step", flush=True)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    base = median["float32 keras"]
    print(f"\nbatch {args.batch}, median of {args.repeats} x {args.steps} steps")
    print(f"{'precision':<15} {'BatchNormalization':<19} {'ms/step':>8} {'ms/image':>9} {'vs float32 keras':>17}")
    rows = []
    for policy, fused in VARIANTS:
        name = f"{policy} {'fused' if fused else 'keras'}"
        rows.append({"policy": policy, "batch_norm": "fused" if fused else "keras", "ms_per_step": round(median[name] * 1e3, 1),
                     "ms_per_image": round(median[name] * 1e3 / args.batch, 3), "ratio": round(median[name] / base, 3),
                     "runs_ms": [round(s * 1e3, 1) for s in seconds[name]]})
        r = rows[-1]
        print(f"{policy:<15} {r['batch_norm']:<19} {r['ms_per_step']:>8.1f} {r['ms_per_image']:>9.3f} {r['ratio']:>17.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "measured": time.strftime("%Y-%m-%d %H:%M"), "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "batch": args.batch, "steps": args.steps, "repeats": args.repeats, "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
