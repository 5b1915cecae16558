"""`edgekit train` from the command line: bad input is one line and exit 2; the end-to-end run on real MNIST."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.toolkit.cli import app

runner = CliRunner()


def edgekit_exe() -> str:
    found = shutil.which("edgekit", path=str(Path(sys.executable).parent)) or shutil.which("edgekit")
    if not found:
        pytest.fail("the edgekit console script is not installed; pip install -e '.[dev]'")
    return found


def one_error_line(result) -> str:
    text = (result.stderr or result.output).strip()
    assert "Traceback" not in result.output, result.output
    lines = [l for l in text.splitlines() if l.startswith("edgekit: error:")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nowhere/mnist.npz"], "no such file or folder"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--learning-rate", "-1"], "--learning-rate must be a positive number"),
        (["--resume", "--epochs", "3"], "--resume continues the stored options; drop --epochs"),
        (["--resume"], "no checkpoint to resume from"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output
    assert message in one_error_line(result)


def test_corrupt_data_file_is_exit_2(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    result = runner.invoke(app, ["train", "--data", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "mnist.npz: not a readable .npz" in one_error_line(result)


def test_unknown_recipe_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["train", "--recipe", "fast", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "fast" in result.output


def test_help_lists_the_options_and_imports_no_tensorflow():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from edgekit.toolkit.cli import app\n"
        "r = CliRunner().invoke(app, ['train', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        "print('TF-LOADED' if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) else 'TF-FREE')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    for option in ("--data", "--epochs", "--batch-size", "--learning-rate", "--augment / --no-augment",
                   "--val-split", "--seed", "--out", "--resume", "--limit", "--recipe"):
        assert option in out, option
    assert out.strip().endswith("TF-FREE")


@pytest.mark.e2e
def test_one_epoch_on_12000_real_images_reaches_97_percent(mnist_path, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "EDGEKIT_DATA": ""}
    proc = subprocess.run(
        [edgekit_exe(), "train", "--data", str(mnist_path), "--limit", "12000", "--epochs", "1", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_images"] == 12000 and metrics["epochs"] == 1 and metrics["test"]["images"] == 10000
    assert metrics["test"]["accuracy"] >= 0.97, metrics["test"]
    # The closing summary names the accuracy, the time and the run folder; the progress reached epoch 1/1.
    assert f"test accuracy {metrics['test']['accuracy']:.2%}" in proc.stdout
    assert "trained 1 epoch(s) on 12,000 images in" in proc.stdout and str(out) in proc.stdout
    assert "epoch 1/1" in proc.stderr
