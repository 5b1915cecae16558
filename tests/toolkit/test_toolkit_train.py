"""Training on a small real subset: the run folder, Ctrl-C, resume, the seeded pipeline, augmentation, options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.runtime.errors import EXIT_INTERRUPTED, OptionsError
from edgekit.toolkit.data import sha256_file
from edgekit.toolkit.batches import augment_batch, epoch_spans, pipeline
from edgekit.toolkit.train import RECIPES, TrainingInterrupted, TrainOptions, train

PNG = b"\x89PNG\r\n\x1a\n"
STEPS = 20  # per epoch: 800 images, batch 40


def tiny(out, data, **kw):
    """The default recipe, shrunk: 800 images of batch 40, 2 epochs, 200 held out for validation."""
    kw = {"limit": 800, "batch_size": 40, "epochs": 2, "val_split": 200, **kw}
    return TrainOptions.preset("default", data=str(data), out=out, **kw)


def interrupt_at(epoch: int, batch: int):
    import keras

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.epoch = e

        def on_train_batch_end(self, b, logs=None):
            if self.epoch == epoch and b == batch:
                raise KeyboardInterrupt

    return CtrlC()


@pytest.fixture
def op_determinism():
    """TensorFlow's deterministic kernels for one test: with ``train``'s own seeding (``keras.utils.set_random_seed``)
    two runs of the same options give bit-identical weights on this machine. (Another CPU may give other
    bits: oneDNN picks its kernels per CPU, so tests compare two runs made here, never a run with a number.)"""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    yield
    if not was:
        tf_config.disable_op_determinism()


def weights_of(path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(path, safe_mode=True).get_weights()


def test_interrupt_resume_and_the_run_folder(small_npz, small_arrays, tmp_path, op_determinism):
    """1.5 epochs: one whole epoch of 20 steps and a last one of 10 (a fraction of an epoch, as the bfloat16
    default recipe trains), interrupted in the short one."""
    import keras

    out = tmp_path / "run"
    options = tiny(out, small_npz, epochs=1.5)

    # Ctrl-C in the middle of epoch 2: epoch 1 is saved, nothing else.
    with pytest.raises(TrainingInterrupted, match=r"during epoch 2 of 1.5; epoch 1 is saved .* --resume") as caught:
        train(options, callbacks=[interrupt_at(epoch=1, batch=3)])
    assert caught.value.exit_code == EXIT_INTERRUPTED
    state = json.loads((out / "checkpoint.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]["loss"]) == 1
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # nothing half-written left behind

    # A second run into the same folder is refused; --resume continues from epoch 1.
    with pytest.raises(OptionsError, match="already holds a run; pass --resume"):
        train(options)
    notes = []
    result = train(TrainOptions(data=str(small_npz), out=out, resume=True), log=notes.append)
    assert notes and "from epoch 1 of 1.5" in notes[0]

    # The resumed run is the run that was never interrupted: the same seed on this machine gives the same
    # weights, bit for bit, and the same history (the data order, the dropout masks and the optimizer's state
    # all continued where epoch 1 left them). Seconds differ, nothing else.
    whole = train(tiny(tmp_path / "whole", small_npz, epochs=1.5))
    for resumed, uninterrupted in zip(weights_of(result.model_path), weights_of(whole.model_path), strict=True):
        np.testing.assert_array_equal(resumed, uninterrupted)
    history = json.loads((out / "history.json").read_text())
    untimed = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    assert untimed(history) == untimed(json.loads((tmp_path / "whole" / "history.json").read_text()))
    assert result.test_accuracy == whole.test_accuracy
    assert len(history["loss"]) == 2 and history["loss"][0] == state["history"]["loss"][0]
    assert history["loss"][1] < history["loss"][0]  # it trained (how much, 40 steps cannot say)
    # The one-cycle schedule spans the 30 steps and continued from the restored step count: it ends at 0 with
    # the short epoch, not mid-way.
    assert history["learning_rate_end"][0] > 1e-4 and history["learning_rate_end"][1] == pytest.approx(0.0, abs=1e-9)
    checkpoint = keras.saving.load_model(out / "checkpoint.keras", safe_mode=True)
    assert int(checkpoint.optimizer.iterations.numpy()) == STEPS + STEPS // 2

    # The run folder.
    names = {p.name for p in out.iterdir()}
    assert {"model.keras", "history.json", "metrics.json", "curves.png", "confusion.png",
            "checkpoint.keras", "checkpoint.json"} <= names
    for png in ("curves.png", "confusion.png"):
        assert (out / png).read_bytes()[:8] == PNG and (out / png).stat().st_size > 10_000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["seed"] == 0 and metrics["train_images"] == 800
    assert (metrics["epochs_planned"], metrics["steps"], metrics["passes"]) == (1.5, 30, 1.5)
    assert metrics["data"]["sha256"] == sha256_file(small_npz)
    assert metrics["recipe"]["optimizer"] == "adam" and metrics["recipe"]["batch_size"] == 40
    assert metrics["train_seconds"] > 0 and len(metrics["seconds_per_epoch"]) == 2
    matrix = np.array(metrics["test"]["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 300
    assert set(metrics["test"]["per_class_accuracy"]) == {str(d) for d in range(10)}

    # The saved model: the bare seed network (no augmentation, no optimizer), and its test accuracy is the
    # one metrics.json reports.
    from edgekit.runtime.contract import to_model_input
    from edgekit.toolkit.model import build_model

    model = keras.saving.load_model(result.model_path, safe_mode=True)
    assert [type(l).__name__ for l in model.layers] == [type(l).__name__ for l in build_model().layers]
    assert getattr(model, "optimizer", None) is None
    predicted = model.predict(to_model_input(small_arrays["x_test"]), batch_size=500, verbose=0).argmax(axis=1)
    # (a model this young has near-ties; allow one flip from a different float summation order)
    assert abs(metrics["test"]["accuracy"] - float(np.mean(predicted == small_arrays["y_test"]))) <= 1 / 300 + 1e-9

    with pytest.raises(OptionsError, match="nothing to resume"):
        train(TrainOptions(data=str(small_npz), out=out, resume=True))


def test_pipeline_is_seeded_and_a_resumed_one_sees_the_same_batches(small_arrays):
    recipe = RECIPES["full"].__class__(**{**RECIPES["full"].__dict__, "epochs": 3, "batch_size": 50})
    x, y = small_arrays["x_train"][:300], small_arrays["y_train"][:300].astype(np.int32)

    def batches(seed, first_epoch, steps=6):
        return [(xb.numpy(), yb.numpy()) for xb, yb in pipeline(x, y, recipe, seed, range(first_epoch, 3), steps, 6)]

    whole = batches(7, 0)
    assert len(whole) == 18
    again, resumed, other = batches(7, 0), batches(7, 1), batches(8, 0)
    # A short last epoch (epochs 2.5) is the start of the whole one: the same order, the same warps.
    short = [(xb.numpy(), yb.numpy()) for xb, yb in pipeline(x, y, recipe, 7, range(2, 3), 3, 6)]
    assert len(short) == 3
    for (xa, ya), (xb, yb) in zip(whole[12:15], short, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    for (xa, ya), (xb, yb) in zip(whole, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    for (xa, ya), (xb, yb) in zip(whole[6:], resumed):  # epochs 2-3 of the whole run
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(whole[0][1], other[0][1])  # another seed, another order
    # Each epoch is a permutation of the same 300 images.
    labels = [np.concatenate([yb.argmax(1) for _, yb in whole[e * 6:(e + 1) * 6]]) for e in range(3)]
    assert all(np.array_equal(np.bincount(l, minlength=10), np.bincount(y, minlength=10)) for l in labels)
    assert not np.array_equal(labels[0], labels[1])


def test_a_fraction_of_an_epoch_is_a_short_last_epoch():
    # (epochs still to train, steps in each) from (first epoch, all steps, steps per epoch): 1.7 epochs of 859
    assert epoch_spans(0, 1460, 859) == [(range(0, 1), 859), (range(1, 2), 601)]
    assert epoch_spans(1, 1460, 859) == [(range(1, 2), 601)]  # resumed after the whole epoch
    assert epoch_spans(0, 1718, 859) == [(range(0, 2), 859)]  # whole epochs: one span, as always
    assert epoch_spans(1, 1718, 859) == [(range(1, 2), 859)]
    assert epoch_spans(0, 300, 859) == [(range(0, 1), 300)]  # less than one epoch


def test_augmentation_moves_digits_a_little(small_arrays):
    import tensorflow as tf

    from edgekit.runtime.contract import to_model_input

    x = tf.constant(to_model_input(small_arrays["x_train"][:64]))
    a = augment_batch(x, tf.constant([1, 2], tf.int64)).numpy()
    b = augment_batch(x, tf.constant([1, 2], tf.int64)).numpy()
    c = augment_batch(x, tf.constant([1, 3], tf.int64)).numpy()
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # stateless: the same key, the same warp
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 1.0 + 1e-6
    changed = np.abs(a - x.numpy()).mean(axis=(1, 2, 3))
    assert (changed > 0.01).mean() > 0.9  # nearly every image moved
    ink = a.sum(axis=(1, 2, 3)) / x.numpy().sum(axis=(1, 2, 3))
    assert 0.7 < ink.min() and ink.max() < 1.4  # small zoom: the digit stays whole


def test_options_are_checked_before_any_work(small_npz, tmp_path):
    with pytest.raises(OptionsError, match="unknown recipe 'ful'; did you mean 'full'"):
        TrainOptions.preset("ful")
    with pytest.raises(OptionsError, match="--epochs must be a positive number of passes, got 0"):
        train(tiny(tmp_path / "a", small_npz, epochs=0))
    with pytest.raises(OptionsError, match="--val-split 1200 leaves no training images"):
        train(tiny(tmp_path / "b", small_npz, val_split=1200))
    with pytest.raises(OptionsError, match="fewer than one batch"):
        train(tiny(tmp_path / "c", small_npz, limit=10))
    with pytest.raises(OptionsError, match="no checkpoint to resume from"):
        train(TrainOptions(data=str(small_npz), out=tmp_path / "d", resume=True))
    assert not (tmp_path / "a").exists()


def test_overrides_make_a_custom_recipe():
    o = TrainOptions.preset("seed", epochs=3, augment=True, limit=100)
    assert (o.recipe.epochs, o.recipe.augment, o.recipe.optimizer, o.limit) == (3, True, "rmsprop", 100)
    assert o.recipe.name == "seed+custom" and TrainOptions.preset("seed", epochs=1).recipe.name == "seed"
    assert TrainOptions.from_json(json.loads(json.dumps(o.to_json()))) == o
