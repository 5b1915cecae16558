"""Training: the seed CNN on MNIST with a named recipe, into a run folder.

    result = train(TrainOptions.preset("default", data="mnist.npz", out="runs/mnist"))

A run folder holds ``model.keras``, ``history.json``, ``metrics.json``, ``curves.png``, ``confusion.png`` and,
after every completed epoch, ``checkpoint.keras`` + ``checkpoint.json`` (model, optimizer state, history so
far), so an interrupted run continues with ``resume=True``. Every file is written atomically.

The data: the last ``val_split`` training images are held out for validation (the seed tuned its annealer
on the test set); ``limit`` takes the first N of the rest. The test set is touched once, at the end.
The batches (seeded order, augmentation) are ``batches.py``'s, made in the tf.data pipeline only, never in the model.

Why one module of ~450 lines: the run, its checkpointing callbacks and its resume are one piece of state (a resumed
run must restore exactly the epoch, history, optimizer and dropout masks the uninterrupted one would have had);
the recipes are ``recipes.py``, the batches ``batches.py``, the run folder's files ``run_folder.py``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgekit.runtime.contract import NUM_CLASSES, to_model_input
from edgekit.runtime.errors import EXIT_INTERRUPTED, EdgekitError, OptionsError, first_line
from edgekit.runtime.files import atomic_path, write_json
from edgekit.toolkit.batches import epoch_spans, pipeline
from edgekit.toolkit.model import build_model, training_batch_norm
from edgekit.toolkit.precision import Precision, check_runs, choose, float32_copy
from edgekit.toolkit.recipes import (  # noqa: F401  (RECIPES, Recipe: also edgekit.toolkit.train's names)
    BF16_RECIPES, RECIPES, Optimizer, Recipe, Schedule,
)
from edgekit.toolkit.run_folder import (
    CAMERA_POOL_FILE, CHECKPOINT_FILE, CHECKPOINT_STATE, MODEL_FILE, environment, holds_a_run, save_model, test_metrics,
    write_run,
)


class TrainingInterrupted(EdgekitError):
    """Ctrl-C during training: the last completed epoch is saved; ``--resume`` continues from it."""

    exit_code = EXIT_INTERRUPTED


# --- options ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainOptions:
    """One training run: the data, where it goes, the recipe and the run's own settings."""

    data: str | None = None
    """A Keras-layout .npz or an IDX folder; None: ``$EDGEKIT_DATA``, then Keras' download-and-cache."""
    out: Path = Path("runs/mnist")
    """The run folder."""
    recipe: Recipe = RECIPES["default"]
    val_split: int = 5000
    """Training images held out (the last ones) for validation; 0 validates on nothing."""
    seed: int = 0
    """Seeds weights, data order and augmentation: the same seed and options give the same run."""
    limit: int | None = None
    """Train on the first N training images only (quick runs)."""
    resume: bool = False
    """Continue the run in ``out`` from its last completed epoch (its stored options win)."""
    max_seconds: float | None = None
    """A wall-time budget for training: stop at the first batch past it (benchmarks use it)."""
    precision: Precision | None = None
    """What ``recipe.precision`` resolved to on this machine (``preset`` fills it; None: resolved in ``train``)."""

    @classmethod
    def preset(cls, recipe: str = "default", **overrides: Any) -> "TrainOptions":
        """Options from a named recipe; keyword overrides go to the recipe or the options, whichever has them.

        The precision (``precision=`` or the recipe's) is resolved for this machine first: where it is bfloat16,
        the recipe is its BF16_RECIPES form. A changed precision alone does not make the recipe "+custom"."""
        if recipe not in RECIPES:
            import difflib

            near = difflib.get_close_matches(recipe, RECIPES, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise OptionsError(f"unknown recipe {recipe!r}; {hint}choose one of {', '.join(RECIPES)}")
        recipe_fields = {f.name for f in dataclasses.fields(Recipe)} - {"name"}
        changed = {k: v for k, v in overrides.items() if k in recipe_fields and v is not None}
        rest = {k: v for k, v in overrides.items() if k not in recipe_fields and v is not None}
        unknown = set(rest) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise OptionsError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        requested = changed.pop("precision", None) or RECIPES[recipe].precision
        precision = choose(requested)
        base = BF16_RECIPES.get(recipe, RECIPES[recipe]) if precision.used == "bfloat16" else RECIPES[recipe]
        base = dataclasses.replace(base, precision=requested)
        if any(getattr(base, k) != v for k, v in changed.items()):
            base = dataclasses.replace(base, name=f"{recipe}+custom", **changed)
        if "out" in rest:
            rest["out"] = Path(rest["out"])
        return cls(recipe=base, precision=precision, **rest)

    def check(self) -> None:
        self.recipe.check()
        if self.val_split < 0:
            raise OptionsError(f"--val-split must be 0 or more images, got {self.val_split}")
        if self.limit is not None and self.limit < 1:
            raise OptionsError(f"--limit must be at least 1 image, got {self.limit}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise OptionsError(f"the time budget must be positive, got {self.max_seconds}")

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        d["precision"] = self.resolved_precision().to_json()
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainOptions":
        d = dict(d)
        d["recipe"] = Recipe(**d["recipe"])
        d["out"] = Path(d["out"])
        d["precision"] = Precision.from_json(d.get("precision"))
        return cls(**d)

    def resolved_precision(self) -> Precision:
        return self.precision or choose(self.recipe.precision)


@dataclass(frozen=True)
class RunResult:
    """What ``train`` produced."""

    out: Path
    model_path: Path
    metrics: dict
    history: dict = field(repr=False)

    @property
    def test_accuracy(self) -> float:
        return self.metrics["test"]["accuracy"]


# --- training ---------------------------------------------------------------------------------------

def train(
    options: TrainOptions,
    callbacks: Sequence[Any] | Callable[[], Sequence[Any]] = (),
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Train per ``options`` into ``options.out`` and return the result.

    ``callbacks``: extra Keras callbacks (the CLI's progress bar), or a function making them, called once
    the data has loaded (so bad input fails before Keras is imported). ``log``: receives one-line notes
    (resuming, budget reached). Raises OptionsError / DataError on bad input and TrainingInterrupted on
    Ctrl-C, after the last completed epoch has been saved.
    """
    say = log or (lambda _msg: None)
    out = Path(options.out)
    state: dict | None = None
    if options.resume:
        state = _read_state(out)
        stored = TrainOptions.from_json(state["options"])
        options = dataclasses.replace(stored, data=options.data or stored.data, out=out, resume=True,
                                      max_seconds=options.max_seconds)
        if int(state["epoch"]) >= math.ceil(options.recipe.epochs):
            raise OptionsError(f"{out}: all {options.recipe.epochs:g} epochs are done already; nothing to resume")
    elif holds_a_run(out):
        raise OptionsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    options.check()
    recipe = options.recipe
    precision = options.resolved_precision()
    if state is not None:  # the precision this run started in: it may not run under this process's oneDNN
        check_runs(precision)
    options = dataclasses.replace(options, precision=precision)

    from edgekit.toolkit.data import load_mnist

    mnist = load_mnist(options.data)
    if state is not None and state.get("data_sha256") and mnist.sha256 and state["data_sha256"] != mnist.sha256:
        raise OptionsError(
            f"{mnist.source} is not the data this run started with (sha256 differs); resume with the same --data"
        )
    x_train, y_train, x_val, y_val = _split(mnist, options)
    pool, pool_seconds = _camera_pool(out, x_train, y_train, options, say) if recipe.camera else (None, 0.0)

    import keras

    out.mkdir(parents=True, exist_ok=True)
    steps_per_epoch = len(x_train) // recipe.batch_size
    total_steps = max(1, round(steps_per_epoch * recipe.epochs))
    history: dict[str, list[float]] = {}
    elapsed_before = 0.0
    initial_epoch = 0
    keras.utils.set_random_seed(options.seed)
    if state is None:
        model = _compile(keras, recipe, total_steps, precision)
    else:
        initial_epoch = int(state["epoch"])
        history = {k: list(v) for k, v in state["history"].items()}
        elapsed_before = float(state["train_seconds"])
        try:
            training_batch_norm()  # registers the checkpoint's fused BatchNormalization class
            model = keras.saving.load_model(out / CHECKPOINT_FILE, safe_mode=True)
        except Exception as e:  # a damaged or foreign checkpoint: the user's file, said in one line
            raise OptionsError(f"{out / CHECKPOINT_FILE}: cannot load the checkpoint ({first_line(e, 200)}); "
                               "start a new run in another --out") from None
        _restore_rng_states(model, state.get("dropout_rng"))
        say(f"resuming {recipe.name} ({precision.used}) from epoch {initial_epoch} of {recipe.epochs:g} in {out}")

    validation = None
    if len(x_val):
        validation = (to_model_input(x_val), keras.utils.to_categorical(y_val, NUM_CLASSES))

    saver = _EpochSaver(keras, out, options, mnist.sha256, history, elapsed_before)
    cbs: list[Any] = [saver]
    if recipe.schedule == Schedule.PLATEAU:
        monitor = "val_accuracy" if validation else "accuracy"
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, patience=3, factor=0.5, min_lr=1e-5))
    budget = _Budget(keras, options.max_seconds - elapsed_before) if options.max_seconds else None
    if budget:
        cbs.append(budget)
    cbs.extend(callbacks() if callable(callbacks) else callbacks)

    try:
        # Whole epochs in one fit, then a fractional last epoch (if any) in a second one with fewer steps:
        # the optimizer, its schedule and the compiled step carry over; callbacks see the planned epochs.
        planned = math.ceil(total_steps / steps_per_epoch)
        for epochs, steps in epoch_spans(initial_epoch, total_steps, steps_per_epoch):
            if budget and budget.stopped_at is not None:
                break
            model.fit(
                pipeline(x_train, y_train, recipe, options.seed, epochs, steps, steps_per_epoch, pool),
                epochs=planned,
                initial_epoch=epochs.start,
                steps_per_epoch=steps,
                shuffle=False,  # the pipeline orders the data itself (seeded, resumable)
                validation_data=validation,
                validation_batch_size=500,
                callbacks=[*cbs, _StopAfter(keras, epochs.stop)],
                verbose=0,
            )
    except KeyboardInterrupt:
        done = saver.epochs_done
        where = f"epoch {done} is saved in {out}" if done else "no epoch was completed, nothing saved"
        raise TrainingInterrupted(
            f"interrupted during epoch {done + 1} of {recipe.epochs:g}; {where}; "
            f"continue with: edgekit train --resume --out {out}"
        ) from None
    if budget and budget.stopped_at is not None:
        say(f"time budget of {options.max_seconds:.0f} s reached after {budget.stopped_at} steps of epoch "
            f"{saver.epochs_done + 1}; evaluating the model as it is")
    train_seconds = elapsed_before + saver.train_seconds
    steps_done = int(model.optimizer.iterations)

    # The test set, once, on what is saved: the float32 model with Keras' own layers.
    model = float32_copy(model)
    probabilities = model.predict(to_model_input(mnist.x_test), batch_size=500, verbose=0)
    metrics = _metrics(keras, probabilities, mnist, options, history, train_seconds, saver, budget, len(x_train),
                       steps_done)
    if pool is not None:
        metrics["camera_pool"] = {"crops": int(len(pool.y)), "from_fonts": round(float(pool.source.mean()), 3),
                                  "seconds": round(pool_seconds, 2)}
    write_run(model, out, history, metrics, curves_title=f"{recipe.name} recipe",
              confusion_title=f"Test set: {metrics['test']['accuracy']:.2%} accurate")
    return RunResult(out=out, model_path=out / MODEL_FILE, metrics=metrics, history=history)


# --- pieces -----------------------------------------------------------------------------------------

def _split(mnist, options: TrainOptions):
    n = len(mnist.x_train)
    if options.val_split >= n:
        raise OptionsError(f"--val-split {options.val_split} leaves no training images out of {n}; use fewer")
    cut = n - options.val_split
    x_train, y_train = mnist.x_train[:cut], mnist.y_train[:cut]
    x_val, y_val = mnist.x_train[cut:], mnist.y_train[cut:]
    if options.limit is not None:
        x_train, y_train = x_train[: options.limit], y_train[: options.limit]
    if len(x_train) < options.recipe.batch_size:
        raise OptionsError(
            f"{len(x_train)} training images are fewer than one batch of {options.recipe.batch_size}; "
            "raise --limit or lower --batch-size"
        )
    return x_train, y_train.astype(np.int32), x_val, y_val.astype(np.int32)


def _compile(keras, recipe: Recipe, total_steps: int, precision: Precision):
    model = build_model(bn_momentum=recipe.bn_momentum, dtype=precision.keras_policy, fused_bn=True)
    lr: Any = recipe.learning_rate
    if recipe.schedule == Schedule.ONECYCLE:
        warmup = int(recipe.warmup * total_steps)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=recipe.learning_rate / 25 if warmup else recipe.learning_rate,
            decay_steps=max(1, total_steps - warmup),
            alpha=0.0,
            warmup_target=recipe.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if recipe.optimizer == Optimizer.RMSPROP:
        optimizer = keras.optimizers.RMSprop(lr, rho=0.9, epsilon=1e-8)
    elif recipe.optimizer == Optimizer.ADAMW:
        optimizer = keras.optimizers.AdamW(lr, weight_decay=recipe.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(lr)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def _camera_pool(out: Path, x: np.ndarray, y: np.ndarray, options: TrainOptions, say: Callable[[str], None]):
    """The run's camera crops and the seconds they took: made once (seeded by the run's seed) and kept in the
    run folder, so a resumed run trains on the same ones."""
    from edgekit.toolkit.camera_data import CameraPool, make_pool

    path = out / CAMERA_POOL_FILE
    if path.exists():
        with np.load(path) as f:
            pool = CameraPool(f["x"], f["y"], f["source"])
            if len(pool.y) == options.recipe.camera_pool and int(f["seed"]) == options.seed:
                return pool, float(f["seconds"])
    say(f"making {options.recipe.camera_pool} camera crops (MNIST and font digits through find_digits)")
    t0 = time.perf_counter()
    pool = make_pool(x, y, options.recipe.camera_pool, options.seed)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, x=pool.x, y=pool.y, source=pool.source, seed=options.seed, seconds=seconds)
    return pool, seconds


def _metrics(keras, probabilities, mnist, options, history, train_seconds, saver, budget, n_train, steps) -> dict:
    return {
        "test": test_metrics(probabilities, mnist.y_test),
        "validation": {k: history[k][-1] for k in ("val_accuracy", "val_loss") if history.get(k)},
        "epochs": saver.epochs_done,
        "epochs_planned": options.recipe.epochs,
        "steps": steps,
        "passes": round(steps / (n_train // options.recipe.batch_size), 3),  # epochs' worth of steps: 1.8, 1
        "budget_stopped_at_step": budget.stopped_at if budget else None,
        "train_images": int(n_train),
        "val_images": int(options.val_split),
        "train_seconds": round(train_seconds, 2),
        "seconds_per_epoch": [round(s, 2) for s in history.get("seconds", [])],
        "seed": options.seed,
        "precision": options.resolved_precision().to_json(),
        "data": {"source": mnist.source, "sha256": mnist.sha256},
        "recipe": dataclasses.asdict(options.recipe),
        "options": options.to_json(),
        **environment(keras),
    }


def _EpochSaver(keras, out: Path, options: TrainOptions, data_sha256, history: dict, elapsed_before: float):
    """A callback that, after every epoch, appends to ``history`` and writes the checkpoint atomically."""

    class EpochSaver(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs_done = len(history.get("loss", []))
            self.train_seconds = 0.0  # this session's training time (without checkpoint writing)
            self._t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self._t0
            self.train_seconds += seconds
            for k, v in (logs or {}).items():
                history.setdefault(k, []).append(float(v))
            history.setdefault("learning_rate_end", []).append(_current_lr(self.model))
            history.setdefault("seconds", []).append(round(seconds, 2))
            self.epochs_done = epoch + 1
            save_model(self.model, out / CHECKPOINT_FILE, include_optimizer=True)
            write_json(
                out / CHECKPOINT_STATE,
                {
                    "epoch": self.epochs_done,
                    "history": history,
                    "train_seconds": elapsed_before + self.train_seconds,
                    "data_sha256": data_sha256,
                    "options": options.to_json(),
                    "dropout_rng": _rng_states(self.model),
                },
            )

    return EpochSaver()


def _StopAfter(keras, epochs: int):
    """Ends a fit after epoch ``epochs`` (counted from 1), where its span of the data ends."""

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= epochs:
                self.model.stop_training = True

    return StopAfter()


def _Budget(keras, seconds: float):
    class Budget(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stopped_at: int | None = None
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.stopped_at is None and time.perf_counter() - self._start > seconds:
                self.stopped_at = batch + 1
                self.model.stop_training = True

    return Budget()


def _rng_states(model) -> list[list[int]]:
    """The Dropout layers' random-generator states. A .keras file does not keep them, and a resumed run must
    draw the dropout masks the uninterrupted one would have drawn to end with the same weights."""
    return [[int(v) for v in np.asarray(s)] for s in _rng_variables(model)]


def _restore_rng_states(model, states: list | None) -> None:
    variables = _rng_variables(model)
    if states is None or len(states) != len(variables):  # a checkpoint from before they were saved
        return
    for variable, value in zip(variables, states):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _rng_variables(model) -> list:
    return [v for v in model.variables if v.name == "seed_generator_state"]


def _current_lr(model) -> float:
    opt = model.optimizer
    lr = opt.learning_rate
    try:
        return float(lr(opt.iterations)) if callable(lr) else float(lr.numpy() if hasattr(lr, "numpy") else lr)
    except Exception:  # a schedule without a numeric value: not worth failing the epoch over
        return float("nan")


def _read_state(out: Path) -> dict:
    path = out / CHECKPOINT_STATE
    if not path.is_file() or not (out / CHECKPOINT_FILE).is_file():
        raise OptionsError(f"{out}: no checkpoint to resume from; start a new run without --resume")
    try:
        state = json.loads(path.read_text())
        TrainOptions.from_json(state["options"])
        int(state["epoch"])
    except (ValueError, KeyError, TypeError) as e:
        raise OptionsError(f"{path}: unreadable checkpoint state ({e}); start a new run in another --out") from None
    return state
