"""The seed recipe against edgekit's default, on the same machine with the same wall-time budget.

    python benchmarks/train_recipe.py --data ../shared/data/mnist.npz [--out /tmp/edgekit-recipe] [--full RUN]

Side by side (the default mode): `edgekit train --recipe seed` (RMSprop 1e-3, batch 64, ReduceLROnPlateau, one
epoch) and `edgekit train` (the default recipe) run AT THE SAME TIME through the real CLI, so both see the same
machine load on this shared, noisy machine; the seed's training time is the budget, and the table shows each
one's time and the ratio. ``--sequential`` instead runs the seed first, then the default with a hard budget
of the seed's measured time (training stops at the first batch past it).

Both runs hold out the same 5,000 validation images and touch the test set once. ``--full RUN`` adds an already
trained run folder (e.g. /work/runs/full) to the table. Prints a table, writes benchmarks/results/train_recipe.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
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
    p.add_argument("--sequential", action="store_true", help="seed first, then the default capped at its time")
    p.add_argument("--reuse", type=Path, help="a finished benchmark folder (holding seed/ and default/): "
                                              "tabulate it again without training (e.g. to add --full)")
    args = p.parse_args(argv)

    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    data = ["--data", args.data] if args.data else []
    rows = []
    if args.reuse:
        out.rmdir()
        out = args.reuse
        seed = json.loads((out / "seed" / "metrics.json").read_text())
        default = json.loads((out / "default" / "metrics.json").read_text())
        budget = seed["train_seconds"]
        mode = "side by side (both at once, same load)" if (out / "seed.log").exists() else "sequential"
    elif args.sequential:
        from edgekit.toolkit.train import TrainOptions, train

        print(f"[1/2] seed recipe, 1 epoch -> {out / 'seed'}", flush=True)
        seed = train(TrainOptions.preset("seed", data=args.data, out=out / "seed", seed=args.seed)).metrics
        budget = seed["train_seconds"]
        print(f"[2/2] default recipe with the seed's budget of {budget:.0f} s -> {out / 'default'}", flush=True)
        default = train(TrainOptions.preset("default", data=args.data, out=out / "default", seed=args.seed,
                                            max_seconds=budget)).metrics
        mode = "sequential, default capped at the seed's time"
    else:
        exe = shutil.which("edgekit", path=str(Path(sys.executable).parent)) or shutil.which("edgekit") or "edgekit"
        procs = {}
        for name in ("seed", "default"):
            cmd = [exe, "train", "--recipe", name, *data, "--seed", str(args.seed), "--out", str(out / name)]
            print("$ " + " ".join(cmd), flush=True)
            log = open(out / f"{name}.log", "w")
            procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
        for name, (proc, log) in procs.items():
            if proc.wait() != 0:
                print(f"{name} run failed (exit {proc.returncode}); see {log.name}", file=sys.stderr)
                return 1
            log.close()
        seed = json.loads((out / "seed" / "metrics.json").read_text())
        default = json.loads((out / "default" / "metrics.json").read_text())
        budget = seed["train_seconds"]
        mode = "side by side (both at once, same load)"
    rows.append(row("seed", seed, f"edgekit train --recipe seed --data DATA --seed {args.seed}"))
    rows.append(row("default", default, f"edgekit train --data DATA --seed {args.seed}"))

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
    ratio = default["train_seconds"] / budget
    goal = default["test"]["accuracy"] >= 0.99 and ratio <= 1.02
    print(f"\n{mode}: default took {ratio:.2f}x the seed's one-epoch time ({default['train_seconds']:.0f} s vs "
          f"{budget:.0f} s) and reached {default['test']['accuracy']:.2%}: goal (>= 99.0 % within the seed's time, "
          f"2 % timing noise allowed) {'MET' if goal else 'MISSED'}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({
        "benchmark": "train_recipe",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "note": "shared machine; seconds are noisy, compare within one run"},
        "mode": mode,
        "budget_seconds": budget,
        "default_time_ratio": round(ratio, 3),
        "default_goal_met": goal,
        "rows": rows,
        "run_folders": {"seed": str(out / "seed"), "default": str(out / "default")},
    }, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
