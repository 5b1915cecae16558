"""The main job end to end on real MNIST, through the three real commands as a user types them:
``edgekit train`` (12,000 training images, one epoch, >= 97 % on the 10,000 test images) ->
``edgekit export --format all`` -> ``edgekit validate --limit 2000``, which must pass and write its JSON and HTML
report. CI's one real training run: the train command's own end-to-end checks are here too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from measured import check, record_parity_report

pytestmark = [pytest.mark.e2e, pytest.mark.numeric]
SEED = int(os.environ.get("EDGEKIT_TEST_SEED", "0"))  # scripts/margins.py sweeps it

def edgekit(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    exe = shutil.which("edgekit", path=str(Path(sys.executable).parent)) or shutil.which("edgekit")
    assert exe, "the edgekit console script is not installed; pip install -e '.[dev]'"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "EDGEKIT_DATA": ""}
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def test_train_export_validate(mnist_path, tmp_path):
    commands = edgekit("--help").stdout
    missing = [c for c in ("train", "export", "validate") if not re.search(rf"^\s*│?\s*{c}\b", commands, re.M)]
    assert not missing, f"waiting on the command(s) {missing}: `edgekit --help` does not list them yet"

    run = tmp_path / "run"
    train = edgekit("train", "--data", mnist_path, "--limit", 12000, "--epochs", 1, "--seed", SEED, "--out", run)
    assert train.returncode == 0, train.stderr[-2000:]
    assert (run / "model.keras").is_file() and (run / "history.json").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_images"] == 12000 and metrics["epochs"] == 1 and metrics["test"]["images"] == 10000
    check("e2e: Keras test accuracy, 12,000 images x 1 epoch", metrics["test"]["accuracy"], ">=", 0.97)
    # The closing summary names the accuracy, the time and the run folder; the progress reached epoch 1/1.
    assert f"test accuracy {metrics['test']['accuracy']:.2%}" in train.stdout
    assert "trained 1 epoch(s) on 12,000 images in" in train.stdout and str(run) in train.stdout
    assert "epoch 1/1" in train.stderr

    export = edgekit("export", "--model", run / "model.keras", "--format", "all", "--data", mnist_path,
                     "--out", run / "export")
    assert export.returncode == 0, export.stderr[-2000:]
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    files = {a["file"] for a in manifest["artifacts"]}
    assert {"model_float32.tflite", "model_float16.tflite", "model_dynamic.tflite", "model_int8.tflite",
            "model_float32.onnx", "model_int8.onnx"} <= files

    # One epoch on 12,000 images is not a finished model: its int8 and dynamic-range exports lose ~0.5 point
    # (measured: 96.70 % -> 96.20 % on these 2,000 images), where the default 0.3 is for trained models (the
    # README's full-MNIST table). The float checks keep their defaults.
    report_json, report_html = tmp_path / "parity.json", tmp_path / "parity.html"
    validate = edgekit("validate", run / "export", "--data", mnist_path, "--limit", 2000, "--latency-runs", 50,
                       "--max-drop", 1.0, "--json", report_json, "--html", report_html)
    assert validate.returncode == 0, validate.stdout + validate.stderr[-2000:]
    for name in files:  # the table has a passing row per artifact
        row = next(line for line in validate.stdout.splitlines() if line.startswith(name + " "))
        assert row.endswith("✓"), row
    data = json.loads(report_json.read_text())
    record_parity_report("e2e validate:", data)
    assert data["passed"] and data["images"] == 2000 and len(data["artifacts"]) == len(files)
    check("e2e validate: Keras accuracy %, first 2,000 test images", data["reference"]["accuracy"], ">=", 95.0)
    int8 = next(a for a in data["artifacts"] if a["name"] == "model_int8.tflite")
    assert int8["size_mb"] <= 1.10 and -int8["delta_accuracy"] <= data["thresholds"]["quantized_max_drop"]
    html = report_html.read_text(encoding="utf-8")
    assert "Training run" in html and "The training data" in html  # the run folder was found beside model.keras
    assert html.count('<img src="data:image/png;base64,') >= 1 + len(files) + 3
