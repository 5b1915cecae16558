"""The Pi check's comparison and its pytest plugin, without qemu: they must catch a mismatch, not just pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HELPER = REPO / "scripts" / "pi_check_helper.py"


def _write(tmp: Path, name: str, rows: list[dict]) -> Path:
    p = tmp / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _compare(tmp: Path, model: str, native: list[dict], pi: list[dict]):
    images = tmp / "images.txt"
    images.write_text("a.png\t7\nb.png\t2\n")
    (tmp / "n.err").write_text("")
    (tmp / "p.err").write_text("")
    (tmp / "t").write_text("0.5\t9.0\n")
    args = [sys.executable, str(HELPER), "compare", model, str(_write(tmp, "n.jsonl", native)),
            str(_write(tmp, "p.jsonl", pi)), str(images), str(tmp / "n.err"), str(tmp / "p.err"), str(tmp / "t"),
            str(tmp / "out.json")]
    proc = subprocess.run(args, capture_output=True, text=True)
    return proc, json.loads((tmp / "out.json").read_text())


def _row(path, digit, conf, box=(1, 2, 20, 20)):
    return {"path": f"/x/{path}", "digit": digit, "confidence": conf, "box": list(box)}


def test_identical_predictions_pass(tmp_path):
    rows = [_row("a.png", 7, 0.99), _row("b.png", 2, 0.95)]
    proc, out = _compare(tmp_path, "model_float32.tflite", rows, [dict(r) for r in rows])
    assert proc.returncode == 0, proc.stdout
    assert out["ok"] and out["digits_equal"] == 2 and out["correct_vs_label_aarch64"] == 2


def test_a_different_digit_fails(tmp_path):
    native = [_row("a.png", 7, 0.99), _row("b.png", 2, 0.95)]
    pi = [_row("a.png", 7, 0.99), _row("b.png", 3, 0.95)]
    proc, out = _compare(tmp_path, "model_float32.onnx", native, pi)
    assert proc.returncode == 1 and not out["ok"]
    assert "b.png: digit 2 on x86-64, 3 on aarch64" in proc.stdout


@pytest.mark.parametrize(("model", "delta", "ok"), [
    ("model_float32.tflite", 0.03, True), ("model_float32.tflite", 0.06, False),
    ("model_int8.tflite", 0.049, True), ("model_int8.onnx", 0.1, False),
])
def test_confidence_tolerance(tmp_path, model, delta, ok):
    native = [_row("a.png", 7, 0.5), _row("b.png", 2, 0.9)]
    pi = [_row("a.png", 7, 0.5 + delta), _row("b.png", 2, 0.9)]
    proc, out = _compare(tmp_path, model, native, pi)
    assert out["ok"] is ok and (proc.returncode == 0) is ok


def test_missing_predictions_fail(tmp_path):
    native = [_row("a.png", 7, 0.99), _row("b.png", 2, 0.95)]
    proc, out = _compare(tmp_path, "model_int8.onnx", native, native[:1])
    assert proc.returncode == 1
    assert any("aarch64: 1 of 2 images predicted" in p for p in out["problems"])


def test_plugin_skips_workstation_imports_but_not_from_device_code(tmp_path):
    """A missing workstation module needed by a test or by the exporter is a skip; needed by edgekit.runtime, a failure."""
    tests = tmp_path / "tests"
    tests.mkdir()
    for part, module in (("runtime", "tensorflow_pi_check_missing"), ("export", "tensorflow_pi_check_missing")):
        folder = tmp_path / "lib" / "edgekit" / part
        folder.mkdir(parents=True)
        (folder / "fake.py").write_text(f"def load():\n    import {module}  # noqa\n")
    (tests / "test_x.py").write_text(
        "import importlib.util, pathlib\n"
        "def _load(part):\n"
        "    p = pathlib.Path(__file__).parent.parent / 'lib' / 'edgekit' / part / 'fake.py'\n"
        "    spec = importlib.util.spec_from_file_location('fake_' + part, p)\n"
        "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m\n"
        "def test_needs_keras():\n    import keras_pi_check_missing  # noqa\n"
        "def test_exporter_needs_tf():\n    _load('export').load()\n"
        "def test_runtime_bug():\n    _load('runtime').load()\n"
        "def test_plain():\n    assert 1 + 1 == 2\n"
    )
    plugin = (REPO / "scripts" / "pi_pytest_plugin.py").read_text()
    # the same plugin, with made-up module names so this host's real TensorFlow cannot satisfy the imports
    plugin = plugin.replace("WORKSTATION_ONLY = {", 'WORKSTATION_ONLY = {"keras_pi_check_missing", "tensorflow_pi_check_missing", ')
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "pi_plugin_under_test.py").write_text(plugin)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "pi_plugin_under_test", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "plugins"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert "1 failed, 1 passed, 2 skipped" in proc.stdout, proc.stdout
    assert "FAILED tests/test_x.py::test_runtime_bug" in proc.stdout
    assert "needs keras_pi_check_missing (workstation only" in proc.stdout
