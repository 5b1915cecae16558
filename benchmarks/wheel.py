"""The wheel with its bundled model, installed the way a Raspberry Pi user would (issue 13): one table, one run.

    python benchmarks/wheel.py --data ../shared/data/mnist.npz [--python /usr/bin/python3.11]

1. Builds the wheel twice from copies of this repository (``pip wheel --no-deps``): as it is, and without
   ``runtime/bundled/``; the difference is what the bundled model adds to the download (goal: <= 1.5 MB).
2. Installs the wheel into a fresh virtual environment of ``--python`` (default: this interpreter's base
   Python) with its base dependencies only (numpy, opencv-python, typer, ai-edge-litert, onnxruntime from the
   package index; no TensorFlow), and checks that neither TensorFlow nor Keras is importable there.
3. Photographs a few real MNIST test digits the way a camera sees them (``edgekit.toolkit.synthetic``: ink on
   paper, a lighting gradient, noise, JPEG, 640x480) and runs the installed ``edgekit predict photo.jpg`` on
   each -- no model argument, so the bundled model reads them -- then ``edgekit info``.

Writes benchmarks/results/wheel.json. Needs the network to the package index (or a warm pip cache).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GOAL_GROWTH_MB = 1.5
N_PHOTOS = 10


def build_wheel(dest: Path, with_bundle: bool) -> Path:
    src = dest / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    skip = ["__pycache__", "*.pyc", ".staging*"] + ([] if with_bundle else ["bundled"])
    for part in ("toolkit", "export", "runtime"):
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns(*skip))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(dest / "dist"), str(src)], check=True)
    (wheel,) = (dest / "dist").glob("edgekit-*.whl")
    return wheel


def bundled_entries(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as z:
        infos = [i for i in z.infolist() if "/runtime/bundled/" in i.filename]
        return {i.filename: {"bytes": i.file_size, "compressed": i.compress_size} for i in infos}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="MNIST (Keras-layout .npz) for the photographed test digits")
    parser.add_argument("--python", default=str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"),
                        help="The Python the fresh venv is made from (default: this interpreter's base Python)")
    parser.add_argument("--out", default=str(HERE / "results" / "wheel.json"))
    args = parser.parse_args()

    import cv2
    import numpy as np

    from edgekit.toolkit.data import load_mnist
    from edgekit.toolkit.synthetic import mnist_frames

    work = Path(tempfile.mkdtemp(prefix="edgekit-wheel-"))
    try:
        t0 = time.perf_counter()
        with_model = build_wheel(work / "with", True)
        without = build_wheel(work / "without", False)
        entries = bundled_entries(with_model)
        size, size_without = with_model.stat().st_size, without.stat().st_size
        growth = size - size_without

        venv = work / "venv"
        run([args.python, "-m", "venv", venv], check=True)
        py, edgekit = venv / "bin" / "python", venv / "bin" / "edgekit"
        started = time.perf_counter()
        install = run([py, "-m", "pip", "install", "--quiet", with_model])
        install_s = time.perf_counter() - started
        if install.returncode != 0:
            print(install.stderr[-3000:], file=sys.stderr)
            return 1
        freeze = run([py, "-m", "pip", "freeze"]).stdout.split()
        probe = run([py, "-c", "import importlib.util as u; print([m for m in ('tensorflow', 'keras', 'tf_keras', 'tf2onnx') if u.find_spec(m)])"])
        tf_free = probe.returncode == 0 and probe.stdout.strip() == "[]"
        python_version = run([py, "-c", "import platform; print(platform.python_version())"]).stdout.strip()

        mnist = load_mnist(args.data)
        photos = []
        for k, (frame, label, _) in enumerate(mnist_frames(mnist.x_test[:N_PHOTOS], mnist.y_test[:N_PHOTOS], seed=13)):
            path = work / f"photo{k}.jpg"
            cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
            photos.append((path, int(label), frame.shape))
        results = []
        for path, label, shape in photos:
            started = time.perf_counter()
            p = run([edgekit, "predict", path, "--json"], cwd=work)
            seconds = time.perf_counter() - started
            row = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else {}
            said = [line for line in p.stderr.splitlines() if line.startswith("edgekit:")]
            results.append({"photo": path.name, "shape": list(shape), "label": label, "digit": row.get("digit"),
                            "confidence": row.get("confidence"), "exit": p.returncode, "seconds": round(seconds, 2),
                            "stderr_edgekit_lines": said})
        info = run([edgekit, "info", "--json"])
        info_json = json.loads(info.stdout) if info.returncode == 0 else None
        total_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)

    right = sum(r["digit"] == r["label"] for r in results)
    bundled_said = all(any("using the bundled one" in s for s in r["stderr_edgekit_lines"]) for r in results)
    ok = growth <= GOAL_GROWTH_MB * 1e6 and tf_free and right == len(results) and bundled_said
    report = {
        "what": "edgekit's wheel with the bundled model: size, and `edgekit predict photo.jpg` in a fresh venv without TensorFlow",
        "ok": ok,
        "goal": {"wheel_growth_mb_max": GOAL_GROWTH_MB, "photos_read": "all"},
        "wheel": {"name": with_model.name, "bytes": size,
                  "bytes_without_bundled_model": size_without, "growth_bytes": growth,
                  "growth_mb": round(growth / 1e6, 3), "bundled_entries": entries},
        "venv": {"python": python_version, "made_from": args.python, "install_seconds": round(install_s, 1),
                 "tensorflow_or_keras_importable": not tf_free, "packages": freeze},
        "predict": results,
        "digits_right": f"{right}/{len(results)}",
        "info": {k: info_json[k] for k in ("bytes", "sha256", "format", "bundled", "validated")} if info_json else None,
        "recipe": (info_json or {}).get("metadata", {}).get("training"),
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "seconds": round(total_s, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)

    print(f"{'wheel':<38}{size / 1e6:>8.3f} MB")
    print(f"{'wheel without runtime/bundled/':<38}{size_without / 1e6:>8.3f} MB")
    print(f"{'growth (goal <= 1.5 MB)':<38}{growth / 1e6:>8.3f} MB  {'✓' if growth <= GOAL_GROWTH_MB * 1e6 else '✗'}")
    print(f"{'fresh venv: Python ' + python_version + ', TensorFlow/Keras':<38}{'absent ✓' if tf_free else 'PRESENT ✗':>11}")
    print(f"{'edgekit predict photo.jpg (bundled)':<38}{right:>5}/{len(results)} digits right  {'✓' if right == len(results) else '✗'}")
    for r in results:
        print(f"  {r['photo']:<12} label {r['label']}  read {r['digit']}  ({r['confidence']})  {r['seconds']:.1f} s")
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
