"""The preprocessing contract, written once: what the model sees.

MNIST images are uint8 28x28, ink bright on black. The model takes float32 (N, 28, 28, 1) in [0, 1],
i.e. ``x * PIXEL_SCALE + PIXEL_OFFSET``. Training (edgekit.toolkit) and the device (edgekit.runtime) both
import this module, so they cannot drift apart. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 28
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
NUM_CLASSES = 10
LABELS = tuple(str(d) for d in range(NUM_CLASSES))
PIXEL_SCALE = 1.0 / 255.0
PIXEL_OFFSET = 0.0
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
INPUT_LAYOUT = "NHWC"


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 images (28, 28), (N, 28, 28) or (N, 28, 28, 1) -> float32 (N, 28, 28, 1) in [0, 1]."""
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"expected images of shape (N, 28, 28[, 1]), got {np.asarray(images).shape}")
    return x.astype(np.float32) * np.float32(PIXEL_SCALE) + np.float32(PIXEL_OFFSET)


# The ink's polarity, as a model's metadata states it ("input.polarity"): MNIST's, and the opposite one (a model
# trained on dark ink on paper), for which the classifier inverts each crop. Any other text counts as MNIST's.
POLARITY = "white digit on black"
INVERTED_POLARITY = "black digit on white"


def wants_inverted(polarity: object) -> bool:
    """Whether a model whose metadata states ``polarity`` takes dark ink on a light ground."""
    return str(polarity or "").strip().lower() == INVERTED_POLARITY


# --- The input contract of any image classifier, as its metadata carries it ------------------------------
#
# The seed CNN's contract above is one instance of it (``DIGIT``). An exported model's metadata holds the
# contract (``InputContract.to_metadata``), written once by ``edgekit export``; the runtime reads it back
# (``InputContract.from_metadata``) and prepares frames accordingly: ``crop`` ``digit`` finds digits first
# (``preprocess.find_digits``), ``image`` feeds the whole frame (or ROI) resized by ``resize``.

COLORS = ("gray", "rgb", "bgr")  # the channel order the model was trained on
RESIZES = ("stretch", "crop", "letterbox")  # to the model's size: squash, centre-crop to its aspect, or pad
CROPS = ("digit", "image")  # what part of a frame the model sees
SCORES = ("probabilities", "logits")  # what the model's output is; logits get a softmax on the device


@dataclass(frozen=True)
class InputContract:
    """What a model sees: ``height`` x ``width`` x ``channels`` pixels in ``color`` order, each ``pixel * scale +
    offset`` (per channel when a tuple), the frame brought to that size by ``resize``, and which part of a frame
    (``crop``); ``labels`` name its output's classes, ``scores`` says whether they are probabilities or logits."""

    height: int
    width: int
    channels: int
    color: str
    scale: float | tuple[float, ...]
    offset: float | tuple[float, ...]
    resize: str
    crop: str
    labels: tuple[str, ...]
    scores: str = "probabilities"
    polarity: str | None = None  # digit crops only: the ink's polarity

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def classes(self) -> int:
        return len(self.labels)

    def to_metadata(self) -> dict:
        """The contract's part of the ``input`` entry (the digit contract's keys as before, plus the new ones)."""
        entry = {
            "shape": [None, *self.shape],
            "scale": _plain(self.scale),
            "offset": _plain(self.offset),
            "channels": self.channels,
            "color": self.color,
            "resize": self.resize,
            "crop": self.crop,
        }
        if self.polarity is not None:
            entry["polarity"] = self.polarity
        return entry

    @classmethod
    def from_metadata(cls, meta: dict | None) -> "InputContract":
        """The contract an exported model's metadata states; metadata written before the contract (or none) is the
        digit model's. A malformed entry raises ValueError naming it."""
        meta = meta or {}
        spec = meta.get("input") or {}
        if "crop" not in spec:  # exported before the contract travelled: today's digit model
            labels = tuple(str(v) for v in meta.get("labels") or LABELS)
            return InputContract(**{**_digit_fields(), "labels": labels,
                                    "scale": float(spec.get("scale", PIXEL_SCALE)),
                                    "offset": float(spec.get("offset", PIXEL_OFFSET)),
                                    "polarity": spec.get("polarity", POLARITY)})
        try:
            shape = spec["shape"]
            contract = InputContract(
                height=int(shape[1]), width=int(shape[2]), channels=int(shape[3]), color=str(spec["color"]),
                scale=_tuple_or_float(spec["scale"]), offset=_tuple_or_float(spec["offset"]),
                resize=str(spec["resize"]), crop=str(spec["crop"]), labels=tuple(str(v) for v in meta["labels"]),
                scores=str((meta.get("output") or {}).get("scores", "probabilities")), polarity=spec.get("polarity"),
            )
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ValueError(f"the metadata's input contract is malformed ({type(e).__name__}: {e})") from None
        contract.check()
        return contract

    def check(self) -> None:
        """ValueError naming the first field that is not a valid choice."""
        for name, value, choices in (("color", self.color, COLORS), ("resize", self.resize, RESIZES),
                                     ("crop", self.crop, CROPS), ("scores", self.scores, SCORES)):
            if value not in choices:
                raise ValueError(f"{name} '{value}' is not one of {', '.join(choices)}")
        if self.channels not in (1, 3) or (self.channels == 1) != (self.color == "gray"):
            raise ValueError(f"{self.channels} channel(s) in {self.color} order: a model takes 1 (gray) or 3 (rgb/bgr)")
        if self.height < 1 or self.width < 1 or not self.labels:
            raise ValueError(f"an input of {self.height}x{self.width} with {len(self.labels)} labels")
        for name in ("scale", "offset"):
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) != self.channels:
                raise ValueError(f"{name} has {len(value)} values for {self.channels} channel(s)")


def softmax(z: np.ndarray) -> np.ndarray:
    """A logits model's scores as probabilities (rows of ``z``), as the device and ``validate`` read them."""
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def _tuple_or_float(v):
    return tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else float(v)


def _digit_fields() -> dict:
    return dict(height=IMAGE_SIZE, width=IMAGE_SIZE, channels=1, color="gray", scale=PIXEL_SCALE,
                offset=PIXEL_OFFSET, resize="stretch", crop="digit", labels=LABELS, polarity=POLARITY)


DIGIT = InputContract(**_digit_fields())
"""The seed CNN's contract: MNIST-style 28x28 digit crops found by ``find_digits``, pixels / 255."""
