"""The representative set for int8 calibration: drawn from the TRAINING split only, never the test set.

``calib_samples`` images (default ``DEFAULT_CALIB_SAMPLES``) are picked class-balanced (the same number of each
digit, remainder spread over the first digits) with a fixed seed, so an export is reproducible and every digit's
activations shape the ranges. Why 300 by default: int8 calibration only estimates per-tensor activation ranges
(TFLite and ONNX Runtime's MinMax both track min/max), which saturate after a few hundred images of MNIST;
30 per digit covers each class's strokes, keeps the int8 exports' calibration to a couple of seconds here,
and ``benchmarks/export.py`` measures the int8 accuracy for 100, 300 and 1,000 images to check the choice.
"""

from __future__ import annotations

import numpy as np

from edgekit.runtime.contract import NUM_CLASSES, to_model_input
from edgekit.runtime.errors import OptionsError

DEFAULT_CALIB_SAMPLES = 300
MAX_CALIB_SAMPLES = 60000
SEED = 0
CALIB_BATCH = 50  # images per converter / ONNX Runtime call; the ranges are global min/max, so batching changes none


def check_samples(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CALIB_SAMPLES:
        raise OptionsError(f"--calib-samples must be an integer from 1 to {MAX_CALIB_SAMPLES}, got {n!r}")
    return n


def representative_images(x_train: np.ndarray, y_train: np.ndarray, n: int = DEFAULT_CALIB_SAMPLES,
                          seed: int = SEED) -> np.ndarray:
    """``n`` class-balanced training images as model input: float32 (n, 28, 28, 1) in [0, 1]."""
    return to_model_input(x_train[balanced_index(y_train, n, NUM_CLASSES, seed)])


def balanced_index(y_train: np.ndarray, n: int, classes: int, seed: int = SEED) -> np.ndarray:
    """Indices of ``n`` class-balanced items of ``y_train`` (labels 0..classes-1), picked with a fixed seed."""
    check_samples(n)
    rng = np.random.default_rng(seed)
    per_class = [n // classes + (1 if c < n % classes else 0) for c in range(classes)]
    picks = []
    for c, k in enumerate(per_class):
        pool = np.flatnonzero(y_train == c)
        picks.append(rng.choice(pool, size=min(k, len(pool)), replace=False))
    index = np.concatenate(picks)
    if len(index) < n:  # a training split missing some classes: fill from the rest
        rest = np.setdiff1d(np.arange(len(y_train)), index)
        index = np.concatenate([index, rng.choice(rest, size=min(n - len(index), len(rest)), replace=False)])
    rng.shuffle(index)
    return index


def load_representative(data, n: int = DEFAULT_CALIB_SAMPLES) -> np.ndarray:
    """Load MNIST (``--data`` / ``$EDGEKIT_DATA`` / Keras' cache; DataError if absent) and pick the set."""
    from edgekit.export.data import load_mnist

    check_samples(n)
    mnist = load_mnist(data)
    return representative_images(mnist.x_train, mnist.y_train, n)


def representative_set(images, contract, n: int = DEFAULT_CALIB_SAMPLES) -> np.ndarray:
    """``n`` class-balanced images of the user's ``ImageSet`` as model input, for an ``image`` model."""
    return images.model_input(contract, balanced_index(images.y, min(n, len(images.y)), contract.classes))


def calibration_batches(images: np.ndarray):
    """``images`` in batches of CALIB_BATCH, as both int8 exporters feed them to their calibrator."""
    return (images[i:i + CALIB_BATCH] for i in range(0, len(images), CALIB_BATCH))
