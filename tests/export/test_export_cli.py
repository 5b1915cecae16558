"""`edgekit export` through Typer's CliRunner: progress lines, one-line errors, exit codes."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from edgekit.runtime.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT
from edgekit.toolkit.cli import app

runner = CliRunner()


def edgekit(*args):
    return runner.invoke(app, ["export", *map(str, args)])


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgekit: error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_success_prints_a_line_per_artifact(small_model_path, tmp_path):
    out = tmp_path / "out"
    result = edgekit("--model", small_model_path, "--format", "onnx", "--out", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    [artifact] = manifest["artifacts"]
    line = next(l for l in result.stdout.splitlines() if l.strip().startswith("onnx"))
    assert re.fullmatch(r"\s*onnx\s+none\s+\d+\.\d\d MB\s+\d+\.\d s\s+model_float32\.onnx", line), line
    assert f"{artifact['bytes'] / 1e6:.2f} MB" in line
    assert "manifest.json" in result.stdout.splitlines()[-1]


@pytest.mark.parametrize("args, expected", [
    (["--format", "tflte"], "did you mean 'tflite'?"),
    (["--format", "onnx", "--quantize", "float16"], "unsupported combination onnx/float16"),
    (["--format", "tflite", "--quantize", "int9"], "did you mean 'int8'?"),
    (["--calib-samples", "0"], "--calib-samples must be"),
    (["--opset", "5", "--format", "onnx"], "--opset must be"),
])
def test_bad_options(small_model_path, tmp_path, args, expected):
    result = edgekit("--model", small_model_path, "--out", tmp_path / "out", *args)
    assert result.exit_code == EXIT_BAD_INPUT
    assert expected in one_error_line(result)
    assert not (tmp_path / "out").exists()


def test_missing_model(tmp_path):
    result = edgekit("--model", tmp_path / "nope" / "model.keras", "--out", tmp_path / "out")
    assert result.exit_code == EXIT_BAD_INPUT
    assert "no such model file" in one_error_line(result)


def test_unloadable_model(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"this is not a keras zip")
    result = edgekit("--model", bad, "--out", tmp_path / "out")
    assert result.exit_code == EXIT_BAD_INPUT
    line = one_error_line(result)
    assert str(bad) in line and "cannot load the Keras model" in line
    assert not (tmp_path / "out").exists()


def test_missing_calibration_data(small_model_path, tmp_path):
    result = edgekit("--model", small_model_path, "--quantize", "int8", "--data", tmp_path / "no.npz",
                     "--out", tmp_path / "out")
    assert result.exit_code == EXIT_BAD_INPUT
    assert "no.npz" in one_error_line(result)
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder(small_model_path, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = edgekit("--model", small_model_path, "--quantize", "none", "--out", blocker / "sub")
    assert result.exit_code == EXIT_ENVIRONMENT
    assert "cannot create the output folder" in one_error_line(result)
    result = edgekit("--model", small_model_path, "--quantize", "none", "--out", blocker)
    assert result.exit_code == EXIT_ENVIRONMENT
    assert "is not a folder" in one_error_line(result)
