"""`edgekit train` from the command line: bad input is one line and exit 2; the end-to-end run on real MNIST."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgekit.toolkit.cli import app

runner = CliRunner()


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
        (["--epochs", "0"], "--epochs must be a positive number of passes, got 0"),
        (["--epochs", "nan"], "--epochs must be a positive number of passes, got nan"),
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
