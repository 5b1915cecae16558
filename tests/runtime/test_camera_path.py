"""The digits people hold up to a camera (issue 21): a marker's bold strokes, a thin pen, print that fills the
frame, light on dark, a sheet lying on a desk — find_digits boxes the digit, never the paper inside its loop, the
sheet or the sheet's edge.

Frames are made here from OpenCV's Hershey fonts, matplotlib's DejaVu fonts and MNIST digits; the assertions are
about boxes (OpenCV's arithmetic, no trained model). Measured over seeds 0-3 of each frame set (scratch sweeps, the
tests' own generators with other seeds): bold digits misboxed 0 of 720 frames (295 before the fix); thin pens and
blank frames none. Sheets on a desk, measured over seeds 0-19: a digit's box is not the digit's own (IoU < 0.6) in
0-1 frames of 40 (the sheet instead of the digit in 15 of 40 before the on-paper check was asked of dark ink too);
an empty sheet is read as a digit in 0 of 1,500 frames (9-19 of every 60 before); a digit grouped with a strip
of the desk along the sheet's edge is found (9 of 2,500 frames were "no digit" before); a 5 whose bar is written
apart is boxed with its bar (MNIST's 37 such 5s: 2-8 boxed short over seeds 0-6, 20-26 before)."""

from __future__ import annotations

import cv2
import matplotlib
import numpy as np
import pytest

from edgekit.runtime.preprocess import find_digits
from edgekit.toolkit import fonts
from edgekit.toolkit.fonts import font_digit, shape_glyph, stroke_width
from edgekit.toolkit.synthetic import Look, box_iou, camera_frame, desk_frame, scaled_glyph, empty_frame, glyph_frame
from measured import check

LOOPED = (0, 6, 8, 9)  # the digits with a loop whose inside a bold stroke makes as large as the stroke


def _cover(found, drawn) -> float:
    """The share of the drawn digit's box that the found box covers."""
    ix = max(0, min(found[0] + found[2], drawn[0] + drawn[2]) - max(found[0], drawn[0]))
    iy = max(0, min(found[1] + found[3], drawn[1] + drawn[3]) - max(found[1], drawn[1]))
    return ix * iy / (drawn[2] * drawn[3])


