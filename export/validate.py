"""Parity validation: every exported artifact against the Keras model it came from, on real MNIST.

The Keras reference (loaded with ``safe_mode``) and every artifact listed in the export folder's
``manifest.json`` run on the same test images; the artifacts run through ``edgekit.runtime.Classifier``,
the code the device runs, never through TensorFlow. Per artifact we measure accuracy, its difference to
Keras, top-1 agreement with Keras, the largest probability difference, single-image latency and batched
throughput, then check the thresholds that fit its quantization. Every artifact is evaluated before the
verdict: ``validate`` collects all results into a ``ValidationReport`` and only then raises one
``ParityError`` naming every failure (exit code 1).
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgekit.runtime.contract import NUM_CLASSES, to_model_input
from edgekit.runtime.errors import EdgekitError, ModelLoadError, OptionsError, ParityError, first_line
from edgekit.runtime.files import write_atomic
from edgekit.runtime.metadata import edgekit_version

SCHEMA = 1
MANIFEST_NAME = "manifest.json"
REFERENCE_NAME = "keras"  # the reference row's name in the table and the JSON
RUN_FILES = ("history.json", "curves.png")  # a .keras beside either of these sits in a training run folder


# --- thresholds ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Thresholds:
    """What an artifact must achieve against the Keras reference, by quantization.

    float32 exports (quantization ``none``) compute what Keras computes, only in another order: they must
    give the same top-1 answer on every image, with probabilities within ``float_max_abs_diff``.
    float16 weights change probabilities by ~1e-3, so an answer may flip on a near-tie: top-1 agreement.
    Dynamic-range and int8 quantization change answers on hard digits in both directions, so what matters
    is the accuracy they lose. 0.15 point is 15 of the 10,000 test images. Since the export folds the
    post-ReLU BatchNormalization (``fold.py``), the dynamic and int8 exports of four trained models (default
    recipe seeds 0-2, full recipe) lose at most 0.01 point (``benchmarks/quantization.py``; docs/quantization.md),
    so 0.15 leaves room for other machines and calibration noise, while the losses the fold removed (0.13-0.39
    point measured) and a broken calibration or a wrong input scale (whole points) fail.
    """

    float_max_abs_diff: float = 1e-4
    """float32 (TFLite, ONNX): the largest |probability difference| to Keras allowed on any image and class."""
    float_min_agreement: float = 100.0
    """float32 (TFLite, ONNX): top-1 agreement with Keras, percent of images."""
    float16_min_agreement: float = 99.95
    """float16: top-1 agreement with Keras, percent of images."""
    quantized_max_drop: float = 0.15
    """dynamic-range and int8: accuracy lost against Keras, percentage points."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise OptionsError(f"threshold {f.name} must be a finite number >= 0, got {value!r}")
        for name in ("float_min_agreement", "float16_min_agreement"):
            if getattr(self, name) > 100:
                raise OptionsError(f"threshold {name} is a percentage, at most 100, got {getattr(self, name)!r}")
        if self.quantized_max_drop > 100:
            raise OptionsError(f"threshold quantized_max_drop is in points, at most 100, got {self.quantized_max_drop!r}")


# One small table: which measured figure each quantization is judged by, against which threshold.
# (metric key, comparison, Thresholds field, how the figure reads in a reason)
_RULES: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "none": (
        ("agreement", ">=", "float_min_agreement", "top-1 agreement {v:.2f} % < {t:g} %"),
        ("max_abs_diff", "<=", "float_max_abs_diff", "max |Δp| {v:.2g} > {t:g}"),
    ),
    "float16": (("agreement", ">=", "float16_min_agreement", "top-1 agreement {v:.2f} % < {t:g} %"),),
    "dynamic": (("accuracy_drop", "<=", "quantized_max_drop", "accuracy drop {v:.2f} points > {t:g}"),),
    "int8": (("accuracy_drop", "<=", "quantized_max_drop", "accuracy drop {v:.2f} points > {t:g}"),),
}
QUANTIZATIONS = tuple(_RULES)


def rule_text(quantization: str, thresholds: Thresholds) -> str:
    """What an artifact of this quantization is checked against, as one short phrase."""
    parts = []
    for metric, op, name, _ in _RULES[quantization]:
        label = {"agreement": "top-1 agreement", "max_abs_diff": "max |Δp|", "accuracy_drop": "accuracy drop"}[metric]
        unit = {"agreement": " %", "accuracy_drop": " points"}.get(metric, "")
        parts.append(f"{label} {'≥' if op == '>=' else '≤'} {getattr(thresholds, name):g}{unit}")
    return ", ".join(parts)


