"""The runtime's fixtures: real exported models (the session's ``small_exports``, made once with edgekit's
exporter from the shared small model) and camera-like frames made from real MNIST test digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.toolkit.synthetic import mnist_frames


@pytest.fixture(scope="session")
def models(request) -> dict[str, Path]:
    """{"float32.tflite", "int8.tflite", "float32.onnx"} -> the exported file (the session's ``small_exports``).

    The small Keras model and its exports are asked for only here, when needed: on the emulated Raspberry Pi
    (scripts/pi_pytest_plugin.py) this fixture's value is the models exported on x86-64, and the device,
    which has no Keras, must not have to train or load one first.
    """
    small_exports = request.getfixturevalue("small_exports")
    found = {name: small_exports.folder / f"model_{name}" for name in ("float32.tflite", "int8.tflite", "float32.onnx")}
    for name, path in found.items():
        assert path.is_file(), f"export_model did not write {name}"
    return found


@pytest.fixture(scope="session")
def digits(mnist):
    """300 real MNIST test digits (uint8 28x28) and their labels, the same for every test."""
    return mnist.x_test[:300], mnist.y_test[:300].astype(int)


@pytest.fixture(scope="session")
def camera_frames(digits):
    """The same 300 digits photographed: [(BGR frame, label, true box)]."""
    x, y = digits
    return list(mnist_frames(x, y, seed=1234))
