"""What the camera reads (issue 21): accuracy and "no digit" rate per kind of frame, for any models side by side.

    python benchmarks/camera.py --data ../shared/data/mnist.npz [--model A.tflite --model B.tflite]
                                [--edgekit OTHER/.venv/bin/edgekit] [--per-kind 100] [--seed 0]

Every frame is a 640x480 camera-like photo (lit paper or a dark board, a lighting gradient, rotation, blur,
sensor noise, JPEG; ``toolkit/synthetic.py``) of one of these, drawn from a seeded generator:

| kind | what |
|---|---|
| mnist_paper | MNIST *test* digits written on paper |
| thin_pen | MNIST test digits redrawn along their centre line with a ballpoint (2-5 % of the height) |
| bold_marker | MNIST test digits and font digits redrawn with a marker (12-25 % of the height) |
| hershey_print | OpenCV's ``FONT_HERSHEY_*`` faces as drawn (OpenCV 5: built-in outline fonts) |
| dejavu_print | the DejaVu faces inside matplotlib's package, as drawn |
| light_on_dark | all of the above as chalk on a dark board |
| multi | four MNIST test digits in a row, read with ``multi=True`` (per digit; and whole rows) |
| blank | blank paper, dark frames, noise, and an empty sheet lying on a desk: the share read as "no digit" |
| on_desk | a sheet lying on a darker desk, its edges in view, with an MNIST test digit or a font digit (pen 3-25 %) |
| other_print | typefaces edgekit never trains on: STIX (serif: regular, bold, italic, bold italic) and Computer Modern (roman, bold, italic, sans, typewriter), the other fonts inside matplotlib's package, as drawn |
| other_pen | the same faces redrawn along their centre line with a pen from 3 % (a ballpoint) to 25 % (a marker) of the height |
| other_hand | other people's handwriting: the UCI optdigits test set (1,797 digits by 13 writers, none of them MNIST's) that scikit-learn ships, 8x8 counts of a 32x32 bitmap, enlarged smoothly and written on paper; only with ``--optdigits`` |
| mnist_8x8 | its control: MNIST test digits brought to the same 8x8 form (binarised, 32 px tall, 4x4 counts) and drawn the same way; only with ``--optdigits`` |

The first kinds' fonts are the ones the camera recipe may train on, so they are not the independent check;
other_print and other_pen are a small one for print, other_hand one for handwriting (its file is not in the
repository). MNIST digits come
from the test set only. ``--kinds other_print,other_pen`` makes and reads only those kinds (each kind's frames are
the same whichever others are made).

``--optdigits FILE`` (``digits.csv.gz`` from scikit-learn's package: ``pip download --no-deps scikit-learn`` and
``unzip -j scikit_learn-*.whl sklearn/datasets/data/digits.csv.gz``) adds other_hand and mnist_8x8: handwriting
by other people than MNIST's, at a resolution far below a camera's, beside MNIST at the same resolution, so that the
difference between the two rows is the writers' and not the 8x8's. Never train on it.

Readers: each ``--model`` (default: the model bundled with edgekit) through this checkout's runtime, and each
``--edgekit BIN`` (another installation's command, e.g. an earlier version's venv: its own preprocessing and
bundled model) through ``BIN predict --json`` on the same frames saved as PNG. Prints one table (a kind that
draws both MNIST and font digits also apart, as ``by_source``), writes
benchmarks/results/camera.json (or ``--json``), where each reader's row also counts its errors by what was drawn
and what was read (``confusions``: ``"7>9"``, ``"4>none"``). With two readers or more, each after the first also
gets the paired count on the same frames: how many only the first read right, and how many only it did
(``-A/+B``).

``--reader MODEL FILE`` reads with MODEL through another preprocess.py, listed first: the runtime and bundled model
of an earlier commit against today's (``git show aa0ddaf:runtime/preprocess.py``, the last before issue 21, with
``git show 265b49c:runtime/bundled/model_int8.tflite``, the bundled model then).

``--each-digit-once`` draws the MNIST test digits without replacement (a seeded order of the test set, so no digit
is drawn twice in a kind; the frames' looks are the same as without it): ``--per-kind 10000 --kinds
mnist_paper,thin_pen`` reads every test digit once through the camera, a row as exact as the test set allows.

``--faces FONT...`` (.ttf/.otf files, or folders holding them) makes other_print and other_pen draw those faces in
turn instead of matplotlib's, and reports each face apart: a machine's own print or handwriting typefaces, e.g.
Debian's ``fonts-urw-base35`` or ``fonts-comic-neue``, a check as independent as the faces are of DejaVu and Hershey.

Frames are made and read 250 at a time, so memory stays near 0.5 GB whatever ``--per-kind`` is.

``--old-preprocess FILE`` (another preprocess.py, e.g. ``git show main:runtime/preprocess.py > old.py``) runs
its ``find_digits`` and this checkout's on every frame and counts, per kind, the frames whose boxes or 28x28 crops
differ, the smallest box IoU, the largest crop difference and the frames the first reader reads differently from
the two crops (issue 25: a faster preprocessing must find the same digits and boxes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
# A new kind goes last: each kind's frames come from its own index.
KINDS = ("mnist_paper", "thin_pen", "bold_marker", "hershey_print", "dejavu_print", "light_on_dark", "multi", "blank",
         "on_desk", "other_print", "other_pen", "other_hand", "mnist_8x8")
OPTDIGITS_KINDS = ("other_hand", "mnist_8x8")  # made only with --optdigits
OPTDIGITS_MAX_BYTES = 4 << 20  # scikit-learn's digits.csv.gz holds 0.27 MB of text
STRIP = 4  # digits per multi frame
CHUNK = 250  # frames made and read at a time
# Typefaces inside matplotlib's package that edgekit never trains on (toolkit/fonts.py uses Hershey and DejaVu only).
OTHER_FACES = ("STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic", "STIXGeneralBolIta", "cmr10", "cmb10", "cmti10",
               "cmss10", "cmtt10")
# Kinds that draw both MNIST digits and font digits: which one frame i holds (kind_frames draws by it, score
# reports each apart).
SOURCE = {"bold_marker": lambda i: "font" if i % 2 else "mnist",
          "light_on_dark": lambda i: "font" if i % 3 else "mnist",
          "on_desk": lambda i: "mnist" if i % 2 else "font"}


def kind_frames(kind: str, x_test: np.ndarray, y_test: np.ndarray, per_kind: int, seed: int,
                once: bool = False, faces: list[Path] | None = None,
                optdigits: tuple[np.ndarray, np.ndarray] | None = None) -> Iterator[tuple[np.ndarray, object]]:
    """One kind's frames, (frame, truth) one at a time: truth is a digit, a string of digits (multi) or None
    (blank). Each kind draws from its own generator, so its frames are the same whichever other kinds are made.
    ``once``: MNIST test digits are taken without replacement (a seeded order of the test set; a row of
    ``multi`` takes four), so no digit is drawn twice; the frames' looks are the same as without it. ``faces``: the
    font files other_print and other_pen draw, frame i in ``faces[i % len(faces)]`` (default: OTHER_FACES).
    ``optdigits``: (8x8 counts, labels) that other_hand draws, each once in a seeded order before any twice."""
    from edgekit.toolkit.fonts import font_digit, pen, shape_glyph, skeleton, ttf_bitmap
    from edgekit.toolkit.synthetic import Look, camera_frame, desk_frame, digit_strip, empty_frame, glyph_frame, scaled_glyph

    look = Look()
    k = KINDS.index(kind)
    rng = np.random.default_rng([seed, k])
    order = np.random.default_rng([seed, k, 1]).permutation(len(x_test)) if once else None
    if kind == "other_hand":
        counts, labels = optdigits
        shuffled = np.random.default_rng([seed, k, 1]).permutation(len(labels))
    for i in range(per_kind):
        j = int(rng.integers(len(x_test)))
        if order is not None:
            j = int(order[i])
        height = rng.uniform(*look.digit_height) * look.size[1] * 20 / 28
        if kind == "mnist_paper":
            frame, _ = camera_frame(x_test[j], rng, Look(light_on_dark=0.0))
            yield frame, int(y_test[j])
        elif kind in ("thin_pen", "bold_marker"):
            width = rng.uniform(0.02, 0.05) if kind == "thin_pen" else rng.uniform(0.12, 0.25)
            if kind == "bold_marker" and SOURCE[kind](i) == "font":
                label = int(rng.integers(10))
                bitmap = font_digit(label, rng, "any", width)
            else:
                label, bitmap = int(y_test[j]), pen(skeleton(_mnist_big(x_test[j])), width)
            glyph = shape_glyph(bitmap, rng, height, rotation=8.0, shear=0.15, aspect=(0.9, 1.1))
            yield glyph_frame(glyph, rng, Look(light_on_dark=0.0))[0], label
        elif kind in ("hershey_print", "dejavu_print"):
            digit = int(rng.integers(10))
            bitmap = font_digit(digit, rng, kind.split("_")[0], None)
            yield glyph_frame(shape_glyph(bitmap, rng, height), rng, Look(light_on_dark=0.0))[0], digit
        elif kind == "light_on_dark":
            chalk = Look(light_on_dark=1.0)
            if SOURCE[kind](i) == "mnist":
                yield camera_frame(x_test[j], rng, chalk)[0], int(y_test[j])
            else:
                digit = int(rng.integers(10))
                width = rng.uniform(0.03, 0.22) if i % 3 == 1 else None  # font digits: with a pen or as drawn
                glyph = shape_glyph(font_digit(digit, rng, "any", width), rng, height)
                yield glyph_frame(glyph, rng, chalk)[0], digit
        elif kind == "multi":
            idx = rng.choice(len(x_test), STRIP, replace=False)
            if order is not None:
                idx = order[STRIP * i : STRIP * (i + 1)]
            frame, _ = digit_strip(x_test[idx], rng, Look(light_on_dark=0.0))
            yield frame, "".join(str(int(d)) for d in y_test[idx])
        elif kind == "on_desk":
            if SOURCE[kind](i) == "mnist":
                label = int(y_test[j])
                frame, _ = desk_frame(lambda sheet: scaled_glyph(x_test[j], rng.uniform(0.3, 0.6) * sheet,
                                                                 rng.uniform(-8, 8)), rng)
            else:
                label, width = int(rng.integers(10)), rng.uniform(0.03, 0.25)
                frame, _ = desk_frame(lambda sheet: shape_glyph(font_digit(label, rng, "any", width), rng,
                                                                rng.uniform(0.3, 0.6) * sheet), rng)
            yield frame, label
        elif kind in ("other_print", "other_pen"):
            # The face is drawn even with ``faces``, so that the frames' looks are the same either way.
            digit, face = int(rng.integers(10)), OTHER_FACES[int(rng.integers(len(OTHER_FACES)))]
            bitmap = other_bitmap(face, digit) if faces is None else ttf_bitmap(faces[i % len(faces)], digit)
            if kind == "other_pen":
                bitmap = pen(skeleton(bitmap), rng.uniform(0.03, 0.25))
            yield glyph_frame(shape_glyph(bitmap, rng, height), rng, Look(light_on_dark=0.0))[0], digit
        elif kind in OPTDIGITS_KINDS:
            if kind == "other_hand":
                n = int(shuffled[i % len(labels)])
                eight, label = counts[n], int(labels[n])
            else:
                eight, label = eight_by_eight(x_test[j]), int(y_test[j])
            glyph = shape_glyph(from_eight_by_eight(eight), rng, height, rotation=8.0, shear=0.15, aspect=(0.9, 1.1))
            yield glyph_frame(glyph, rng, Look(light_on_dark=0.0))[0], label
        else:  # blank
            yield empty_frame(("paper", "dark", "noise", "desk")[i % 4], rng), None


def other_bitmap(face: str, digit: int) -> np.ndarray:
    """``digit`` in one of OTHER_FACES (a .ttf inside matplotlib's package), uint8 coverage, tightly cropped."""
    import matplotlib

    from edgekit.toolkit.fonts import ttf_bitmap

    return ttf_bitmap(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{face}.ttf", digit)


def load_optdigits(path: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``digits.csv.gz`` (or the same CSV uncompressed): per line 64 counts 0..16 of an 8x8 image,
    row by row, then the label. Returns (n x 8 x 8 float32 counts, n labels); ValueError saying what is wrong."""
    import gzip

    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open if gz else open)(path, "rb") as f:
            text = f.read(OPTDIGITS_MAX_BYTES + 1)
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read it ({e})") from None
    if len(text) > OPTDIGITS_MAX_BYTES:
        raise ValueError(f"{path}: more than {OPTDIGITS_MAX_BYTES >> 20} MB of text; scikit-learn's digits.csv.gz holds 0.27 MB")
    try:
        rows = np.array([[float(v) for v in line.split(b",")] for line in text.splitlines() if line.strip()])
    except ValueError:
        raise ValueError(f"{path}: not a CSV of numbers (scikit-learn's sklearn/datasets/data/digits.csv.gz)") from None
    if rows.ndim != 2 or rows.shape[1] != 65 or not len(rows):
        raise ValueError(f"{path}: expected lines of 65 numbers (8x8 counts and a label), got {rows.shape}")
    counts, labels = rows[:, :64], rows[:, 64]
    if counts.min() < 0 or counts.max() > 16 or set(np.unique(labels)) - set(range(10)):
        raise ValueError(f"{path}: counts must be 0..16 and labels 0..9")
    return counts.reshape(-1, 8, 8).astype(np.float32), labels.astype(np.int64)


def eight_by_eight(digit: np.ndarray) -> np.ndarray:
    """An MNIST digit in optdigits' form: binarised, scaled to 32 px tall and as wide as its aspect says up to 20 px
    (squeezed beyond: in scikit-learn's copy of optdigits, 177 of 178 0s are 6 blocks wide), centred in 32x32, its
    on-pixels counted in 4x4 blocks (8x8 float32 counts 0..16), as NIST's programs made optdigits."""
    from edgekit.toolkit.fonts import tight

    ink = tight(digit)
    h, w = ink.shape
    w32 = min(20, max(1, round(w * 32 / h)))
    on = cv2.resize(ink, (w32, 32), interpolation=cv2.INTER_AREA) > 127
    bitmap = np.zeros((32, 32), np.float32)
    x0 = (32 - w32) // 2
    bitmap[:, x0 : x0 + w32] = on
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3))


def from_eight_by_eight(counts: np.ndarray) -> np.ndarray:
    """8x8 counts 0..16 -> a uint8 glyph 160 px tall (bicubic, cut to its ink): the smooth digit they describe."""
    from edgekit.toolkit.fonts import tight

    big = cv2.resize(counts.astype(np.float32) / 16.0, (160, 160), interpolation=cv2.INTER_CUBIC)
    return tight((np.clip(big, 0.0, 1.0) * 255).astype(np.uint8))


def font_files(paths: list[str]) -> list[Path]:
    """The .ttf/.otf files named, a folder's (recursively) in name order; ValueError when there are none."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in (".ttf", ".otf"))
        elif p.suffix.lower() in (".ttf", ".otf") and p.is_file():
            found.append(p)
        else:
            raise ValueError(f"{p}: not a .ttf/.otf file or a folder")
    if not found:
        raise ValueError(f"no .ttf/.otf file in {' '.join(paths)}")
    return found


def _mnist_big(digit: np.ndarray) -> np.ndarray:
    """A 28x28 MNIST digit cut to its ink and enlarged to 160 px tall, for thinning to its centre line. Cut like a
    font's bitmap, so that ``pen``'s width (a fraction of the bitmap's height) is as wide against the digit as
    against a font's: enlarged with its empty margin, an MNIST digit is about 0.7 of the bitmap, and a pen of 25 %
    drew a stroke a third of the digit's height."""
    from edgekit.toolkit.fonts import tight  # a font bitmap's own cut

    ink = tight(digit)
    h, w = ink.shape
    return cv2.resize(ink, (max(1, round(w * 160 / h)), 160), interpolation=cv2.INTER_CUBIC)


Reader = Callable[[str, list], list]  # (kind, [(frame, truth)]) -> what was read, frame by frame


def in_process_reader(model: str | None) -> Reader:
    """A reader through this checkout's runtime: per frame a digit, a string (multi) or None."""
    from edgekit.runtime import Classifier

    clf = Classifier(model)

    def read(kind: str, items: list) -> list:
        if kind == "multi":
            return ["".join(str(p.digit) for p in clf.classify(f, multi=True)) or None for f, _ in items]
        return [clf.classify(f).digit for f, _ in items]

    return read


def through_reader(model: str, preprocess_file: str) -> Reader:
    """The same as ``in_process_reader`` with another preprocess.py's ``find_digits`` (e.g. an earlier commit's)."""
    from runtime import load_preprocess, preprocessing  # benchmarks/runtime.py (main puts this folder on the path)

    find_digits, read_frames = load_preprocess(preprocess_file).find_digits, in_process_reader(model)

    def read(kind: str, items: list) -> list:
        with preprocessing(find_digits):
            return read_frames(kind, items)

    return read


def cli_reader(edgekit: str, folder: Path) -> Reader:
    """The same through another installation's ``edgekit predict --json`` on the frames saved as PNG (removed
    after each chunk)."""
    def read(kind: str, items: list) -> list:
        paths = []
        for i, (frame, _) in enumerate(items):
            path = folder / f"{kind}-{i:05d}.png"
            cv2.imwrite(str(path), frame, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            paths.append(str(path))
        cmd = [edgekit, "predict", "--json", *(["--multi"] if kind == "multi" else []), *paths]
        lines = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()
        for path in paths:
            Path(path).unlink()
        got = {r["path"]: r["digit"] for r in map(json.loads, lines)}
        return [None if got.get(p) is None else (str(got[p]) if kind == "multi" else int(got[p])) for p in paths]

    return read


def preprocessing_comparer(old_file: str, model: str | None) -> Callable[[dict, list, int], None]:
    """Adds one chunk of a kind's frames (the first at frame ``start``) to that kind's row: how this checkout's
    find_digits differs from ``old_file``'s on them (``comparison_row`` starts a row)."""
    from runtime import load_preprocess  # benchmarks/runtime.py

    from edgekit.runtime import Classifier
    from edgekit.runtime.preprocess import find_digits
    from edgekit.toolkit.synthetic import box_iou

    old = load_preprocess(old_file)
    clf = Classifier(model)

    def read(crops: list) -> str | None:
        return "".join(str(p.digit) for p in clf.classify_crops(crops)) or None

    def compare(row: dict, items: list, start: int) -> None:
        kind = row["kind"]
        row["frames"] += len(items)
        for i, (frame, truth) in enumerate(items, start):
            a = old.find_digits(frame, multi=kind == "multi")
            b = find_digits(frame, multi=kind == "multi")
            same_boxes = [c.box for c in a] == [c.box for c in b]
            same_crops = same_boxes and all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
            ra, rb = read(a), read(b)
            if kind != "multi" and truth is not None:
                row["read_right_old"] += ra == str(truth)
                row["read_right_new"] += rb == str(truth)
            elif kind == "multi":
                row["read_right_old"] += ra == truth
                row["read_right_new"] += rb == truth
            if same_crops:
                continue
            row["boxes_differ"] += not same_boxes
            row["crops_differ"] += 1
            if len(a) == len(b):
                row["min_iou"] = min([row["min_iou"]] + [box_iou(x.box, y.box) for x, y in zip(a, b)])
                row["max_crop_diff"] = max([row["max_crop_diff"]] + [int(np.abs(x.image.astype(int) - y.image).max()) for x, y in zip(a, b)])
            else:
                row["min_iou"] = 0.0
            row["read_differs"] += ra != rb
            row["changed"].append({"frame": i, "old": [c.box for c in a], "new": [c.box for c in b], "read_old": ra, "read_new": rb,
                                   "truth": truth})

    return compare


def comparison_row(kind: str) -> dict:
    return {"kind": kind, "frames": 0, "boxes_differ": 0, "crops_differ": 0, "min_iou": 1.0, "max_crop_diff": 0,
            "read_differs": 0, "read_right_old": 0, "read_right_new": 0, "changed": []}


def rights(kind: str, truths: list, reads: list) -> list[bool]:
    """Per frame, whether the read is right: the digit (or row), or "no digit" on a blank frame."""
    return [r is None if kind == "blank" else r == t for r, t in zip(reads, truths)]


def score(kind: str, truths: list, reads: list, source: Callable[[int], str] | None = None) -> dict:
    """A kind's accuracy, "no digit" rate and confusions; with ``source`` (which source frame i drew, as SOURCE
    says), the accuracy of each source apart."""
    n = len(truths)
    if kind == "blank":
        return {"frames": n, "no_digit": sum(r is None for r in reads) / n}
    row = {"frames": n, "accuracy": sum(r == t for r, t in zip(reads, truths)) / n,
           "no_digit": sum(r is None for r in reads) / n}
    if source is not None:
        right: dict[str, list[bool]] = {}
        for i, (r, t) in enumerate(zip(reads, truths)):
            right.setdefault(source(i), []).append(r == t)
        row["by_source"] = {src: {"frames": len(v), "accuracy": sum(v) / len(v)} for src, v in sorted(right.items())}
    if kind == "multi":
        digits = sum(sum(a == b for a, b in zip(r or "", t)) for r, t in zip(reads, truths))
        row["digit_accuracy"] = digits / (n * STRIP)
    row["confusions"] = confusions(kind, truths, reads)
    return row


def confusions(kind: str, truths: list, reads: list) -> dict[str, int]:
    """The errors by what was drawn and what was read ("7>9"), the most frequent first; "none" for no digit. Rows
    of several digits count per digit where the row has the right length, else once as "row length"."""
    errors: Counter = Counter()
    for t, r in zip(truths, reads):
        if r == t:
            continue
        if kind != "multi" or r is None:
            errors[f"{t}>{'none' if r is None else r}"] += 1
        elif len(r) != len(t):
            errors["row length"] += 1
        else:
            errors.update(f"{a}>{b}" for a, b in zip(t, r) if a != b)
    return dict(errors.most_common())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="Keras-layout mnist.npz (its test set is drawn)")
    ap.add_argument("--model", action="append", default=[], help="a .tflite/.onnx to read with (repeatable; default: the bundled one)")
    ap.add_argument("--edgekit", action="append", default=[], help="another installation's edgekit command (repeatable)")
    ap.add_argument("--reader", nargs=2, action="append", default=[], metavar=("MODEL", "PREPROCESS"),
                    help="read with MODEL through another preprocess.py (repeatable; listed before the --model readers)")
    ap.add_argument("--per-kind", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--old-preprocess", help="another preprocess.py whose find_digits is compared with this checkout's")
    ap.add_argument("--json", default=str(HERE / "results" / "camera.json"))
    ap.add_argument("--kinds", help="the kinds of frame to make, comma-separated (default: all; other_hand and "
                                    "mnist_8x8 only with --optdigits)")
    ap.add_argument("--faces", nargs="+", metavar="FONT",
                    help="other_print and other_pen draw these .ttf/.otf files (a folder: every one inside) in turn, "
                         "instead of the faces inside matplotlib's package, and report each apart")
    ap.add_argument("--optdigits", metavar="FILE",
                    help="scikit-learn's sklearn/datasets/data/digits.csv.gz: adds other_hand (other people's "
                         "handwriting, 8x8) and mnist_8x8 (MNIST at the same 8x8)")
    ap.add_argument("--each-digit-once", action="store_true",
                    help="draw MNIST test digits without replacement (no digit twice in a kind; --per-kind up to 10,000)")
    args = ap.parse_args()
    asked = args.kinds.split(",") if args.kinds else [k for k in KINDS if args.optdigits or k not in OPTDIGITS_KINDS]
    kinds = tuple(k for k in KINDS if k in asked)
    if unknown := set(asked) - set(KINDS):
        ap.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    if set(kinds) & set(OPTDIGITS_KINDS) and not args.optdigits:
        ap.error(f"{' and '.join(OPTDIGITS_KINDS)} need --optdigits (scikit-learn's sklearn/datasets/data/digits.csv.gz)")

    def loaded(load: Callable, what):  # a file that cannot be used: a one-line usage error (exit 2)
        try:
            return load(what)
        except (ValueError, OSError) as e:
            ap.error(str(e))

    optdigits = loaded(load_optdigits, args.optdigits) if args.optdigits else None
    sources = dict(SOURCE)
    faces = None
    if args.faces:
        faces = loaded(font_files, args.faces)
        sources["other_print"] = sources["other_pen"] = lambda i: faces[i % len(faces)].stem
    with np.load(args.data) as d:
        x_test, y_test = d["x_test"], d["y_test"]
    if args.each_digit_once and args.per_kind * (STRIP if "multi" in kinds else 1) > len(x_test):
        ap.error(f"--each-digit-once draws each of the {len(x_test)} test digits at most once a kind: --per-kind at "
                 f"most {len(x_test) // (STRIP if 'multi' in kinds else 1)}")
    sys.path.insert(0, str(HERE))  # benchmarks/runtime.py, for --old-preprocess and --reader
    readers: dict[str, Reader] = {}
    for model, preprocess_file in args.reader:
        readers[f"{model} through {preprocess_file}"] = through_reader(model, preprocess_file)
    for model in args.model or [None]:
        readers[model or "bundled"] = in_process_reader(model)
    tmp = tempfile.TemporaryDirectory()
    for binary in args.edgekit:
        readers[f"{binary} (its bundled model)"] = cli_reader(binary, Path(tmp.name))
    compare = preprocessing_comparer(args.old_preprocess, (args.model or [None])[0]) if args.old_preprocess else None
    # Frames are made and read a chunk at a time: at 0.9 MB a frame, 1,500 of eleven kinds would hold 15 GB.
    reads: dict[str, dict[str, list]] = {name: {} for name in readers}
    truths: dict[str, list] = {}
    comparison = [comparison_row(kind) for kind in kinds] if compare else None
    making = reading = 0.0
    with tmp:
        for n, kind in enumerate(kinds):
            truths[kind] = []
            for name in readers:
                reads[name][kind] = []
            stream = kind_frames(kind, x_test, y_test, args.per_kind, args.seed, args.each_digit_once, faces, optdigits)
            while True:
                t0 = time.perf_counter()
                chunk = list(itertools.islice(stream, CHUNK))
                making += time.perf_counter() - t0
                if not chunk:
                    break
                t0 = time.perf_counter()
                for name, read in readers.items():
                    reads[name][kind] += read(kind, chunk)
                if compare:
                    compare(comparison[n], chunk, len(truths[kind]))
                reading += time.perf_counter() - t0
                truths[kind] += [t for _, t in chunk]
    print(f"made {sum(map(len, truths.values()))} frames in {making:.0f} s, read them in {reading:.0f} s", file=sys.stderr)
    if comparison is not None:
        print(f"{'kind':15s} {'frames':>6s} {'boxes differ':>13s} {'crops differ':>13s} {'min IoU':>8s} {'max crop diff':>14s}"
              f" {'read differs':>13s} {'read right old':>15s} {'new':>5s}")
        for r in comparison:
            right = ("-", "-") if r["kind"] == "blank" else (r["read_right_old"], r["read_right_new"])
            print(f"{r['kind']:15s} {r['frames']:6d} {r['boxes_differ']:13d} {r['crops_differ']:13d} {r['min_iou']:8.3f}"
                  f" {r['max_crop_diff']:14d} {r['read_differs']:13d} {right[0]:>15} {right[1]:>5}")
        print(f"{'all':15s} {sum(r['frames'] for r in comparison):6d} {sum(r['boxes_differ'] for r in comparison):13d}"
              f" {sum(r['crops_differ'] for r in comparison):13d} {min(r['min_iou'] for r in comparison):8.3f}"
              f" {max(r['max_crop_diff'] for r in comparison):14d} {sum(r['read_differs'] for r in comparison):13d}\n")

    rows = []
    names = list(readers)
    for kind in kinds:
        row = {"kind": kind, **{name: score(kind, truths[kind], reads[name][kind], sources.get(kind)) for name in names}}
        first = rights(kind, truths[kind], reads[names[0]][kind])
        for name in names[1:]:
            this = rights(kind, truths[kind], reads[name][kind])
            row[name]["only_first_right"] = sum(a and not b for a, b in zip(first, this))
            row[name]["only_this_right"] = sum(b and not a for a, b in zip(first, this))
        rows.append(row)
    print(f"{'kind':15s} {'frames':>6s}  " + "  ".join(f"{n[-28:]:>28s}" for n in names))
    for r in rows:
        cells = []
        for n in names:
            s = r[n]
            paired = f" -{s['only_first_right']}/+{s['only_this_right']}" if "only_this_right" in s else ""
            cells.append(f"{'no digit' if r['kind'] == 'blank' else 'read right'} "
                         f"{s['no_digit' if r['kind'] == 'blank' else 'accuracy']:7.1%}{paired}".rjust(28))
        print(f"{r['kind']:15s} {r[names[0]]['frames']:6d}  " + "  ".join(cells))
        for src, part in r[names[0]].get("by_source", {}).items():  # a mixed kind's MNIST and font digits apart
            cells = [f"{src} {r[n]['by_source'][src]['accuracy']:7.1%}".rjust(28) for n in names]
            print(f"{'':15s} {part['frames']:6d}  " + "  ".join(cells))
    if len(names) > 1:
        print("-A/+B: of the same frames, A read right only by the first reader, B only by this one")
    result = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv), "seed": args.seed,
              "per_kind": args.per_kind, **({"each_digit_once": True} if args.each_digit_once else {}),
              **({"faces": [str(f) for f in faces]} if faces else {}),
              **({"optdigits": args.optdigits} if optdigits else {}),
              "kinds": list(kinds), "readers": names, "rows": rows, "opencv": cv2.__version__}
    if comparison is not None:
        result["preprocess_comparison"] = {"old_preprocess": args.old_preprocess, "rows": comparison}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
