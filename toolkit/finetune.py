"""Fine-tuning a trained model on the user's own digits (a folder ``edgekit collect`` wrote), without
forgetting MNIST.

    result = finetune(FinetuneOptions(model="runs/mnist/model.keras", extra="mydigits", data="mnist.npz",
                                      out="runs/mine"))

A seeded 20 % of each digit's crops is held out (``holdout_split``, the same images ``edgekit validate --data
DIR`` and ``edgekit train --data DIR`` hold out) and never trained on. Every batch is half the user's crops
(sampled with replacement, lightly augmented: they are few) and half MNIST training images (not augmented,
as the model first saw them), so the model learns the new handwriting while MNIST keeps it where it was;
BatchNormalization is frozen (inference mode, MNIST's statistics) for the same reason. What is saved is the
starting model's weights moved ``blend`` (half) of the way to the fine-tuned ones: weight-space ensembling
("WiSE-FT", Wortsman et al., 2022). Measured on default-s0 with 500 font digits, the fine-tuned weights read
the held-out digits 100 % but MNIST 98.70 % (from 99.06 %); halfway between, 100 % and 99.06 %.
The learning rate warms up to ``learning_rate`` over the first tenth of the steps and falls to 0 on a cosine:
a trained model needs small steps, Adam's first ones most of all.

The result is an ordinary run folder (model.keras, metrics.json, history.json, curves.png, confusion.png):
``edgekit export`` and ``edgekit validate`` take it unchanged. metrics.json's ``test`` is MNIST's test set, as
for any run; ``finetune`` holds MNIST test accuracy and held-out accuracy on the user's digits, before and after.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgekit.runtime.contract import LABELS, NUM_CLASSES, PIXEL_OFFSET, PIXEL_SCALE, to_model_input
from edgekit.runtime.errors import DataError, ModelLoadError, OptionsError
from edgekit.toolkit.run_folder import MODEL_FILE, environment, holds_a_run, test_metrics, write_run
from edgekit.toolkit.batches import augment_batch
from edgekit.toolkit.train import RunResult, TrainingInterrupted

STEPS_PER_EPOCH = 50  # steps between the history's points (held-out accuracy, curves.png)
WARMUP = 0.1  # of the steps, spent raising the learning rate from learning_rate/25


@dataclass(frozen=True)
class FinetuneOptions:
    """One fine-tuning run."""

    model: Path
    """The trained model to start from (RUN/model.keras); it must be the seed's network."""
    extra: Path
    """The user's digits: DIR/<digit>/*.png."""
    out: Path = Path("runs/finetuned")
    """The new run folder."""
    data: str | None = None
    """MNIST (mixed into every batch, and the test set): .npz or IDX folder; None: $EDGEKIT_DATA, then Keras'."""
    steps: int = 300
    """Optimizer steps."""
    batch_size: int = 64
    extra_fraction: float = 0.5
    """Share of each batch taken from the user's crops; the rest is MNIST."""
    learning_rate: float = 1e-4
    """Adam's peak rate: reached after a warm-up over the first WARMUP of the steps, then a cosine to 0."""
    label_smoothing: float = 0.1
    augment: bool = True
    """Small random rotation, zoom and shift of the user's crops (batches.augment_batch)."""
    blend: float = 0.5
    """The saved weights: start + blend * (fine-tuned - start). 1 keeps the fine-tuned weights as they are;
    0.5 keeps nearly all of what they learned on the user's digits and nearly nothing of what they forgot
    of MNIST (the module docstring has the figures)."""
    seed: int = 0
    """Seeds batch order and augmentation (the held-out split has its own fixed seed)."""
    max_seconds: float | None = None
    """A wall-time budget for training: stop at the first batch past it."""

    def check(self) -> None:
        if self.steps < 1:
            raise OptionsError(f"--steps must be at least 1, got {self.steps}")
        if self.batch_size < 2:
            raise OptionsError(f"--batch-size must be at least 2 to mix the user's digits with MNIST, got {self.batch_size}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise OptionsError(f"--learning-rate must be a positive number, got {self.learning_rate}")
        if not 0 < self.extra_fraction < 1:
            raise OptionsError(f"the user's share of a batch must be in (0, 1), got {self.extra_fraction}")
        if not 0 < self.blend <= 1:
            raise OptionsError(f"blend must be in (0, 1], got {self.blend}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise OptionsError(f"the time budget must be positive, got {self.max_seconds}")

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def _layer_signature(layer) -> str:
    c = layer.get_config()
    keys = ("filters", "kernel_size", "strides", "padding", "activation", "pool_size", "rate", "units")
    detail = ", ".join(f"{k}={c[k]}" for k in keys if k in c)
    return f"{type(layer).__name__}({detail})"


def check_seed_network(model, path: Path) -> None:
    """Refuse a model that is not the seed's network, naming the first layer that differs."""
    from edgekit.toolkit.model import build_model

    want = [_layer_signature(l) for l in build_model().layers]
    have = [_layer_signature(l) for l in getattr(model, "layers", [])]
    shape_in = tuple(getattr(model, "input_shape", ()) or ())
    if have == want and shape_in[1:] == (28, 28, 1):
        return
    for i, (h, w) in enumerate(zip(have, want)):
        if h != w:
            raise ModelLoadError(f"{path}: not the seed's network (layer {i + 1} is {h}, expected {w}); "
                                 "edgekit finetune starts from a model.keras written by edgekit train")
    raise ModelLoadError(f"{path}: not the seed's network ({len(have)} layers, input {shape_in[1:]}, expected "
                         f"{len(want)} layers on (28, 28, 1)); edgekit finetune starts from a model.keras written by edgekit train")


def _load_model(path: Path):
    from edgekit.export.keras_model import load_keras

    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file; give the RUN/model.keras edgekit train wrote")
    model = load_keras(path, "give the RUN/model.keras edgekit train wrote")
    check_seed_network(model, path)
    return model


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    p = model.predict(to_model_input(x), batch_size=500, verbose=0)
    return float(np.mean(p.argmax(axis=1) == y)), p


def finetune(
    options: FinetuneOptions,
    callbacks: Sequence[Any] | Callable[[], Sequence[Any]] = (),
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Fine-tune per ``options`` into ``options.out``; raises OptionsError / DataError / ModelLoadError on bad
    input (before any training) and TrainingInterrupted on Ctrl-C (nothing is written then)."""
    say = log or (lambda _msg: None)
    options.check()
    out = Path(options.out)
    if holds_a_run(out):
        raise OptionsError(f"{out} already holds a run; choose another --out")
    if Path(options.model).resolve().parent == out.resolve():
        raise OptionsError(f"--out {out} is the folder of the model being fine-tuned; choose another --out")

    from edgekit.toolkit.data import holdout_split, load_digit_folder, load_mnist

    user = load_digit_folder(options.extra)
    train_idx, held_idx = holdout_split(user.y)
    if not len(held_idx) or not len(train_idx):
        raise DataError(f"{options.extra}: {len(user.y)} crop(s) cannot be split into training and held-out "
                        "crops; collect at least two of a digit")
    mnist = load_mnist(options.data)
    if mnist.kind != "mnist":
        raise OptionsError(f"--data {options.data}: a digit folder; fine-tuning mixes in MNIST (.npz or IDX folder), "
                           "the user's digits go in --extra")
    xu, yu = user.x[train_idx], user.y[train_idx].astype(np.int64)
    xh, yh = user.x[held_idx], user.y[held_idx].astype(np.int64)
    y_test = mnist.y_test.astype(np.int64)

    import keras

    model = _load_model(Path(options.model))
    start = model.get_weights()
    keras.utils.set_random_seed(options.seed)
    before_mnist, _ = _accuracy(model, mnist.x_test, y_test)
    before_held, _ = _accuracy(model, xh, yh)
    say(f"before: MNIST test {before_mnist:.2%}, held-out {before_held:.2%} on {len(yh)} of your digits; "
        f"fine-tuning on {len(yu)} of them mixed with MNIST")

    # Whole epochs of about STEPS_PER_EPOCH steps (a point each in history.json), at least options.steps in all.
    epochs = math.ceil(options.steps / STEPS_PER_EPOCH)
    per_epoch = math.ceil(options.steps / epochs)
    steps = epochs * per_epoch
    # Adam's first steps move every weight by about the learning rate whatever its gradient: a warm-up over the
    # first WARMUP of the steps keeps them from knocking a trained model off its minimum.
    warmup = max(1, int(WARMUP * steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        options.learning_rate / 25, decay_steps=max(1, steps - warmup), alpha=0.0,
        warmup_target=options.learning_rate, warmup_steps=warmup,
    )
    # BatchNormalization stays in inference mode (a frozen BN layer uses its moving statistics in Keras): its
    # statistics are MNIST's, and batches half full of someone else's strokes would pull them away from MNIST.
    frozen = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for layer in frozen:
        layer.trainable = False
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing),
        metrics=["accuracy"],
    )
    dataset = _mixed_batches(xu, yu, mnist.x_train, mnist.y_train.astype(np.int64), options, steps)
    validation = (to_model_input(xh), keras.utils.to_categorical(yh, NUM_CLASSES))
    timer = _Timer(keras, options.max_seconds)
    cbs: list[Any] = [timer, *(callbacks() if callable(callbacks) else callbacks)]
    try:
        fit = model.fit(
            dataset, epochs=epochs, steps_per_epoch=per_epoch, shuffle=False,  # the batches are in a seeded order
            validation_data=validation, validation_batch_size=500, callbacks=cbs, verbose=0,
        )
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"fine-tuning interrupted; nothing was written to {out}") from None
    for layer in frozen:  # the saved model is an ordinary one: trainable as edgekit train leaves it
        layer.trainable = True
    history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    history["seconds"] = [round(s, 2) for s in timer.epoch_seconds]
    if timer.stopped_at is not None:
        say(f"time budget of {options.max_seconds:.0f} s reached after {timer.steps} steps; evaluating the model as it is")

    unblended = None
    if options.blend < 1:  # measure the fine-tuned weights, then save the blend
        unblended = {"mnist_test_accuracy": _accuracy(model, mnist.x_test, y_test)[0],
                     "held_out_accuracy": _accuracy(model, xh, yh)[0]}
        model.set_weights([w0 + options.blend * (w1 - w0) if np.issubdtype(w0.dtype, np.floating) else w1
                           for w0, w1 in zip(start, model.get_weights())])
    after_mnist, probabilities = _accuracy(model, mnist.x_test, y_test)
    after_held, held_p = _accuracy(model, xh, yh)
    if unblended is not None:
        say(f"fine-tuned weights: MNIST test {unblended['mnist_test_accuracy']:.2%}, held-out "
            f"{unblended['held_out_accuracy']:.2%}; saved {options.blend:g} of the way from the starting weights to them")
    from edgekit.toolkit.plots import confusion_matrix

    metrics = {
        "test": test_metrics(probabilities, y_test),
        "finetune": {
            "from_model": str(options.model),
            "mnist_test_accuracy": {"before": before_mnist, "after": after_mnist},
            "held_out_accuracy": {"before": before_held, "after": after_held},
            "held_out_images": int(len(yh)),
            "held_out_confusion_matrix": confusion_matrix(yh, held_p.argmax(axis=1)).tolist(),
            "user_train_images": int(len(yu)),
            "extra": {"source": user.source, "sha256": user.sha256, "images": int(len(user.y)),
                      "per_digit": {d: int(np.sum(user.y == int(d))) for d in LABELS}},
            "steps": timer.steps,
            "budget_stopped_at_step": timer.stopped_at,
            "cpu_seconds": round(timer.cpu_seconds, 2),
            "blend": options.blend,
            "unblended": unblended,
        },
        "validation": {k: history[k][-1] for k in ("val_accuracy", "val_loss") if history.get(k)},
        "epochs": len(history.get("loss", [])),
        "train_images": int(len(yu)),
        "train_seconds": round(timer.train_seconds, 2),
        "seconds_per_epoch": history.get("seconds", []),
        "seed": options.seed,
        "data": {"source": mnist.source, "sha256": mnist.sha256},
        "recipe": {"name": "finetune", "steps": options.steps, "batch_size": options.batch_size,
                   "extra_fraction": options.extra_fraction, "optimizer": "adam", "schedule": "cosine",
                   "learning_rate": options.learning_rate, "label_smoothing": options.label_smoothing, "blend": options.blend,
                   "augment": options.augment},
        "options": options.to_json(),
        **environment(keras),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_run(model, out, history, metrics, curves_title="fine-tuned on your digits (validation: held-out digits)",
              confusion_title=f"MNIST test set: {metrics['test']['accuracy']:.2%} accurate")
    return RunResult(out=out, model_path=out / MODEL_FILE, metrics=metrics, history=history)


def _mixed_batches(xu, yu, xm, ym, options: FinetuneOptions, steps: int):
    """``steps`` batches, each ``k`` user crops (augmented) + the rest MNIST, in a seeded order."""
    import tensorflow as tf

    k = max(1, round(options.batch_size * options.extra_fraction))
    m = options.batch_size - k
    rng = np.random.default_rng([options.seed, 14])
    n_user, n_mnist = steps * k, steps * m
    user_order = np.concatenate([rng.permutation(len(xu)) for _ in range(-(-n_user // len(xu)))])[:n_user]
    mnist_order = np.concatenate([rng.permutation(len(xm)) for _ in range(-(-n_mnist // len(xm)))])[:n_mnist]
    eye = np.eye(NUM_CLASSES, dtype=np.float32)
    user_images, user_onehot = tf.constant(xu), tf.constant(eye[yu])
    mnist_images, mnist_onehot = tf.constant(xm), tf.constant(eye[ym])
    augment, seed = options.augment, options.seed

    def scale(images):
        return tf.cast(images, tf.float32)[..., None] * PIXEL_SCALE + PIXEL_OFFSET

    @tf.autograph.experimental.do_not_convert
    def batch(step, idx):
        iu, im = idx
        xb_u = scale(tf.gather(user_images, iu))
        if augment:
            xb_u = augment_batch(xb_u, tf.stack([tf.constant(seed, tf.int64), tf.constant(1 << 20, tf.int64) + step]))
        xb = tf.concat([xb_u, scale(tf.gather(mnist_images, im))], axis=0)
        yb = tf.concat([tf.gather(user_onehot, iu), tf.gather(mnist_onehot, im)], axis=0)
        return xb, yb

    ds = tf.data.Dataset.from_tensor_slices((user_order.reshape(-1, k), mnist_order.reshape(-1, m))).enumerate()
    return ds.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def _Timer(keras, max_seconds: float | None):
    """Counts steps and training time, stops after ``max_seconds`` (if given)."""

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps = 0
            self.stopped_at: int | None = None
            self.epoch_seconds: list[float] = []
            self.train_seconds = 0.0
            self.cpu_seconds = 0.0
            self._t0 = self._c0 = 0.0

        def on_train_begin(self, logs=None):
            self._start = time.perf_counter()
            self._c0 = time.process_time()

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if max_seconds is not None and self.stopped_at is None and time.perf_counter() - self._start > max_seconds:
                self.stopped_at = self.steps
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_seconds.append(time.perf_counter() - self._t0)

        def on_train_end(self, logs=None):
            self.train_seconds = time.perf_counter() - self._start
            self.cpu_seconds = time.process_time() - self._c0

    return Timer()
