"""Typed options shared by the CLI and the Python API, and the context handed to each format's ``export``.

    export_model("runs/mnist/model.keras", "out", ExportOptions(formats=["onnx"], quantizations=["int8"]))

The CLI builds one ``ExportOptions`` from its flags and hands it to ``export_model``; building it checks every
option (the format table's ``plan``, calibration size, opset) before anything heavy is imported or loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from edgekit.export.calibration import DEFAULT_CALIB_SAMPLES, check_samples
from edgekit.export.formats import DEFAULT_FORMATS, Target, plan
from edgekit.export.input_options import InputOptions
from edgekit.export.selective import check_max_drop
from edgekit.runtime.contract import DIGIT, InputContract
from edgekit.runtime.errors import OptionsError

DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 18  # tf2onnx 1.17 knows opsets up to 18; per-channel QDQ needs 13+


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how: the artifacts (checked against the format table) and what every exporter sees."""

    formats: Iterable[str] | str = DEFAULT_FORMATS
    """Format names from the table (``tflite``, ``onnx``) or ``all``; stored as a tuple."""
    quantizations: Iterable[str] | str | None = None
    """Quantizations (``none``, ``float16``, ``dynamic``, ``int8`` and their aliases); None: each format's
    defaults (tflite: none + int8, onnx: none). Stored as a tuple (or None)."""
    calib_samples: int = DEFAULT_CALIB_SAMPLES
    """Training images used to calibrate int8 activation ranges (TFLite and ONNX int8)."""
    opset: int = DEFAULT_OPSET
    """ONNX opset of the ONNX exports."""
    data: str | os.PathLike | None = None
    """MNIST source for calibration (.npz or IDX folder); None: $EDGEKIT_DATA, then Keras' cache. Stored as str."""
    fold_bn: bool = True
    """Fold each post-ReLU BatchNormalization's scale into the layer before it for the targets the format table
    marks (``export/fold.py``); proven exact on the float model before anything is written. ``--no-fold``: off."""
    max_drop: float | None = None
    """Accuracy points the int8 artifacts may lose against the float model on held-out images; over it, the most
    sensitive layers are kept in float (``export/selective.py``). None: every layer int8, as measured by validate."""
    input: InputOptions = field(default_factory=InputOptions)
    """The input contract's options (labels, colour order, pixel scale, resize and crop mode; ``input_options.py``);
    what the model shows is inferred, the rest required (``model_spec.contract_for``)."""

    targets: tuple[Target, ...] = field(init=False, repr=False, compare=False)
    """The artifacts to produce, in order (``formats.plan``); set from ``formats`` and ``quantizations``."""

    def __post_init__(self) -> None:
        # Each iterable is read once here (a generator would be empty on a second pass).
        formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats)
        quantizations = self.quantizations
        if quantizations is not None:
            quantizations = (quantizations,) if isinstance(quantizations, str) else tuple(quantizations)
        object.__setattr__(self, "formats", formats or DEFAULT_FORMATS)
        object.__setattr__(self, "quantizations", quantizations)
        object.__setattr__(self, "data", None if self.data is None else str(self.data))
        object.__setattr__(self, "targets", tuple(plan(formats, quantizations)))
        check_samples(self.calib_samples)
        object.__setattr__(self, "max_drop", check_max_drop(self.max_drop))
        if self.max_drop is not None and not any(t.quantization.value == "int8" for t in self.targets):
            raise OptionsError(f"--max-drop applies to int8 exports; add --quantize int8 (asked for: "
                               f"{', '.join(str(t) for t in self.targets)})")
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise OptionsError(f"--opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {self.opset!r}")


@dataclass(frozen=True)
class ExportContext:
    """What one export run shares between artifacts: options, the source's hash, the calibration set, a scratch
    folder (inside the staging folder, so it goes with it) and a cache for intermediate results that several
    artifacts reuse (the SavedModel the TFLite converter reads, the float ONNX graph)."""

    options: ExportOptions
    source_sha256: str
    calibration: np.ndarray | None = field(default=None, repr=False)
    """float32 model-input images (n, H, W, C); loaded (before any work) only when an int8 export is asked for."""
    workdir: Path | None = None
    training: dict | None = None
    """The source run's recipe and test accuracy (``metadata.training_facts``), embedded in every artifact."""
    cache: dict = field(default_factory=dict, repr=False)
    holdout: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    """(images, labels) held out from calibration for ``--max-drop``; loaded only when it is set."""
    rewrites: dict = field(default_factory=dict)
    """Graph rewrites applied to the model this artifact is exported from (name -> what it did), for the metadata."""
    contract: InputContract = DIGIT
    """What the model sees (``model_spec.contract_for``), written into every artifact's metadata."""
