"""The preprocessing contract, written once: what the model sees.

MNIST images are uint8 28x28, ink bright on black. The model takes float32 (N, 28, 28, 1) in [0, 1],
i.e. ``x * PIXEL_SCALE + PIXEL_OFFSET``. Training (edgekit.toolkit) and the device (edgekit.runtime) both
import this module, so they cannot drift apart. numpy only.
"""

from __future__ import annotations

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
