"""Peak memory of `edgekit predict photo.jpg` on the device install, and what each dependency choice costs (issue 25).

    python benchmarks/memory.py --data ../shared/data/mnist.npz [--before-wheel OLD.whl] [--work DIR] [--runs 5]

Builds edgekit's wheel (as benchmarks/wheel.py does) and installs it into fresh virtual environments, one per way a
device could be set up:

- ``default``: ``pip install edgekit`` (opencv-python with its Qt GUI, typer as pyproject.toml bounds it, onnxruntime);
- ``headless``: ``pip install --no-deps edgekit`` then numpy, ai-edge-litert, opencv-python-headless and typer as
  pyproject.toml bounds it (docs/raspberry-pi.md's device install);
- ``headless, typer 0.29+``: the same with the newest typer (0.29 made pydantic a dependency): the row that says
  whether pyproject's ``typer<0.29`` can be raised;
- with ``--before-wheel``: ``default, before`` and ``headless, before``, another build of edgekit (e.g. the main
  branch's) installed the same two ways with its own typer requirement, measured in the same run.

In each it measures, with ``/usr/bin/time -f %M`` (peak resident set, kB), the median of ``--runs`` fresh processes:
Python alone, the bare runtime (``Classifier().classify(cv2.imread(photo))``: numpy, OpenCV, LiteRT, the bundled
model), ``edgekit predict photo.jpg`` and ``edgekit --help``. Goal: predict <= 80 MB. Writes
benchmarks/results/memory.json. Needs the package index (or a warm pip cache)."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from wheel import build_wheel  # noqa: E402

from edgekit.runtime.files import write_json  # noqa: E402

GOAL_MB = 80.0
BASE = ["numpy", "ai-edge-litert", "opencv-python-headless"]


def typer_requirement(wheel: Path) -> str:
    """The wheel's own requirement on typer, e.g. ``typer<0.29,>=0.12``."""
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    return next(line.split(":", 1)[1].strip().replace(" ", "").replace("(", "").replace(")", "")
                for line in meta.splitlines() if line.startswith("Requires-Dist:") and line.split(":", 1)[1].strip().startswith("typer"))


def variants(wheel: Path, before: Path | None) -> list[tuple[str, Path, list[str] | None]]:
    """(name, wheel, dependencies: None for the wheel's own) for every install measured."""
    rows = [("default", wheel, None),
            ("headless", wheel, BASE + [typer_requirement(wheel)]),
            ("headless, typer 0.29+", wheel, BASE + ["typer>=0.29"])]
    if before is not None:
        rows += [("default, before", before, None), ("headless, before", before, BASE + [typer_requirement(before)])]
    return rows


BARE = "import cv2, sys; from edgekit.runtime import Classifier; print(Classifier().classify(cv2.imread(sys.argv[1])).digit)"


def peak_kb(cmd: list[str], runs: int) -> tuple[float, list[int]]:
    """Median peak RSS (kB) of ``runs`` fresh processes of ``cmd``, and every run's."""
    seen = []
    for _ in range(runs):
        p = subprocess.run(["/usr/bin/time", "-f", "%M", *map(str, cmd)], capture_output=True, text=True)
        if p.returncode not in (0,):
            raise SystemExit(f"{' '.join(map(str, cmd))} failed ({p.returncode}): {p.stderr.strip().splitlines()[-2:]}")
        seen.append(int(p.stderr.strip().splitlines()[-1]))
    return statistics.median(seen), seen


def install(venv: Path, python: str, wheel: Path, deps: list[str] | None) -> dict:
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if deps is None:
        subprocess.run([*pip, str(wheel)], check=True)
    else:
        subprocess.run([*pip, "--no-deps", str(wheel)], check=True)
        subprocess.run([*pip, *deps], check=True)
    freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.split()
    return {p.split("==")[0].lower(): p.split("==")[-1] for p in freeze if "==" in p}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a Keras-layout mnist.npz (one test digit is photographed)")
    ap.add_argument("--python", default=str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"))
    ap.add_argument("--work", help="keep the wheel and the venvs here (reused when present)")
    ap.add_argument("--before-wheel", help="another edgekit wheel (e.g. built from main) measured the same way, as 'before'")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "memory.json"))
    args = ap.parse_args()

    import cv2

    from edgekit.runtime.benchmark import camera_like_frames

    work = Path(args.work or tempfile.mkdtemp(prefix="edgekit-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    with np.load(args.data) as npz:
        frame, label = next(camera_like_frames(1, npz["x_test"][:1], npz["y_test"][:1], seed=3))
    photo = work / "photo.jpg"
    cv2.imwrite(str(photo), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])

    wheels = sorted((work / "wheel" / "dist").glob("edgekit-*.whl")) if (work / "wheel").exists() else []
    wheel = wheels[0] if wheels else build_wheel(work / "wheel", True)
    rows = []
    before = Path(args.before_wheel).resolve() if args.before_wheel else None
    for name, whl, deps in variants(wheel, before):
        venv = work / ("venv-" + name.replace(", ", "-").replace(" ", "").replace("+", "plus"))
        print(f"{name}: installing ...", file=sys.stderr)
        packages = json.loads((venv / "packages.json").read_text()) if (venv / "packages.json").exists() else None
        if packages is None:
            packages = install(venv, args.python, whl, deps)
            (venv / "packages.json").write_text(json.dumps(packages))
        py, edgekit = venv / "bin" / "python", venv / "bin" / "edgekit"
        print(f"{name}: measuring ...", file=sys.stderr)
        measured = {
            "python": peak_kb([py, "-c", "pass"], args.runs),
            "bare_runtime": peak_kb([py, "-c", BARE, photo], args.runs),
            "predict": peak_kb([edgekit, "predict", photo], args.runs),
            "help": peak_kb([edgekit, "--help"], args.runs),
        }
        rows.append({"variant": name, "build": "this checkout" if whl == wheel else "--before-wheel", "typer_requirement": typer_requirement(whl),
                     "packages": {k: packages.get(k) for k in (
            "opencv-python", "opencv-python-headless", "typer", "pydantic", "click", "numpy", "ai-edge-litert", "onnxruntime")},
            **{f"{k}_mb": v[0] / 1024 for k, v in measured.items()}, "runs_kb": {k: v[1] for k, v in measured.items()}})

    lines = [f"peak resident memory, MB (median of {args.runs} fresh processes, /usr/bin/time -f %M); goal: predict <= {GOAL_MB:.0f} MB",
             "", f"{'install':<24}{'python':>8}{'bare runtime':>14}{'predict':>9}{'--help':>8}  opencv / typer"]
    for r in rows:
        p = r["packages"]
        cv = f"headless {p['opencv-python-headless']}" if p.get("opencv-python-headless") else f"GUI {p.get('opencv-python')}"
        ok = "ok" if r["predict_mb"] <= GOAL_MB else "MISS"
        lines.append(f"{r['variant']:<24}{r['python_mb']:>8.1f}{r['bare_runtime_mb']:>14.1f}{r['predict_mb']:>9.1f}{r['help_mb']:>8.1f}"
                     f"  {cv} / typer {p.get('typer')}{' + pydantic' if p.get('pydantic') else ''}  {ok}")
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"goal_predict_mb": GOAL_MB, "runs": args.runs, "photo_label": label, "before_wheel": args.before_wheel, "rows": rows,
              "host": {"machine": platform.machine(), "python": platform.python_version()}}
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
