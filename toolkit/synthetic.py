"""Camera-like frames made from real MNIST digits, for the runtime's tests and benchmarks. numpy + cv2 only.

A frame is what a webcam pointed at a sheet of paper sees: a digit written in dark ink on light paper (or
chalk on a board), anywhere in the frame and of any size, slightly rotated, under a lighting gradient,
with sensor noise, a little blur and JPEG compression. Blank paper, dark frames, pure noise and strips
of several digits ("2026") come from the same generator. Everything is driven by a seeded
``numpy.random.Generator`` so a test or a benchmark sees the same frames every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from edgekit.toolkit.fonts import HERSHEY_FONTS

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Look:
    """How hard the frames are. The defaults are a phone-camera-on-a-desk look, not a torture test."""

    size: tuple[int, int] = (640, 480)  # width, height
    digit_height: tuple[float, float] = (0.25, 0.7)  # the digit's height as a fraction of the frame's
    rotation: float = 12.0  # degrees, either way
    gradient: tuple[float, float] = (0.55, 1.0)  # darkest and brightest light across the frame
    noise: tuple[float, float] = (2.0, 7.0)  # sensor noise sigma, grey levels
    jpeg: tuple[int, int] = (55, 90)  # JPEG quality
    light_on_dark: float = 0.15  # fraction of frames with chalk on a dark board


def lit_sheet(rng: np.random.Generator, look: Look, dark_board: bool) -> tuple[np.ndarray, float, float]:
    """A lit sheet (float32 H x W in grey levels), its base paper level and ink level."""
    w, h = look.size
    if dark_board:
        paper, ink = rng.uniform(25, 70), rng.uniform(170, 235)
    else:
        paper, ink = rng.uniform(165, 240), rng.uniform(15, 80)
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.cos(angle) * (np.arange(w, dtype=np.float32) / w - 0.5)
    ys = np.sin(angle) * (np.arange(h, dtype=np.float32) / h - 0.5)
    t = np.add.outer(ys, xs) + np.float32(0.5)  # roughly 0..1 across the frame
    lo, hi = look.gradient
    light = lo + (hi - lo) * np.clip(t, 0, 1)
    return light, paper, ink


_NOISE: dict[tuple[int, int], np.ndarray] = {}


def _noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Unit Gaussian noise of ``shape``: a random window of a bigger fixed field (drawing fresh noise for
    every frame costs more than everything else here)."""
    h, w = shape
    field = _NOISE.get(shape)
    if field is None:
        field = _NOISE[shape] = np.random.default_rng(99).standard_normal((h + 97, w + 89), dtype=np.float32)
    y, x = int(rng.integers(0, 97)), int(rng.integers(0, 89))
    return field[y : y + h, x : x + w]


def camera_finish(img: np.ndarray, rng: np.random.Generator, look: Look) -> np.ndarray:
    """Tint to BGR, blur a little, add sensor noise, JPEG round trip -> uint8 (H, W, 3)."""
    tint = np.array([rng.uniform(0.9, 1.0), 1.0, rng.uniform(0.9, 1.05)], np.float32)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    img = img + _noise(img.shape, rng) * np.float32(rng.uniform(*look.noise))
    # Colour sensors: a slight tint and a little independent noise per channel.
    bgr = cv2.merge([img * t + _noise(img.shape, rng) * np.float32(1.5) for t in tint])
    out = cv2.convertScaleAbs(bgr)  # round and saturate to uint8
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*look.jpeg))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def scaled_glyph(digit: np.ndarray, height: float, rotation: float) -> np.ndarray:
    """A 28x28 MNIST digit (ink bright) -> float32 coverage 0..1 whose ink is ``height`` px tall, rotated."""
    s = height / 20.0  # MNIST digits are 20 px tall in their 28 px frame
    size = max(8, round(28 * s))
    g = cv2.resize(digit.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_CUBIC)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), rotation, 1.0)
    return np.clip(cv2.warpAffine(g, m, (size, size), flags=cv2.INTER_LINEAR), 0, 1)


def stamp_glyph(sheet: np.ndarray, glyph: np.ndarray, x: int, y: int, paper: float, ink: float) -> Box:
    """Composite ``glyph`` at (x, y) onto the sheet's paper level; returns the ink's tight box."""
    gh, gw = glyph.shape
    region = sheet[y : y + gh, x : x + gw]
    region[:] = region * (1 - glyph) + ink * glyph
    ys, xs = np.nonzero(glyph > 0.25)
    return (x + int(xs.min()), y + int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))


