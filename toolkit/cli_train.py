"""`edgekit train` and `edgekit finetune`; registered on the app (cli_app) when edgekit.toolkit.cli imports it.

`train --finetune MODEL --extra DIR` (the older spelling) still runs `finetune`, after a one-line note."""

from __future__ import annotations

import inspect
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekit.runtime.errors import OptionsError
from edgekit.toolkit.cli_app import command
from edgekit.toolkit.precision import PrecisionChoice
from edgekit.toolkit.recipes import Optimizer, RecipeName, Schedule


_RECIPE_HELP = "seed: the notebook's (RMSprop, plateau annealer); default: same time as one seed epoch, ≥99 %; full: the best model on MNIST (augmented, several epochs); camera: the full recipe with a quarter of each batch cut from camera-like frames by the runtime (bold and thin strokes, print, light on dark) — for webcams."


@command("train")
def train(
    ctx: typer.Context,
    data: Annotated[Optional[Path], typer.Option(help="Keras-layout mnist.npz, a folder of the four IDX files, or a digit folder DIR/<digit>/*.png (default: $EDGEKIT_DATA, then Keras' download).")] = None,
    out: Annotated[Path, typer.Option(help="Run folder for model.keras, metrics.json, history.json, curves.png, confusion.png and the checkpoint.")] = Path("runs/mnist"),
    recipe: Annotated[RecipeName, typer.Option(help=_RECIPE_HELP)] = RecipeName("default"),
    epochs: Annotated[Optional[float], typer.Option(help="Passes over the training images; a fraction ends the last epoch early (1.7) [recipe's].")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per step [recipe's].")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Starting (plateau/constant) or peak (onecycle) learning rate [recipe's].")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Small random rotation, zoom and shift in the input pipeline (never in the saved model) [recipe's].")] = None,
    optimizer: Annotated[Optional[Optimizer], typer.Option(help="[recipe's]")] = None,
    schedule: Annotated[Optional[Schedule], typer.Option(help="plateau: the seed's ReduceLROnPlateau; onecycle: warm-up then cosine, per batch [recipe's].")] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help="[recipe's]")] = None,
    bn_momentum: Annotated[Optional[float], typer.Option(help="BatchNormalization momentum [recipe's].")] = None,
    precision: Annotated[Optional[PrecisionChoice], typer.Option(help="auto: bfloat16 where the CPU (avx512_bf16/amx_bf16) or GPU has it natively, else float32; the saved model is float32 either way [recipe's: auto; the seed recipe float32].")] = None,
    val_split: Annotated[Optional[int], typer.Option(help="Training images held out (the last ones) for validation; the test set is used once, at the end [5000; 0 for a digit folder, whose held-out 20 % is its test set].")] = None,
    seed: Annotated[int, typer.Option(help="Seeds weights, data order and augmentation.")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="Train on the first N training images only (quick runs).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last completed epoch, with its stored options.")] = False,
    # The older spelling of `edgekit finetune MODEL --extra DIR [--steps N]`: still taken, not listed.
    finetune_from: Annotated[Optional[Path], typer.Option("--finetune", hidden=True)] = None,
    extra: Annotated[Optional[Path], typer.Option("--extra", hidden=True)] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", hidden=True)] = None,
) -> None:
    """Train the seed notebook's CNN on MNIST (or a digit folder) into a run folder (Ctrl-C saves; --resume
    continues). To fine-tune a trained model on your own digits: edgekit finetune."""
    if finetune_from is not None or extra is not None or steps is not None:
        return _train_finetune(ctx, finetune_from, extra, steps, data, out, batch_size, learning_rate, seed)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines are not for our users
    if val_split is None:
        from edgekit.toolkit.data import is_digit_folder

        val_split = 0 if data is not None and is_digit_folder(data) else 5000
    from edgekit.toolkit.train import TrainOptions, train as run

    overrides = {
        "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "augment": augment,
        "optimizer": optimizer.value if optimizer else None, "schedule": schedule.value if schedule else None,
        "label_smoothing": label_smoothing, "bn_momentum": bn_momentum,
        "precision": precision.value if precision else None,
    }
    given = [name for name in (*overrides, "recipe", "val_split", "seed", "limit")
             if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"]
    if resume and given:
        flags = ", ".join("--" + g.replace("_", "-") for g in given)
        raise OptionsError(f"--resume continues the stored options; drop {flags} (or start a new run in another --out)")
    options = TrainOptions.preset(
        recipe.value, data=str(data) if data else None, out=out, val_split=val_split, seed=seed, limit=limit,
        resume=resume, **overrides,
    )
    options.check()
    note = lambda msg: typer.echo(f"edgekit: {msg}", err=True)  # noqa: E731
    if not resume:
        r, p = options.recipe, options.resolved_precision()
        note(f"training recipe {r.name}: {r.epochs:g} epoch(s), batch {r.batch_size}, {r.optimizer} {r.schedule} "
             f"lr {r.learning_rate:g}, label smoothing {r.label_smoothing:g}, BN momentum {r.bn_momentum:g}, "
             f"augment {'on' if r.augment else 'off'}, seed {options.seed}")
        note(f"precision {p.used} ({p.requested}: {p.why})")
    started = time.perf_counter()
    result = run(options, callbacks=lambda: [_progress_bar()], log=note)
    m = result.metrics
    typer.echo(f"test accuracy {m['test']['accuracy']:.2%} (loss {m['test']['loss']:.4f}) on {m['test']['images']:,} test images")
    passes = f" ({m['passes']:g} passes)" if m["passes"] != m["epochs"] else ""
    typer.echo(f"trained {m['epochs']} epoch(s){passes} on {m['train_images']:,} images in {_duration(m['train_seconds'])} "
               f"(recipe {m['recipe']['name']}, {m['precision']['used']}, seed {m['seed']}); "
               f"{_duration(time.perf_counter() - started)} in all")
    typer.echo(f"run folder {result.out}: model.keras, metrics.json, history.json, curves.png, confusion.png, checkpoint.keras")


@command("finetune")
def finetune(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="The trained model to start from: RUN/model.keras, as edgekit train wrote it.")],
    extra: Annotated[Path, typer.Option("--extra", metavar="DIR", help="Your digits, DIR/<digit>/*.png (edgekit collect); a seeded 20 % of each digit is held out.")],
    data: Annotated[Optional[Path], typer.Option(help="MNIST, mixed into every batch and the test set: Keras-layout mnist.npz or a folder of the four IDX files (default: $EDGEKIT_DATA, then Keras' download).")] = None,
    out: Annotated[Path, typer.Option(help="The new run folder: model.keras, metrics.json, history.json, curves.png, confusion.png.")] = Path("runs/finetuned"),
    steps: Annotated[Optional[int], typer.Option(help="Optimizer steps, half of each batch your digits [300].")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per step [64].")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Adam's peak rate, after a warm-up, then a cosine to 0 [1e-4].")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the batch order and augmentation (the held-out split has its own fixed seed).")] = 0,
) -> None:
    """Fine-tune a trained model on your own digits (a folder edgekit collect wrote) without forgetting MNIST:
    every batch half yours, half MNIST; the result is an ordinary run folder for edgekit export and validate."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgekit.toolkit.finetune import FinetuneOptions, finetune as run

    given = {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate}
    options = FinetuneOptions(model=model, extra=extra, out=out, data=str(data) if data else None, seed=seed,
                              **{k: v for k, v in given.items() if v is not None})
    options.check()
    note = lambda msg: typer.echo(f"edgekit: {msg}", err=True)  # noqa: E731
    started = time.perf_counter()
    result = run(options, callbacks=lambda: [_progress_bar()], log=note)
    f = result.metrics["finetune"]
    typer.echo(f"MNIST test accuracy {f['mnist_test_accuracy']['before']:.2%} -> {f['mnist_test_accuracy']['after']:.2%} "
               f"on {result.metrics['test']['images']:,} test images")
    typer.echo(f"held-out accuracy on your digits {f['held_out_accuracy']['before']:.2%} -> {f['held_out_accuracy']['after']:.2%} "
               f"on {f['held_out_images']} held-out crops ({f['user_train_images']} trained on)")
    typer.echo(f"fine-tuned {f['steps']} steps in {_duration(result.metrics['train_seconds'])} "
               f"({f['cpu_seconds']:.0f} s CPU); {_duration(time.perf_counter() - started)} in all")
    typer.echo(f"run folder {result.out}: model.keras, metrics.json, history.json, curves.png, confusion.png")


def _train_finetune(ctx, model, extra, steps, data, out, batch_size, learning_rate, seed) -> None:
    """`train --finetune MODEL --extra DIR`: `finetune` under its older name. What `finetune` takes is read from
    its signature; a training option given beside it is refused, as it would be ignored."""
    typer.echo("edgekit: note: `train --finetune MODEL --extra DIR` is now `edgekit finetune MODEL --extra DIR`", err=True)
    takes = set(inspect.signature(finetune).parameters)
    given = [p.name for p in ctx.command.params if p.name not in takes | {"finetune_from"}
             and getattr(ctx.get_parameter_source(p.name), "name", "DEFAULT") != "DEFAULT"]
    if given:
        raise OptionsError(f"--finetune does not take {', '.join('--' + g.replace('_', '-') for g in given)}; "
                           "see `edgekit finetune --help` for what it takes")
    if model is None:
        raise OptionsError("--extra and --steps fine-tune a model: add --finetune RUN/model.keras")
    if extra is None:
        raise OptionsError("--finetune needs --extra DIR, your digits (DIR/<digit>/*.png, as edgekit collect writes them)")
    finetune(model, extra, data=data, out=out, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed)


def _progress_bar():
    """A Keras callback drawing one progress bar per epoch on stderr (a line per epoch when not a terminal)."""
    import keras

    class ProgressBar(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.tty = sys.stderr.isatty()
            self.epoch = 0
            self.t0 = self.last = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.t0, self.last = epoch, time.perf_counter(), 0.0

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            total = self.params.get("steps") or 0
            if not self.tty or (now - self.last < 0.25 and batch + 1 < total):
                return
            self.last = now
            done = (batch + 1) / total if total else 0.0
            eta = (now - self.t0) * (1 - done) / done if done else 0.0
            bar = "#" * int(done * 30)
            loss, acc = (logs or {}).get("loss", float("nan")), (logs or {}).get("accuracy", float("nan"))
            sys.stderr.write(f"\repoch {self.epoch + 1}/{self.params.get('epochs')} [{bar:<30}] {batch + 1}/{total} "
                             f"loss {loss:.4f} accuracy {acc:.4f} eta {_duration(eta)}   ")
            sys.stderr.flush()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            val = f"  val_loss {logs['val_loss']:.4f} val_accuracy {logs['val_accuracy']:.4f}" if "val_loss" in logs else ""
            end = "\r" + " " * 110 + "\r" if self.tty else ""
            sys.stderr.write(f"{end}epoch {epoch + 1}/{self.params.get('epochs')}  loss {logs.get('loss', 0):.4f} "
                             f"accuracy {logs.get('accuracy', 0):.4f}{val}  {_duration(time.perf_counter() - self.t0)}\n")
            sys.stderr.flush()

    return ProgressBar()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
