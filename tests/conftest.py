"""Shared fixtures: the real MNIST file and one small really-trained model for the whole session.

MNIST comes from ``$EDGEKIT_TEST_DATA`` or ``../shared/data/mnist.npz`` beside the repository. The small
model is trained once (a few hundred steps on a real subset, so BatchNormalization's moving statistics
have settled) and cached in pytest's cache folder, keyed by the model code, so repeated runs reuse it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
MNIST_PATH = Path(os.environ.get("EDGEKIT_TEST_DATA", REPO.parent / "shared" / "data" / "mnist.npz"))

# The small model's recipe: 6,000 real training images, 1 epoch of batch 64 (94 steps), Adam 1e-3, and
# BatchNormalization momentum 0.9 so its moving statistics settle in so few steps (~95 % test accuracy).
SMALL_TRAIN = 6000
SMALL_EPOCHS = 1
SMALL_BN_MOMENTUM = 0.9


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    if not MNIST_PATH.is_file():
        pytest.fail(f"MNIST not found at {MNIST_PATH}; set EDGEKIT_TEST_DATA to a Keras-layout mnist.npz")
    return MNIST_PATH


@pytest.fixture(scope="session")
def mnist(mnist_path):
    from edgekit.toolkit.data import load_mnist

    return load_mnist(mnist_path)


@pytest.fixture(scope="session")
def small_model_path(request, mnist, tmp_path_factory) -> Path:
    """A really-trained small model (``model.keras``); read-only: copy it before changing it."""
    key = hashlib.sha256((REPO / "toolkit" / "model.py").read_bytes() + f"{SMALL_TRAIN}/{SMALL_EPOCHS}/{SMALL_BN_MOMENTUM}".encode())
    cache = Path(request.config.cache.mkdir("edgekit-small-model")) / key.hexdigest()[:16]
    cached = cache / "model.keras"
    if not cached.is_file():
        import keras

        from edgekit.runtime.contract import to_model_input
        from edgekit.toolkit.model import build_model

        keras.utils.set_random_seed(0)
        model = build_model(bn_momentum=SMALL_BN_MOMENTUM)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(
            to_model_input(mnist.x_train[:SMALL_TRAIN]),
            mnist.y_train[:SMALL_TRAIN].astype(np.int32),
            batch_size=64,
            epochs=SMALL_EPOCHS,
            verbose=0,
        )
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / "model.keras.tmp.keras"
        model.save(tmp)
        os.replace(tmp, cached)
    out = tmp_path_factory.mktemp("small-model") / "model.keras"
    shutil.copyfile(cached, out)
    return out


def _sigint_as_at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def terminal_sigint():
    """``preexec_fn`` for a child that a test Ctrl-Cs: SIGINT at its default, as under a terminal.

    A test run started as a background job of a non-interactive shell (as CI may start it) inherits SIGINT
    *ignored*, and Python then never raises KeyboardInterrupt in its children: the Ctrl-C would go unseen.
    """
    return _sigint_as_at_a_terminal
