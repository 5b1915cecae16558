"""The wheel: everything under the edgekit namespace, and a base install without TensorFlow."""

from __future__ import annotations

import email
import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy so nothing (build/, *.egg-info) lands in the shared working tree.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    for part in ("toolkit", "export", "runtime"):
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".staging*"))
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(dist), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (found,) = dist.glob("edgekit-*.whl")
    return found


def test_wheel_holds_the_three_parts_under_edgekit(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    code = [n for n in names if ".dist-info/" not in n]
    tops = {n.split("/")[0] for n in code}
    assert tops == {"edgekit"}, tops  # nothing at top level: no bare export/, runtime/, toolkit/
    for module in ("edgekit/toolkit/cli.py", "edgekit/toolkit/train.py", "edgekit/toolkit/data.py",
                   "edgekit/toolkit/model.py", "edgekit/toolkit/plots.py", "edgekit/runtime/contract.py",
                   "edgekit/runtime/errors.py", "edgekit/export/__init__.py"):
        assert module in code, module
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)
    assert "edgekit/__init__.py" not in code  # a namespace package


def test_base_requirements_have_no_tensorflow(wheel):
    with zipfile.ZipFile(wheel) as z:
        (meta_name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(z.read(meta_name))
        entry_points = z.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    requires = meta.get_all("Requires-Dist") or []
    base = [r for r in requires if "extra ==" not in r]
    names = {re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0].lower() for r in base}
    assert {"numpy", "opencv-python", "typer", "ai-edge-litert", "onnxruntime"} <= names, names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "tf-keras"}, names
    train = " ".join(r for r in requires if "extra == \"train\"" in r or "extra == 'train'" in r)
    assert "tensorflow" in train and "tf2onnx" in train
    assert "edgekit = edgekit.toolkit.cli:main" in entry_points


def test_wheel_carries_the_bundled_model_within_1_5_mb(wheel):
    """runtime/bundled/ is package data: the model, its recorded sha256 and its validate report, adding at most
    1.5 MB to the download (measured: 0.983 MB compressed, the wheel 0.110 MB -> 1.093 MB; benchmarks/wheel.py)."""
    folder = "edgekit/runtime/bundled/"
    with zipfile.ZipFile(wheel) as z:
        infos = {i.filename: i for i in z.infolist() if i.filename.startswith(folder)}
        assert set(infos) == {folder + n for n in ("model_int8.tflite", "model_int8.tflite.sha256", "validate.json")}
        model = z.read(folder + "model_int8.tflite")
        recorded = z.read(folder + "model_int8.tflite.sha256").decode().split()[0]
    assert hashlib.sha256(model).hexdigest() == recorded
    assert sum(i.compress_size for i in infos.values()) <= 1.5e6
