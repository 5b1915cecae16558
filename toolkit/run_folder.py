"""A run folder: the files ``edgekit train`` and ``edgekit finetune`` write, and how they write them.

    RUN/model.keras     the trained model (float32, uncompiled)     RUN/history.json    per-epoch figures
    RUN/curves.png      loss and accuracy per epoch                 RUN/confusion.png   the test set's confusion
    RUN/metrics.json    written last: its presence means the run is complete
    RUN/checkpoint.keras + checkpoint.json   after every epoch of `train`, so `--resume` continues; kept after

Every file is written atomically (``edgekit.runtime.files``): a run stopped at any moment leaves whole files.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from edgekit.runtime.contract import LABELS
from edgekit.runtime.files import atomic_path, write_json

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion.png"
CHECKPOINT_FILE = "checkpoint.keras"
CHECKPOINT_STATE = "checkpoint.json"
CAMERA_POOL_FILE = "camera_pool.npz"


def holds_a_run(out: Path) -> bool:
    """Whether ``out`` already holds a run (finished, or with a checkpoint)."""
    return out.exists() and any((out / f).exists() for f in (MODEL_FILE, CHECKPOINT_STATE))


def save_model(model, path: Path, include_optimizer: bool) -> None:
    """Save atomically; without the optimizer, an uncompiled float32 copy (4 MB instead of 12 MB with Adam's
    state; float32 whatever precision trained it). With it (a checkpoint), the model as it trains."""
    if not include_optimizer:
        from edgekit.toolkit.precision import float32_copy

        model = float32_copy(model)
    with atomic_path(path) as tmp:
        model.save(tmp)


def test_metrics(probabilities: np.ndarray, y: np.ndarray) -> dict:
    """metrics.json's ``test``: accuracy, plain cross-entropy (no label smoothing, comparable across recipes),
    per-class accuracy and the confusion matrix of ``probabilities`` against labels ``y``."""
    from edgekit.toolkit.plots import confusion_matrix, per_class_accuracy

    y = np.asarray(y).astype(np.int64)
    predicted = probabilities.argmax(axis=1)
    loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1.0))))
    matrix = confusion_matrix(y, predicted)
    return {
        "accuracy": float(np.mean(predicted == y)),
        "loss": loss,
        "images": int(len(y)),
        "per_class_accuracy": dict(zip(LABELS, per_class_accuracy(matrix))),
        "confusion_matrix": matrix.tolist(),
    }


def environment(keras) -> dict:
    """metrics.json's ``versions`` and ``machine``."""
    import tensorflow as tf

    return {
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }


def write_run(model, out: Path, history: dict, metrics: dict, curves_title: str, confusion_title: str) -> None:
    """The finished run: model, history, the two plots, then metrics.json (last: the run is complete)."""
    from edgekit.toolkit import plots

    save_model(model, out / MODEL_FILE, include_optimizer=False)
    write_json(out / HISTORY_FILE, history)
    plots.save_curves({k: v for k, v in history.items() if k != "seconds"}, out / CURVES_FILE, title=curves_title)
    plots.save_confusion(np.asarray(metrics["test"]["confusion_matrix"]), out / CONFUSION_FILE, title=confusion_title)
    write_json(out / METRICS_FILE, metrics)
