"""``Classifier``: an exported model on the device. Camera frames or model-input batches in, digits out.

    clf = Classifier("model_int8.tflite", threads=1)     # Classifier(): the model bundled with edgekit
    clf.probabilities(contract.to_model_input(images))  # (N, 10) float32, any N
    clf.classify(frame)                                  # Prediction(digit=7, confidence=0.98, box=(x, y, w, h))
    clf.classify(frame, multi=True)                      # [Prediction, ...] left to right
    clf.classify([frame1, frame2])                       # one Prediction per frame, one batched inference

The model's own metadata (written by ``edgekit export``) gives its input contract (``contract.InputContract``):
labels, input size, colour order, scale/offset, resize mode, the polarity a digit model expects, and its crop mode.
A ``digit`` model reads the digits ``find_digits`` finds; an ``image`` model (any other classifier,
docs/your-model.md) classifies the whole frame or ROI, prepared by ``image_input.prepare``:

    Classifier("flowers_int8.tflite").classify(frame)    # Prediction(digit=None, confidence=0.97, box=(0, 0, w, h), label="tulip")

A model without metadata falls back to the digit contract (``edgekit.runtime.contract``) and its tensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekit.runtime import contract
from edgekit.runtime.backends import open_runner
from edgekit.runtime.bundled_model import bundled_model_path
from edgekit.runtime.errors import DataError, ModelLoadError, first_line
from edgekit.runtime.image_input import frame_region, prepare
from edgekit.runtime.metadata import read_metadata
from edgekit.runtime.preprocess import Box, DigitCrop, find_digits


@dataclass(frozen=True)
class Prediction:
    """One digit read from a frame (``digit`` None when no digit is in view), or, from an ``image`` model, the
    class of the whole frame or ROI: ``label`` its name (``digit`` None), ``box`` the region it saw."""

    digit: int | None
    confidence: float
    box: Box | None
    probabilities: np.ndarray | None = field(default=None, repr=False, compare=False)
    label: str | None = None

    def to_dict(self) -> dict:
        d = {
            "digit": self.digit,
            "confidence": round(float(self.confidence), 4),
            "box": list(self.box) if self.box is not None else None,
        }
        if self.label is not None:
            d["label"] = self.label
        return d


NO_DIGIT = Prediction(None, 0.0, None)


def _float_input(x) -> np.ndarray:
    """Model input as float32; integer pixels (0-255 not yet scaled), text and objects are refused."""
    try:
        a = np.asarray(x)
    except ValueError as e:  # a ragged nested list
        raise DataError(f"model input is not an array ({first_line(e)})") from None
    if a.dtype.kind != "f":
        raise DataError(f"model input must be floats in [0, 1], got {a.dtype}; convert uint8 images with "
                        "edgekit.runtime.contract.to_model_input")
    return a.astype(np.float32)


class Classifier:
    """An exported ``.tflite`` or ``.onnx`` classifier, run with LiteRT or ONNX Runtime (never TensorFlow).

    ``Classifier()`` without a path runs the model bundled with edgekit (an int8 TFLite; its metadata names the recipe)."""

    def __init__(self, path: str | os.PathLike | None = None, threads: int | None = None):
        self.path = bundled_model_path() if path is None else Path(path)
        self._runner = open_runner(self.path, threads)
        meta = read_metadata(self.path)
        self.has_metadata = meta is not None
        self.metadata = meta if meta is not None else self._default_metadata()
        self.format = self.metadata.get("format", self._runner.format)
        self.quantization = self.metadata.get("quantization", "unknown")
        try:
            self.contract = contract.InputContract.from_metadata(self.metadata)
        except ValueError as e:
            raise ModelLoadError(f"{self.path}: {e}; re-export the model with edgekit export") from None
        self.labels = list(self.contract.labels)
        self._digits = [int(v) if v.isdigit() else k for k, v in enumerate(self.labels)]
        # A digit model's crops are scaled here (an image model's frames by image_input.prepare).
        self._scale, self._offset = np.float32(self.contract.scale), np.float32(self.contract.offset)
        self._invert = contract.wants_inverted(self.contract.polarity)
        self._item_shape = self.contract.shape
        self._run = self._runner.run if self.contract.scores == "probabilities" else self._softmax_run

    def _default_metadata(self) -> dict:
        r = self._runner
        quant = "int8" if r.input_quantization and r.input_dtype == np.int8 else "unknown"
        return {
            "schema": 1,
            "format": r.format,
            "quantization": quant,
            "labels": list(contract.LABELS),
            "input": {
                "name": r.input_name,
                "layout": contract.INPUT_LAYOUT,
                "shape": [None, *contract.INPUT_SHAPE],
                "dtype": r.input_dtype.name,
                "scale": contract.PIXEL_SCALE,
                "offset": contract.PIXEL_OFFSET,
                "polarity": contract.POLARITY,
            },
            "output": {"name": r.output_name, "shape": [None, contract.NUM_CLASSES]},
        }

    def _softmax_run(self, x: np.ndarray) -> np.ndarray:
        """A logits model's output as probabilities (its metadata says ``scores: logits``)."""
        return contract.softmax(self._runner.run(x))

    def top(self, prediction: "Prediction", k: int = 1) -> list[tuple[str, float]]:
        """The ``k`` most likely classes of a prediction, (label, probability), best first."""
        p = prediction.probabilities
        if p is None:
            return []
        order = np.argsort(-p, kind="stable")[:k]
        return [(self.labels[i], float(p[i])) for i in order]

    def __repr__(self) -> str:
        return f"Classifier({str(self.path)!r}, format={self.format!r}, quantization={self.quantization!r})"

    # -- the model's input ---------------------------------------------------------------------------

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Model input float32 (N, H, W, C) as the contract scales it (the digit model: (N, 28, 28, 1) in [0, 1],
        as ``contract.to_model_input`` makes it) -> (N, classes) probabilities."""
        if type(x) is not np.ndarray or x.dtype != np.float32:
            x = _float_input(x)
        if x.shape[1:] != self._item_shape or x.shape[0] < 1:
            raise DataError(f"model input must have shape (N, {', '.join(map(str, self._item_shape))}) with N >= 1, got {x.shape}")
        if not np.isfinite(x).all():
            raise DataError("model input holds NaN or infinite values; pass pixels scaled to [0, 1] with contract.to_model_input")
        return self._run(x)

    # -- frames --------------------------------------------------------------------------------------

    def _inputs(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """MNIST-style uint8 28x28 crops -> the model's input, with the metadata's scale, offset, polarity."""
        x = np.stack(images)[..., None].astype(np.float32)
        if self._invert:
            x = 255.0 - x
        return x * self._scale + self._offset

    def classify(self, frame_or_batch, roi: Box | None = None, multi: bool = False):
        """Read the digit in a frame (any size, BGR or gray): a ``Prediction``; with ``multi``, a list of them
        left to right. A list of frames, or an array (N, H, W[, C]) with N frames, gives one result per frame."""
        if isinstance(frame_or_batch, (list, tuple)):
            frames = list(frame_or_batch)
            single = False
        else:
            a = np.asarray(frame_or_batch)
            single = a.ndim <= 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))  # < 2: refused as one bad frame
            frames = [a] if single else list(a)
        if self.contract.crop == "image":
            results = self._classify_images(frames, roi)
            return results[0] if single else results
        crops = []
        for k, f in enumerate(frames):
            try:
                found = find_digits(f, roi=roi, multi=multi)
            except ValueError as e:
                raise DataError(f"frame {k}: {e}") from None
            crops.append(found)
        read = iter(self._read_crops([c for found in crops for c in found]))  # one batched inference
        results = []
        for found in crops:
            preds = [next(read) for _ in found]
            results.append(preds if multi else (preds[0] if preds else NO_DIGIT))
        return results[0] if single else results

    def classify_crops(self, crops: Sequence[DigitCrop]) -> list[Prediction]:
        """Digits already cut out (``preprocess.find_digits``' crops: a 28x28 uint8 image, ink bright on black, and
        its box) -> one ``Prediction`` each, in one batched inference; [] for none."""
        if self.contract.crop == "image":
            raise DataError(f"{self.path.name} reads whole frames (its metadata's crop is 'image'), not digit crops")
        if isinstance(crops, DigitCrop) or not isinstance(crops, Sequence):
            raise DataError(f"classify_crops takes a list of DigitCrop (find_digits' result), "
                            f"got {type(crops).__name__}")
        for k, c in enumerate(crops):
            image = getattr(c, "image", None)
            if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == self._item_shape[:2]):
                size = "x".join(map(str, self._item_shape[:2]))
                raise DataError(f"crop {k}: not a DigitCrop with a {size} uint8 image (find_digits makes them), "
                                f"got {type(c).__name__}")
        return self._read_crops(crops)

    def _read_crops(self, crops: Sequence[DigitCrop]) -> list[Prediction]:
        """``classify_crops`` without its checks, for find_digits' own crops (every frame's path)."""
        if not crops:
            return []
        out = []
        for c, p in zip(crops, self.probabilities(self._inputs([c.image for c in crops]))):
            k = int(p.argmax())
            out.append(Prediction(self._digits[k], float(p[k]), c.box, p))
        return out

    def _classify_images(self, frames: list, roi: Box | None) -> list[Prediction]:
        """An ``image`` model: each whole frame (or its ROI) prepared by the contract, one batched inference."""
        regions, boxes = [], []
        for k, f in enumerate(frames):
            f, box = frame_region(f, roi, f"frame {k}")
            regions.append(f)
            boxes.append(box)
        probs = self.probabilities(prepare(regions, self.contract))
        out = []
        for p, box in zip(probs, boxes):
            k = int(p.argmax())
            out.append(Prediction(None, float(p[k]), box, p, label=self.labels[k]))
        return out