def camera_frame(digit: np.ndarray, rng: np.random.Generator, look: Look = Look()) -> tuple[np.ndarray, Box]:
    """One MNIST digit photographed: a BGR uint8 frame and the digit's box (x, y, w, h)."""
    w, h = look.size
    light, paper, ink = lit_sheet(rng, look, rng.random() < look.light_on_dark)
    glyph = scaled_glyph(digit, rng.uniform(*look.digit_height) * h, rng.uniform(-look.rotation, look.rotation))
    gh, gw = glyph.shape
    gh, gw = min(gh, h - 2), min(gw, w - 2)
    glyph = glyph[:gh, :gw]
    x, y = int(rng.integers(1, w - gw)), int(rng.integers(1, h - gh))
    sheet = np.full((h, w), paper, np.float32)
    box = stamp_glyph(sheet, glyph, x, y, paper, ink)
    return camera_finish(sheet * light, rng, look), box


def desk_frame(glyph_for: Callable[[float], np.ndarray], rng: np.random.Generator,
               look: Look = Look()) -> tuple[np.ndarray, Box]:
    """A digit on a sheet lying on a darker desk, the sheet's edges in view (a desk often darker than the ink):
    ``glyph_for(sheet_height)`` draws the glyph (float32 coverage 0..1) for a sheet that tall. A BGR uint8 frame
    and the digit's box."""
    w, h = look.size
    sw, sh = int(w * rng.uniform(0.55, 0.85)), int(h * rng.uniform(0.6, 0.9))
    sx, sy = int(rng.integers(0, w - sw)), int(rng.integers(0, h - sh))
    paper, ink = rng.uniform(170, 240), rng.uniform(15, 70)
    img = np.full((h, w), rng.uniform(20, 110), np.float32)
    img[sy : sy + sh, sx : sx + sw] = paper
    glyph = glyph_for(sh)
    gx = sx + int(rng.integers(5, max(6, sw - glyph.shape[1] - 5)))
    gy = sy + int(rng.integers(5, max(6, sh - glyph.shape[0] - 5)))
    glyph = glyph[: sy + sh - gy - 2, : sx + sw - gx - 2]
    box = stamp_glyph(img, glyph, gx, gy, paper, ink)
    return camera_finish(img, rng, look), box


# -- digits that are not MNIST: OpenCV's Hershey fonts, as a stand-in for someone else's handwriting ------------

