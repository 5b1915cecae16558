"""Whole images to an ``image`` model's input, by its contract (``contract.InputContract``). numpy and cv2 only.

Used alike by the device (``Classifier.classify`` on camera frames and photos, which OpenCV gives in BGR) and by
``edgekit export``/``validate`` on the user's labelled images, so calibration, validation and the device prepare
pixels the same way: the colour order converted, the frame brought to the model's size (``stretch``: squashed;
``crop``: the largest centred region of the model's aspect ratio, then scaled; ``letterbox``: scaled to fit and
padded with black), then ``pixel * scale + offset``.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgekit.runtime.contract import InputContract
from edgekit.runtime.errors import DataError


def to_channels(image: np.ndarray, contract: InputContract, order: str = "bgr") -> np.ndarray:
    """A uint8 image (H, W) or (H, W, 1|3|4) whose colour channels are in ``order`` ("bgr" as OpenCV decodes,
    or "rgb") -> (H, W, C) in the contract's colour order."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, 1|3|4), got {np.asarray(image).shape}")
    if contract.channels == 1:
        if img.ndim == 3:
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY if order == "bgr" else cv2.COLOR_RGB2GRAY)
        return img[..., None]
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    return img if order == contract.color else np.ascontiguousarray(img[..., ::-1])


def resize(image: np.ndarray, contract: InputContract) -> np.ndarray:
    """(H, W, C) -> (height, width, C) by the contract's resize mode."""
    h, w = image.shape[:2]
    th, tw = contract.height, contract.width
    if contract.resize == "crop":
        scale = min(h / th, w / tw)
        ch, cw = max(1, round(th * scale)), max(1, round(tw * scale))
        y, x = (h - ch) // 2, (w - cw) // 2
        image, h, w = image[y:y + ch, x:x + cw], ch, cw
    if contract.resize == "letterbox":
        scale = min(th / h, tw / w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        inner = _scaled(image, nh, nw)
        out = np.zeros((th, tw, image.shape[2]), dtype=image.dtype)
        y, x = (th - nh) // 2, (tw - nw) // 2
        out[y:y + nh, x:x + nw] = inner.reshape(nh, nw, -1)
        return out
    return _scaled(image, th, tw).reshape(th, tw, -1)


def _scaled(image: np.ndarray, h: int, w: int) -> np.ndarray:
    if image.shape[:2] == (h, w):
        return image
    shrink = h <= image.shape[0] and w <= image.shape[1]
    return cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def scale_pixels(images: np.ndarray, contract: InputContract) -> np.ndarray:
    """uint8 (N, H, W, C) at the model's size -> float32 model input, ``pixel * scale + offset``."""
    scale = np.asarray(contract.scale, dtype=np.float32)
    offset = np.asarray(contract.offset, dtype=np.float32)
    return images.astype(np.float32) * scale + offset


def prepare(images, contract: InputContract, order: str = "bgr") -> np.ndarray:
    """uint8 images of any size (a list, or one image) -> float32 (N, height, width, C) model input."""
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and not (images.ndim == 3 and images.shape[2] > 4):
        images = [images]
    return scale_pixels(np.stack([resize(to_channels(i, contract, order), contract) for i in images]), contract)


def frame_region(frame, roi: tuple[int, int, int, int] | None = None, where: str = "frame") -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """What an ``image`` model sees of a frame: the whole frame or its ``roi`` (x, y, w, h; clipped to the frame) as
    8-bit pixels, and its box. DataError (one line, naming ``where``) for a frame of another shape or depth, or an
    ROI outside it."""
    f = np.asarray(frame)
    if f.ndim not in (2, 3) or f.shape[0] < 1 or f.shape[1] < 1 or (f.ndim == 3 and f.shape[2] not in (1, 3, 4)):
        raise DataError(f"{where}: expected a frame of shape (H, W) or (H, W, 1|3|4), got {f.shape}")
    box = (0, 0, f.shape[1], f.shape[0])
    if roi is not None:
        x, y, w, h = roi
        x0, y0, x1, y1 = max(0, x), max(0, y), min(f.shape[1], x + w), min(f.shape[0], y + h)
        if x1 <= x0 or y1 <= y0:
            raise DataError(f"{where}: --roi {x},{y},{w},{h} lies outside the {f.shape[1]}x{f.shape[0]} frame")
        f, box = f[y0:y1, x0:x1], (x0, y0, x1 - x0, y1 - y0)
    if f.dtype == np.uint16:
        f = (f >> 8).astype(np.uint8)
    if f.dtype != np.uint8:
        raise DataError(f"{where}: {f.dtype} pixels; an image model reads 8-bit frames (uint8, as cameras and image files give)")
    return f, box
