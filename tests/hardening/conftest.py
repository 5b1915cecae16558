"""Shared pieces of the hardening tests: one export of the small model, bad model files, and the checks every
bad input must pass (one error line, the documented exit code, no traceback, nothing half-written)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.toolkit.cli import app

REPO = Path(__file__).resolve().parents[2]
BAD_KINDS = ("missing", "zero-byte", "truncated", "random-bytes", "wrong-format")

_runner = CliRunner()


# --- running the CLI --------------------------------------------------------------------------------

def cli(*args):
    """``edgekit ARGS`` in this process (Typer's CliRunner): result with .exit_code, .stdout, .stderr."""
    return _runner.invoke(app, [str(a) for a in args])


def subprocess_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("EDGEKIT_DEBUG", None)
    return env


def error_line(result, code: int) -> str:
    """Assert the documented exit code, exactly one ``edgekit: error:`` line (the last on stderr) and no
    traceback; return that line."""
    rc = result.exit_code if hasattr(result, "exit_code") else result.returncode
    stderr, stdout = result.stderr, result.stdout
    assert rc == code, f"exit {rc}, expected {code}\nstdout: {stdout}\nstderr: {stderr}"
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1, stderr
    assert stderr.strip().splitlines()[-1] == errors[0], stderr
    assert len(errors[0]) < 400, errors[0]
    return errors[0]


def listing(folder: Path) -> list[str]:
    """Every path under ``folder`` (hidden ones too), relative, sorted; [] when it does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def leftovers(folder: Path) -> list[str]:
    """Temporary or staging files that a clean failure must not leave."""
    return [p for p in listing(folder) if ".tmp" in p or "edgekit-export-" in p or p.endswith("~")]


# --- bad model files --------------------------------------------------------------------------------

def make_bad_model(kind: str, good: Path, wrong: Path, folder: Path, suffix: str | None = None) -> Path:
    """A bad stand-in for the model ``good`` in ``folder``, named with ``good``'s suffix (or ``suffix``):

    missing, zero-byte, truncated (the first half of the real file), random-bytes (the real file's length of
    seeded noise) or wrong-format (``wrong``, a real model of another format, renamed).
    """
    suffix = suffix or good.suffix
    path = Path(folder) / f"{kind}{suffix}"
    data = good.read_bytes()
    if kind == "missing":
        return path
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(6).bytes(len(data)))
    elif kind == "wrong-format":
        path.write_bytes(Path(wrong).read_bytes())
    else:
        raise ValueError(kind)
    return path


# --- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def exported(small_exports, tmp_path_factory) -> Path:
    """The small model's model_float32.tflite, model_int8.tflite and model_float32.onnx + their manifest: a
    folder of its own, taken from the session's one export (tests/conftest.py ``small_exports``)."""
    files = ["model_float32.tflite", "model_int8.tflite", "model_float32.onnx"]
    return small_exports.subset(files, tmp_path_factory.mktemp("hardening-export") / "export")


@pytest.fixture(scope="session")
def small_npz(mnist, tmp_path_factory) -> Path:
    """A small Keras-layout MNIST .npz (the first 3,000 training and 500 test images): quick to load."""
    path = tmp_path_factory.mktemp("small-npz") / "mnist-small.npz"
    np.savez(path, x_train=mnist.x_train[:3000], y_train=mnist.y_train[:3000],
             x_test=mnist.x_test[:500], y_test=mnist.y_test[:500])
    return path


@pytest.fixture(scope="session")
def lambda_model_path(tmp_path_factory) -> Path:
    """A real ``.keras`` file of MNIST shape whose graph holds a Lambda layer (arbitrary Python code)."""
    import keras

    from edgekit.runtime.contract import INPUT_NAME, INPUT_SHAPE, NUM_CLASSES

    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME),
            keras.layers.Lambda(lambda x: x * 2.0),
            keras.layers.Flatten(),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"),
        ]
    )
    path = tmp_path_factory.mktemp("lambda") / "model.keras"
    model.save(path)
    return path


@pytest.fixture
def digit_png(mnist, tmp_path) -> Path:
    """A real MNIST test digit written as a PNG."""
    import cv2

    path = tmp_path / "digit.png"
    assert cv2.imwrite(str(path), mnist.x_test[0])
    return path
