"""Writers for MNIST files in the Keras (.npz) and IDX layouts, used to build good and malformed data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def write_npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array: magic (0x0000 08 ndim), big-endian dimensions, raw bytes."""
    magic = 0x00000800 | array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_folder(folder: Path, x_train, y_train, x_test, y_test, gz: bool = False) -> Path:
    from edgekit.toolkit.data import IDX_FILES

    folder.mkdir(parents=True, exist_ok=True)
    for key, array in {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}.items():
        data = idx_bytes(array)
        name = IDX_FILES[key] + (".gz" if gz else "")
        (folder / name).write_bytes(gzip.compress(data) if gz else data)
    return folder
