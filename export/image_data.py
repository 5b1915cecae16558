"""The user's labelled images, for an ``image`` model: int8 calibration (``edgekit export --data``) and parity
(``edgekit validate --data``).

Two layouts:

- a folder of class folders, Keras' ``image_dataset_from_directory`` convention: ``DIR/<class name>/*.jpg``,
  classes in sorted folder-name order unless the model's labels say otherwise (then matched by name), any image
  format OpenCV reads (``runtime.images.IMAGE_SUFFIXES``);
- an ``.npz`` with ``x`` (uint8 images (N, H, W[, C]) in the model's colour order) and ``y`` (N integer labels,
  indices into the model's labels).

Every image is brought to the model's size by the contract's resize mode as it is read (``runtime.image_input``,
the code the device runs), so memory holds N model-sized images, never N photos. Bad data is one DataError
line naming the file or folder: an empty class folder, class names or counts that are not the model's, an image
of the wrong channel count, a file that is not an image.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.runtime.contract import InputContract
from edgekit.runtime.errors import DataError, first_line
from edgekit.runtime.files import read_npz
from edgekit.runtime.image_input import frame_region, resize, scale_pixels, to_channels
from edgekit.runtime.images import IMAGE_SUFFIXES, read_image

MAX_BYTES = 2_000_000_000  # model-sized pixels held at most: a larger dataset is refused, memory stays bounded


def max_images(contract: InputContract) -> int:
    """How many images of the model's size fit in MAX_BYTES."""
    return max(1, MAX_BYTES // (contract.height * contract.width * contract.channels))


@dataclass(frozen=True)
class ImageSet:
    """Labelled images at the model's size: uint8 ``x`` (N, H, W, C) in the model's colour order, ``y`` (N,) indices
    into ``labels``."""

    x: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]
    source: str
    sha256: str

    def model_input(self, contract: InputContract, index=slice(None)) -> np.ndarray:
        return scale_pixels(self.x[index], contract)


def class_folders(path: str | os.PathLike) -> tuple[str, ...]:
    """The class names of a folder dataset (sorted, hidden folders skipped); DataError when it has none."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; pass --data DIR with one folder of images per class")
    names = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not names:
        raise DataError(f"{root}: no class folders; a dataset folder holds one folder of images per class (DIR/<class>/*.jpg)")
    return names


def load_images(path: str | os.PathLike, contract: InputContract) -> ImageSet:
    """The dataset at ``path`` (a class-folder DIR or an .npz) for a model of ``contract``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass --data DIR (class folders) or an .npz of x and y")
    if path.is_dir():
        return _load_folder(path, contract)
    return _load_npz(path, contract)


def _match(names: tuple[str, ...], contract: InputContract, where: Path) -> list[int]:
    """Each class name's index in the model's labels; DataError when the names are not the model's."""
    labels = contract.labels
    if len(names) != len(labels) or set(names) != set(labels):
        extra, missing = sorted(set(names) - set(labels)), sorted(set(labels) - set(names))
        detail = "; ".join(filter(None, [f"not the model's: {', '.join(extra[:5])}" if extra else "",
                                         f"missing: {', '.join(missing[:5])}" if missing else ""]))
        raise DataError(f"{where}: {len(names)} classes ({detail or 'names differ'}) for a model of {len(labels)} "
                        f"labels ({', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}); the data's classes must be the model's")
    return [labels.index(n) for n in names]


def _load_folder(root: Path, contract: InputContract) -> ImageSet:
    names = class_folders(root)
    index = _match(names, contract, root)
    images, ys = [], []
    digest = hashlib.sha256()
    for name, k in zip(names, index):
        folder = root / name
        files = sorted(f for f in folder.iterdir() if not f.name.startswith(".") and not f.is_dir())
        if not files:
            raise DataError(f"{folder}: an empty class folder; put the class's images in it or remove it")
        for f in files:
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{f}: not an image file ({', '.join(IMAGE_SUFFIXES)}); move it out of the class folder")
            if len(images) >= max_images(contract):
                raise DataError(f"{root}: more than {max_images(contract):,} images of the model's size (2 GB); "
                                "pass a smaller dataset")
            try:
                img, _ = read_image(f)
            except DataError as e:
                raise DataError(f"{f}: {first_line(e)}") from None
            images.append(_fit(_channels_checked(img, contract, f), contract, "bgr"))
            ys.append(k)
            digest.update(f"{name}/{f.name}\0".encode())
            digest.update(f.read_bytes())
    return ImageSet(np.stack(images), np.asarray(ys, np.int64), contract.labels, str(root), digest.hexdigest())


def _channels_checked(img: np.ndarray, contract: InputContract, where) -> np.ndarray:
    """The image as 8-bit; DataError when its channel count is not the model's (a colour image for a 1-channel model,
    a grayscale one for a 3-channel model)."""
    img, _ = frame_region(img, where=str(where))  # 8-bit, as the device reads a frame
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    colour = img.ndim == 3 and not ((img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all())
    if contract.channels == 1 and colour:
        raise DataError(f"{where}: a colour image for a 1-channel (grayscale) model; convert the dataset to grayscale")
    if contract.channels == 3 and img.ndim == 2:
        raise DataError(f"{where}: a grayscale image for a 3-channel model; the dataset's images must be in colour")
    return img


def _fit(img: np.ndarray, contract: InputContract, order: str) -> np.ndarray:
    return resize(to_channels(img, contract, order), contract)


def _load_npz(path: Path, contract: InputContract) -> ImageSet:
    arrays = read_npz(path, ("x", "y"), holds="an image .npz holds arrays x (images) and y (labels)",
                      hint="pass --data DIR (class folders) or an .npz of x and y")
    x, y = arrays["x"], arrays["y"]
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)) or not len(x):
        raise DataError(f"{path}: x is {x.dtype} {x.shape}; expected uint8 images (N, H, W) or (N, H, W, 1|3)")
    if len(x) > max_images(contract):
        raise DataError(f"{path}: {len(x):,} images, more than the {max_images(contract):,} of the model's size that "
                        "fit in 2 GB; pass a smaller dataset")
    channels = 1 if x.ndim == 3 else x.shape[3]
    if channels != contract.channels:
        raise DataError(f"{path}: images of {channels} channel(s) for a {contract.channels}-channel model")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y is {y.dtype} {y.shape}; expected {len(x)} integer labels")
    if y.min() < 0 or y.max() >= contract.classes:
        raise DataError(f"{path}: labels {int(y.min())}..{int(y.max())} for a model of {contract.classes} classes "
                        f"(0..{contract.classes - 1})")
    if x.shape[1:3] == (contract.height, contract.width):
        fitted = x.reshape(len(x), contract.height, contract.width, channels)
    else:
        fitted = np.stack([_fit(i, contract, contract.color) for i in x])
    digest = hashlib.sha256(x.tobytes())
    digest.update(y.astype(np.int64).tobytes())
    return ImageSet(np.ascontiguousarray(fitted), y.astype(np.int64), contract.labels, str(path), digest.hexdigest())
