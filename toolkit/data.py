"""The training data: MNIST from a Keras-layout .npz, a folder of IDX files or Keras' cache, or a folder of digit
images (``DIR/<digit>/*.png``), validated.

The reader itself is ``edgekit.export.data`` (export needs it too, for calibration and validation, and imports
run one way: toolkit -> export -> runtime); this module is the name training and the CLI use.
"""

from edgekit.export.data import (
    ENV_VAR, HOLDOUT_FRACTION, HOLDOUT_SEED, IDX_FILES, NPZ_KEYS, DigitFolder, Mnist, holdout_split, is_digit_folder,
    load_digit_folder, load_mnist, resolve_source,
)
from edgekit.runtime.files import sha256_file

__all__ = [
    "ENV_VAR", "HOLDOUT_FRACTION", "HOLDOUT_SEED", "IDX_FILES", "NPZ_KEYS", "DigitFolder", "Mnist", "holdout_split",
    "is_digit_folder", "load_digit_folder", "load_mnist", "resolve_source", "sha256_file",
]
