"""Shared fixtures: the real MNIST file, one small really-trained model and its exports for the whole session.

MNIST comes from ``$EDGEKIT_TEST_DATA`` or ``../shared/data/mnist.npz`` beside the repository. The small
model is trained once (a few hundred steps on a real subset, so BatchNormalization's moving statistics
have settled) and cached in pytest's cache folder, keyed by the model code, the seed and the threads, so
repeated runs reuse it. It is exported once to every format x quantization (``small_exports``), shared by the
export, validate, runtime and hardening tests (each used to export its own copies: the converters were most of
their time).

Settings let scripts/margins.py measure how much the numeric assertions depend on the training seed and on
the arithmetic: ``$EDGEKIT_TEST_SEED`` (default 0) seeds the small model and the end-to-end training,
``$EDGEKIT_TEST_THREADS`` (default: TensorFlow's and the OS's own choice) sets ``OMP_NUM_THREADS`` and
TensorFlow's intra- and inter-op threads for this process and every process it starts, and
``$EDGEKIT_TEST_PRECISION`` (``float32``, the default, or ``bfloat16``) is the small model's training precision.
oneDNN's own settings (``ONEDNN_MAX_CPU_ISA``, ``TF_ENABLE_ONEDNN_OPTS``) stand in for another CPU's kernels;
they are read by TensorFlow itself, and are part of the cached small model's key like the three above.

With ``CI=true`` (``.ci/run``) a skipped test is a failed one: CI installs Chromium and Xvfb, and a test that
quietly did not run there proved nothing. Only the emulated Raspberry Pi check (marked ``pi``, opt-in, run by
``scripts/pi_check.sh``) may skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import measured

REPO = Path(__file__).resolve().parent.parent
MNIST_PATH = Path(os.environ.get("EDGEKIT_TEST_DATA", REPO.parent / "shared" / "data" / "mnist.npz"))

# The small model's recipe: 6,000 real training images, 1 epoch of batch 64 (94 steps), Adam 1e-3, and
# BatchNormalization momentum 0.9 so its moving statistics settle in so few steps (~95 % test accuracy).
SMALL_TRAIN = 6000
SMALL_EPOCHS = 1
SMALL_BN_MOMENTUM = 0.9
# Calibration images for the small model's int8 exports (the product's default is 300; 100 keeps the tests quick).
SMALL_CALIB = 100

SEED = int(os.environ.get("EDGEKIT_TEST_SEED", "0"))
THREADS = os.environ.get("EDGEKIT_TEST_THREADS", "")
PRECISION = os.environ.get("EDGEKIT_TEST_PRECISION", "float32")
ARITHMETIC_ENV = ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")  # other kernels, another trained model
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MAY_SKIP_IN_CI = "pi"  # the marker of the one opt-in check


def pytest_configure(config):
    if THREADS:  # before anything imports TensorFlow; children inherit the environment
        for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ[name] = THREADS


def pytest_runtest_setup(item):
    measured.current_test = item.nodeid
    measured.current_is_numeric = item.get_closest_marker("numeric") is not None


def pytest_runtest_teardown(item):
    measured.current_test, measured.current_is_numeric = None, False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker(MAY_SKIP_IN_CI) is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run (CI=true): {reason}"


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
    recipe = f"{SMALL_TRAIN}/{SMALL_EPOCHS}/{SMALL_BN_MOMENTUM}/seed {SEED}/threads {THREADS or 'default'}"
    if PRECISION != "float32" or any(os.environ.get(name) for name in ARITHMETIC_ENV):  # the old keys otherwise
        recipe += f"/{PRECISION}/" + "/".join(f"{name}={os.environ.get(name, '')}" for name in ARITHMETIC_ENV)
    key = hashlib.sha256((REPO / "toolkit" / "model.py").read_bytes() + recipe.encode())
    cache = Path(request.config.cache.mkdir("edgekit-small-model")) / key.hexdigest()[:16]
    cached = cache / "model.keras"
    if not cached.is_file():
        import keras

        from edgekit.runtime.contract import to_model_input
        from edgekit.toolkit.model import build_model

        keras.utils.set_random_seed(SEED)
        policy = {"float32": "float32", "bfloat16": "mixed_bfloat16"}[PRECISION]
        model = build_model(bn_momentum=SMALL_BN_MOMENTUM, dtype=policy)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(
            to_model_input(mnist.x_train[:SMALL_TRAIN]),
            mnist.y_train[:SMALL_TRAIN].astype(np.int32),
            batch_size=64,
            epochs=SMALL_EPOCHS,
            verbose=0,
        )
        if PRECISION != "float32":  # what training saves: the float32 copy of the same weights
            from edgekit.toolkit.precision import float32_copy

            model = float32_copy(model)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / "model.keras.tmp.keras"
        model.save(tmp)
        os.replace(tmp, cached)
    out = tmp_path_factory.mktemp("small-model") / "model.keras"
    shutil.copyfile(cached, out)
    return out


@dataclass(frozen=True)
class SmallExports:
    """The small model exported to every format x quantization (``export_model(..., formats="all")``)."""

    folder: Path  # every artifact + manifest.json; read-only: copy it (or use ``subset``) before changing it
    manifest: object  # edgekit.export.manifest.Manifest, as export_model returned it
    seen: list  # the file names export_model's on_artifact callback reported, in order

    def subset(self, files: list[str], dest: Path) -> Path:
        """A new export folder ``dest`` holding only ``files`` and a manifest listing only them."""
        from edgekit.export.manifest import Manifest, write_manifest

        dest.mkdir(parents=True)
        for name in files:
            shutil.copyfile(self.folder / name, dest / name)
        m = self.manifest
        write_manifest(dest, Manifest(m.edgekit_version, m.source, [a for a in m.artifacts if a.file in files]))
        return dest


@pytest.fixture(scope="session")
def small_exports(request, small_model_path, mnist_path, tmp_path_factory) -> SmallExports:
    """``small_model_path`` exported ONCE per session to every format x quantization, with SMALL_CALIB
    calibration images; cached in pytest's cache folder, keyed by the model and the export code."""
    from edgekit.export import export_model
    from edgekit.export.manifest import Manifest, read_manifest, write_manifest

    key = hashlib.sha256(small_model_path.read_bytes() + str(SMALL_CALIB).encode())
    for source in sorted([*(REPO / "export").glob("*.py"), *(REPO / "runtime").glob("*.py")]):
        key.update(source.read_bytes())
    cache = Path(request.config.cache.mkdir("edgekit-small-exports")) / key.hexdigest()[:16]
    out = tmp_path_factory.mktemp("small-exports") / "export"
    if not (cache / "seen.json").is_file():
        seen = []
        export_model(small_model_path, out, formats="all", data=mnist_path, calib_samples=SMALL_CALIB,
                     on_artifact=lambda a: seen.append(a.file))
        staging = cache.with_name(cache.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(out, staging)
        (staging / "seen.json").write_text(json.dumps(seen))
        shutil.rmtree(cache, ignore_errors=True)
        os.replace(staging, cache)
    else:  # the cached manifest names the source model of the session that exported it: name this one's
        shutil.copytree(cache, out, ignore=shutil.ignore_patterns("seen.json"))
        cached = read_manifest(out)
        source = {**cached.source, "path": str(small_model_path.resolve())}
        write_manifest(out, Manifest(cached.edgekit_version, source, cached.artifacts))
    seen = json.loads((cache / "seen.json").read_text())
    return SmallExports(out, read_manifest(out), seen)


def _sigint_as_at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def terminal_sigint():
    """``preexec_fn`` for a child that a test Ctrl-Cs: SIGINT at its default, as under a terminal.

    A test run started as a background job of a non-interactive shell (as CI may start it) inherits SIGINT
    *ignored*, and Python then never raises KeyboardInterrupt in its children: the Ctrl-C would go unseen.
    """
    return _sigint_as_at_a_terminal


@dataclass(frozen=True)
class ColourDigits:
    """Real 32x32 RGB images of five classes (``colour_digits.py``) and two small models trained on them."""

    train_dir: Path  # class folders zero/ ... four/ of PNG files: calibration
    test_dir: Path  # the same layout, MNIST test digits: validation
    test_npz: Path  # the test images as an .npz of x (RGB) and y
    rescaling_model: Path  # a Rescaling layer inside, softmax: every option inferred but the colour order
    plain_model: Path  # no Rescaling (pixels / 255 must be given), logits, BN after ReLU
    x_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(scope="session")
def colour_digits(request, mnist, tmp_path_factory) -> ColourDigits:
    """The images written once per session; the two models trained once and cached like ``small_model_path``."""
    import colour_digits as cd

    root = tmp_path_factory.mktemp("colour-digits")
    x_train, y_train = cd.split(mnist, cd.TRAIN_PER_CLASS, train=True, seed=SEED)
    x_test, y_test = cd.split(mnist, cd.TEST_PER_CLASS, train=False, seed=SEED + 1)
    cd.write_folder(root / "train", x_train, y_train)
    cd.write_folder(root / "test", x_test, y_test)
    np.savez(root / "test.npz", x=x_test, y=y_test)
    key = hashlib.sha256((Path(cd.__file__)).read_bytes() + f"{cd.RECIPE}/seed {SEED}/threads {THREADS}".encode())
    cache = Path(request.config.cache.mkdir("edgekit-colour-digits")) / key.hexdigest()[:16]
    models = {}
    for name, rescaling in (("rescaling", True), ("plain", False)):
        cached = cache / f"{name}.keras"
        if not cached.is_file():
            model = cd.train(x_train, y_train, rescaling, seed=SEED)
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f"{name}.tmp.keras"
            model.save(tmp)
            os.replace(tmp, cached)
        models[name] = root / f"{name}.keras"
        shutil.copyfile(cached, models[name])
    return ColourDigits(root / "train", root / "test", root / "test.npz", models["rescaling"], models["plain"],
                        x_test, y_test)
