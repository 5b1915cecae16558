"""Reporting a validation: the ``ValidationReport`` (the reference row, one row per artifact, the verdict) and its
forms — the plain-text table the CLI prints, Markdown, JSON. The HTML report is ``edgekit.toolkit.report``'s.

``export/measure.py`` measures, ``export/parity.py`` judges, this module reports; ``export/validate.py`` runs the
three in order.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.export import parity
from edgekit.export.parity import Thresholds
from edgekit.runtime.errors import OptionsError, ParityError
from edgekit.runtime.files import write_atomic
from edgekit.runtime.metadata import edgekit_version

SCHEMA = 1
REFERENCE_NAME = "keras"  # the reference row's name in the table and the JSON
RUN_FILES = ("history.json", "curves.png")  # a .keras beside either of these sits in a training run folder


# --- results ------------------------------------------------------------------------------------------

@dataclass
class ArtifactResult:
    """One row of the table. ``predictions`` and ``confidence`` stay out of the JSON (the HTML report uses them)."""

    name: str  # the file name, or "keras" for the reference
    format: str  # "keras", "tflite", "onnx"
    quantization: str  # "none", "float16", "dynamic", "int8"
    bytes: int
    accuracy: float  # percent of images right
    delta_accuracy: float  # points, against Keras (negative: lost accuracy)
    agreement: float  # percent of images with Keras' top-1 answer
    max_abs_diff: float  # largest |probability - Keras' probability|
    latency_p50_ms: float
    latency_p95_ms: float
    throughput: float  # images per second, batched
    reasons: list[str] = field(default_factory=list)  # why it failed; empty when it passed
    checked: str = ""  # the thresholds it was held to, as a phrase
    predictions: np.ndarray | None = field(default=None, repr=False)
    confidence: np.ndarray | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def size_mb(self) -> float:
        return self.bytes / 1e6

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "format": self.format,
            "quantization": self.quantization,
            "bytes": int(self.bytes),
            "size_mb": round(self.size_mb, 4),
            "accuracy": _finite(self.accuracy),
            "delta_accuracy": _finite(self.delta_accuracy),
            "agreement": _finite(self.agreement),
            "max_abs_diff": _finite(self.max_abs_diff),
            "latency_p50_ms": _finite(self.latency_p50_ms),
            "latency_p95_ms": _finite(self.latency_p95_ms),
            "throughput": _finite(self.throughput),
            "status": "pass" if self.passed else "fail",
            "reasons": list(self.reasons),
            "checked": self.checked,
        }


@dataclass
class ValidationReport:
    """Everything one validation measured: the reference row, one row per artifact, and the verdict."""

    export_dir: str
    reference_path: str
    reference_sha256: str
    data_source: str
    data_sha256: str | None
    thresholds: Thresholds
    reference: ArtifactResult
    artifacts: list[ArtifactResult]
    labels: np.ndarray = field(repr=False)  # (N,) true labels of the images used
    images: np.ndarray = field(repr=False)  # (N, 28, 28) uint8 digits, or (N, H, W, C) at an image model's size (RGB)
    notes: list[str] = field(default_factory=list)
    layers: list = field(default_factory=list)  # per-layer int8 error tables (layer_error.LayerReport), if asked for
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    model: Any = field(default=None, repr=False, compare=False)  # the Keras reference, loaded (layer_error reuses it)
    class_names: tuple[str, ...] = ()  # an image model's labels (its metadata's); empty: the digit model's 0-9
    data_kind: str = "MNIST test"  # what the images are, for the table's legend

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts)

    @property
    def failures(self) -> list[ArtifactResult]:
        return [a for a in self.artifacts if not a.passed]

    @property
    def run_dir(self) -> Path | None:
        """The training run folder the reference came from, when it looks like one."""
        folder = Path(self.reference_path).parent
        return folder if any((folder / name).is_file() for name in RUN_FILES) else None

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "edgekit_version": edgekit_version(),
            "created": self.created,
            "passed": self.passed,
            "failures": len(self.failures),
            "export_dir": self.export_dir,
            "reference": {"path": self.reference_path, "sha256": self.reference_sha256, **self.reference.to_dict()},
            "data": {"source": self.data_source, "sha256": self.data_sha256},
            "images": int(len(self.labels)),
            "thresholds": asdict(self.thresholds),
            "notes": list(self.notes),
            "artifacts": [a.to_dict() for a in self.artifacts],
            **({"labels": list(self.class_names)} if self.class_names else {}),  # an image model's class names
            **({"layers": [layer.to_dict() for layer in self.layers]} if self.layers else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def write_json(self, path: str | os.PathLike) -> Path:
        return write_report_file(path, self.to_json())

    def table(self) -> str:
        """The plain-text table (what the CLI prints)."""
        return format_table(self)

    def markdown(self) -> str:
        """The same table as Markdown (for a README or a CI summary)."""
        return format_markdown(self)

    def summary(self) -> str:
        """One line: the verdict."""
        n = len(self.artifacts)
        if self.passed:
            return f"parity holds: {n} of {n} artifact(s) within the thresholds on {len(self.labels):,} images"
        bad = "; ".join(f"{a.name}: {', '.join(a.reasons)}" for a in self.failures)
        return f"parity failed for {len(self.failures)} of {n} artifact(s) on {len(self.labels):,} images: {bad}"

    def check(self) -> None:
        """Raise one ParityError naming every failed artifact (exit code 1); return when all passed."""
        if not self.passed:
            error = ParityError(self.summary())
            error.report = self
            raise error


# --- formatting ---------------------------------------------------------------------------------------

_COLUMNS = ("artifact", "format", "quant", "size MB", "accuracy", "Δ acc", "agree", "max |Δp|",
            "p50 ms", "p95 ms", "img/s", "status")


def _cells(row: ArtifactResult, reference: bool = False) -> list[str]:
    if reference:
        delta, agree, diff, status = "—", "—", "—", "reference"
    else:
        delta = f"{row.delta_accuracy:+.2f}"
        agree = f"{row.agreement:.2f} %"
        diff = f"{row.max_abs_diff:.1e}" if math.isfinite(row.max_abs_diff) else "inf"
        status = "✓" if row.passed else "✗ " + "; ".join(row.reasons)
    return [row.name, row.format, row.quantization, f"{row.size_mb:.2f}", f"{row.accuracy:.2f} %", delta, agree,
            diff, f"{row.latency_p50_ms:.2f}", f"{row.latency_p95_ms:.2f}", f"{row.throughput:,.0f}", status]


def format_table(report: ValidationReport) -> str:
    rows = [_cells(report.reference, reference=True)] + [_cells(a) for a in report.artifacts]
    widths = [max(len(c[i]) for c in rows + [list(_COLUMNS)]) for i in range(len(_COLUMNS) - 1)]
    right = {3, 4, 5, 6, 7, 8, 9, 10}

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out + [cells[-1]]).rstrip()

    legend = [
        f"{len(report.labels):,} {report.data_kind} images; Δ acc in points against Keras; agree = same top-1 answer as Keras;",
        parity.legend(report.thresholds),
    ]
    body = [line(_COLUMNS), line(["-" * w for w in widths] + ["-" * 6])] + [line(r) for r in rows]
    return "\n".join(body + [""] + legend + [f"note: {n}" for n in report.notes])


def format_markdown(report: ValidationReport) -> str:
    rows = [_cells(report.reference, reference=True)] + [_cells(a) for a in report.artifacts]
    head = "| " + " | ".join(c.replace("|", "\\|") for c in _COLUMNS) + " |"
    align = "|" + "|".join("---:" if 3 <= i <= 10 else "---" for i in range(len(_COLUMNS))) + "|"
    return "\n".join([head, align] + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows])


# --- small helpers ------------------------------------------------------------------------------------

def write_report_file(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically to ``path``, whose folder must exist (OptionsError, exit 2, when not)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OptionsError(f"{path.parent}: no such folder for {path.name}")
    return write_atomic(path, text)


def _finite(value: float) -> float | None:
    """JSON has no inf or NaN: those become null."""
    return float(value) if math.isfinite(value) else None
