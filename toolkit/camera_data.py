"""What the camera recipe trains on besides MNIST: digits as the device sees them (issue 21).

The model on a Raspberry Pi never sees an MNIST image: it sees what ``find_digits`` cut out of a camera frame. So
the camera recipe mixes into every batch crops made the device's way: a digit is drawn as a glyph, changed as
people and printers change it, photographed (``synthetic.glyph_frame``: lit paper or a dark board, a lighting
gradient, a slight rotation, blur, sensor noise, JPEG), and cut out by the runtime's own ``find_digits``. A crop
whose box is not the drawn digit's (the runtime would misread the scene itself) is not kept: its label would lie.

The glyphs (the only sources training may use; every other typeface and all other handwriting are kept for an
independent check):
- MNIST training digits (never the validation or test images), distorted elastically (Simard et al., 2003) and
  by the frame's affine look, their own stroke thinned or made bold, or redrawn along their centre line with a
  pen from a ballpoint (2 % of the height) to a marker (25 %): the even stroke people write with;
- OpenCV's Hershey faces and the DejaVu faces inside matplotlib's package, as their own outlines or redrawn with
  a pen from a thin ballpoint (3 % of the height) to a marker (25 %), slanted, squeezed and rotated; half their
  1s without the foot these faces give them (``fonts.without_foot``), as most sans faces print a 1.

Everything is drawn from ``numpy.random.default_rng([seed, chunk])``: the same seed gives the same pool, whatever
the number of worker processes. Frames are 320x240, the size ``find_digits`` analyses a 640x480 frame at.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from edgekit.runtime.preprocess import find_digits
from edgekit.toolkit.fonts import font_digit, pen, shape_glyph, skeleton
from edgekit.toolkit.synthetic import Look, box_iou, glyph_frame, scaled_glyph

CHUNK = 500  # crops drawn from one seeded generator
FONT_SHARE = 0.5  # of the crops, the share drawn from fonts (the rest from MNIST digits)
PEN_SHARE = 0.6  # of the font crops, the share redrawn with a pen (the rest: the face's own outline)
# Of the font 1s, the share drawn without the foot DejaVu's and OpenCV's faces give them: most sans faces print a
# flag and a stem only (Helvetica, Roboto), which a model that never saw one reads as a 7.
FOOTLESS_ONE = 0.5
MNIST_PEN_SHARE = 0.5  # of the MNIST crops, the share redrawn with a pen (the rest: their own stroke, changed)
# The pen's width for MNIST digits, a ballpoint to a marker: a fraction of PEN_CANVAS, which the enlarged 28x28
# image's digit fills about 0.7 of, so 2.7-33 % of the digit's own height (the bundled model was trained so).
MNIST_PEN = (0.02, 0.25)
PEN_CANVAS = 160  # px: an MNIST digit is enlarged to this before its centre line is found
LOOK = Look(size=(320, 240), digit_height=(0.25, 0.85), light_on_dark=0.2)
MIN_COVER = 0.8  # a crop is kept when its box and the drawn digit's box overlap this much (IoU)


@dataclass(frozen=True)
class CameraPool:
    """Crops as the device cuts them: uint8 (N, 28, 28) ink bright on black, their labels, and where each came
    from (0: MNIST, 1: a font)."""

    x: np.ndarray
    y: np.ndarray
    source: np.ndarray


def make_pool(x: np.ndarray, y: np.ndarray, n: int, seed: int, workers: int | None = None) -> CameraPool:
    """``n`` camera crops from the MNIST digits ``x``/``y`` (the training split only) and the fonts, seeded."""
    chunks = [(x, y, min(CHUNK, n - start), seed, start // CHUNK) for start in range(0, n, CHUNK)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
    if workers == 1:
        parts = [_chunk(*c) for c in chunks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_chunk, *zip(*chunks)))
    return CameraPool(*(np.concatenate([p[i] for p in parts]) for i in range(3)))


def _chunk(x: np.ndarray, y: np.ndarray, n: int, seed: int, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cv2.setNumThreads(1)
    rng = np.random.default_rng([seed, chunk])
    images, labels, sources = [], [], []
    while len(images) < n:
        from_font = rng.random() < FONT_SHARE
        if from_font:
            label = int(rng.integers(10))
            glyph = font_glyph(label, rng)
        else:
            i = int(rng.integers(len(x)))
            label = int(y[i])
            glyph = mnist_glyph(x[i], rng)
        frame, box = glyph_frame(glyph, rng, LOOK)
        crops = find_digits(frame)
        if not crops or box_iou(crops[0].box, box) < MIN_COVER:
            continue  # the runtime itself would misread this scene: no label to learn from
        images.append(crops[0].image)
        labels.append(label)
        sources.append(int(from_font))
    return np.stack(images), np.array(labels, np.int32), np.array(sources, np.uint8)


def font_glyph(label: int, rng: np.random.Generator) -> np.ndarray:
    """A font digit as float32 coverage, sized for LOOK's frames."""
    stroke = float(rng.uniform(0.03, 0.25)) if rng.random() < PEN_SHARE else None
    foot = label != 1 or rng.random() >= FOOTLESS_ONE
    height = rng.uniform(*LOOK.digit_height) * LOOK.size[1] * 20 / 28
    return shape_glyph(font_digit(label, rng, "any", stroke, foot), rng, height, rotation=10.0)


def mnist_glyph(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit as float32 coverage sized for LOOK's frames: elastically distorted, then either redrawn
    along its centre line with a pen (MNIST_PEN) or its own stroke thinned (down to a ballpoint's) or made bold
    (up to a marker's: a quarter of the height), rotated a little."""
    height = rng.uniform(*LOOK.digit_height) * LOOK.size[1]
    if rng.random() < MNIST_PEN_SHARE:
        big = cv2.resize(elastic(digit, rng), (PEN_CANVAS, PEN_CANVAS), interpolation=cv2.INTER_CUBIC)
        line = skeleton(big)
        if line.any():
            return shape_glyph(pen(line, float(rng.uniform(*MNIST_PEN))), rng, height * 20 / 28, rotation=12.0)
    glyph = scaled_glyph(elastic(digit, rng), height, rng.uniform(-12, 12))
    ink_height = height * 20 / 28
    # MNIST's own stroke is ~10-15 % of the height: change it by -6 % (thin) to +12 % (bold) of the height.
    change = rng.uniform(-0.06, 0.12) * ink_height
    r = int(round(abs(change) / 2))
    if r:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        pad = cv2.copyMakeBorder(glyph, r, r, r, r, cv2.BORDER_CONSTANT, value=0)
        changed = cv2.dilate(pad, disc) if change > 0 else cv2.erode(pad, disc)
        if changed.max() > 0.5:  # a thinning that erased the digit keeps the original
            glyph = changed
    return glyph


def elastic(digit: np.ndarray, rng: np.random.Generator, alpha: float = 34.0, sigma: float = 4.0) -> np.ndarray:
    """A 28x28 uint8 digit under a smooth random displacement field (Simard et al.'s alpha 34, sigma 4)."""
    h, w = digit.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(digit, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
