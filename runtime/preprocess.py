"""Camera frames to the model's input, the way MNIST was made. numpy and cv2 only.

A frame of any size, BGR/BGRA/gray and any dtype goes through these steps:

1. grayscale uint8, optionally cropped to a region of interest, scaled down to a working size;
2. ink polarity: dark ink on light paper is usual, light ink on a dark board must work too. Decided from
   the extremes of the frame minus its paper (ink is the tail that stands out most), the paper estimated by
   a frame-wide median and, when that says light ink, by a local mean too; when the two disagree both
   polarities are tried, and the one whose digit is the hole inside the other's digit (the paper in a bold
   8's loop) loses;
3. a threshold that survives uneven light: the paper is estimated by a morphological closing (opening for
   light ink) wider than any stroke (a marker's is up to a quarter of the digit's height), so a lighting
   gradient or shadow cancels out; ink is paper minus pixel, thresholded by Otsu with a minimum contrast so
   blank paper and a dark frame have no ink at all, and fainter ink joined to it (a hairline) kept with it;
4. connected components: specks, frame-border touchers (paper edges, table, fingers) and solid blobs are
   rejected; pieces of one digit that overlap horizontally are merged, and so is a stroke written apart above or
   below a digit (a 5's bar); what is left must lie on paper (ringed by paper on every side, which the edge of a
   sheet lying on a desk is not);
5. the digit's box, longest side scaled to 20 px keeping the aspect ratio, placed in 28x28 by its centre
   of mass (LeCun et al.'s recipe), ink bright on black with soft edges like MNIST's anti-aliasing.

Nothing plausible in view gives no crop: the caller reports "no digit" instead of guessing.

One module (~580 lines) on purpose: the steps share the working image, its polarity and its noise level, and the
small counting helpers exist for the speed of this one path (a frame costs about half a millisecond here, as much as
the model); split, each piece would pass the same half-dozen arrays back and forth.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from edgekit.runtime.contract import IMAGE_SIZE, to_model_input

DIGIT_BOX = 20  # MNIST: the digit's longest side fits 20 px ...
WORK_SIZE = 320  # frames are analysed with their longest side at most this many pixels
CROP_SIZE, CROP_PAD = 64, 4  # images at most this big are taken as crops of one digit and padded
MIN_CONTRAST = 28  # grey levels between ink and paper below which nothing counts as ink
HAIRLINE = 0.5  # ink down to this fraction of the threshold counts where it is joined to ink above it
# ... and down to this many grey levels for dark ink (MIN_CONTRAST for light ink: the rim of a sheet lying on a
# desk, where the paper estimate lags, is that faint), never under NOISE_MARGIN sigmas of the noise
HAIRLINE_CONTRAST = MIN_CONTRAST // 2
NOISE_MARGIN = 5.0  # ink must be this many noise sigmas above the paper
MIN_HEIGHT_FRACTION = 0.06  # a digit is at least this fraction of the frame's (or ROI's) height ...
MIN_HEIGHT_PX = 8  # ... and at least this many working pixels tall
ON_PAPER_CONTRAST = 1.5  # light ink's surroundings differ from its strokes by at most this times its strength
NEAR_SIDE, PAPER_APART = 0.1, 0.15  # ... and even their tenth nearest the strokes differs by this at least
MULTI_MIN_HEIGHT = 0.45  # in --multi, a digit is at least this fraction of the tallest digit's height
CAP_HEIGHT, CAP_WIDE = 0.6, 0.25  # a stroke written apart (a 5's bar): at most 0.6 of the digit's height, 0.25 wide
CAP_GAP_X, CAP_GAP_Y, CAP_BAND = 0.25, 0.5, 0.3  # ... within these of its height, above or below its middle band,
CAP_WIDTH = 1.5  # ... and the digit with it no wider than this times its height
FEW_COMPONENTS = 6  # up to this many, components are measured one by one (cheaper than OpenCV's statistics)

Box = tuple[int, int, int, int]  # x, y, w, h in the frame's pixels
Candidate = tuple[Box, np.ndarray]  # a digit's box and its ink patch, in the analysed image


@dataclass(frozen=True)
class DigitCrop:
    """One digit found in a frame: its MNIST-style 28x28 uint8 image (ink bright on black) and its box."""

    image: np.ndarray
    box: Box


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Any frame (H, W), (H, W, 1|3|4) BGR[A], of any dtype -> contiguous uint8 (H, W)."""
    f = np.asarray(frame)
    if f.ndim not in (2, 3) or f.shape[0] < 8 or f.shape[1] < 8 or (f.ndim == 3 and f.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected a frame of shape (H, W) or (H, W, 1|3|4) at least 8x8, got {f.shape}")
    if f.ndim == 3 and f.shape[2] == 1:
        f = f[..., 0]
    if f.ndim == 3:
        if f.dtype != np.uint8:
            f = to_uint8(f)
        f = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY if f.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return np.ascontiguousarray(to_uint8(f))


def to_uint8(f: np.ndarray) -> np.ndarray:
    """Any frame's pixels as uint8: bool as 0/255, uint16 by its high byte, floats up to 1.0 times 255 (larger ones
    as they are; NaN as 0), everything clipped to 0-255."""
    if f.dtype == np.uint8:
        return f
    if f.dtype == np.bool_:
        return f.astype(np.uint8) * 255
    if f.dtype == np.uint16:
        return (f >> 8).astype(np.uint8)
    if np.issubdtype(f.dtype, np.floating):
        with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range: inf, then clipped
            f = np.nan_to_num(f.astype(np.float32))
        top = float(f.max()) if f.size else 0.0
        return np.clip(f * (255.0 if top <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return np.clip(f, 0, 255).astype(np.uint8)


def parse_roi(text: str) -> Box:
    """``"x,y,w,h"`` -> a box; raises ValueError with a one-line reason."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--roi must be four integers x,y,w,h, got {text!r}") from None
    if x < 0 or y < 0 or w < 8 or h < 8:
        raise ValueError(f"--roi {text!r}: x and y must be >= 0 and w and h at least 8 pixels")
    return x, y, w, h


def find_digits(frame: np.ndarray, roi: Box | None = None, multi: bool = False) -> list[DigitCrop]:
    """The digit (or with ``multi`` every digit, left to right) in a frame; [] when none is plausible."""
    gray = to_gray(frame)
    frame_h, frame_w = gray.shape
    ox = oy = 0
    if roi is not None:
        x, y, w, h = roi
        x2, y2 = min(x + w, gray.shape[1]), min(y + h, gray.shape[0])
        if x2 - x < 8 or y2 - y < 8:
            raise ValueError(f"region of interest {roi} lies outside the {gray.shape[1]}x{gray.shape[0]} frame")
        gray, ox, oy = gray[y:y2, x:x2], x, y
    crop = max(gray.shape) <= CROP_SIZE
    if crop:
        # A digit-sized image is already a crop (MNIST's own digits reach its edges): pad it with paper.
        p = CROP_PAD
        gray = cv2.copyMakeBorder(gray, p, p, p, p, cv2.BORDER_CONSTANT, value=int(np.median(gray)))
        ox, oy = ox - p, oy - p
    H, W = gray.shape
    scale = min(1.0, WORK_SIZE / max(H, W))
    if scale < 1.0:
        small = cv2.resize(gray, (max(8, round(W * scale)), max(8, round(H * scale))), interpolation=cv2.INTER_AREA)
    else:
        small = gray
    found = _ink(small, blur=not crop)
    if found is None:
        return []
    (likely, local), ink, noise, gray = found
    retries: list[Callable[[], Candidate | None]] = []
    groups = _digit_groups(ink(likely), noise, multi, gray, likely, retries)
    if likely != local or not groups:
        # The two paper estimates disagree, or the likelier polarity found nothing: try the other one too.
        other = _digit_groups(ink(not likely), noise, multi, gray, not likely, retries)
        if other and (not groups or _hole_of(groups[0], other[0])
                      or (likely != local and not _hole_of(other[0], groups[0]) and not _fragment(other[0], groups[0]))):
            # What the likelier polarity found is nothing, or the paper inside the other's digit (its hole); or
            # neither holds the other and the local estimate (right at a sheet's edge) chose the other, whose
            # find is not a mere fragment (a notch or a sheen on a marker's stroke) beside the likelier digit.
            groups = other
    for again in retries if not groups else ():
        # Nothing passed in either polarity: a group that failed as a whole, without the pieces that fail alone.
        if (retried := again()) is not None:
            groups = [retried]
            break
    crops = []
    for (x, y, w, h), patch in groups:
        bx, by = ox + int(x / scale), oy + int(y / scale)
        bw, bh = max(1, round(w / scale)), max(1, round(h / scale))
        # Clip to the frame: the paper pad around a crop (and rounding) can reach past its edges.
        x2, y2 = min(bx + bw, frame_w), min(by + bh, frame_h)
        bx, by = min(max(bx, 0), frame_w - 1), min(max(by, 0), frame_h - 1)
        box = (bx, by, max(1, x2 - bx), max(1, y2 - by))
        crops.append(DigitCrop(_mnist_like(patch), box))
    return crops


def frame_to_input(frame: np.ndarray, roi: Box | None = None) -> tuple[np.ndarray, Box] | None:
    """A frame -> (model input float32 (1, 28, 28, 1), box), or None when no digit is in view."""
    crops = find_digits(frame, roi)
    if not crops:
        return None
    return to_model_input(crops[0].image), crops[0].box


def _hole_of(a: Candidate, b: Candidate) -> bool:
    """Whether candidate ``a`` (box, ink patch) is the paper inside candidate ``b``'s loop (or a shade inside its
    broad stroke): its box lies within ``b``'s, or ``b``'s ink covers most of a 2-pixel ring around it. (A digit
    lying on paper is ringed by paper, even where the other polarity took a narrow strip of that paper for ink.)"""
    (ax, ay, aw, ah), pa = a
    (bx, by, bw, bh), pb = b
    if ax >= bx and ay >= by and ax + aw <= bx + bw and ay + ah <= by + bh:
        return True
    x0, y0 = min(ax, bx) - 3, min(ay, by) - 3
    shape = (max(ay + ah, by + bh) + 3 - y0, max(ax + aw, bx + bw) + 3 - x0)
    ma, mb = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    ma[ay - y0 : ay - y0 + ah, ax - x0 : ax - x0 + aw] = pa > 0
    mb[by - y0 : by - y0 + bh, bx - x0 : bx - x0 + bw] = pb > 0
    ring = cv2.dilate(ma, _RING) - ma
    return int(np.count_nonzero(ring & mb)) >= 0.6 * int(np.count_nonzero(ring))


def _fragment(a: Candidate, b: Candidate) -> bool:
    """Whether candidate ``a``'s box is under a third of ``b``'s: a piece of paper or of a stroke, not a rival."""
    return a[0][2] * a[0][3] < b[0][2] * b[0][3] / 3


# -- ink -------------------------------------------------------------------------------------------------


def _ink(g: np.ndarray, blur: bool = True
         ) -> tuple[tuple[bool, bool], Callable[[bool], np.ndarray], float, np.ndarray] | None:
    """The ink polarity of a grayscale working image as two estimates (True: dark ink; the frame-wide one, the
    likelier, first; the same one twice when it says dark ink), a function giving the uint8 ink strength (0 = paper)
    for a polarity, the sensor-noise sigma and the image as the strengths were measured on (lightly blurred, unless
    ``blur`` is False: a digit-sized crop is as sharp as the model's input, and the blur would thicken its strokes by
    a pixel); None when it holds no ink at all."""
    H, W = g.shape
    # Polarity and noise are measured at half size when the frame is big: the tails barely move, area
    # averaging halves white noise's sigma (so it is doubled back), and it costs a quarter.
    half = min(H, W) >= 128
    h = cv2.resize(g, (W // 2, H // 2), interpolation=cv2.INTER_AREA) if half else g
    noise = _noise_sigma(h) * (2.0 if half else 1.0)
    if blur:
        g = cv2.GaussianBlur(g, (3, 3), 0)
    if not half:
        h = g
    # Polarity: ink is the tail of (pixel - paper) that reaches furthest from zero. Two estimates of the paper
    # fail in opposite cases:
    # - the median over a window as wide as the frame's shorter side: ink is a minority at that scale even for
    #   a marker digit that fills the frame, but around a sheet lying on a darker desk it is the desk, so the
    #   sheet looks like light ink;
    # - the mean over a third of the frame: right at a sheet's edge, but mostly ink around a bold digit, so
    #   that the paper in a bold 8's loop rises above it about as far as the ink falls below it, or further.
    # The median decides; when it says light ink (a board, or a sheet on a desk), the mean is asked too, and if
    # they disagree find_digits looks for the digit in both polarities and keeps the one that is not the other's
    # hole. Dark ink on paper, the usual frame, costs one estimate.
    votes = [_polarity(h, _paper_median(h))]
    if not votes[0][0]:
        votes.append(_polarity(h, cv2.blur(h, (max(3, (min(h.shape) // 3) | 1),) * 2)))
    if not any(v[1] for v in votes):
        return None  # flat: blank paper, a dark frame, a lens cap
    polarities = (votes[0][0], votes[-1][0])
    # Paper for the threshold: a closing (opening for light ink) wider than any stroke, a third of the frame
    # (a marker's stroke is up to a quarter of a digit's height), computed at a quarter of the size.
    f = 4 if min(H, W) >= 64 else 1
    coarse = quarter(g) if f > 1 else g
    kk = max(3, (min(coarse.shape) // 3) | 1)
    kernel = _square(kk)

    def ink(dark_ink: bool) -> np.ndarray:
        paper = cv2.morphologyEx(coarse, cv2.MORPH_CLOSE if dark_ink else cv2.MORPH_OPEN, kernel)
        paper = cv2.blur(paper, (3, 3))
        if f > 1:
            paper = cv2.resize(paper, (W, H), interpolation=cv2.INTER_LINEAR)
        return cv2.subtract(paper, g) if dark_ink else cv2.subtract(g, paper)

    return polarities, ink, noise, g


def quarter(g: np.ndarray) -> np.ndarray:
    """``cv2.resize(g, (W // 4, H // 4), interpolation=cv2.INTER_AREA)``, bit for bit and faster when 4 divides both
    sides: OpenCV averages 4x4 blocks pixel by pixel but halves with SIMD, so the image is halved twice in float32
    (the sums are exact) and rounded back half to even, as OpenCV's own rounding does."""
    H, W = g.shape
    if H % 4 or W % 4:
        return cv2.resize(g, (W // 4, H // 4), interpolation=cv2.INTER_AREA)
    half = cv2.resize(g.astype(np.float32), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    return cv2.convertScaleAbs(cv2.resize(half, (W // 4, H // 4), interpolation=cv2.INTER_AREA))


@functools.lru_cache(maxsize=8)
def _square(k: int) -> np.ndarray:
    """A k x k structuring element (the same few sizes, frame after frame)."""
    return cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))


def _polarity(h: np.ndarray, paper: np.ndarray) -> tuple[bool, bool]:
    """(dark ink?, does the ink reach MIN_CONTRAST // 2 from the paper?) of ``h`` against a paper estimate: the
    0.999 quantiles of how far the darkest pixels fall below the paper (lo) and the brightest rise above it (hi),
    dark when lo >= hi. lo is found; of hi only what decides is counted (whether it is at most lo, or under the
    contrast). Most frames are decided by two counts first: one tail reaches past MIN_CONTRAST, the other not."""
    below, above = cv2.subtract(paper, h), cv2.subtract(h, paper)
    flat = MIN_CONTRAST // 2 - 1  # reaching no further than this is no ink
    hi_within = quantile_at_most(above, 0.999, MIN_CONTRAST)
    lo_within = quantile_at_most(below, 0.999, MIN_CONTRAST)
    if hi_within != lo_within:  # hi <= MIN_CONTRAST < lo: dark ink; lo <= MIN_CONTRAST < hi: light; ink either way
        return hi_within, True
    lo = int(count_quantile(below, 0.999, at_least=0 if lo_within else MIN_CONTRAST + 1))
    if quantile_at_most(above, 0.999, lo):
        return True, lo > flat
    return False, lo > flat or not quantile_at_most(above, 0.999, flat)


def quantile_at_most(a: np.ndarray, q: float, k: int) -> bool:
    """Whether ``hist_quantile(histogram(a), q) <= k``: one threshold and one count."""
    need = float(np.float32(q) * np.float32(a.size))
    return a.size - cv2.countNonZero(cv2.threshold(a, k, 1, cv2.THRESH_BINARY)[1]) >= need


def _paper_median(g: np.ndarray) -> np.ndarray:
    """The paper level under each pixel: a median over a window as wide as the image's shorter side, taken
    on a thumbnail an eighth of the size (a lighting gradient survives it; strokes, a minority at that scale,
    do not)."""
    H, W = g.shape
    if min(H, W) < 64:
        return np.full_like(g, int(np.median(g)))
    thumb = cv2.resize(g, (W // 8, H // 8), interpolation=cv2.INTER_AREA)
    bg = cv2.medianBlur(thumb, min(min(thumb.shape) | 1, 255))
    return cv2.resize(bg, (W, H), interpolation=cv2.INTER_LINEAR)


def _noise_sigma(g: np.ndarray) -> float:
    """Robust sensor-noise estimate: the median absolute high-pass response, scaled to a Gaussian sigma."""
    return 1.4826 * count_quantile(cv2.absdiff(g, cv2.blur(g, (3, 3))), 0.5, upward=3)


def histogram(a: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The 256-bin histogram of a uint8 image (optionally under a mask)."""
    return cv2.calcHist([a], [0], mask, [256], [0, 256]).ravel()


def hist_quantile(hist: np.ndarray, q: float) -> float:
    """The q-quantile of uint8 values from their 256-bin histogram."""
    c = hist.cumsum()
    return float(c.searchsorted(q * c[-1]))


def count_quantile(a: np.ndarray, q: float, upward: int = 0, at_least: int = 0) -> float:
    """``max(at_least, hist_quantile(histogram(a), q))`` found by counting instead: the least level k >= ``at_least`` with at
    least ``q`` of the pixels at or below it, by bisection (``upward``: first trying k = at_least, at_least + 1, ...
    that many times, for a quantile expected there).
    A histogram of a mostly-flat image costs more than the eight threshold-and-count passes it takes (every
    pixel adds to one of a few counters, each increment waiting for the previous)."""
    n = a.size
    need = float(np.float32(q) * np.float32(n))  # as hist_quantile compares: float32 counts
    above = np.empty_like(a)
    lo = at_least
    for _ in range(upward):  # before the maximum is known: a first guess right often saves finding it
        if n - cv2.countNonZero(cv2.threshold(a, lo, 1, cv2.THRESH_BINARY, dst=above)[1]) >= need:
            return float(lo)
        lo += 1
    hi = max(lo, int(cv2.minMaxLoc(a)[1]))  # the answer lies in [lo, hi]
    while lo < hi:
        k = (lo + hi) // 2
        if n - cv2.countNonZero(cv2.threshold(a, k, 1, cv2.THRESH_BINARY, dst=above)[1]) >= need:
            hi = k
        else:
            lo = k + 1
    return float(lo)


_DILATE = np.ones((3, 3), np.uint8)
_RING = np.ones((5, 5), np.uint8)  # a 2-pixel ring around a mask


def components(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, list[tuple[int, int, int, int, int, int]]]:
    """The 8-connected components of a mask, labelled (uint16) as ``cv2.connectedComponentsWithStats`` labels them,
    and (label, x, y, w, h, area) of those at least ``min_area`` pixels big, in label order. OpenCV's statistics
    cost more than its labelling (every pixel, the background's too, updates its label's box and centroid): with
    a few components, as most frames have, each one's box and area are counted from its own pixels instead."""
    n, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_16U)
    if n > FEW_COMPONENTS + 1:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_16U)
        big = (stats[1:, cv2.CC_STAT_AREA] >= min_area).nonzero()[0] + 1
        return labels, [(i, *box) for i, box in zip(big.tolist(), stats[big].tolist())]
    out = []
    for i in range(1, n):
        own = cv2.compare(labels, i, cv2.CMP_EQ)
        area = cv2.countNonZero(own)
        if area >= min_area:
            out.append((i, *cv2.boundingRect(own), area))
    return labels, out


def _digit_groups(ink: np.ndarray, noise: float, multi: bool, gray: np.ndarray, dark: bool,
                  retries: list[Callable[[], Candidate | None]]) -> list[Candidate]:
    """The digits' boxes and ink patches in one polarity's ink, the largest first (``multi``: every one, left to
    right). A group of pieces that fails as a whole adds to ``retries`` a second try without its failing pieces."""
    H, W = ink.shape
    # The threshold: Otsu's (OpenCV's, in double precision), at least MIN_CONTRAST and 0.35 of the strongest ink
    # (its 0.998 quantile, which only counts when it exceeds the larger of the other two by that factor).
    otsu, mask = cv2.threshold(ink, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    t = max(otsu, MIN_CONTRAST)
    floor = int(t / 0.35)
    while 0.35 * floor > t:
        floor -= 1  # the largest level whose 0.35 is at most t, whatever the float rounding
    t = max(t, 0.35 * count_quantile(ink, 0.998, upward=1, at_least=floor))
    if t != otsu:
        mask = cv2.threshold(ink, t, 1, cv2.THRESH_BINARY)[1]
    if not cv2.countNonZero(mask):
        return []
    # Hysteresis (Canny's): fainter ink, down to HAIRLINE of the threshold, counts where it is joined to ink above
    # it, so a calligraphic pen's hairlines, fainter than its thick strokes at a camera's resolution, stay on their
    # digit. In pale ink (a pencil, a dim corner) half the threshold is under MIN_CONTRAST, so dark ink's floor is
    # HAIRLINE_CONTRAST. Under MIN_CONTRAST, a lighting gradient's residue near the frame's edges (where the paper
    # estimate lags it) can join a digit to the edge, which rejects it: when nothing is found and strong ink touched
    # the frame, the components are labelled again down to MIN_CONTRAST only.
    faint = max(HAIRLINE_CONTRAST if dark else MIN_CONTRAST, NOISE_MARGIN * noise, HAIRLINE * t)
    strict = max(MIN_CONTRAST, faint)  # the same floor, not under MIN_CONTRAST
    tried = len(retries)
    found, edge = _groups_at(ink, noise, multi, gray, dark, retries, t, mask, faint)
    if not found and edge and faint < strict:
        del retries[tried:]  # the fainter labelling's pieces
        found = _groups_at(ink, noise, multi, gray, dark, retries, t, mask, strict)[0]
    return found


def _groups_at(ink: np.ndarray, noise: float, multi: bool, gray: np.ndarray, dark: bool,
               retries: list[Callable[[], Candidate | None]], t: float, mask: np.ndarray, level: float
               ) -> tuple[list[Candidate], bool]:
    """``_digit_groups`` with the threshold ``t`` (``mask``: the ink above it) and fainter ink joined down to
    ``level``; and whether strong ink touched the frame."""
    H, W = ink.shape
    # Components are labelled in the mask of ink above ``level``, within its bounding box (a tenth of the frame,
    # typically) and 3 pixels of room for the ring below, and kept where they hold ink above the threshold.
    joined = cv2.threshold(ink, level, 1, cv2.THRESH_BINARY)[1]
    bx, by, bw, bh = cv2.boundingRect(joined)
    cx, cy = max(0, bx - 3), max(0, by - 3)
    region = (slice(cy, min(H, by + bh + 3)), slice(cx, min(W, bx + bw + 3)))
    labels, big = components(joined[region], max(4, int(H * W * 0.00015)))
    strong = np.bincount(labels[mask[region].view(bool)])  # per label, its pixels above the threshold
    parts, own, edge = [], {}, False
    for i, x, y, w, h, area in big:  # not the background, not a speck
        if i >= len(strong) or not strong[i]:
            continue  # faint all through: a shadow's edge, a smudge, not a stroke
        x, y = x + cx, y + cy
        if x == 0 or y == 0 or x + w == W or y + h == H:
            edge = True
            continue  # touches the frame: paper edge, table, finger, shadow
        own[i] = (x, y, x + w, y + h, area)  # kept apart: merging grows the parts' lists in place
        parts.append([*own[i], [i]])
    if not parts:
        return [], edge
    # Merge pieces of one digit: boxes that overlap horizontally by half the narrower one's width.
    parts.sort(key=lambda p: p[0])
    groups: list[list] = []
    for p in parts:
        for g in groups:
            overlap = min(g[2], p[2]) - max(g[0], p[0])
            if overlap > 0.5 * min(g[2] - g[0], p[2] - p[0]):
                _absorb(g, p)
                break
        else:
            groups.append(p)
    min_h = max(MIN_HEIGHT_PX, MIN_HEIGHT_FRACTION * H)
    if len(groups) > 1:
        groups = _with_caps(groups, min_h)

    def plausible_shape(w: int, h: int, area: int) -> bool:
        if h < min_h or w > 0.9 * W or h > 0.95 * H:
            return False
        if area / float(w * h) > 0.85 and h < 2.5 * w:
            return False  # a solid blob, not a stroke
        return w <= 2.2 * h  # not a horizontal line: ruling, edge of a sheet

    plausible = [(x1, y1, x2 - x1, y2 - y1, area, ids) for x1, y1, x2, y2, area, ids in groups
                 if plausible_shape(x2 - x1, y2 - y1, area)]
    if not plausible:
        return [], edge
    if multi:
        tallest = max(p[3] for p in plausible)
        chosen = sorted((p for p in plausible if p[3] >= MULTI_MIN_HEIGHT * tallest), key=lambda p: p[0])
    else:
        chosen = sorted(plausible, key=lambda p: -p[4])  # the largest that passes the checks below

    def cut(x: int, y: int, w: int, h: int, ids: list[int]) -> Candidate | None:
        """The candidate's box and ink patch, or None: as weak as the noise, or not strokes on paper."""
        # The strokes' mask with room for a ring around it (_on_paper), and the patch 1 pixel past the box.
        y0, y1, x0, x1 = max(0, y - 3), min(H, y + h + 3), max(0, x - 3), min(W, x + w + 3)
        lab = labels[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
        # Masks are 0/255, so that ANDing with one keeps or clears a pixel.
        mask = cv2.compare(lab, ids[0], cv2.CMP_EQ) if len(ids) == 1 else np.isin(lab, ids) * np.uint8(255)
        rim = cv2.dilate(mask, _DILATE)  # keep the anti-aliased rim just outside the threshold, like MNIST's edges
        ys, xs = slice(max(0, y - 1), min(H, y + h + 1)), slice(max(0, x - 1), min(W, x + w + 1))
        patch = cv2.bitwise_and(ink[ys, xs], rim[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0])
        core = histogram(patch, cv2.threshold(patch, t, 255, cv2.THRESH_BINARY)[1])  # the stroke's own levels
        level = hist_quantile(core, 0.5) if core.any() else t
        if level < NOISE_MARGIN * noise:
            return None  # as strong as the noise around it: speckle, not ink
        if not _on_paper(gray[y0:y1, x0:x1], dark, mask, rim, level):
            return None  # an edge (of a sheet lying on a desk, of a shadow), not strokes on paper
        patch = cv2.convertScaleAbs(patch, alpha=255.0 / max(level, 1.0))  # rounded, saturated at 255
        return (xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start), patch

    def cut_group(g: list) -> Candidate | None:
        return cut(g[0], g[1], g[2] - g[0], g[3] - g[1], g[5])

    def without_failing_pieces(ids: list[int]) -> Candidate | None:
        kept = [i for i in ids if cut_group([*own[i], [i]]) is not None]
        if not kept or len(kept) == len(ids):
            return None
        g = [*own[kept[0]], [kept[0]]]
        for i in kept[1:]:
            _absorb(g, [*own[i], [i]])
        return cut_group(g) if plausible_shape(g[2] - g[0], g[3] - g[1], g[4]) else None

    out = []
    for x, y, w, h, _, ids in chosen:
        found = cut(x, y, w, h, ids)
        if found is None:
            if len(ids) > 1 and dark:
                # Dark ink beside the edge of a sheet lying on a desk can share its group with that edge (the
                # desk just beyond it), and the group then fails as a whole: without the pieces that fail on
                # their own, if nothing else passes. Not light ink: there the failing group is the sheet, and
                # what passes without it is the paper inside a digit's loop, ringed by the digit's ink.
                retries.append(lambda ids=ids: without_failing_pieces(ids))
            continue
        out.append(found)
        if not multi:
            break
    return out, edge


def _absorb(g: list, p: list) -> None:
    """Group ``p`` [x1, y1, x2, y2, area, ids] into ``g``, in place."""
    g[0], g[1], g[2], g[3] = min(g[0], p[0]), min(g[1], p[1]), max(g[2], p[2]), max(g[3], p[3])
    g[4] += p[4]
    g[5] += p[5]


def _with_caps(groups: list[list], min_h: float) -> list[list]:
    """``groups`` [x1, y1, x2, y2, area, ids] with each stroke written apart above or below a digit (a 5's bar, the
    tail of a 2) merged into the nearest group that can be a digit: pieces that share half their columns are already
    one group, but a 5's bar often sits to the right of its stem, and without it a 5 reads as a 3 or an S."""
    bodies = [g for g in groups if g[3] - g[1] >= min_h]
    pieces = [p for p in groups if p[2] - p[0] >= CAP_WIDE * min_h]
    if not bodies or not pieces:
        return groups
    merged = set()
    for p in sorted(pieces, key=lambda p: p[4]):
        pw, ph, mid = p[2] - p[0], p[3] - p[1], (p[1] + p[3]) / 2
        best, nearest = None, math.inf
        for g in bodies:
            gh = g[3] - g[1]
            if g is p or g[4] <= p[4] or ph > CAP_HEIGHT * gh or pw < CAP_WIDE * gh:
                continue  # not smaller than the digit, too tall for a stroke of it, or too narrow (a dot, a colon)
            gap_x, gap_y = max(p[0] - g[2], g[0] - p[2]), max(p[1] - g[3], g[1] - p[3])
            if gap_x > CAP_GAP_X * gh or gap_y > CAP_GAP_Y * gh or g[1] + CAP_BAND * gh < mid < g[3] - CAP_BAND * gh:
                continue  # too far, or beside the digit's middle (a neighbour, a dash), not above or below it
            if max(g[2], p[2]) - min(g[0], p[0]) > CAP_WIDTH * (max(g[3], p[3]) - min(g[1], p[1])):
                continue
            if max(gap_x, gap_y) < nearest:
                best, nearest = g, max(gap_x, gap_y)
        if best is not None:
            _absorb(best, p)
            merged.add(id(p))
    return [g for g in groups if id(g) not in merged]


def _on_paper(region: np.ndarray, dark: bool, mask: np.ndarray, rim: np.ndarray, level: float) -> bool:
    """Whether a candidate's strokes (``mask``) lie on paper: a 2-pixel ring outside their anti-aliased ``rim``
    is paper on every side.

    - Every side: even the tenth of the ring nearest the strokes in brightness stands PAPER_APART of the ink's
      strength (``level``) away from them. A stroke has paper on both sides; an edge has its own level on one:
      the desk just beyond a sheet lying on it (dark ink), or the sheet beside that desk (light ink), which
      the paper estimate's soft edge turns into faint ink. Measured as that tenth's distance over ``level``:
      digits 0.34 and more (the lowest of 15,000 in benchmarks/camera.py's frames, seeds 0-3: MNIST digits, whose
      soft edges reach into the ring), the edges that used to pass 0.01 at most (72 frames of an empty sheet on a
      desk read as a digit before this check), hence 0.15.
    - Light ink only: the ring's median is at most ON_PAPER_CONTRAST times the ink's strength darker than the
      strokes. Chalk on a board agrees (ratio 0.79-1.06 over 440 frames of every kind in benchmarks/camera.py;
      99 % of 1,017 candidates in bold-marker frames under 1.24); the rim of a sheet lying on a darker desk
      has the desk beyond it: a contrast twice its ink strength and more (median 2.1)."""
    ring = cv2.dilate(rim, _RING) - rim
    n = cv2.countNonZero(ring)
    if not n:
        return True
    strokes = cv2.mean(region, mask)[0]
    if dark:  # counted, not sorted: dark ink on paper is the usual frame
        lightest_ink = math.ceil(strokes + PAPER_APART * level)
        near = cv2.countNonZero(cv2.bitwise_and(cv2.compare(region, lightest_ink, cv2.CMP_LT), ring))
        return lightest_ink <= 255 and near < NEAR_SIDE * n
    levels = histogram(region, ring)
    return (strokes - hist_quantile(levels, 1.0 - NEAR_SIDE) >= PAPER_APART * level
            and strokes - hist_quantile(levels, 0.5) <= ON_PAPER_CONTRAST * level)


def _mnist_like(patch: np.ndarray) -> np.ndarray:
    """An ink patch -> 28x28: longest side 20 px keeping the aspect ratio, centred by centre of mass."""
    h, w = patch.shape
    s = DIGIT_BOX / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(patch, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    m = cv2.moments(small)
    cx, cy = (m["m10"] / m["m00"], m["m01"] / m["m00"]) if m["m00"] else (nw / 2, nh / 2)
    x0 = min(max(round(IMAGE_SIZE / 2 - cx), 0), IMAGE_SIZE - nw)
    y0 = min(max(round(IMAGE_SIZE / 2 - cy), 0), IMAGE_SIZE - nh)
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    out[y0 : y0 + nh, x0 : x0 + nw] = small
    return out
