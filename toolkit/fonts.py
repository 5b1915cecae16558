"""Printed and pen-drawn digits that are not MNIST: OpenCV's Hershey fonts and the DejaVu fonts inside matplotlib.

These are the only typefaces edgekit trains or tunes on (the camera recipe, the camera benchmark's print rows):
every other typeface and all other handwriting stay out, kept for an independent check. DejaVu is read from
matplotlib's own package (``matplotlib.get_data_path()``), so no system font is needed and the glyphs are the
same on every machine that has the same matplotlib.

A glyph is float32 coverage 0..1 (1 = ink) tightly around the digit, about ``height`` pixels tall. Its stroke can
be set as a fraction of the digit's height, from a thin pen (~3 %) to a marker (~25 %): the face's glyph is thinned
to its centre line and redrawn along it with a round pen of that width.

OpenCV 5 draws its ``FONT_HERSHEY_*`` faces with built-in outline fonts, not the Hershey strokes of OpenCV 4: a
thickness of 1 is the regular weight and anything more the bold one (and OpenCV 5.1 draws all seven faces alike).
So what "Hershey" means here depends on OpenCV's version; the pen makes the stroke whatever the face.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
DEJAVU_FACES = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique", "DejaVuSansMono",
    "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique", "DejaVuSansMono-BoldOblique", "DejaVuSerif",
    "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
)
CANVAS = 160  # the digit is drawn about this many pixels tall, then resized


def dejavu_path(face: str) -> Path:
    """The .ttf of a DejaVu face inside matplotlib's package; raises FileNotFoundError when it is not there, and
    ValueError for any other face (matplotlib's STIX and Computer Modern are kept for the independent check)."""
    import matplotlib

    if face not in DEJAVU_FACES:
        raise ValueError(f"{face} is not one of the DejaVu faces edgekit trains on: {', '.join(DEJAVU_FACES)}")

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{face}.ttf"
    if not path.is_file():
        raise FileNotFoundError(f"matplotlib ships no {face}.ttf (looked in {path.parent})")
    return path


@lru_cache(maxsize=None)
def dejavu_bitmap(face: str, digit: int) -> np.ndarray:
    """``digit`` in a DejaVu face, uint8 coverage about CANVAS px tall, tightly cropped (cached: fonts are fixed)."""
    return ttf_bitmap(dejavu_path(face), digit)


def ttf_bitmap(path: Path, digit: int) -> np.ndarray:
    """``digit`` in the TrueType face at ``path``, uint8 coverage about CANVAS px tall, tightly cropped. Training
    draws only DejaVu's (``dejavu_bitmap``); benchmarks/camera.py draws the faces kept for the independent check."""
    from matplotlib.ft2font import FT2Font

    font = FT2Font(str(path))
    font.set_size(CANVAS * 1.4, 72)  # digits are ~0.73 em tall in DejaVu
    font.set_text(str(int(digit)), 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    return tight(np.asarray(font.get_image()))


@lru_cache(maxsize=None)
def hershey_bitmap(digit: int, font: int, italic: bool, thickness: int) -> np.ndarray:
    """``digit`` in an OpenCV Hershey font, uint8 coverage about CANVAS px tall, tightly cropped (cached)."""
    canvas = np.zeros((2 * CANVAS, 2 * CANVAS), np.uint8)
    face = font | (cv2.FONT_ITALIC if italic else 0)
    scale = cv2.getFontScaleFromHeight(face, CANVAS, thickness)
    cv2.putText(canvas, str(int(digit)), (CANVAS // 2, CANVAS * 3 // 2), face, scale, 255, thickness, cv2.LINE_AA)
    return tight(canvas)


def tight(a: np.ndarray) -> np.ndarray:
    """A uint8 glyph cut to its ink (coverage above 64), as every bitmap here is kept."""
    ys, xs = np.nonzero(a > 64)
    if not len(ys):
        raise ValueError("the font drew nothing")
    return np.ascontiguousarray(a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


def stroke_width(coverage: np.ndarray) -> float:
    """A glyph's mean stroke width in pixels: twice its ink area over its outline's length."""
    mask = (coverage > 127 if coverage.dtype == np.uint8 else coverage > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(mask.sum()) / max(perimeter, 1.0)


def skeleton(bitmap: np.ndarray) -> np.ndarray:
    """The one-pixel centre line of a uint8 glyph (Zhang and Suen's thinning, 1984), as a 0/255 uint8 image."""
    img = np.pad((bitmap > 127).astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = img
            # The 8 neighbours, clockwise from north: P2..P9.
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]
            b = sum(n)
            a = sum((n[i] == 0) & (n[(i + 1) % 8] == 1) for i in range(8))
            if step == 0:
                c = (n[0] * n[2] * n[4] == 0) & (n[2] * n[4] * n[6] == 0)
            else:
                c = (n[0] * n[2] * n[6] == 0) & (n[0] * n[4] * n[6] == 0)
            kill = (p[1:-1, 1:-1] == 1) & (b >= 2) & (b <= 6) & (a == 1) & c
            if kill.any():
                img = img.copy()
                img[1:-1, 1:-1][kill] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1] * np.uint8(255)


def pen(line: np.ndarray, fraction: float) -> np.ndarray:
    """A glyph's centre line (``skeleton``) drawn with a round pen whose width is ``fraction`` of the result's
    height: a thin pen (~3 %) to a marker (~25 %), the even stroke people write with rather than a face's."""
    h = line.shape[0]
    d = max(1, int(round(fraction * h / (1 - fraction))))  # the pen adds its width to the height: d = f (h + d)
    r = d // 2
    pad = cv2.copyMakeBorder(line, r + 1, r + 1, r + 1, r + 1, cv2.BORDER_CONSTANT, value=0)
    drawn = cv2.dilate(pad, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) if r else pad
    return tight(cv2.GaussianBlur(drawn, (3, 3), 0))


def font_digit(digit: int, rng: np.random.Generator, family: str = "any", stroke: float | None = None,
               foot: bool = True) -> np.ndarray:
    """``digit`` in a random face of OpenCV's (``hershey``) or DejaVu (``dejavu``; ``any``: either), uint8 coverage
    about CANVAS px tall; with ``stroke``, redrawn by a pen that wide (a fraction of the height); without ``foot``,
    a 1 loses the foot these faces give it (``without_foot``)."""
    if family == "any":
        family = "hershey" if rng.random() < 0.5 else "dejavu"
    if family == "hershey":
        face = (HERSHEY_FONTS[int(rng.integers(len(HERSHEY_FONTS)))], bool(rng.random() < 0.3), int(rng.integers(1, 4)))
        draw = hershey_bitmap
    elif family == "dejavu":
        face, draw = (DEJAVU_FACES[int(rng.integers(len(DEJAVU_FACES)))],), dejavu_bitmap
    else:
        raise ValueError(f"unknown font family {family!r}; use hershey, dejavu or any")
    foot = foot or digit != 1
    if stroke is None:
        bitmap = draw(int(digit), *face) if family == "hershey" else draw(*face, int(digit))
        return bitmap if foot else without_foot(bitmap)
    return pen(_centre_line(family, int(digit), face, foot), stroke)


@lru_cache(maxsize=None)
def _centre_line(family: str, digit: int, face: tuple, foot: bool = True) -> np.ndarray:
    bitmap = hershey_bitmap(digit, *face) if family == "hershey" else dejavu_bitmap(*face, digit)
    line = skeleton(bitmap)
    # Without the foot, the face's own centre line is cut (the outline's cut end would thin into a fork).
    return line if foot else line * _stem_only(bitmap, line=True)


def without_foot(bitmap: np.ndarray) -> np.ndarray:
    """A uint8 glyph of a 1 without the foot (the bar it stands on) that DejaVu and OpenCV's faces give it: the
    flag-and-stem 1 of most sans faces (Helvetica's, Roboto's)."""
    return tight(bitmap * _stem_only(bitmap))


def _stem_only(bitmap: np.ndarray, line: bool = False) -> np.ndarray:
    """A 0/1 uint8 mask of a 1's glyph without its foot: the stem is followed down from its middle (the rows as
    wide as the stem, not the flag's), upright or slanted, and below 0.7 of the height only a stem's width around
    that line is kept (``line``: 3 pixels, for the glyph's centre line)."""
    h, w = bitmap.shape
    keep = np.ones((h, w), np.uint8)
    ys = np.arange(int(0.35 * h), int(0.7 * h))
    spans = [(y, np.nonzero(bitmap[y] > 127)[0]) for y in ys]
    spans = [(y, xs.min(), xs.max()) for y, xs in spans if len(xs)]
    if len(spans) < 2:
        return keep
    width = np.array([b - a + 1 for _, a, b in spans], np.float64)
    stem = [(y, (a + b) / 2) for (y, a, b), wd in zip(spans, width) if wd <= 1.25 * np.median(width)]
    slope, at = np.polyfit([y for y, _ in stem], [c for _, c in stem], 1) if len(stem) > 1 else (0.0, stem[0][1])
    half = 3.0 if line else 0.6 * float(np.median(width))
    cols = np.arange(w)
    for y in range(int(0.7 * h), h):
        c = slope * y + at
        keep[y, (cols < c - half) | (cols > c + half)] = 0
    return keep


def shape_glyph(bitmap: np.ndarray, rng: np.random.Generator, height: float, rotation: float = 8.0,
                shear: float = 0.3, aspect: tuple[float, float] = (0.8, 1.2)) -> np.ndarray:
    """A uint8 glyph -> float32 coverage ``height`` px tall, slanted, squeezed or stretched and rotated a little."""
    h, w = bitmap.shape
    side = int(1.6 * max(h, w)) + 8
    canvas = np.zeros((side, side), np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = bitmap
    c = side / 2
    m = cv2.getRotationMatrix2D((c, c), rng.uniform(-rotation, rotation), 1.0)
    m = m @ np.array([[rng.uniform(*aspect), rng.uniform(-shear, shear), 0], [0, 1, 0], [0, 0, 1]], np.float64)
    m[:, 2] += np.array([c, c]) - m[:, :2] @ np.array([c, c])
    ink = tight(cv2.warpAffine(canvas, m, (side, side), flags=cv2.INTER_LINEAR)).astype(np.float32) / 255.0
    s = height / ink.shape[0]
    size = (max(2, round(ink.shape[1] * s)), max(2, round(ink.shape[0] * s)))
    return np.clip(cv2.resize(ink, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR), 0, 1)
