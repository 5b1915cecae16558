"""Parity validation: every exported artifact against the Keras model it came from, on real MNIST.

    report = validate("runs/mnist/export", ValidateOptions(data="mnist.npz", limit=2000))

The Keras reference (loaded with ``safe_mode``) and every artifact listed in the export folder's
``manifest.json`` run on the same test images; the artifacts run through ``edgekit.runtime.Classifier``,
the code the device runs, never through TensorFlow. Per artifact we measure accuracy, its difference to
Keras, top-1 agreement with Keras, the largest probability difference, single-image latency and batched
throughput, then check the thresholds that fit its quantization. Every artifact is evaluated before the
verdict: ``validate`` collects all results into a ``ValidationReport`` and only then raises one
``ParityError`` naming every failure (exit code 1).

Three parts, with the report between them: ``measure.py`` (running the models, the parity figures),
``parity.py`` (the thresholds and the rules, with their text), ``validation_report.py`` (the report, the table,
JSON). This module reads the options and runs them in order; their public names are importable from here too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.export.manifest import MANIFEST_NAME, read_export_folder, source_model_path
from edgekit.export.measure import (
    Progress, latency_stats, load_artifact, parity_metrics, run_batches, single_latency,
)
from edgekit.export.parity import QUANTIZATIONS, RULES, Thresholds, check, legend, rule_text
from edgekit.export.validation_report import (
    REFERENCE_NAME, RUN_FILES, SCHEMA, ArtifactResult, ValidationReport, format_markdown, format_table,
    write_report_file,
)
from edgekit.runtime.contract import softmax, to_model_input
from edgekit.runtime.image_input import scale_pixels
from edgekit.runtime.errors import ModelLoadError, OptionsError

__all__ = [
    "ValidateOptions", "validate", "load_reference", "Thresholds", "check", "rule_text", "legend", "RULES",
    "QUANTIZATIONS", "parity_metrics", "latency_stats", "load_artifact", "Progress", "ArtifactResult",
    "ValidationReport", "format_table", "format_markdown", "write_report_file", "MANIFEST_NAME", "REFERENCE_NAME",
    "RUN_FILES", "SCHEMA", "folder_contract",
]

KERAS_LATENCY_RUNS = 50  # Keras is slow one image at a time: at most this many timed calls for the reference


@dataclass(frozen=True)
class ValidateOptions:
    """How to validate an export folder (``edgekit validate``'s options, checked when built)."""

    reference: str | os.PathLike | None = None
    """The Keras model to compare with; None: the manifest's source model."""
    data: Any = None
    """MNIST: a path for ``load_mnist``, an already loaded ``Mnist``, or None for ``$EDGEKIT_DATA``/Keras' cache."""
    limit: int | None = None
    """Use only the first N test images (None: all)."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    batch_size: int = 250
    """Images per batch for accuracy and throughput."""
    latency_runs: int = 200
    """Single-image calls timed per artifact for p50/p95."""
    threads: int | None = None
    """Inference threads for the runtime (None: the backend's)."""

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise OptionsError(f"--limit must be at least 1, got {self.limit}")
        if self.batch_size < 1:
            raise OptionsError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.latency_runs < 1:
            raise OptionsError(f"--latency-runs must be at least 1, got {self.latency_runs}")
        if self.threads is not None and self.threads < 1:
            raise OptionsError(f"--threads must be at least 1, got {self.threads}")


def load_reference(path: str | os.PathLike):
    """The Keras reference, loaded with safe_mode; ModelLoadError (exit 2) when it cannot be."""
    from edgekit.export.keras_model import load_keras

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such Keras model; pass --reference RUN/model.keras")
    return load_keras(path, "pass --reference RUN/model.keras that `edgekit train` wrote")


def validate(
    export_dir: str | os.PathLike,
    options: ValidateOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    raise_on_failure: bool = True,
    **fields,
) -> ValidationReport:
    """Validate every artifact in ``export_dir`` against the Keras reference on the MNIST test set.

    ``options`` is a ``ValidateOptions``; instead, its fields may be given as keywords (``reference``, ``data``,
    ``limit``, ``thresholds``, ``batch_size``, ``latency_runs``, ``threads``), not both.
    Bad input (folder, manifest, artifact, model or data) raises before any measuring, with exit code 2.
    With ``raise_on_failure`` a failed threshold raises ParityError (its ``.report`` is the full report)
    after every artifact was measured; without, check ``report.passed`` or call ``report.check()``.
    """
    if options is None:
        options = ValidateOptions(**fields)
    elif fields:
        raise OptionsError(f"give validate a ValidateOptions or its fields as keywords, not both ({', '.join(fields)})")
    o = options

    # Bad input first, before anything is measured: folder, manifest, every artifact, the reference, the data.
    export_dir = Path(export_dir)
    manifest, entries = read_export_folder(export_dir)
    reference_path = Path(o.reference).expanduser() if o.reference is not None else source_model_path(export_dir, manifest)
    from edgekit.runtime.files import sha256_file

    classifiers = [load_artifact(export_dir / e.file, threads=o.threads) for e in entries]
    contract = export_contract(classifiers, entries)
    model = load_reference(reference_path)
    mnist = _load_data(o.data) if contract.crop == "digit" else _load_images(o.data, contract)
    images, labels = mnist.x_test, np.asarray(mnist.y_test).astype(np.int64)
    if o.limit is not None:
        images, labels = images[: o.limit], labels[: o.limit]
    x = to_model_input(images) if contract.crop == "digit" else scale_pixels(images, contract)

    notes = []
    reference_sha256 = sha256_file(reference_path)
    source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    if source.get("sha256") and source["sha256"] != reference_sha256:
        notes.append(f"the reference {reference_path} is not the model the manifest says these artifacts came from "
                     f"(sha256 {reference_sha256[:12]}… vs {str(source['sha256'])[:12]}…)")
    if o.limit is not None and o.limit < len(mnist.x_test):
        notes.append(f"--limit {o.limit}: the first {len(labels):,} of {len(mnist.x_test):,} test images")

    # The reference.
    ref_predict = model.predict_on_batch if contract.scores == "probabilities" else _softmax_of(model.predict_on_batch)
    models = 1 + len(entries)
    ref_probs, ref_throughput = run_batches(ref_predict, x, o.batch_size, REFERENCE_NAME, on_progress, 1, models,
                                            contract.classes)
    ref_latency = single_latency(ref_predict, x, max(1, min(o.latency_runs, KERAS_LATENCY_RUNS)))
    ref_row = _row(REFERENCE_NAME, "keras", "none", reference_path.stat().st_size,
                   parity_metrics(ref_probs, ref_probs, labels), ref_probs, ref_latency, ref_throughput)
    ref_row.checked = "the reference"

    # Every artifact, each through the device's runtime; results are collected, the verdict comes last.
    rows = []
    for k, (entry, classifier) in enumerate(zip(entries, classifiers), start=2):
        probs, throughput = run_batches(classifier.probabilities, x, o.batch_size, entry.file, on_progress, k, models,
                                        contract.classes)
        latency = single_latency(classifier.probabilities, x, o.latency_runs)
        row = _row(entry.file, entry.format, entry.quantization, entry.bytes,
                   parity_metrics(ref_probs, probs, labels), probs, latency, throughput, o.thresholds)
        if entry.sha256 and entry.sha256 != sha256_file(export_dir / entry.file):
            row.reasons.append("file changed since export (sha256 differs from manifest.json)")
        rows.append(row)

    report = ValidationReport(
        export_dir=str(export_dir), reference_path=str(reference_path), reference_sha256=reference_sha256,
        data_source=str(mnist.source), data_sha256=getattr(mnist, "sha256", None), thresholds=o.thresholds,
        reference=ref_row, artifacts=rows, labels=labels, images=_rgb(np.asarray(images), contract), notes=notes, model=model,
        **({} if contract.crop == "digit" else {"class_names": contract.labels, "data_kind": "labelled"}),
    )
    if raise_on_failure:
        report.check()
    return report


def _row(name, fmt, quantization, size, metrics, probabilities, latency, throughput, thresholds=None) -> ArtifactResult:
    """One measured row, judged by ``thresholds`` (the reference row is not judged)."""
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


def folder_contract(export_dir: str | os.PathLike, threads: int | None = None):
    """The input contract of the export folder's first artifact (the digit model's for one without metadata), so a
    caller can load the right data before ``validate``; the artifact is loaded as ``validate`` loads it, so a bad
    folder or file gets the same line as there."""
    export_dir = Path(export_dir)
    _, entries = read_export_folder(export_dir)
    return load_artifact(export_dir / entries[0].file, threads=threads).contract


def export_contract(classifiers, entries):
    """The input contract every artifact of the export carries (``contract.InputContract``); ModelLoadError when
    they disagree (artifacts of different models in one folder)."""
    contracts = {c.contract for c in classifiers}
    if len(contracts) > 1:
        raise ModelLoadError(f"the artifacts ({', '.join(e.file for e in entries)}) carry different input contracts; "
                             "validate one model's exports at a time (export them again into one folder)")
    return classifiers[0].contract


def _rgb(images: np.ndarray, contract) -> np.ndarray:
    """The images as the report draws them: digits as they are, a colour model's in RGB order whatever its own."""
    return images[..., ::-1] if contract.color == "bgr" else images


def _softmax_of(predict):
    """A logits model's predictions as probabilities, as the runtime gives them (``Classifier``)."""
    def probabilities(x):
        return softmax(np.asarray(predict(x), np.float64)).astype(np.float32)

    return probabilities


@dataclass(frozen=True)
class _TestImages:
    """The user's labelled images in the shape the digit path's ``Mnist`` gives them to ``validate``."""

    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str | None


def _load_images(data, contract):
    """The user's labelled images (``--data DIR|NPZ``, or an ``ImageSet`` already loaded) for an ``image`` model."""
    from edgekit.export.image_data import ImageSet, load_images

    if data is None:
        raise OptionsError("an image model is validated on your labelled images: pass --data DIR (class folders) "
                           "or an .npz of x and y")
    images = data if isinstance(data, ImageSet) else load_images(data, contract)
    if tuple(images.labels) != tuple(contract.labels):
        raise OptionsError("the images were loaded for another model's labels; load them for this export's contract")
    return _TestImages(images.x, images.y, images.source, images.sha256)


def _load_data(data):
    if data is not None and hasattr(data, "x_test") and hasattr(data, "y_test"):
        return data
    from edgekit.export.data import load_mnist

    return load_mnist(data)
