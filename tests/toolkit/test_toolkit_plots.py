"""The figures: real PNGs of the right size, and the numbers behind them."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from edgekit.toolkit import plots


def decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def test_confusion_matrix_counts(mnist):
    y = mnist.y_test[:500].astype(np.int64)
    wrong = y.copy()
    wrong[:50] = (wrong[:50] + 1) % 10
    m = plots.confusion_matrix(y, wrong)
    assert m.shape == (10, 10) and m.sum() == 500 and np.trace(m) == 450
    np.testing.assert_array_equal(m.sum(axis=1), np.bincount(y, minlength=10))
    acc = plots.per_class_accuracy(m)
    assert acc[0] == pytest.approx(m[0, 0] / m[0].sum())
    assert plots.per_class_accuracy(np.zeros((2, 2)))[0] is None
    with pytest.raises(ValueError):
        plots.confusion_matrix([1, 2], [1])


def test_figures_are_pngs_of_the_expected_size(mnist, tmp_path):
    m = plots.confusion_matrix(mnist.y_test[:300], mnist.y_test[:300])
    h, w = decode(plots.confusion_png(m)).shape[:2]
    assert (w, h) == (640, 560)
    assert decode(plots.confusion_png(m, normalize=True)).shape[:2] == (560, 640)
    history = {"loss": [0.5, 0.2, 0.1], "val_loss": [0.4, 0.25, 0.2], "accuracy": [0.8, 0.9, 0.97],
               "val_accuracy": [0.85, 0.92, 0.95]}
    assert decode(plots.curves_png(history)).shape[:2] == (600, 700)
    grid = decode(plots.samples_png(mnist.x_test[:20], mnist.y_test[:20], predicted=mnist.y_test[:20], columns=10))
    assert grid.shape[:2] == (250, 1100)  # 2 rows of 10
    counts = decode(plots.class_counts_png(mnist.y_train))
    assert counts.shape[:2] == (360, 640)
    path = plots.save_class_counts(mnist.y_train, tmp_path / "counts.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and not list(tmp_path.glob(".*tmp"))


def test_samples_accept_model_input_and_reject_nonsense(mnist):
    from edgekit.runtime.contract import to_model_input

    decode(plots.samples_png(to_model_input(mnist.x_test[:3]), mnist.y_test[:3]))
    with pytest.raises(ValueError):
        plots.samples_png(np.zeros((0, 28, 28), np.uint8), [])
    with pytest.raises(ValueError):
        plots.confusion_png(np.zeros((3, 4)))


def test_no_pyplot_and_no_backend_switch():
    import subprocess

    code = ("import sys, matplotlib; from edgekit.toolkit import plots; plots.curves_png({'loss': [1.0]}); "
            "print('pyplot' if 'matplotlib.pyplot' in sys.modules else 'clean', matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[0] == "clean", out.stdout + out.stderr