def check(quantization: str, metrics: dict[str, float], thresholds: Thresholds) -> list[str]:
    """The reasons an artifact fails its quantization's thresholds (empty when it passes)."""
    reasons = []
    for metric, op, name, text in _RULES[quantization]:
        value, limit = metrics[metric], getattr(thresholds, name)
        ok = value >= limit if op == ">=" else value <= limit
        if not ok or not math.isfinite(value):
            reasons.append(text.format(v=value, t=limit))
    return reasons


# --- metrics on arrays --------------------------------------------------------------------------------

def parity_metrics(reference: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy (%), its difference to the reference (points), top-1 agreement (%), max |Δ probability|.

    ``reference`` and ``probabilities`` are (N, 10); ``labels`` (N,) integers. A non-finite probability
    makes ``max_abs_diff`` infinite, so no threshold can pass it.
    """
    reference = np.asarray(reference, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if reference.shape != probabilities.shape or reference.shape != (len(labels), NUM_CLASSES):
        raise ValueError(
            f"expected (N, {NUM_CLASSES}) probabilities for {len(labels)} labels, "
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
    images: np.ndarray = field(repr=False)  # (N, 28, 28) uint8, the images used
    notes: list[str] = field(default_factory=list)
    layers: list = field(default_factory=list)  # per-layer int8 error tables (layer_error.LayerReport), if asked for
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

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
            **({"layers": [layer.to_dict() for layer in self.layers]} if self.layers else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def write_json(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, self.to_json())

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


# --- the manifest -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    file: str
    format: str
    quantization: str
    bytes: int
    sha256: str | None


def read_manifest(export_dir: str | os.PathLike) -> tuple[dict, list[_Entry]]:
    """The manifest as a dict and its artifact entries, checked; ModelLoadError (exit 2) when unusable."""
    folder = Path(export_dir)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: no such folder; pass the folder `edgekit export --out` wrote")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ModelLoadError(f"{path}: not found; {folder} is not an edgekit export folder (run `edgekit export` first)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}: not valid JSON ({e}); re-run `edgekit export`") from None
    artifacts = manifest.get("artifacts") if isinstance(manifest, dict) else None
    if not isinstance(artifacts, list) or not artifacts:
        raise ModelLoadError(f"{path}: lists no artifacts; re-run `edgekit export`")
    entries = []
    for i, item in enumerate(artifacts):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("file", "format", "quantization")):
            raise ModelLoadError(f"{path}: artifact #{i + 1} lacks file, format or quantization; re-run `edgekit export`")
        if Path(item["file"]).name != item["file"]:
            raise ModelLoadError(f"{path}: artifact file {item['file']!r} is not a plain file name inside the folder")
        if item["quantization"] not in _RULES:
            raise ModelLoadError(
                f"{path}: {item['file']} has quantization {item['quantization']!r}; known: {', '.join(QUANTIZATIONS)}"
            )
        file = folder / item["file"]
        if not file.is_file():
            raise ModelLoadError(f"{file}: listed in {MANIFEST_NAME} but missing; re-run `edgekit export`")
        entries.append(_Entry(item["file"], item["format"], item["quantization"], file.stat().st_size, item.get("sha256")))
    return manifest, entries


def reference_from_manifest(export_dir: str | os.PathLike, manifest: dict) -> Path:
    """The .keras the manifest says the artifacts came from (absolute, or relative to the folder or cwd)."""
    source = manifest.get("source") if isinstance(manifest, dict) else None
    named = source.get("path") if isinstance(source, dict) else None
    if not isinstance(named, str) or not named:
        raise ModelLoadError(f"{Path(export_dir) / MANIFEST_NAME}: names no source model; pass --reference RUN/model.keras")
    path = Path(named).expanduser()
    if not path.is_absolute() and not path.exists() and (Path(export_dir) / path).exists():
        path = Path(export_dir) / path
    return path


# --- running models -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    """Where a validation is: model ``model`` of ``models`` (the reference is 1), ``done`` of ``total`` images."""

    name: str
    model: int
    models: int
    done: int
    total: int


def load_reference(path: str | os.PathLike):
    """The Keras model, loaded with safe_mode; ModelLoadError (exit 2) when it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such Keras model; pass --reference RUN/model.keras")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" for an empty or truncated file
        raise ModelLoadError(f"{path}: cannot load the Keras model (the file is "
                             f"{'empty' if path.stat().st_size == 0 else 'truncated or not a zip archive'}, and a .keras is a zip); pass --reference RUN/model.keras")
    try:
        import keras

        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except ImportError as e:
        from edgekit.runtime.errors import BackendMissingError

        raise BackendMissingError(f"validating needs Keras ({e}); pip install 'edgekit[train]'") from None
    except Exception as e:  # any failure to read the file is the file's fault, said in one line
        if "safe_mode" in str(e):  # custom Python code (a Lambda layer): refused, never run
            raise ModelLoadError(f"{path}: refused by Keras safe_mode ({str(e).split('.')[0]}); edgekit loads only "
                                 "models without custom Python code such as Lambda layers") from None
        raise ModelLoadError(f"{path}: cannot load the Keras model ({first_line(e)}); pass a .keras that `edgekit train` wrote") from None


def load_artifact(path: Path, threads: int | None = None):
    """The artifact through the device's runtime; a file that cannot be loaded is ModelLoadError (exit 2)."""
    from edgekit.runtime import Classifier

    try:
        return Classifier(path, threads=threads)
    except EdgekitError:
        raise
    except Exception as e:  # a backend's own error on a corrupt file
        raise ModelLoadError(f"{path}: cannot be loaded ({first_line(e)}); re-run `edgekit export`") from None


def _run_batches(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int, name: str,
                 on_progress: Callable[[Progress], None] | None, model: int = 1, models: int = 1) -> tuple[np.ndarray, float]:
    """Probabilities for all of ``x`` in batches, and the batched throughput (images/s, after one warm-up batch)."""
    predict(x[: min(batch_size, len(x))])  # warm-up: allocation, graph tracing, tensor resizing
    out = np.empty((len(x), NUM_CLASSES), dtype=np.float32)
    start = time.perf_counter()
    for lo in range(0, len(x), batch_size):
        hi = min(lo + batch_size, len(x))
        p = np.asarray(predict(x[lo:hi]))
        if p.shape != (hi - lo, NUM_CLASSES):
            raise ModelLoadError(f"{name}: returned probabilities of shape {p.shape} for {hi - lo} images; expected ({hi - lo}, {NUM_CLASSES})")
        out[lo:hi] = p
        if on_progress:
            on_progress(Progress(name, model, models, hi, len(x)))
    elapsed = time.perf_counter() - start
    return out, len(x) / elapsed if elapsed > 0 else math.inf


def _single_latency(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, runs: int) -> tuple[float, float]:
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


def _row(name, fmt, quantization, size, metrics, probabilities, latency, throughput, thresholds=None) -> ArtifactResult:
    result = ArtifactResult(
        name=name, format=fmt, quantization=quantization, bytes=size,
        accuracy=metrics["accuracy"], delta_accuracy=metrics["delta_accuracy"], agreement=metrics["agreement"],
        max_abs_diff=metrics["max_abs_diff"], latency_p50_ms=latency[0], latency_p95_ms=latency[1],
        throughput=throughput, predictions=probabilities.argmax(axis=1), confidence=probabilities.max(axis=1),
    )
    if thresholds is not None:
        result.reasons = check(quantization, metrics, thresholds)
        result.checked = rule_text(quantization, thresholds)
    return result


# --- the whole validation -----------------------------------------------------------------------------

def validate(
    export_dir: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    data=None,
    limit: int | None = None,
    thresholds: Thresholds = Thresholds(),
    batch_size: int = 250,
    latency_runs: int = 200,
    threads: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Validate every artifact in ``export_dir`` against the Keras ``reference`` on the MNIST test set.

    ``reference`` defaults to the manifest's source model. ``data`` is a path for ``load_mnist``, an already
    loaded ``Mnist``, or None for ``$EDGEKIT_DATA``/Keras' cache. ``limit`` takes the first N test images.
    Bad input (folder, manifest, artifact, model or data) raises before any measuring, with exit code 2.
    With ``raise_on_failure`` a failed threshold raises ParityError (its ``.report`` is the full report)
    after every artifact was measured; without, check ``report.passed`` or call ``report.check()``.
    """
    if limit is not None and limit < 1:
        raise OptionsError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise OptionsError(f"--batch-size must be at least 1, got {batch_size}")
    if latency_runs < 1:
        raise OptionsError(f"--latency-runs must be at least 1, got {latency_runs}")

    # Bad input first, before anything is measured: folder, manifest, every artifact, the reference, the data.
    export_dir = Path(export_dir)
    manifest, entries = read_manifest(export_dir)
    reference_path = Path(reference).expanduser() if reference is not None else reference_from_manifest(export_dir, manifest)
    from edgekit.runtime.files import sha256_file

    classifiers = [load_artifact(export_dir / e.file, threads=threads) for e in entries]
    model = load_reference(reference_path)
    mnist = _load_data(data)
    images, labels = mnist.x_test, np.asarray(mnist.y_test).astype(np.int64)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = to_model_input(images)

    notes = []
    reference_sha256 = sha256_file(reference_path)
    source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    if source.get("sha256") and source["sha256"] != reference_sha256:
        notes.append(f"the reference {reference_path} is not the model the manifest says these artifacts came from "
                     f"(sha256 {reference_sha256[:12]}… vs {str(source['sha256'])[:12]}…)")
    if limit is not None and limit < len(mnist.x_test):
        notes.append(f"--limit {limit}: the first {len(labels):,} of {len(mnist.x_test):,} test images")

    # The reference.
    ref_predict = model.predict_on_batch
    models = 1 + len(entries)
    ref_probs, ref_throughput = _run_batches(ref_predict, x, batch_size, REFERENCE_NAME, on_progress, 1, models)
    ref_latency = _single_latency(ref_predict, x, max(1, min(latency_runs, 50)))  # Keras is slow one by one
    ref_row = _row(REFERENCE_NAME, "keras", "none", reference_path.stat().st_size,
                   parity_metrics(ref_probs, ref_probs, labels), ref_probs, ref_latency, ref_throughput)
    ref_row.checked = "the reference"

    # Every artifact, each through the device's runtime; results are collected, the verdict comes last.
    rows = []
    for k, (entry, classifier) in enumerate(zip(entries, classifiers), start=2):
        probs, throughput = _run_batches(classifier.probabilities, x, batch_size, entry.file, on_progress, k, models)
        latency = _single_latency(classifier.probabilities, x, latency_runs)
        row = _row(entry.file, entry.format, entry.quantization, entry.bytes,
                   parity_metrics(ref_probs, probs, labels), probs, latency, throughput, thresholds)
        if entry.sha256 and entry.sha256 != sha256_file(export_dir / entry.file):
            row.reasons.append("file changed since export (sha256 differs from manifest.json)")
        rows.append(row)

    report = ValidationReport(
        export_dir=str(export_dir), reference_path=str(reference_path), reference_sha256=reference_sha256,
        data_source=str(mnist.source), data_sha256=getattr(mnist, "sha256", None), thresholds=thresholds,
        reference=ref_row, artifacts=rows, labels=labels, images=np.asarray(images), notes=notes,
    )
    if raise_on_failure:
        report.check()
    return report


def _load_data(data):
    if data is not None and hasattr(data, "x_test") and hasattr(data, "y_test"):
        return data
    from edgekit.export.data import load_mnist

    return load_mnist(data)


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

    t = report.thresholds
    legend = [
        f"{len(report.labels):,} MNIST test images; Δ acc in points against Keras; agree = same top-1 answer as Keras;",
        f"checks: float32 top-1 agreement ≥ {t.float_min_agreement:g} % and max |Δp| ≤ {t.float_max_abs_diff:g}; "
        f"float16 agreement ≥ {t.float16_min_agreement:g} %; dynamic/int8 accuracy drop ≤ {t.quantized_max_drop:g} points",
    ]
    body = [line(_COLUMNS), line(["-" * w for w in widths] + ["-" * 6])] + [line(r) for r in rows]
    return "\n".join(body + [""] + legend + [f"note: {n}" for n in report.notes])


def format_markdown(report: ValidationReport) -> str:
    rows = [_cells(report.reference, reference=True)] + [_cells(a) for a in report.artifacts]
    head = "| " + " | ".join(c.replace("|", "\\|") for c in _COLUMNS) + " |"
    align = "|" + "|".join("---:" if 3 <= i <= 10 else "---" for i in range(len(_COLUMNS))) + "|"
    return "\n".join([head, align] + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows])


# --- small helpers ------------------------------------------------------------------------------------

def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OptionsError(f"{path.parent}: no such folder for {path.name}")
    return write_atomic(path, text)


def _finite(value: float) -> float | None:
    """JSON has no inf or NaN: those become null."""
    return float(value) if math.isfinite(value) else None
