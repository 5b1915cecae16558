"""The input contract's options (``edgekit export --labels/--color/--scale/--offset/--mean/--std/--resize/--crop``),
checked when built; ``model_spec.contract_for`` turns them and the model's own facts into the contract."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from edgekit.runtime.contract import COLORS, CROPS, RESIZES
from edgekit.runtime.errors import DataError, OptionsError

MAX_LABELS = 10_000


def _numbers(value, option: str) -> tuple[float, ...] | None:
    """1 or 3 numbers from a float, a sequence or text like "0.485,0.456,0.406"; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace(" ", ",").split(",") if v]
    elif not isinstance(value, Iterable):
        value = [value]
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise OptionsError(f"{option} takes 1 or 3 numbers (comma-separated), got {value!r}") from None
    if len(numbers) not in (1, 3) or not all(math.isfinite(v) for v in numbers):
        raise OptionsError(f"{option} takes 1 or 3 finite numbers (comma-separated), got {value!r}")
    return numbers


@dataclass(frozen=True)
class InputOptions:
    """What the model's input contract cannot be told from the model itself (None: inferred, or required)."""

    labels: str | os.PathLike | None = None
    """A text file with one class name per line, in the model's output order; None: the data's class folders."""
    color: str | None = None
    """Channel order of a 3-channel model: ``rgb`` (Keras' image loaders) or ``bgr`` (OpenCV); 1 channel: ``gray``."""
    scale: object = None
    """Model input = pixel * scale + offset (1 or 3 numbers); refused when the model rescales itself."""
    offset: object = None
    mean: object = None
    """Model input = (pixel - mean) / std (1 or 3 numbers), instead of scale/offset."""
    std: object = None
    resize: str | None = None
    """How a frame becomes the model's size: ``stretch`` (default, as Keras' image_dataset_from_directory),
    ``crop`` (centre-crop to the model's aspect ratio) or ``letterbox`` (fit and pad with black)."""
    crop: str | None = None
    """``digit`` (find digits first, the seed CNN's) or ``image`` (the whole frame or ROI); None: ``digit`` for a
    28x28x1 model of 10 classes, ``image`` otherwise."""

    def __post_init__(self) -> None:
        for name, choices in (("color", COLORS), ("resize", RESIZES), ("crop", CROPS)):
            value = getattr(self, name)
            if value is not None:
                value = str(value.value if hasattr(value, "value") else value).strip().lower()
                if value not in choices:
                    raise OptionsError(f"unknown --{name} '{value}'; valid: {', '.join(choices)}")
                object.__setattr__(self, name, value)
        for name in ("scale", "offset", "mean", "std"):
            object.__setattr__(self, name, _numbers(getattr(self, name), f"--{name}"))
        if self.labels is not None:
            object.__setattr__(self, "labels", str(self.labels))


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """The class names in a labels file: one per line, blank lines and surrounding spaces ignored; no duplicates."""
    path = Path(path)
    try:
        if path.stat().st_size > 10_000_000:
            raise DataError(f"{path}: {path.stat().st_size:,} bytes is too large for a labels file (one name per line)")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such labels file; pass --labels FILE with one class name per line") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the labels file ({e}); it is UTF-8 text, one class name per line") from None
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise DataError(f"{path}: no labels in the file; write one class name per line, in the model's output order")
    if len(labels) > MAX_LABELS:
        raise DataError(f"{path}: {len(labels):,} labels; at most {MAX_LABELS:,}")
    dup = sorted(v for v, n in Counter(labels).items() if n > 1)
    if dup:
        raise DataError(f"{path}: label(s) {', '.join(dup[:5])} appear more than once; each class needs its own name")
    return labels
