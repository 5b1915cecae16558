"""How much room every numeric assertion of the test suite has, over training seeds, thread counts and arithmetic.

    EDGEKIT_TEST_DATA=../shared/data/mnist.npz python scripts/margins.py [--seeds 0-4] [--threads 1,2] [--jobs 1]
        [--isa default,AVX2] [--onednn on,off] [--precision float32,bfloat16] [--out FILE] [-- PYTEST ARGS]

Runs ``pytest -m numeric`` (the tests whose figures depend on the trained model or the arithmetic: the small
model's tests and the end-to-end run) once per (seed, threads), with ``EDGEKIT_TEST_SEED`` (the small model's
and the end-to-end training's seed) and ``EDGEKIT_TEST_THREADS`` (``OMP_NUM_THREADS`` and TensorFlow's intra- and
inter-op threads, in the tests' process and every process they start) set, and ``EDGEKIT_MARGINS_LOG`` naming a
file where every ``check()`` of tests/measured.py writes what it measured. Then prints, per assertion, the
threshold, the worst value seen, where, and the margin (the worst value's distance to the threshold, in the safe
direction: negative means it failed in some run), and writes it all as JSON (default
benchmarks/results/margins.json). ``--markdown`` prints the table as docs/testing.md shows it; ``--show JSON``
prints a saved sweep's table without running anything.

Three more axes stand in for another CPU on this one (each changes the trained small model: measured, see
docs/testing.md; ``AVX512_CORE`` did not on this AVX-512/AMX Xeon, where a float32 model trained to the same
weights, bit for bit, so it is not in the sweep): ``--isa`` caps oneDNN's instruction set (``ONEDNN_MAX_CPU_ISA``;
``default`` leaves it unset),
``--onednn off`` turns oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``), and ``--precision bfloat16`` trains the small
model under Keras' mixed bfloat16 policy (``EDGEKIT_TEST_PRECISION``). Every combination of the axes given runs
(but bfloat16 under a cap below ``AVX512_CORE``, where oneDNN has no bfloat16 convolution: said and left out);
``--by-axis`` prints, per assertion, the worst value seen at each value of each axis that varied.

A full sweep is 10 runs of a few minutes each (the end-to-end training of 12,000 images is most of it); the small
model is cached per (seed, threads) in pytest's cache, so a second sweep skips its training. ``--jobs 2`` runs two
at once (each at its own thread count: on a 2-core machine only the 1-thread runs fit two at once honestly).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "margins.json"


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


AXES = ("isa", "onednn", "precision")  # besides seed and threads; a log line without them had the defaults
DEFAULTS = {"isa": "default", "onednn": "on", "precision": "float32"}


def stem(seed: int, threads: int, arithmetic: dict) -> str:
    """A run's file name: ``seed0-threads2``, plus ``-isaAVX2``, ``-onednn-off``, ``-bfloat16`` off the defaults."""
    name = f"seed{seed}-threads{threads}"
    if arithmetic["isa"] != "default":
        name += f"-isa{arithmetic['isa']}"
    if arithmetic["onednn"] == "off":
        name += "-onednn-off"
    if arithmetic["precision"] != "float32":
        name += f"-{arithmetic['precision']}"
    return name


def arithmetic_env(arithmetic: dict) -> dict:
    """The environment of one point of the arithmetic axes (None: unset)."""
    return {"ONEDNN_MAX_CPU_ISA": None if arithmetic["isa"] == "default" else arithmetic["isa"],
            "TF_ENABLE_ONEDNN_OPTS": "0" if arithmetic["onednn"] == "off" else None,
            "EDGEKIT_TEST_PRECISION": arithmetic["precision"]}


def cannot_train(arithmetic: dict) -> str | None:
    """Why the small model cannot train at this point of the axes at all (bfloat16 with oneDNN capped below its
    bfloat16 convolution stops TensorFlow at the first one), else None."""
    from edgekit.runtime.errors import OptionsError
    from edgekit.toolkit.precision import choose

    if arithmetic["precision"] != "bfloat16":
        return None
    try:
        choose("bfloat16", gpu=None, env={k: v for k, v in arithmetic_env(arithmetic).items() if v is not None})
    except OptionsError as e:
        return str(e)
    return None


