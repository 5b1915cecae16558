"""Measuring an artifact against its Keras reference: running both over the same images (batched for throughput,
one by one for latency) and the parity figures of the two sets of probabilities. No verdict here: the rules are
``export/parity.py``'s, the report ``export/validation_report.py``'s.

Artifacts run through ``edgekit.runtime.Classifier``, the code the device runs, never through TensorFlow.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgekit.runtime.contract import NUM_CLASSES
from edgekit.runtime.errors import EdgekitError, ModelLoadError, first_line


def parity_metrics(reference: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy (%), its difference to the reference (points), top-1 agreement (%), max |Δ probability|.

    ``reference`` and ``probabilities`` are (N, classes); ``labels`` (N,) integers. A non-finite probability
    makes ``max_abs_diff`` infinite, so no threshold can pass it.
    """
    reference = np.asarray(reference, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if reference.shape != probabilities.shape or reference.ndim != 2 or len(reference) != len(labels):
        raise ValueError(
            f"expected (N, classes) probabilities for {len(labels)} labels, "
            f"got {probabilities.shape} against a reference of {reference.shape}"
        )
    ref_top, top = reference.argmax(axis=1), probabilities.argmax(axis=1)
    ref_accuracy = 100.0 * float(np.mean(ref_top == labels))
    accuracy = 100.0 * float(np.mean(top == labels))
    diff = np.abs(probabilities - reference)
    max_abs_diff = float(diff.max()) if np.isfinite(diff).all() else math.inf
    return {
        "accuracy": accuracy,
        "delta_accuracy": accuracy - ref_accuracy,
        "accuracy_drop": ref_accuracy - accuracy,
        "agreement": 100.0 * float(np.mean(top == ref_top)),
        "max_abs_diff": max_abs_diff,
    }


def latency_stats(seconds: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    ms = 1000.0 * np.asarray(seconds, dtype=np.float64)
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


# --- running models ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    """Where a validation is: model ``model`` of ``models`` (the reference is 1), ``done`` of ``total`` images."""

    name: str
    model: int
    models: int
    done: int
    total: int


def load_artifact(path: Path, threads: int | None = None):
    """The artifact through the device's runtime; a file that cannot be loaded is ModelLoadError (exit 2)."""
    from edgekit.runtime import Classifier

    try:
        return Classifier(path, threads=threads)
    except EdgekitError:
        raise
    except Exception as e:  # a backend's own error on a corrupt file
        raise ModelLoadError(f"{path}: cannot be loaded ({first_line(e)}); re-run `edgekit export`") from None


def run_batches(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int, name: str,
                 on_progress: Callable[[Progress], None] | None, model: int = 1, models: int = 1,
                 classes: int = NUM_CLASSES) -> tuple[np.ndarray, float]:
    """Probabilities (N, ``classes``) for all of ``x`` in batches, and the batched throughput (images/s, after one
    warm-up batch)."""
    predict(x[: min(batch_size, len(x))])  # warm-up: allocation, graph tracing, tensor resizing
    out = np.empty((len(x), classes), dtype=np.float32)
    start = time.perf_counter()
    for lo in range(0, len(x), batch_size):
        hi = min(lo + batch_size, len(x))
        p = np.asarray(predict(x[lo:hi]))
        if p.shape != (hi - lo, classes):
            raise ModelLoadError(f"{name}: returned probabilities of shape {p.shape} for {hi - lo} images; expected ({hi - lo}, {classes})")
        out[lo:hi] = p
        if on_progress:
            on_progress(Progress(name, model, models, hi, len(x)))
    elapsed = time.perf_counter() - start
    return out, len(x) / elapsed if elapsed > 0 else math.inf


def single_latency(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, runs: int) -> tuple[float, float]:
    """p50 and p95 (ms) of one-image calls over ``runs`` different test images (after 3 warm-up calls)."""
    for i in range(min(3, len(x))):
        predict(x[i : i + 1])
    times = []
    for i in range(max(1, runs)):
        one = x[i % len(x)][None]
        start = time.perf_counter()
        predict(one)
        times.append(time.perf_counter() - start)
    return latency_stats(times)
