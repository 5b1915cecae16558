"""Collecting the user's own digits: frames in, the 28x28 crops the model would see out, one PNG per digit.

    store = DigitStore("mydigits")
    collect_frames(open_source("0"), store, choose=key_chooser(window_keys(), live=True))  # keys 0-9 label
    collect_frames(open_source("sevens.mp4"), store, label=7)          # a video of one digit
    collect_images(["scans/"], store, label_of=label_from_name)        # 0042_7.jpg -> a 7
    collect_served(open_source("0"), store, desk, server.hub)          # a page's buttons label (LabelDesk)
    store.write_summary()                                              # DIR/collect.json

Every frame goes through ``preprocess.find_digits``, the runtime's own preprocessing, so a crop is exactly
what ``edgekit webcam`` would feed the model: uint8, 28x28, ink bright on black (MNIST polarity). Crops are
saved as ``DIR/<digit>/<source-name>-<n>.png``; a name already taken is never overwritten (the next ``n`` is
used), so collecting into an existing folder adds to it. ``DIR/collect.json`` records the count per digit,
each session's sources and tallies, the preprocessing settings and the edgekit version.

Three modules, one name: ``digit_store`` (the folder and collect.json), this one (the collecting loops and the
labelling window), ``collect_page`` (the labelling page); every public name of the three is importable from here.

numpy and cv2 only, like the rest of the runtime: collecting runs on a Pi without TensorFlow.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from edgekit.runtime.camera import FrameSource, frame_loop
from edgekit.runtime.collect_page import CROP_SCALE, HOLD, PAGE, SKIP, LabelDesk, collect_served, page_picture
from edgekit.runtime.digit_store import (
    SUMMARY_FILE, DigitStore, ImageStore, Region, SourceTally, boxed_frame, first_crop, image_label_from_name,
    label_from_name, parse_image_label, parse_label,
    preprocessing_settings, source_name,
)
from edgekit.runtime.errors import DataError, OptionsError, first_line
from edgekit.runtime.images import read_image
from edgekit.runtime.preprocess import DigitCrop

STOP = "stop"  # what a chooser returns to end collecting
Choice = int | str | None  # a digit to save the crop as, None to skip it, STOP to quit


def collect_frames(
    source: FrameSource,
    store: DigitStore,
    label: int | str | None = None,
    choose: Callable[[np.ndarray, DigitCrop | None, SourceTally], Choice] | None = None,
    name: str | None = None,
) -> SourceTally:
    """Crops from a camera or video into ``store``: each one saved as ``label``, or as what ``choose`` says
    for the frame (a digit, None to skip, STOP to end). Frames with no digit are counted, not saved; ``choose``
    still sees them (the window keeps showing the camera). Runs on ``camera.frame_loop``: a camera is read on its
    own thread and each frame taken is its newest; the source is released whatever happens."""
    if (label is None) == (choose is None):
        raise OptionsError("collect_frames needs exactly one of label and choose")
    tally = SourceTally(source.name, name or source_name(source.name))
    store.tallies.append(tally)

    def take(frame: np.ndarray, _captured: float, _dropped: int) -> bool:
        if store.full:
            return True
        tally.frames += 1
        crop = store.crop(frame)
        if crop is None:
            tally.no_digit += 1
        choice = label if choose is None else choose(frame, crop, tally)
        if choice == STOP:
            return True
        if crop is None:
            return False
        if choice is None:
            tally.skipped += 1
            return False
        store.save(crop.image, choice, tally.name)
        tally.saved += 1
        return False

    frame_loop(source, take)
    return tally


def collect_images(
    paths: Sequence[str | os.PathLike],
    store: DigitStore,
    label: int | str | None = None,
    label_of: Callable[[Path], int | str] | None = None,
    on_error: Callable[[Path, str], None] = lambda path, line: None,
    max_pixels: int | None = None,
) -> list[SourceTally]:
    """Crops from image files into ``store``, labelled ``label`` or ``label_of(path)``. A file that cannot be
    read or labelled goes to ``on_error(path, one_line)`` and the rest go on."""
    if (label is None) == (label_of is None):
        raise OptionsError("collect_images needs exactly one of label and label_of")
    tallies = []
    for path in map(Path, paths):
        if store.full:
            break
        tally = SourceTally(str(path), source_name(path))
        store.tallies.append(tally)
        tallies.append(tally)
        try:
            digit = label if label_of is None else label_of(path)
            frame, _ = read_image(path, max_pixels)
            tally.frames += 1
            crop = store.crop(frame)
        except (DataError, ValueError) as e:
            tally.unreadable += 1
            on_error(path, first_line(e))
            continue
        if crop is None:
            tally.no_digit += 1
            continue
        store.save(crop.image, digit, tally.name)
        tally.saved += 1
    return tallies


# -- the window ---------------------------------------------------------------------------------------------

WINDOW = "edgekit collect"
HELP_LINE = "0-9 save as that digit, space skip, q quit"


def preview(frame: np.ndarray, crop: DigitCrop | None, tally: SourceTally) -> np.ndarray:
    """The frame (BGR) with the digit's box, the crop the model would see enlarged in a corner, and the keys."""
    h, w = frame.shape[:2]
    s = max(0.5, min(w, h) / 480)
    th = max(1, round(2 * s))
    img = boxed_frame(frame, crop, th)
    if crop is not None:
        side = max(56, min(h, w) // 3)
        big = cv2.resize(crop.image, (side, side), interpolation=cv2.INTER_NEAREST)
        img[:side, w - side:] = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    status = f"{HELP_LINE}   saved {tally.saved}" + ("" if crop is not None else "   (no digit)")
    cv2.putText(img, status, (int(10 * s), h - int(12 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (0, 0, 0), th + 2)
    cv2.putText(img, status, (int(10 * s), h - int(12 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (255, 255, 255), th)
    return img


def key_choice(key: int) -> Choice:
    """A key code -> a digit to save as, None (space, or no key) or STOP (q, Esc)."""
    key &= 0xFF
    if ord("0") <= key <= ord("9"):
        return key - ord("0")
    if key in (ord("q"), ord("Q"), 27):
        return STOP
    return None


def key_chooser(wait_key: Callable[[np.ndarray, int], int], live: bool) -> Callable[[np.ndarray, DigitCrop | None, SourceTally], Choice]:
    """A chooser from a key source: ``wait_key(picture, wait_ms)`` shows the picture and returns the key code
    pressed (-1 for none). A live camera is not held up (1 ms); a video file waits for a key on each frame
    with a digit."""

    def choose(frame: np.ndarray, crop: DigitCrop | None, tally: SourceTally) -> Choice:
        wait = 0 if (crop is not None and not live) else 1
        return key_choice(wait_key(preview(frame, crop, tally), wait))

    return choose


def window_keys() -> Callable[[np.ndarray, int], int]:
    """``wait_key`` for ``key_chooser`` with a real OpenCV window (closing the window quits)."""
    shown = [False]

    def wait_key(picture: np.ndarray, wait_ms: int) -> int:
        if not shown[0]:
            cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
            shown[0] = True
        cv2.imshow(WINDOW, picture)
        key = cv2.waitKey(wait_ms)
        if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            return ord("q")
        return key

    return wait_key


def scripted_keys(keys: Iterable[str | int]) -> Callable[[np.ndarray, int], int]:
    """``wait_key`` playing back ``keys`` one per frame ("7", " ", "q" or codes; -1 is no key); after the
    script, q. For tests and unattended runs; the pictures it is shown are kept in ``.shown``."""
    it = iter(keys)

    def wait_key(picture: np.ndarray, wait_ms: int) -> int:
        wait_key.shown.append(picture.shape)
        k = next(it, "q")
        return ord(k) if isinstance(k, str) else int(k)

    wait_key.shown = []  # type: ignore[attr-defined]
    return wait_key

__all__ = [
    "STOP", "SKIP", "SUMMARY_FILE", "PAGE", "HOLD", "CROP_SCALE", "DigitStore", "ImageStore", "Region", "boxed_frame", "LabelDesk", "collect_served", "page_picture", "SourceTally", "collect_frames", "collect_images", "first_crop", "image_label_from_name", "parse_image_label",
    "key_choice", "key_chooser", "label_from_name", "parse_label", "preprocessing_settings", "preview",
    "scripted_keys", "source_name", "window_keys",
]
