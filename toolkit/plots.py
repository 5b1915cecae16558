"""Figures for run folders and reports: training curves, confusion matrix, sample digits, count per class.

Every ``*_png`` function returns PNG bytes (embed them in HTML as base64, or hand them to ``write_png``);
``save_*`` helpers write a file atomically. matplotlib is imported lazily and used through its
object-oriented API with the Agg canvas (``matplotlib.figure.Figure``), never pyplot: no display, no global
backend switch, safe to call from any thread or test.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edgekit.runtime.contract import LABELS, NUM_CLASSES
from edgekit.runtime.files import write_atomic

DPI = 100


# --- numbers ----------------------------------------------------------------------------------------

def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; row = true label, column = predicted label."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat[: num_classes * num_classes].reshape(num_classes, num_classes)


def per_class_accuracy(matrix: np.ndarray) -> list[float | None]:
    """Recall per true class from a confusion matrix (None for a class with no examples)."""
    m = np.asarray(matrix)
    totals = m.sum(axis=1)
    return [float(m[i, i] / totals[i]) if totals[i] else None for i in range(len(m))]


# --- figures (PNG bytes) ----------------------------------------------------------------------------

def curves_png(history: Mapping[str, Sequence[float]], title: str = "Training") -> bytes:
    """Loss (top) and accuracy (bottom) per epoch: ``loss``/``val_loss`` and ``accuracy``/``val_accuracy``."""
    fig = _figure(7.0, 6.0)
    for row, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(2, 1, row + 1)
        for key, label, style in ((metric, "training", "-o"), (f"val_{metric}", "validation", "-s")):
            values = history.get(key) or []
            if len(values):
                ax.plot(range(1, len(values) + 1), values, style, label=label, markersize=4)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(loc="best")
        epochs = max((len(v) for v in history.values() if isinstance(v, (list, tuple))), default=0)
        if epochs:
            ax.set_xticks(range(1, epochs + 1) if epochs <= 20 else ax.get_xticks())
            ax.set_xlim(0.5, epochs + 0.5)
    fig.axes[0].set_title(title)
    fig.axes[-1].set_xlabel("epoch")
    return _png(fig)


def confusion_png(
    matrix: np.ndarray, labels: Sequence[str] = LABELS, title: str = "Confusion matrix", normalize: bool = False
) -> bytes:
    """The matrix as a heat map with the count (or row fraction, if ``normalize``) in every cell."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {m.shape}")
    if normalize:
        rows = m.sum(axis=1, keepdims=True)
        m = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    fig = _figure(6.4, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib.colors import PowerNorm

    # Square-root colour scale so a few off-diagonal errors show next to a diagonal of ~1,000.
    norm = PowerNorm(gamma=0.5, vmin=0, vmax=max(float(m.max()), 1e-9))
    image = ax.imshow(m, interpolation="nearest", cmap="Blues", norm=norm)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the row" if normalize else "count")
    n = len(m)
    ax.set_xticks(range(n), labels=list(labels)[:n])
    ax.set_yticks(range(n), labels=list(labels)[:n])
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title)
    dark = norm(m) > 0.5
    for i in range(n):
        for j in range(n):
            if m[i, j] == 0 and i != j:
                continue
            text = f"{m[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if dark[i, j] else "black")
    return _png(fig)


def samples_png(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray | None = None,
    columns: int = 8,
    title: str | None = None,
) -> bytes:
    """A grid of digits (uint8 (N, 28, 28[, 1]) or float in [0, 1]) titled with their label.

    With ``predicted``, each title reads ``label→predicted`` and wrong predictions are drawn in red.
    """
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W[, 1]), got {np.asarray(images).shape}")
    n = len(x)
    if n == 0:
        raise ValueError("no images to draw")
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    fig = _figure(1.1 * columns, 1.25 * rows + (0.4 if title else 0))
    vmax = 255 if x.dtype == np.uint8 else 1.0
    for k in range(n):
        ax = fig.add_subplot(rows, columns, k + 1)
        ax.imshow(x[k], cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if predicted is None:
            ax.set_title(str(int(labels[k])), fontsize=9)
        else:
            wrong = int(labels[k]) != int(predicted[k])
            ax.set_title(f"{int(labels[k])}→{int(predicted[k])}", fontsize=9, color="red" if wrong else "black")
    if title:
        fig.suptitle(title)
    return _png(fig)


def class_counts_png(labels: np.ndarray, names: Sequence[str] = LABELS, title: str = "Images per class") -> bytes:
    """A bar chart of how many examples each class has (the seed's countplot), counts written on the bars."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64).ravel(), minlength=len(names))[: len(names)]
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.bar(range(len(names)), counts, color="#4878a8")
    ax.bar_label(bars, labels=[str(int(c)) for c in counts], fontsize=8)
    ax.set_xticks(range(len(names)), labels=list(names))
    ax.set_xlabel("class")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.margins(y=0.12)
    return _png(fig)


# --- files ------------------------------------------------------------------------------------------

def write_png(png: bytes, path: str | os.PathLike) -> Path:
    """Write PNG bytes atomically (temporary file in the same folder, then rename)."""
    return write_atomic(path, png)


def save_curves(history: Mapping[str, Sequence[float]], path: str | os.PathLike, **kw) -> Path:
    return write_png(curves_png(history, **kw), path)


def save_confusion(matrix: np.ndarray, path: str | os.PathLike, **kw) -> Path:
    return write_png(confusion_png(matrix, **kw), path)


def save_samples(images: np.ndarray, labels, path: str | os.PathLike, **kw) -> Path:
    return write_png(samples_png(images, labels, **kw), path)


def save_class_counts(labels: np.ndarray, path: str | os.PathLike, **kw) -> Path:
    return write_png(class_counts_png(labels, **kw), path)


# --- matplotlib, lazily -----------------------------------------------------------------------------

def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # Agg canvas via savefig; pyplot (and its global state) never loads

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
