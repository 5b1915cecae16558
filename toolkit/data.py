"""The training data: MNIST from a Keras-layout .npz, a folder of IDX files or Keras' cache, validated.

The reader itself is ``edgekit.export.data`` (export needs it too, for calibration and validation, and imports
run one way: toolkit -> export -> runtime); this module is the name training and the CLI use.
"""

from edgekit.export.data import ENV_VAR, IDX_FILES, NPZ_KEYS, Mnist, load_mnist, resolve_source
from edgekit.runtime.files import sha256_file

__all__ = ["ENV_VAR", "IDX_FILES", "NPZ_KEYS", "Mnist", "load_mnist", "resolve_source", "sha256_file"]
