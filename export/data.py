"""MNIST loading: a Keras-layout .npz, a folder of the four IDX files or a folder of digit images, validated;
no pickle anywhere.

A folder of digits is the layout ``edgekit collect`` writes and Keras' ``image_dataset_from_directory`` reads:
``DIR/<digit>/*.png``, one folder per class named 0-9, each image a 28x28 uint8 crop in MNIST polarity (ink
bright on black). It becomes an ``Mnist`` whose test split is a seeded 20 % of each digit's images
(``holdout_split``), the same 20 % that ``edgekit train --finetune`` holds out, so ``edgekit validate --data DIR``
checks parity on images the fine-tuned model never trained on.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.runtime.contract import IMAGE_SIZE, LABELS as LABELS_TEXT, NUM_CLASSES
from edgekit.runtime.errors import DataError, first_line
from edgekit.runtime.images import IMAGE_SUFFIXES
from edgekit.runtime.files import read_npz, sha256_file

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
    sha256: str | None  # of the .npz, of the four IDX files concatenated in IDX_FILES order, or of a digit folder
    kind: str = "mnist"  # "mnist", or "folder" for a DIR/<digit>/*.png dataset


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
        if is_digit_folder(path):
            return _digit_folder_as_mnist(path)
        return _load_idx_folder(path)
    return _load_npz(path)


# --- .npz -------------------------------------------------------------------------------------------

def _load_npz(path: Path) -> Mnist:
    arrays = read_npz(path, NPZ_KEYS, holds=f"a Keras-layout MNIST .npz has {', '.join(NPZ_KEYS)}",
                      hint="pass a Keras-layout mnist.npz or an IDX folder")
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
        raise DataError(f"{path}: cannot read ({first_line(e)})") from None
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
            f"could not download MNIST through Keras ({first_line(e)}); pass --data PATH or set {ENV_VAR}"
        ) from None
    mnist = Mnist(x_train, y_train, x_test, y_test, source="keras.datasets.mnist", sha256=None)
    _check(mnist, Path("keras.datasets.mnist"))
    return mnist


# --- a folder of digits ------------------------------------------------------------------------------

HOLDOUT_FRACTION = 0.2  # of each digit's images, held out for validation
HOLDOUT_SEED = 0  # fixed, so fine-tuning, training and validation all hold out the same images
FOLDER_IGNORED = ("collect.json",)  # what `edgekit collect` writes beside the digit folders


@dataclass(frozen=True)
class DigitFolder:
    """A folder dataset, read whole: uint8 images (N, 28, 28), labels (N,), and each image's file."""

    x: np.ndarray
    y: np.ndarray
    files: tuple[str, ...]
    source: str
    sha256: str


def is_digit_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder of class folders (``DIR/<digit>/``) rather than an IDX folder."""
    path = Path(path)
    if not path.is_dir() or any(_idx_present(path, stem) for stem in IDX_FILES.values()):
        return False
    return any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())


def _idx_present(folder: Path, stem: str) -> bool:
    return any((folder / n).is_file() for n in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"))


def load_digit_folder(path: str | os.PathLike) -> DigitFolder:
    """Read and validate ``DIR/<digit>/*.png``; a DataError names the first folder or file that is wrong.

    Class folders must be named 0-9; every file in them must be an image (hidden files are skipped) that
    decodes to 28x28 grayscale uint8 with a dark border (MNIST polarity). Files beside the class folders
    (collect.json, a README) are not images of any class and are left alone."""
    import cv2

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; a digit folder holds 0/ ... 9/ with 28x28 PNG crops")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for c in classes:
        if c.name not in LABELS_TEXT:
            raise DataError(f"{c}: unknown class folder {c.name!r}; a digit folder's class folders are named 0 to 9")
    images, labels, files = [], [], []
    digest = hashlib.sha256()
    for c in classes:
        for f in sorted(c.iterdir()):
            if f.name.startswith(".") or f.is_dir():
                continue
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{f}: not an image file ({', '.join(IMAGE_SUFFIXES)}); move it out of the class folder")
            try:
                raw = np.fromfile(f, dtype=np.uint8)
            except OSError as e:
                raise DataError(f"{f}: cannot read ({first_line(e)})") from None
            img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
            if img is None:
                raise DataError(f"{f}: not an image OpenCV can decode; delete it or collect it again")
            if img.ndim == 3 and img.shape[2] in (3, 4):
                if not (img[..., 0] == img[..., 1]).all() or not (img[..., 1] == img[..., 2]).all():
                    raise DataError(f"{f}: a colour image; a digit crop is grayscale (edgekit collect writes them so)")
                img = img[..., 0]
            if img.dtype != np.uint8:
                raise DataError(f"{f}: {img.dtype} pixels; a digit crop is 8-bit grayscale")
            if img.shape != (IMAGE_SIZE, IMAGE_SIZE):
                h, w = img.shape[:2]
                raise DataError(f"{f}: {w}x{h} pixels; a digit crop is 28x28 (edgekit collect writes them so)")
            ring = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
            if ring.mean() > 127:
                raise DataError(f"{f}: dark ink on a light background; crops are in MNIST polarity, ink bright on black")
            images.append(img)
            labels.append(int(c.name))
            files.append(str(f))
            digest.update(f"{c.name}/{f.name}\0".encode())
            digest.update(raw.tobytes())
    if not images:
        raise DataError(f"{root}: no digit images; a digit folder holds 0/ ... 9/ with 28x28 PNG crops (edgekit collect writes them)")
    return DigitFolder(np.stack(images), np.asarray(labels, np.uint8), tuple(files), str(root), digest.hexdigest())


def holdout_split(y: np.ndarray, fraction: float = HOLDOUT_FRACTION, seed: int = HOLDOUT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held_out): a seeded ``fraction`` of each label's items held out (at least one of any
    label with two or more items), both sorted."""
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        n = int(round(fraction * len(idx)))
        if n == 0 and len(idx) >= 2:
            n = 1
        held.extend(rng.permutation(idx)[:n].tolist())
    held_out = np.sort(np.asarray(held, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(y)), held_out)
    return train, held_out


def _digit_folder_as_mnist(path: Path) -> Mnist:
    d = load_digit_folder(path)
    train, held = holdout_split(d.y)
    if not len(train) or not len(held):
        raise DataError(f"{path}: {len(d.y)} image(s) cannot be split into training and held-out images; collect more")
    return Mnist(d.x[train], d.y[train], d.x[held], d.y[held], source=d.source, sha256=d.sha256, kind="folder")


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