def font_glyph(digit: int, rng: np.random.Generator, height: float, rotation: float = 8.0) -> np.ndarray:
    """``digit`` drawn in a random Hershey font (upright or italic), stroke weight, slant, aspect and rotation:
    float32 coverage 0..1 whose ink is about ``height`` px tall. Not MNIST: printed and script letterforms
    with a pen's even stroke, which the MNIST model has never seen."""
    font = HERSHEY_FONTS[int(rng.integers(len(HERSHEY_FONTS)))] | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    canvas = np.zeros((240, 240), np.uint8)
    thickness = int(rng.integers(3, 12))
    cv2.putText(canvas, str(int(digit)), (60, 180), font, 5.0, 255, thickness, cv2.LINE_AA)
    # Slant (shear), a squeeze or stretch, and a small rotation, about the canvas centre.
    shear, aspect = rng.uniform(-0.35, 0.35), rng.uniform(0.75, 1.25)
    m = cv2.getRotationMatrix2D((120, 120), rng.uniform(-rotation, rotation), 1.0)
    affine = np.array([[aspect, shear, 0], [0, 1, 0], [0, 0, 1]], np.float64)
    m = m @ affine
    m[:, 2] += np.array([120, 120]) - m[:, :2] @ np.array([120, 120])
    canvas = cv2.warpAffine(canvas, m, (240, 240), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(canvas > 64)
    if not len(ys):  # pragma: no cover - every font draws every digit
        raise ValueError(f"font {font} drew nothing for {digit}")
    ink = canvas[max(0, ys.min() - 4) : ys.max() + 5, max(0, xs.min() - 4) : xs.max() + 5].astype(np.float32) / 255.0
    s = height / max(1, ys.max() - ys.min() + 1)
    size = (max(4, round(ink.shape[1] * s)), max(4, round(ink.shape[0] * s)))
    return np.clip(cv2.resize(ink, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR), 0, 1)


def font_frame(digit: int, rng: np.random.Generator, look: Look = Look()) -> tuple[np.ndarray, Box]:
    """One font-drawn digit photographed like ``camera_frame``'s: a BGR uint8 frame and the digit's box."""
    glyph = font_glyph(digit, rng, rng.uniform(*look.digit_height) * look.size[1] * 20 / 28, look.rotation)
    return glyph_frame(glyph, rng, look)


def glyph_frame(glyph: np.ndarray, rng: np.random.Generator, look: Look = Look()) -> tuple[np.ndarray, Box]:
    """Any glyph (float32 coverage 0..1, as tall as it should be in the frame) photographed like
    ``camera_frame``'s digits, anywhere on the sheet: a BGR uint8 frame and the ink's box."""
    w, h = look.size
    light, paper, ink = lit_sheet(rng, look, rng.random() < look.light_on_dark)
    m = max(1, round(0.02 * h))  # the whole digit in view, a little paper around it
    gh, gw = min(glyph.shape[0], h - 2 * m), min(glyph.shape[1], w - 2 * m)
    glyph = glyph[:gh, :gw]
    x, y = int(rng.integers(m, w - gw - m + 1)), int(rng.integers(m, h - gh - m + 1))
    sheet = np.full((h, w), paper, np.float32)
    box = stamp_glyph(sheet, glyph, x, y, paper, ink)
    return camera_finish(sheet * light, rng, look), box


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def digit_strip(digits: Iterable[np.ndarray], rng: np.random.Generator, look: Look = Look()) -> tuple[np.ndarray, list[Box]]:
    """Several MNIST digits written left to right on one sheet (a year, a meter reading) and their boxes."""
    digits = list(digits)
    w, h = look.size
    light, paper, ink = lit_sheet(rng, look, rng.random() < look.light_on_dark)
    height = min(rng.uniform(0.25, 0.45) * h, 0.8 * (w / len(digits)) * 20 / 28)
    glyphs = [scaled_glyph(d, height * rng.uniform(0.9, 1.1), rng.uniform(-6, 6)) for d in digits]
    total = sum(g.shape[1] for g in glyphs)
    gap = (w - total) / (len(glyphs) + 1)
    if gap < 0:
        raise ValueError(f"{len(glyphs)} digits do not fit across a {w}-pixel frame")
    sheet = np.full((h, w), paper, np.float32)
    y_mid = rng.uniform(0.35, 0.65) * h
    x, boxes = gap * rng.uniform(0.5, 1.0), []
    for g in glyphs:
        gh, gw = g.shape
        y = int(np.clip(y_mid - gh / 2 + rng.normal(0, 3), 1, h - gh - 1))
        boxes.append(stamp_glyph(sheet, g, int(x), y, paper, ink))
        x += gw + gap
    return camera_finish(sheet * light, rng, look), boxes


def empty_frame(kind: str, rng: np.random.Generator, look: Look = Look()) -> np.ndarray:
    """A frame with no digit: ``paper`` (blank lit sheet), ``desk`` (an empty sheet lying on a darker desk, its
    edges in view), ``dark`` (lens cap, night) or ``noise``."""
    w, h = look.size
    if kind == "paper":
        light, paper, _ = lit_sheet(rng, look, dark_board=False)
        return camera_finish(np.full((h, w), paper, np.float32) * light, rng, look)
    if kind == "desk":
        light, paper, _ = lit_sheet(rng, look, dark_board=False)
        img = np.full((h, w), rng.uniform(20, 110), np.float32)
        sw, sh = int(w * rng.uniform(0.5, 0.85)), int(h * rng.uniform(0.5, 0.9))
        sx, sy = int(rng.integers(0, w - sw)), int(rng.integers(0, h - sh))
        img[sy : sy + sh, sx : sx + sw] = paper
        return camera_finish(img * light, rng, look)
    if kind == "dark":
        img = np.full((h, w, 3), rng.uniform(0, 20), np.float32) + rng.normal(0, 3, (h, w, 3))
        return np.clip(img, 0, 255).astype(np.uint8)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    raise ValueError(f"unknown empty frame kind {kind!r}; use paper, desk, dark or noise")


def mnist_frames(
    images: np.ndarray, labels: np.ndarray, seed: int = 0, look: Look = Look()
) -> Iterator[tuple[np.ndarray, int, Box]]:
    """(frame, label, box) for each MNIST digit in order, photographed with a seeded look."""
    rng = np.random.default_rng(seed)
    for img, label in zip(images, labels):
        frame, box = camera_frame(img, rng, look)
        yield frame, int(label), box


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 10.0) -> Path:
    """Write BGR frames to an MJPG .avi with cv2.VideoWriter (readable by cv2.VideoCapture everywhere)."""
    path = Path(path)
    writer = None
    try:
        for f in frames:
            if writer is None:
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (f.shape[1], f.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"cv2.VideoWriter cannot write {path}")
            writer.write(f)
    finally:
        if writer is not None:
            writer.release()
    return path
