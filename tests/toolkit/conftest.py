"""Fixtures for the toolkit tests: small real MNIST subsets written in the Keras and IDX layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit_files import write_npz

SMALL_TRAIN = 1200
SMALL_TEST = 300


@pytest.fixture(scope="session")
def small_arrays(mnist) -> dict:
    """Real MNIST: the first 1,200 training and 300 test images, as the Keras layout's four arrays."""
    return {
        "x_train": mnist.x_train[:SMALL_TRAIN].copy(),
        "y_train": mnist.y_train[:SMALL_TRAIN].copy(),
        "x_test": mnist.x_test[:SMALL_TEST].copy(),
        "y_test": mnist.y_test[:SMALL_TEST].copy(),
    }


@pytest.fixture(scope="session")
def small_npz(small_arrays, tmp_path_factory) -> Path:
    return write_npz(tmp_path_factory.mktemp("small-mnist") / "mnist-small.npz", **small_arrays)
