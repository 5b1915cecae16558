"""The seed recipe against edgekit's default, on the same machine with the same wall-time budget.

    python benchmarks/train_recipe.py --data ../shared/data/mnist.npz [--out /tmp/edgekit-recipe] [--full RUN]

1. Trains the seed recipe (RMSprop 1e-3, batch 64, ReduceLROnPlateau) for one epoch and measures its training
   wall time T (the seed's budget).
2. Trains edgekit's default recipe with a hard budget of T: training stops at the first batch past T.
3. Optionally adds an already trained run folder (``--full /work/runs/full``) to the table, for the record.

Both runs hold out the same 5,000 validation images and touch the test set once. The machine is shared, so
the absolute seconds are noisy; the comparison is within one invocation. Prints a table and writes
benchmarks/results/train_recipe.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "train_recipe.json"


def row(name: str, metrics: dict, command: str) -> dict:
    r = metrics["recipe"]
    return {
        "recipe": name,
        "test_accuracy": metrics["test"]["accuracy"],
        "test_loss": metrics["test"]["loss"],
        "epochs": metrics["epochs"],
        "train_images": metrics["train_images"],
        "train_seconds": metrics["train_seconds"],
        "budget_stopped_at_step": metrics.get("budget_stopped_at_step"),
        "images_per_second": round(
            metrics["train_images"] * metrics["epochs"] / metrics["train_seconds"], 1
        ) if metrics["train_seconds"] else None,
        "settings": (
            f"{r['optimizer']} {r['schedule']} lr {r['learning_rate']:g}, batch {r['batch_size']}, "
            f"label smoothing {r['label_smoothing']:g}, BN momentum {r['bn_momentum']:g}, "
            f"augment {'on' if r['augment'] else 'off'}"
        ),
        "command": command,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEKIT_DATA"), help="MNIST .npz or IDX folder")
    p.add_argument("--out", default="/tmp/edgekit-recipe", help="where the two run folders go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", type=Path, help="an already trained full-recipe run folder to list too")
    args = p.parse_args(argv)

    from edgekit.toolkit.train import TrainOptions, train

    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    rows = []

    seed_opts = TrainOptions.preset("seed", data=args.data, out=out / "seed", seed=args.seed)
    print(f"[1/2] seed recipe, 1 epoch -> {seed_opts.out}", flush=True)
    seed = train(seed_opts).metrics
    budget = seed["train_seconds"]
    rows.append(row("seed", seed, f"edgekit train --recipe seed --data DATA --seed {args.seed}"))

    default_opts = TrainOptions.preset("default", data=args.data, out=out / "default", seed=args.seed,
                                       max_seconds=budget)
    print(f"[2/2] default recipe with the seed's budget of {budget:.0f} s -> {default_opts.out}", flush=True)
    default = train(default_opts).metrics
    rows.append(row("default", default, f"edgekit train --recipe default --data DATA --seed {args.seed}"
                                         f"  (budget {budget:.0f} s)"))

    if args.full and (args.full / "metrics.json").is_file():
        full = json.loads((args.full / "metrics.json").read_text())
        rows.append(row("full", full, f"edgekit train --recipe full --data DATA --seed {full['seed']}  "
                                      f"(separate run: {args.full})"))

    print()
    print(f"{'recipe':<8} {'test acc':>9} {'test loss':>9} {'epochs':>6} {'train s':>8} {'img/s':>6}  settings")
    for r in rows:
        stop = f" (stopped by budget at step {r['budget_stopped_at_step']})" if r["budget_stopped_at_step"] else ""
        print(f"{r['recipe']:<8} {r['test_accuracy']:>9.2%} {r['test_loss']:>9.4f} {r['epochs']:>6} "
              f"{r['train_seconds']:>8.0f} {r['images_per_second'] or 0:>6.0f}  {r['settings']}{stop}")
    goal = default["test"]["accuracy"] >= 0.99 and default["train_seconds"] <= budget * 1.001
    print(f"\ndefault within the seed's one-epoch budget ({budget:.0f} s): "
          f"{default['test']['accuracy']:.2%} -> goal (>= 99.0 %) {'MET' if goal else 'MISSED'}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({
        "benchmark": "train_recipe",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "note": "shared machine; seconds are noisy, compare within one run"},
        "budget_seconds": budget,
        "default_goal_met": goal,
        "rows": rows,
        "run_folders": {"seed": str(out / "seed"), "default": str(out / "default")},
    }, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