def run_one(seed: int, threads: int, arithmetic: dict, work: Path, marker: str, pytest_args: list[str]) -> dict:
    """One ``pytest -m numeric`` run; returns its exit code, wall time, and the lines its checks logged."""
    name = stem(seed, threads, arithmetic)
    log = work / f"{name}.jsonl"
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "EDGEKIT_TEST_SEED": str(seed),
        "EDGEKIT_TEST_THREADS": str(threads),
        "EDGEKIT_MARGINS_LOG": str(log),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for key, value in arithmetic_env(arithmetic).items():
        env.pop(key, None)
        if value is not None:
            env[key] = value
    env.pop("CI", None)  # a skipped test shows up as missing rows, not as a failure of the sweep
    command = [sys.executable, "-m", "pytest", "-m", marker, "-q", "-p", "no:randomly",
               "--basetemp", str(work / f"tmp-{name}"), *pytest_args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    (work / f"{name}.out").write_text(done.stdout + done.stderr)
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    print(f"{name}: pytest exit {done.returncode} in {seconds:.0f} s: {summary}", flush=True)
    run = {"seed": seed, "threads": threads, **arithmetic, "exit_code": done.returncode, "seconds": round(seconds, 1),
           "summary": summary}
    (work / f"{name}.json").write_text(json.dumps(run) + "\n")
    return {**run, "checks": rows}


def collect(work: Path) -> list[dict]:
    """The runs a sweep left in ``work`` (its logs), for aggregating runs made by more than one sweep."""
    runs = []
    for log in sorted(work.glob("seed*-threads*.jsonl")):
        stem = log.name.removesuffix(".jsonl")
        seed, threads = (int(x) for x in re.match(r"seed(\d+)-threads(\d+)", stem).groups())
        saved = work / f"{stem}.json"
        if saved.is_file():
            run = json.loads(saved.read_text())
        else:  # a run of an older margins.py: its summary line only
            out = (work / f"{stem}.out").read_text() if (work / f"{stem}.out").is_file() else ""
            lines = [line for line in out.splitlines() if " in " in line and ("passed" in line or "failed" in line)]
            summary = lines[-1].strip("= ") if lines else "(unfinished)"
            run = {"seed": seed, "threads": threads, "seconds": None, "summary": summary,
                   "exit_code": 0 if lines and "failed" not in summary and "error" not in summary else 1}
        runs.append({**run, "checks": [json.loads(line) for line in log.read_text().splitlines()]})
    return runs


def margin(op: str, value: float, threshold: float) -> float:
    """How far ``value`` sits on the safe side of ``threshold`` (negative: the check fails)."""
    if op in (">", ">="):
        return value - threshold
    if op in ("<", "<="):
        return threshold - value
    return 0.0 if value == threshold else -abs(value - threshold)


def holds(op: str, value: float, threshold: float) -> bool:
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold,
            "==": value == threshold}[op]


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per assertion name: threshold, worst value (and where), margin, how many runs measured it."""
    by_name: dict[str, list[dict]] = {}
    for run in runs:
        for row in run["checks"]:
            by_name.setdefault(row["name"], []).append(row)
    table = []
    for name, rows in by_name.items():
        worst = min(rows, key=lambda r: margin(r["op"], r["value"], r["threshold"]))
        values = [r["value"] for r in rows]
        table.append({
            "name": name,
            "test": worst["test"],
            "op": worst["op"],
            "threshold": worst["threshold"],
            "worst": worst["value"],
            "worst_at": {"seed": worst["seed"], "threads": worst["threads"],
                         **{a: worst.get(a, DEFAULTS[a]) for a in AXES}},
            "best": max(values) if worst["op"] in (">", ">=") else min(values),
            "margin": margin(worst["op"], worst["value"], worst["threshold"]),
            "holds_everywhere": all(holds(r["op"], r["value"], r["threshold"]) for r in rows),
            "measurements": len(rows),
        })
    return sorted(table, key=lambda r: (r["test"] or "", r["name"]))


def by_axis(runs: list[dict]) -> tuple[list[str], list[dict]]:
    """Per assertion, the worst value seen at each value of each axis that varied: (columns, rows). For the
    arithmetic axes: one column where all of them are at their defaults, then one per other value."""
    def value(row: dict, axis: str) -> str:
        return str(row.get(axis, DEFAULTS.get(axis)))

    def at_defaults(row: dict) -> bool:
        return all(value(row, a) == DEFAULTS[a] for a in AXES)

    rows_all = [row for run in runs for row in run["checks"]]
    columns: list[tuple[str, object]] = []
    for axis in ("seed", "threads"):
        values = sorted({value(r, axis) for r in rows_all})
        if len(values) > 1:
            columns += [(f"{axis}={v}", lambda r, a=axis, v=v: value(r, a) == v) for v in values]
    others = [(axis, v) for axis in AXES for v in sorted({value(r, axis) for r in rows_all}) if v != DEFAULTS[axis]]
    if others:
        columns.append(("arithmetic defaults", at_defaults))
        columns += [(f"{axis}={v}", lambda r, a=axis, v=v: value(r, a) == v) for axis, v in others]
    by_name: dict[str, list[dict]] = {}
    for row in rows_all:
        by_name.setdefault(row["name"], []).append(row)
    table = []
    for name, rows in sorted(by_name.items()):
        cells = {}
        for label, chosen in columns:
            seen = [r for r in rows if chosen(r)]
            if seen:
                w = min(seen, key=lambda r: margin(r["op"], r["value"], r["threshold"]))
                cells[label] = {"worst": w["value"], "holds": all(holds(r["op"], r["value"], r["threshold"]) for r in seen)}
        table.append({"name": name, "op": rows[0]["op"], "threshold": rows[0]["threshold"], "columns": cells})
    return [label for label, _ in columns], table


def print_by_axis(columns: list[str], table: list[dict], markdown: bool) -> None:
    head = ("assertion", "rule", *columns)
    lines = [(r["name"].replace("|", "\\|") if markdown else r["name"], f"{r['op']} {fmt(r['threshold'])}",
              *(fmt(c["worst"]) + ("" if c["holds"] else " FAILS") if (c := r["columns"].get(col)) else "-"
                for col in columns)) for r in table]
    _print_rows(head, lines, markdown)


def _print_rows(head: tuple, lines: list, markdown: bool) -> None:
    """A table as Markdown or as aligned columns."""
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    for line in (head, *lines):
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)))


def fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def print_table(table: list[dict], runs: int, markdown: bool) -> None:
    head = ("assertion", "rule", "worst seen", "at seed/threads[/arithmetic]", "margin", "runs")
    lines = []
    for r in table:
        rule = f"{r['op']} {fmt(r['threshold'])}"
        at = r["worst_at"]
        where = "/".join([str(at["seed"]), str(at["threads"]),
                          *(str(at[a]) for a in AXES if at.get(a, DEFAULTS[a]) != DEFAULTS[a])])
        mark = "exact" if r["op"] == "==" and r["holds_everywhere"] else fmt(r["margin"])
        if not r["holds_everywhere"]:
            mark += " FAILS"
        lines.append((r["name"], rule, fmt(r["worst"]), where, mark, str(r["measurements"])))
    _print_rows(head, lines, markdown)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-4", help="training seeds, e.g. 0-4 or 0,3 (default 0-4)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--isa", default="default", help="oneDNN ISA caps, e.g. default,AVX2 (default: default)")
    parser.add_argument("--onednn", default="on", help="oneDNN on, off or on,off (default on)")
    parser.add_argument("--precision", default="float32", help="the small model's training precision(s): float32, bfloat16")
    parser.add_argument("--by-axis", action="store_true", help="also print the worst value per value of each axis that varied")
    parser.add_argument("--marker", default="numeric", help='the tests to run (default "numeric")')
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the JSON (default {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--work", type=Path, default=None, help="where the runs' logs go (default: a temp folder)")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    parser.add_argument("--collect", type=Path, nargs="+", default=None, metavar="WORK",
                        help="aggregate the runs left in these --work folders; run nothing")
    parser.add_argument("--show", type=Path, default=None, metavar="JSON", help="print the table of a sweep's JSON; run nothing")
    args = parser.parse_args(argv)
    if args.show:
        saved = json.loads(args.show.read_text())
        print_table(saved["assertions"], len(saved["runs"]), args.markdown)
        if args.by_axis and "by_axis" in saved:
            print()
            print_by_axis(saved["by_axis"]["columns"], saved["by_axis"]["assertions"], args.markdown)
        return 0
    if not os.environ.get("EDGEKIT_TEST_DATA") and not (REPO.parent / "shared" / "data" / "mnist.npz").is_file():
        parser.error("set EDGEKIT_TEST_DATA to a Keras-layout mnist.npz")

    start = time.perf_counter()
    if args.collect:
        runs = [run for work in args.collect for run in collect(work)]
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="edgekit-margins-"))
        work.mkdir(parents=True, exist_ok=True)
        configs = [(s, int(t), {"isa": i, "onednn": o, "precision": p}) for s in parse_seeds(args.seeds)
                   for t in args.threads.split(",") for i in args.isa.split(",") for o in args.onednn.split(",")
                   for p in args.precision.split(",")]
        for config in [c for c in configs if cannot_train(c[2])]:
            print(f"not run: {stem(*config)}: {cannot_train(config[2])}", flush=True)
            configs.remove(config)
        print(f"{len(configs)} runs of pytest -m {args.marker!r} {' '.join(extra)}; logs in {work}", flush=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            runs = list(pool.map(lambda c: run_one(c[0], c[1], c[2], work, args.marker, extra), configs))
    table = aggregate(runs)
    print()
    print_table(table, len(runs), args.markdown)
    columns, axis_table = by_axis(runs)
    if args.by_axis:
        print()
        print_by_axis(columns, axis_table, args.markdown)

    result = {
        "command": "python scripts/margins.py " + " ".join(sys.argv[1:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "seconds": round(time.perf_counter() - start, 1),
        "runs": [{k: v for k, v in r.items() if k != "checks"} for r in runs],
        "assertions": table,
        "by_axis": {"columns": columns, "assertions": axis_table},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    failed_runs = [r for r in runs if r["exit_code"] != 0]
    short = [r["name"] for r in table if not r["holds_everywhere"]]
    print(f"\n{len(table)} assertions over {len(runs)} runs; {len(short)} fail somewhere; "
          f"{len(failed_runs)} run(s) exited non-zero; wrote {args.out}")
    return 1 if short or failed_runs else 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
