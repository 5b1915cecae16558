"""Loading a trained ``.keras`` file: the one place edgekit calls ``keras.saving.load_model`` on a user's file.

Always ``safe_mode=True`` (a model with custom Python code, such as a Lambda layer, is refused, never run) and
``compile=False``. Every failure is one line naming the file, ending in what to pass instead. Keras is imported
here, when a model is loaded, never when this module is.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from edgekit.runtime.errors import BackendMissingError, ModelLoadError, first_line


def load_keras(path: str | os.PathLike, hint: str):
    """The model in ``path`` (which the caller has checked exists); ModelLoadError on a file Keras cannot load,
    each message ending in ``hint`` (e.g. "pass --reference RUN/model.keras")."""
    path = Path(path)
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" for an empty or truncated file
        what = "empty" if path.stat().st_size == 0 else "truncated or not a zip archive"
        raise ModelLoadError(f"{path}: cannot load the Keras model (the file is {what}, and a .keras is a zip); {hint}")
    try:
        import keras
    except ImportError as e:
        raise BackendMissingError(f"loading a Keras model needs Keras ({e}); pip install 'edgekit[train]'") from None
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # keras raises ValueError, OSError, zipfile errors, ... for a bad file: the file's fault
        if "safe_mode" in str(e):  # custom Python code (a Lambda layer): refused, never run
            raise ModelLoadError(f"{path}: refused by Keras safe_mode ({str(e).split('.')[0]}); edgekit loads only "
                                 "models without custom Python code such as Lambda layers") from None
        raise ModelLoadError(f"{path}: cannot load the Keras model ({type(e).__name__}: {first_line(e, 200)}); {hint}") from None
