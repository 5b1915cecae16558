"""The model that ships inside edgekit: ``edgekit predict photo.jpg`` works right after ``pip install edgekit``.

``runtime/bundled/`` holds the camera recipe's int8 TFLite (``model_int8.tflite``, ~1 MB, with its edgekit
metadata inside, which names the recipe), ``model_int8.tflite.sha256`` (``sha256sum`` format) and ``validate.json`` (what
``edgekit validate`` measured on the 10,000 MNIST test images). They are built, never hand-placed, by
``scripts/build_bundled_model.sh`` (train --recipe camera -> export -> validate -> copy) and installed as package
data. A source checkout or a wheel built without them gets one clear ``ModelLoadError``.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.runtime.errors import ModelLoadError

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLED_MODEL = BUNDLED_DIR / "model_int8.tflite"
BUNDLED_SHA256 = BUNDLED_DIR / "model_int8.tflite.sha256"
BUNDLED_REPORT = BUNDLED_DIR / "validate.json"

MODEL_SUFFIXES = (".tflite", ".onnx")


def bundled_model_path() -> Path:
    """The bundled model's path; ModelLoadError (one line) when this installation does not have it."""
    if not BUNDLED_MODEL.is_file():
        raise ModelLoadError(
            f"no bundled model in this installation ({BUNDLED_MODEL} is missing); pass a model file "
            "(.tflite or .onnx), or build the bundled one with scripts/build_bundled_model.sh"
        )
    return BUNDLED_MODEL


def is_bundled(path) -> bool:
    try:
        return Path(path).resolve() == BUNDLED_MODEL
    except OSError:
        return False


def recorded_sha256() -> str | None:
    """The sha256 recorded beside the bundled model when it was built, or None."""
    try:
        return BUNDLED_SHA256.read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError):
        return None


def validation() -> dict | None:
    """What ``edgekit validate`` measured for the bundled model on the MNIST test set: {"accuracy" (percent),
    "delta_accuracy" (points against Keras), "images", "passed"}; None when the report is not there."""
    try:
        report = json.loads(BUNDLED_REPORT.read_text(encoding="utf-8"))
        row = next(a for a in report["artifacts"] if a["name"] == BUNDLED_MODEL.name)
        return {"accuracy": float(row["accuracy"]), "delta_accuracy": float(row["delta_accuracy"]),
                "images": int(report["images"]), "passed": row["status"] == "pass"}
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None