def _marker_digit(digit: int, rng: np.random.Generator, family: str, stroke: float) -> np.ndarray:
    """``digit`` drawn with a marker ``stroke`` of its height, in a face whose loop the marker left open (a hole of
    at least 2 % of the glyph's box): a 0, 4, 6, 8 or 9 whose loop is filled in is a blob no one reads. (OpenCV 5's
    narrow 0 closes under a quarter-height marker; DejaVu's wider ones stay open.)"""
    for attempt in range(60):
        bitmap = font_digit(digit, rng, family if attempt < 20 else "any", stroke)  # OpenCV 5's 0 is narrow
        if digit not in LOOPED:
            return bitmap
        contours, hierarchy = cv2.findContours((bitmap > 127).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if any(h[3] >= 0 and cv2.contourArea(c) >= 0.02 * bitmap.size for c, h in zip(contours, hierarchy[0])):
            return bitmap
    raise AssertionError(f"no {family} face keeps the loop of a {digit} open under a {stroke:.0%} marker")


def _marker_glyph(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Any digit with a marker from 5 % to a quarter of its height, ``low`` to ``high`` pixels tall."""
    bitmap = _marker_digit(int(rng.integers(10)), rng, "any", rng.uniform(0.05, 0.25))
    return shape_glyph(bitmap, rng, rng.uniform(low, high))


def _boxed(frames) -> list[float]:
    out = []
    for frame, box in frames:
        crops = find_digits(frame)
        out.append(_cover(crops[0].box, box) if crops else 0.0)
    return out


@pytest.mark.numeric
@pytest.mark.parametrize("light_on_dark", [0.0, 1.0], ids=["ink-on-paper", "chalk-on-board"])
@pytest.mark.parametrize("stroke", [0.12, 0.18, 0.25])
def test_a_bold_digit_is_boxed_whole_not_its_hole(stroke, light_on_dark):
    """Bold 0/6/8/9 with strokes up to a quarter of the digit's height, small to frame-filling, in both Hershey
    and DejaVu faces: the box covers >= 90 % of the drawn digit's box (misboxed: 0 frames of 720 over seeds 0-3,
    1 with an earlier form of the fix; before it the loop won on 295)."""
    rng = np.random.default_rng(int(stroke * 100) + int(light_on_dark))
    frames = []
    for k in range(30):
        digit = LOOPED[k % len(LOOPED)]
        bitmap = _marker_digit(digit, rng, ("hershey", "dejavu")[k % 2], stroke)
        height = rng.uniform(0.25, 0.9) * 480
        frames.append(glyph_frame(shape_glyph(bitmap, rng, height), rng, Look(light_on_dark=light_on_dark)))
    covers = _boxed(frames)
    check(f"camera path: bold frames of 30 boxed < 90 % (stroke {stroke})", sum(c < 0.9 for c in covers), "<=", 2)


def _nib_zero() -> np.ndarray:
    """A 0 as a school's nib writes it: a thick downstroke on the left, a 1-pixel hairline for the rest (a canvas
    180 px tall, so the hairline is under a pixel at a camera's working size: fainter than the threshold)."""
    canvas = np.zeros((180, 140), np.uint8)
    cv2.ellipse(canvas, (70, 90), (45, 75), 0, 0, 360, 255, 1, cv2.LINE_AA)
    cv2.ellipse(canvas, (70, 90), (45, 75), 0, 110, 250, 255, 22, cv2.LINE_AA)
    return canvas


@pytest.mark.numeric
def test_a_hairline_stays_on_its_digit():
    """A nib's hairlines are fainter than its thick strokes at a camera's resolution; joined to them, they are part
    of the digit (find_digits' hysteresis). Frames of 30 whose box covers < 90 % of the drawn 0: 4-10 over seeds
    0-5 (2026-12-07); without the hysteresis 26-28, the thick stroke alone."""
    rng = np.random.default_rng(0)
    frames = [glyph_frame(shape_glyph(_nib_zero(), rng, rng.uniform(0.25, 0.8) * 480), rng, Look(light_on_dark=0.0))
              for _ in range(30)]
    covers = _boxed(frames)
    check("camera path: hairline frames of 30 boxed < 90 %", sum(c < 0.9 for c in covers), "<=", 15)


@pytest.mark.numeric
def test_a_pale_hairline_stays_on_its_digit():
    """The same nib in pale ink (a pencil: every grey level's distance from white halved), so that half the
    threshold is under MIN_CONTRAST: dark ink's hairlines count down to HAIRLINE_CONTRAST. Frames of 30 boxed
    < 90 %: 4-10 over seeds 0-5 (2026-12-07); with MIN_CONTRAST as the hairlines' floor 22-29."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(30):
        frame, box = glyph_frame(shape_glyph(_nib_zero(), rng, rng.uniform(0.25, 0.8) * 480), rng,
                                 Look(light_on_dark=0.0))
        frames.append(((255 - (255 - frame.astype(np.float32)) * 0.5).round().astype(np.uint8), box))
    covers = _boxed(frames)
    check("camera path: pale hairline frames of 30 boxed < 90 %", sum(c < 0.9 for c in covers), "<=", 15)


@pytest.mark.numeric
def test_a_thin_pen_digit_in_steep_light_is_found():
    """Light falling to 15 % across the frame (a lamp to one side, a lens's vignetting) leaves a residue under
    MIN_CONTRAST near the frame's edges, which the hairlines' floor can join to a digit. "No digit" in 1-5 of 120
    frames over seeds 0-5 (2026-12-07); 8-14 when nothing was labelled again down to MIN_CONTRAST only."""
    rng = np.random.default_rng(0)
    missed = 0
    for k in range(120):
        bitmap = font_digit(k % 10, rng, "any", 0.03)
        frame, _ = glyph_frame(shape_glyph(bitmap, rng, rng.uniform(0.2, 0.4) * 480), rng,
                               Look(light_on_dark=0.0, gradient=(0.15, 1.0)))
        missed += not find_digits(frame)
    check("camera path: thin digits in steep light of 120 not found", missed, "<=", 7)


def test_a_thin_pen_digit_is_still_boxed_whole():
    rng = np.random.default_rng(3)
    frames = []
    for k in range(40):
        bitmap = font_digit(k % 10, rng, "hershey", 0.03)
        frames.append(glyph_frame(shape_glyph(bitmap, rng, rng.uniform(0.25, 0.8) * 480), rng,
                                  Look(light_on_dark=0.25)))
    covers = _boxed(frames)
    assert min(covers) >= 0.9, [round(c, 2) for c in covers]


@pytest.mark.numeric
def test_a_digit_on_a_sheet_lying_on_a_darker_desk(mnist):
    """The paper does not fill the frame: a desk around it, darker than the paper and often darker than the ink.
    The frame-wide median there is the desk, so the local estimate must still win at the sheet's edge."""
    rng = np.random.default_rng(4)
    frames = []
    for k in range(40):
        if k % 2:
            frames.append(desk_frame(lambda sheet: scaled_glyph(mnist.x_test[k], rng.uniform(0.3, 0.6) * sheet,
                                                                 rng.uniform(-8, 8)), rng))
        else:
            frames.append(desk_frame(lambda sheet: _marker_glyph(rng, 0.3 * sheet, 0.6 * sheet), rng))
    covers = _boxed(frames)
    check("camera path: sheet-on-desk frames of 40 boxed < 90 %", sum(c < 0.9 for c in covers), "<=", 3)
    # Covering the digit is not enough: the sheet around it covers it too. The box must be the digit's own.
    ious = [box_iou(crops[0].box, box) if (crops := find_digits(frame)) else 0.0 for frame, box in frames]
    check("camera path: sheet-on-desk frames of 40 whose box is not the digit's (IoU < 0.6)",
          sum(i < 0.6 for i in ious), "<=", 3)


# Of 2,500 desk frames (digit k of the MNIST test set on desk_frame(rng [21, k])), the ones where the digit and a
# strip of the desk along the sheet's edge below or above it fall into one group, which fails the on-paper check
# as a whole: find_digits before the retry without failing pieces read every one as "no digit".
DIGIT_BESIDE_AN_EDGE = (124, 228, 316, 325, 1097, 1471, 2039, 2174, 2217)


def test_a_digit_grouped_with_the_sheets_edge_is_found_without_it(mnist):
    """The desk just beyond a sheet's edge can be a thin strip of dark "ink" (the paper estimate spills past the
    edge); it overlaps the digit's columns, so the two are grouped as one candidate, and that candidate fails the
    on-paper check (the strip is an edge). Without the pieces that fail on their own, the digit passes: its box
    is its own (IoU 0.93-0.99 on these frames)."""
    ious = []
    for k in DIGIT_BESIDE_AN_EDGE:
        rng = np.random.default_rng([21, k])
        frame, box = desk_frame(lambda sheet: scaled_glyph(mnist.x_test[k], rng.uniform(0.3, 0.6) * sheet,
                                                           rng.uniform(-8, 8)), rng)
        crops = find_digits(frame)
        ious.append(round(box_iou(crops[0].box, box), 2) if crops else 0.0)
    assert min(ious) >= 0.6, dict(zip(DIGIT_BESIDE_AN_EDGE, ious))


def _written_apart(image: np.ndarray) -> bool:
    """An MNIST digit written in two strokes that do not touch: a second piece of at least 8 pixels at > 64."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((image > 64).astype(np.uint8), connectivity=8)
    return n > 2 and sorted(stats[1:, cv2.CC_STAT_AREA])[-2] >= 8


@pytest.mark.numeric
def test_a_five_whose_bar_is_written_apart_is_boxed_whole(mnist):
    """Many people lift the pen before a 5's bar. Without its bar a 5 is a 3 or an S to the model, and a grouping
    of pieces that share half their columns left the bar out. The MNIST test set's 5s written in two pieces (37),
    photographed: boxed < 90 % of the drawn digit in 2-8 frames over seeds 0-6 of these frames (20-26 before the
    bar was merged)."""
    fives = [k for k in np.flatnonzero(mnist.y_test == 5) if _written_apart(mnist.x_test[k])]
    assert len(fives) >= 30, len(fives)
    frames = [camera_frame(mnist.x_test[k], np.random.default_rng([5, int(k)]), Look(light_on_dark=0.0)) for k in fives]
    covers = _boxed(frames)
    check(f"camera path: 5s written in two pieces, of {len(fives)}, boxed < 90 %", sum(c < 0.9 for c in covers), "<=", 12)


def test_a_mark_beside_a_digit_is_left_out():
    """A dash beside a digit's middle or a full stop at its foot is not a stroke of the digit written apart: the
    box ends before the mark and still spans the digit."""
    rng = np.random.default_rng(8)
    for k in range(20):
        bitmap = font_digit(k % 10, rng, "hershey", 0.08)
        h, w = bitmap.shape
        canvas = np.zeros((h, w + h // 2), np.uint8)
        canvas[:, :w] = bitmap
        x, r = w + h // 8, max(2, h // 14)
        if k % 2:
            cv2.circle(canvas, (x + r, h - r - 1), r, 255, -1)  # a full stop at the digit's foot
        else:
            cv2.line(canvas, (x, h // 2), (x + h // 4, h // 2), 255, r)  # a dash
        cols = np.flatnonzero((canvas > 127).any(axis=0))
        digit_end, mark_start = cols[cols < w].max(), cols[cols >= w].min()
        glyph = shape_glyph(canvas, rng, rng.uniform(0.3, 0.6) * 480, rotation=0.0, shear=0.0, aspect=(1.0, 1.0))
        frame, (bx, _, bw, _) = glyph_frame(glyph, rng, Look(light_on_dark=0.0))
        s = bw / (cols.max() - cols.min() + 1)  # frame pixels per canvas pixel
        crops = find_digits(frame)
        assert crops, f"frame {k}: no digit"
        right = crops[0].box[0] + crops[0].box[2]
        assert right < bx + (mark_start - cols.min()) * s, f"frame {k}: the box reaches the mark"
        assert right > bx + 0.9 * (digit_end - cols.min()) * s, f"frame {k}: the box misses the digit's right side"


@pytest.mark.numeric
def test_an_empty_sheet_on_a_desk_stays_empty():
    """An empty sheet lying on a darker desk, its edges in view: neither the sheet (light ink to the frame-wide
    paper estimate, which is the desk) nor the desk just beyond its edge (dark ink to a paper estimate that the
    sheet's brightness spills past its edge) is a digit. A stroke has paper on both sides; an edge has not."""
    rng = np.random.default_rng(24)
    found = [find_digits(empty_frame("desk", rng)) for _ in range(60)]
    check("camera path: empty sheets on a desk of 60 read as a digit", sum(bool(f) for f in found), "<=", 2)


@pytest.mark.numeric
def test_a_solid_block_is_not_a_digit():
    """A filled block up to 2.4 times as tall as wide (a sticker, an eraser, a phone lying on the sheet), on paper
    or a board: a blob, not a stroke. Read as a digit in 0 of 40 frames over seeds 0-5 (2026-12-07); without
    find_digits' blob rule (filled over 85 % of its box) 29-33."""
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(40):
        h = rng.uniform(0.1, 0.7) * 480
        block = np.ones((int(h), int(h / rng.uniform(1.0, 2.4))), np.float32)
        found += bool(find_digits(glyph_frame(block, rng, Look(light_on_dark=0.25))[0]))
    check("camera path: solid blocks of 40 read as a digit", found, "<=", 3)


@pytest.mark.parametrize("kind", ["paper", "dark", "noise"])
def test_blank_frames_stay_empty(kind):
    rng = np.random.default_rng({"paper": 21, "dark": 22, "noise": 23}[kind])
    assert [find_digits(empty_frame(kind, rng)) for _ in range(30)] == [[]] * 30


def test_fonts_come_from_matplotlibs_own_files_only():
    """Every DejaVu face is read from inside matplotlib's package (no system font), and draws every digit."""
    root = fonts.dejavu_path("DejaVuSans").parent
    assert root.is_relative_to(matplotlib.get_data_path())
    for face in fonts.DEJAVU_FACES:
        assert fonts.dejavu_path(face).parent == root
        for digit in range(10):
            bitmap = fonts.dejavu_bitmap(face, digit)
            assert abs(bitmap.shape[0] - fonts.CANVAS) < 0.2 * fonts.CANVAS and bitmap.max() == 255
    with pytest.raises(ValueError, match="not one of the DejaVu faces"):
        fonts.dejavu_path("Arial")


def test_the_typefaces_kept_for_the_independent_check_are_refused(tmp_path, monkeypatch):
    """matplotlib's package also holds STIX and Computer Modern, which benchmarks/camera.py draws as typefaces
    edgekit never trains on: the renderer training uses refuses them although their files lie beside DejaVu's."""
    root = fonts.dejavu_path("DejaVuSans").parent
    for face in ("STIXGeneral", "STIXGeneralBol", "cmr10", "cmti10", "cmss10", "cmtt10"):
        assert (root / f"{face}.ttf").is_file()
        with pytest.raises(ValueError, match="not one of the DejaVu faces"):
            fonts.dejavu_path(face)
    monkeypatch.setattr(matplotlib, "get_data_path", lambda: str(tmp_path))  # a matplotlib without its fonts
    with pytest.raises(FileNotFoundError, match="matplotlib ships no"):
        fonts.dejavu_path("DejaVuSans")


@pytest.mark.parametrize("family", ["hershey", "dejavu"])
def test_the_pen_is_as_wide_as_asked(family):
    """A thin pen to a marker a quarter of the digit's height: the stroke (twice the ink's area over its outline,
    which a marker that closes a loop inflates) is about what was asked."""
    rng = np.random.default_rng(5)
    for digit in range(10):
        for target in (0.03, 0.15, 0.25):
            bitmap = font_digit(digit, rng, family, target)
            want = target * bitmap.shape[0]
            assert -0.25 * want - 1 <= stroke_width(bitmap) - want <= 0.75 * want + 2, (digit, target)  # pixels


@pytest.mark.numeric
@pytest.mark.parametrize("family", ["hershey", "dejavu"])
def test_a_one_without_its_foot_keeps_its_flag_and_stem(family):
    """Most sans faces print a 1 as a flag and a stem; DejaVu's and OpenCV's faces give theirs a foot, so the
    camera recipe also draws their 1s without it. How far the bottom rows reach past the stem, over the height:
    with the foot 0.27 and more, without it at most 0.07 (60 draws of each pen, 2026-12-07), so the measure can
    fail; the flag (at least 0.19) and the height stay. Other digits and the generator's draws are unchanged."""
    def past_stem(bitmap: np.ndarray, rows: slice) -> float:
        h = bitmap.shape[0]
        def widths(part): return [np.ptp(np.nonzero(r)[0]) + 1 for r in part > 127 if r.any()]
        return (max(widths(bitmap[rows])) - np.median(widths(bitmap[int(0.45 * h) : int(0.7 * h)]))) / h

    for seed in range(12):
        for stroke in (None, 0.04, 0.12, 0.25):
            with_foot = font_digit(1, np.random.default_rng(seed), family, stroke)
            without = font_digit(1, np.random.default_rng(seed), family, stroke, foot=False)
            h, hf = without.shape[0], with_foot.shape[0]
            check(f"fonts: a footed {family} 1's bottom past its stem", past_stem(with_foot, slice(int(0.93 * hf), hf)),
                  ">=", 0.2)
            check(f"fonts: a footless {family} 1's bottom past its stem", past_stem(without, slice(int(0.93 * h), h)),
                  "<=", 0.12)
            check(f"fonts: a footless {family} 1's flag past its stem", past_stem(without, slice(0, int(0.2 * h))),
                  ">=", 0.12)
            check(f"fonts: a footless {family} 1's height over the footed one's", h / hf, ">=", 0.85)
    for digit in (0, 4, 7):
        a, b = np.random.default_rng(3), np.random.default_rng(3)
        assert np.array_equal(font_digit(digit, a, family, 0.1), font_digit(digit, b, family, 0.1, foot=False))
        assert a.random() == b.random()
