"""The training recipes: what a run can vary (``Recipe``), the named presets (``RECIPES``, and ``BF16_RECIPES``
where training runs in bfloat16), and the recipe, optimizer and schedule names as ``str`` enums (``RecipeName``,
``Optimizer``, ``Schedule``) — the one list of each, which ``edgekit train`` uses as its choices. Light to import
(no TensorFlow): the CLI reads it to build its options.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum

from edgekit.runtime.errors import OptionsError
from edgekit.toolkit.precision import PRECISIONS


class Optimizer(str, Enum):
    """What a recipe trains with (``Recipe.optimizer``)."""

    RMSPROP = "rmsprop"
    ADAM = "adam"
    ADAMW = "adamw"


class Schedule(str, Enum):
    """How a recipe's learning rate moves (``Recipe.schedule``)."""

    PLATEAU = "plateau"
    ONECYCLE = "onecycle"
    CONSTANT = "constant"


OPTIMIZERS = tuple(o.value for o in Optimizer)  # the names, to check a plain string against
SCHEDULES = tuple(s.value for s in Schedule)


@dataclass(frozen=True)
class Recipe:
    """How to train: what the presets in RECIPES differ in. Every field can be overridden one by one."""

    name: str
    epochs: float
    """Passes over the training images. A fraction ends the last epoch early: 1.7 is one whole epoch and 70 %
    of the steps of a second (a fresh shuffle, as every epoch), with any schedule spread over all the steps."""
    batch_size: int
    optimizer: str
    """``rmsprop`` (the seed: rho 0.9, epsilon 1e-8), ``adam`` or ``adamw``."""
    learning_rate: float
    """The starting rate for ``plateau``/``constant``; the peak rate for ``onecycle``."""
    schedule: str
    """``plateau``: the seed's ReduceLROnPlateau on validation accuracy (patience 3, factor 0.5, min 1e-5).
    ``onecycle``: linear warm-up from peak/25 over ``warmup`` of all steps, then cosine to 0, stepped per batch.
    ``constant``: no schedule."""
    warmup: float = 0.0
    """Fraction of all steps spent warming up (``onecycle`` only)."""
    weight_decay: float = 0.0
    """Decoupled weight decay (``adamw`` only)."""
    label_smoothing: float = 0.0
    bn_momentum: float = 0.99
    """BatchNormalization's moving-average momentum (0.99 is Keras' default and the seed's)."""
    augment: bool = False
    """Small random rotation, zoom and shift of the training images, in the input pipeline only."""
    precision: str = "auto"
    """``auto`` (bfloat16 where the hardware has it natively, else float32), ``float32`` or ``bfloat16``
    (Keras' mixed policy: float32 variables, bfloat16 arithmetic). What is saved is float32 either way."""
    camera: float = 0.0
    """The share of every batch taken from camera crops (``toolkit/camera_data.py``: MNIST and font digits
    photographed and cut out by the runtime's ``find_digits``) instead of MNIST images; 0: MNIST only."""
    camera_pool: int = 20000
    """How many camera crops are made for the run (``camera`` > 0 only), once, before the first step."""

    def check(self) -> None:
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise OptionsError(f"--epochs must be a positive number of passes, got {self.epochs}")
        if self.batch_size < 1:
            raise OptionsError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise OptionsError(f"--learning-rate must be a positive number, got {self.learning_rate}")
        if self.optimizer not in OPTIMIZERS:
            raise OptionsError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise OptionsError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0 <= self.label_smoothing < 1:
            raise OptionsError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.warmup < 1:
            raise OptionsError(f"warm-up must be a fraction of the steps in [0, 1), got {self.warmup}")
        if not 0 < self.bn_momentum < 1:
            raise OptionsError(f"BatchNormalization momentum must be in (0, 1), got {self.bn_momentum}")
        if self.precision not in PRECISIONS:
            raise OptionsError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if not 0 <= self.camera < 1:
            raise OptionsError(f"the camera share of a batch must be in [0, 1), got {self.camera}")
        if self.camera and self.camera_pool < 1:
            raise OptionsError(f"a camera pool needs at least one crop, got {self.camera_pool}")


# Augmentation strength (full recipe): rotation in degrees, zoom and shift as fractions of the image.
AUGMENT_ROTATION = 10.0
AUGMENT_ZOOM = 0.10
AUGMENT_SHIFT = 0.10

RECIPES: dict[str, Recipe] = {
    # The seed notebook: RMSprop 1e-3, batch 64, ReduceLROnPlateau, 1 epoch (~97.9 % test accuracy), float32:
    # the reference every other recipe is measured against.
    "seed": Recipe("seed", epochs=1, batch_size=64, optimizer="rmsprop", learning_rate=1e-3, schedule="plateau",
                   precision="float32"),
    # edgekit's default: the same wall time as one seed epoch (one pass, same batch size), a better path
    # through it: Adam with a one-cycle schedule stepped per batch, label smoothing, BN momentum 0.9.
    "default": Recipe(
        "default", epochs=1, batch_size=64, optimizer="adam", learning_rate=2e-3, schedule="onecycle",
        warmup=0.15, label_smoothing=0.1, bn_momentum=0.9,
    ),
    # The best model: more epochs of the same, with augmentation and decoupled weight decay.
    "full": Recipe(
        "full", epochs=8, batch_size=64, optimizer="adamw", learning_rate=2e-3, schedule="onecycle",
        warmup=0.15, weight_decay=0.05, label_smoothing=0.1, bn_momentum=0.9, augment=True,
    ),
    # For cameras (issue 21): the full recipe with a quarter of every batch cut from camera-like frames by the
    # runtime's own find_digits (bold and thin strokes, print, light on dark, blur, noise; toolkit/camera_data.py),
    # so the model learns what the device feeds it. One more epoch pays for the MNIST images the crops displace.
    "camera": Recipe(
        "camera", epochs=9, batch_size=64, optimizer="adamw", learning_rate=2e-3, schedule="onecycle",
        warmup=0.15, weight_decay=0.05, label_smoothing=0.1, bn_momentum=0.9, augment=True, camera=0.25,
    ),
}

# Where training runs in bfloat16 (a step takes ~0.4 of the float32 time on this CPU) the same wall time buys
# more: these replace the recipes above when ``auto``/``bfloat16`` resolves to bfloat16. Where it resolves to
# float32 (no native bfloat16), the float32 recipes above train.
BF16_RECIPES: dict[str, Recipe] = {
    # 1.8 passes instead of one at a peak rate of 3e-3: 99.38-99.42 % in 0.74-0.78 of the float32 seed epoch's
    # time, side by side here (seeds 0-2). docs/training.md has the measurements.
    "default": dataclasses.replace(RECIPES["default"], epochs=1.8, learning_rate=3e-3),
    # 14 epochs instead of 8, the same steps otherwise: an augmented bfloat16 pass took 0.49 of the float32
    # one side by side here, so 14 cost ~6.9 float32 epochs.
    "full": dataclasses.replace(RECIPES["full"], epochs=14),
    # 16 instead of 9, as the full recipe's 14 for 8: ~1.14x the full recipe's steps, plus the pool.
    "camera": dataclasses.replace(RECIPES["camera"], epochs=16),
}

RecipeName = Enum("RecipeName", {name: name for name in RECIPES}, type=str)
RecipeName.__doc__ = "The presets' names (``RECIPES``' keys), as a ``str`` enum: ``edgekit train --recipe``'s choices."

