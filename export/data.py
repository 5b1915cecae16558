"""MNIST loading: a Keras-layout .npz or a folder of the four IDX files, validated; no pickle anywhere.

It lives in export/ because export needs it (int8 calibration from the training split, validation on the test
set) and imports run one way, toolkit -> export -> runtime: training reaches it here through
``edgekit.toolkit.data``.

Where the data comes from, in order: ``--data PATH``, the ``EDGEKIT_DATA`` variable, the ordinary Keras
download-and-cache. Whatever the source, the arrays are checked (keys, shapes, dtypes, label range, IDX
magic numbers and counts) and a ``DataError`` names the file and what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.runtime.contract import IMAGE_SIZE, NUM_CLASSES
from edgekit.runtime.errors import DataError
from edgekit.runtime.files import sha256_file

ENV_VAR = "EDGEKIT_DATA"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


@dataclass(frozen=True)
class Mnist:
    """The four arrays (uint8 images (N, 28, 28), uint8 labels (N,)) and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str | None  # of the .npz, or of the four IDX files concatenated in IDX_FILES order


def resolve_source(data: str | os.PathLike | None = None) -> Path | None:
    """The path named by ``data`` or ``$EDGEKIT_DATA``; None means the Keras download-and-cache."""
    chosen = data if data not in (None, "") else os.environ.get(ENV_VAR) or None
    return Path(chosen).expanduser() if chosen is not None else None


def load_mnist(data: str | os.PathLike | None = None) -> Mnist:
    """Load and validate MNIST from ``data`` (a .npz or an IDX folder), ``$EDGEKIT_DATA`` or Keras' cache."""
    path = resolve_source(data)
    if path is None:
        return _load_keras_cache()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass --data PATH to a Keras-layout mnist.npz or an IDX folder")
    if path.is_dir():
        return _load_idx_folder(path)
    return _load_npz(path)


# --- .npz -------------------------------------------------------------------------------------------

def _load_npz(path: Path) -> Mnist:
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({_reason(e)})") from None
    if not magic.startswith(b"PK"):  # np.load would call anything else pickled data
        what = "an empty file" if not magic else "a single .npy array" if magic == b"\x93NUMPY" else "not a zip archive"
        raise DataError(f"{path}: not a readable .npz ({what}); pass a Keras-layout mnist.npz or an IDX folder")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path}: missing key(s) {', '.join(missing)}; a Keras-layout MNIST .npz has {', '.join(NPZ_KEYS)}"
                )
            arrays = {k: npz[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a readable .npz ({_reason(e)}); re-download or pass another --data") from None
    mnist = Mnist(**arrays, source=str(path), sha256=sha256_file(path))
    _check(mnist, path)
    return mnist


# --- IDX --------------------------------------------------------------------------------------------

def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {stem}[.gz]; an IDX folder holds the four original MNIST files")


def _read_idx(path: Path, magic: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({_reason(e)})") from None
    if len(raw) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: bad IDX magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path}: header says {shape} ({expected} bytes) but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _load_idx_folder(folder: Path) -> Mnist:
    paths = {k: _find_idx(folder, stem) for k, stem in IDX_FILES.items()}
    arrays = {
        k: _read_idx(p, IDX_IMAGES_MAGIC if k.startswith("x") else IDX_LABELS_MAGIC) for k, p in paths.items()
    }
    digest = hashlib.sha256()
    for p in paths.values():
        sha256_file(p, digest)
    mnist = Mnist(**arrays, source=str(folder), sha256=digest.hexdigest())
    _check(mnist, folder)
    return mnist


# --- Keras cache ------------------------------------------------------------------------------------

def _load_keras_cache() -> Mnist:
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as e:  # network, cache or hash failure: all the same to the user
        raise DataError(
            f"could not download MNIST through Keras ({_reason(e)}); pass --data PATH or set {ENV_VAR}"
        ) from None
    mnist = Mnist(x_train, y_train, x_test, y_test, source="keras.datasets.mnist", sha256=None)
    _check(mnist, Path("keras.datasets.mnist"))
    return mnist


# --- validation -------------------------------------------------------------------------------------

def _check(m: Mnist, where: Path) -> None:
    for split in ("train", "test"):
        x, y = getattr(m, f"x_{split}"), getattr(m, f"y_{split}")
        if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(f"{where}: x_{split} has shape {x.shape}, expected (N, 28, 28)")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{where}: y_{split} has shape {y.shape}, expected ({len(x)},) to match x_{split}")
        if len(x) == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if x.dtype != np.uint8:
            raise DataError(f"{where}: x_{split} is {x.dtype}, expected uint8 pixels 0-255")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{where}: y_{split} is {y.dtype}, expected integer labels 0-9")
        if y.min() < 0 or y.max() >= NUM_CLASSES:
            raise DataError(f"{where}: y_{split} has labels {int(y.min())}..{int(y.max())}, expected 0-9")


def _reason(e: BaseException) -> str:
    return (str(e) or type(e).__name__).splitlines()[0]
