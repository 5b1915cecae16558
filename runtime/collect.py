"""Collecting the user's own digits: frames in, the 28x28 crops the model would see out, one PNG per digit.

    store = DigitStore("mydigits")
    collect_frames(open_source("0"), store, choose=window_chooser())   # a camera, keys 0-9 label
    collect_frames(open_source("sevens.mp4"), store, label=7)          # a video of one digit
    collect_images(["scans/"], store, label_of=label_from_name)        # 0042_7.jpg -> a 7
    store.write_summary()                                              # DIR/collect.json

Every frame goes through ``preprocess.find_digits``, the runtime's own preprocessing, so a crop is exactly
what ``edgekit webcam`` would feed the model: uint8, 28x28, ink bright on black (MNIST polarity). Crops are
saved as ``DIR/<digit>/<source-name>-<n>.png``; a name already taken is never overwritten (the next ``n`` is
used), so collecting into an existing folder adds to it. ``DIR/collect.json`` records the count per digit,
each session's sources and tallies, the preprocessing settings and the edgekit version.

numpy and cv2 only, like the rest of the runtime: collecting runs on a Pi without TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from edgekit.runtime import preprocess
from edgekit.runtime.camera import FrameSource, frames_with_retries
from edgekit.runtime.contract import LABELS
from edgekit.runtime.errors import DataError, OptionsError
from edgekit.runtime.images import read_image
from edgekit.runtime.preprocess import Box, DigitCrop, find_digits

SUMMARY_FILE = "collect.json"
STOP = "stop"  # what a chooser returns to end collecting
Choice = int | str | None  # a digit to save the crop as, None to skip it, STOP to quit

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def source_name(spec: str | os.PathLike) -> str:
    """The ``<source-name>`` part of a crop's file name: a file's stem, ``cam0`` for camera 0, ``video2`` for
    /dev/video2, the host of a URL; reduced to letters, digits, ``.``, ``_`` and ``-``."""
    text = str(spec).strip()
    if text.isdigit():
        name = f"cam{text}"
    elif "://" in text:
        name = text.split("://", 1)[1].split("/", 1)[0].replace(":", "_")
    else:
        name = Path(text).stem if Path(text).suffix else Path(text).name
    return _UNSAFE.sub("_", name).strip("._") or "source"


def label_from_name(path: str | os.PathLike) -> int:
    """The digit a file's name gives: the last ``_``-separated part of its stem (``0042_7.jpg`` -> 7)."""
    last = Path(path).stem.rsplit("_", 1)[-1]
    if last not in LABELS:
        raise DataError(f"no label in its name: the last _-separated part of {Path(path).stem!r} is {last!r}, not a digit 0-9 "
                        "(name files like 0042_7.png, or use --label D)")
    return int(last)


def parse_label(text: str | int) -> int:
    if str(text).strip() not in LABELS:
        raise OptionsError(f"--label must be a digit 0-9, got {text!r}")
    return int(str(text).strip())


def preprocessing_settings(roi: Box | None = None) -> dict:
    """What ``find_digits`` was run with, recorded beside the crops (a change here makes different crops)."""
    return {
        "function": "edgekit.runtime.preprocess.find_digits",
        "digit_box": preprocess.DIGIT_BOX,
        "image_size": 28,
        "work_size": preprocess.WORK_SIZE,
        "min_contrast": preprocess.MIN_CONTRAST,
        "noise_margin": preprocess.NOISE_MARGIN,
        "min_height_fraction": preprocess.MIN_HEIGHT_FRACTION,
        "min_height_px": preprocess.MIN_HEIGHT_PX,
        "polarity": "ink bright on black (MNIST)",
        "roi": list(roi) if roi is not None else None,
    }


def _edgekit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgekit")
    except PackageNotFoundError:  # pragma: no cover - a plain checkout
        return "0+unknown"


@dataclass
class SourceTally:
    """What one source gave: frames read, crops saved, frames without a digit, crops not labelled, files
    that could not be read."""

    source: str
    name: str
    frames: int = 0
    saved: int = 0
    no_digit: int = 0
    skipped: int = 0
    unreadable: int = 0

    def to_dict(self) -> dict:
        return dict(vars(self))


class DigitStore:
    """``DIR/<digit>/<name>-<n>.png`` writer that never overwrites, and ``DIR/collect.json``'s keeper."""

    def __init__(self, out: str | os.PathLike, roi: Box | None = None, max_crops: int | None = None):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise OptionsError(f"--out {self.out}: a file, not a folder")
        self.summary_path = self.out / SUMMARY_FILE
        self.previous = self._read_summary()  # before anything is written: a foreign collect.json stops us here
        self.out.mkdir(parents=True, exist_ok=True)
        self.roi, self.max_crops = roi, max_crops
        self.saved = 0
        self.added = {d: 0 for d in LABELS}
        self.tallies: list[SourceTally] = []
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._next: dict[tuple[int, str], int] = {}

    @property
    def full(self) -> bool:
        return self.max_crops is not None and self.saved >= self.max_crops

    def _read_summary(self) -> dict:
        if not self.summary_path.exists():
            return {}
        try:
            d = json.loads(self.summary_path.read_text())
            if not isinstance(d, dict) or not isinstance(d.get("sessions", []), list):
                raise ValueError("not an object with a sessions list")
        except (OSError, ValueError) as e:
            raise DataError(f"{self.summary_path}: not a collect.json edgekit can add to ({str(e).splitlines()[0]}); "
                            "move it away or collect into another --out") from None
        return d

    def save(self, crop: np.ndarray, digit: int, name: str) -> Path:
        """Write one crop as the next free ``<name>-<n>.png`` of its digit folder; never replaces a file."""
        folder = self.out / str(digit)
        folder.mkdir(exist_ok=True)
        key = (digit, name)
        if key not in self._next:
            pattern = re.compile(rf"^{re.escape(name)}-(\d+)\.png$")
            taken = [int(m.group(1)) for f in folder.iterdir() if (m := pattern.match(f.name))]
            self._next[key] = max(taken, default=-1) + 1
        ok, png = cv2.imencode(".png", np.ascontiguousarray(crop, dtype=np.uint8))
        if not ok:  # pragma: no cover - a 28x28 uint8 array always encodes
            raise DataError(f"could not encode a crop as PNG for {folder}")
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        try:
            tmp.write_bytes(png.tobytes())
            while True:
                path = folder / f"{name}-{self._next[key]}.png"
                self._next[key] += 1
                try:
                    os.link(tmp, path)  # fails if the name is taken: nothing is overwritten
                    break
                except FileExistsError:
                    continue
                except OSError:  # a file system without hard links (FAT on a USB stick)
                    if path.exists():
                        continue
                    os.replace(tmp, path)
                    break
        finally:
            tmp.unlink(missing_ok=True)
        self.saved += 1
        self.added[str(digit)] += 1
        return path

    def counts(self) -> dict[str, int]:
        """PNG crops per digit now in the folder (earlier sessions included)."""
        return {d: sum(1 for _ in (self.out / d).glob("*.png")) if (self.out / d).is_dir() else 0 for d in LABELS}

    def write_summary(self) -> dict:
        """Write ``collect.json`` (atomically): counts, every session so far and this one, settings, version."""
        sessions = list(self.previous.get("sessions", []))
        sessions.append({
            "started": self.started,
            "saved": self.saved,
            "added": self.added,
            "sources": [t.to_dict() for t in self.tallies],
            "preprocessing": preprocessing_settings(self.roi),
        })
        counts = self.counts()
        summary = {
            "counts": counts,
            "total": sum(counts.values()),
            "frames_no_digit": sum(int(t.get("no_digit", 0)) for s in sessions for t in s.get("sources", [])),
            "preprocessing": preprocessing_settings(self.roi),
            "edgekit_version": _edgekit_version(),
            "sessions": sessions,
        }
        tmp = self.summary_path.with_name(f".{SUMMARY_FILE}.tmp")
        try:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
            os.replace(tmp, self.summary_path)
        finally:
            tmp.unlink(missing_ok=True)
        return summary


def first_crop(frame: np.ndarray, roi: Box | None) -> DigitCrop | None:
    """The crop the runtime would classify in this frame, or None when no digit is in view."""
    crops = find_digits(frame, roi)
    return crops[0] if crops else None


def collect_frames(
    source: FrameSource,
    store: DigitStore,
    label: int | None = None,
    choose: Callable[[np.ndarray, DigitCrop | None, SourceTally], Choice] | None = None,
    name: str | None = None,
) -> SourceTally:
    """Crops from a camera or video into ``store``: each one saved as ``label``, or as what ``choose`` says
    for the frame (a digit, None to skip, STOP to end). Frames with no digit are counted, not saved; ``choose``
    still sees them (the window keeps showing the camera). The source is released whatever happens."""
    if (label is None) == (choose is None):
        raise OptionsError("collect_frames needs exactly one of label and choose")
    tally = SourceTally(source.name, name or source_name(source.name))
    store.tallies.append(tally)
    try:
        for frame in frames_with_retries(source):
            if store.full:
                break
            tally.frames += 1
            crop = first_crop(frame, store.roi)
            if crop is None:
                tally.no_digit += 1
            choice = label if choose is None else choose(frame, crop, tally)
            if choice == STOP:
                break
            if crop is None:
                continue
            if choice is None:
                tally.skipped += 1
                continue
            store.save(crop.image, int(choice), tally.name)
            tally.saved += 1
    finally:
        source.release()
    return tally


def collect_images(
    paths: Sequence[str | os.PathLike],
    store: DigitStore,
    label: int | None = None,
    label_of: Callable[[Path], int] | None = None,
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
            crop = first_crop(frame, store.roi)
        except (DataError, ValueError) as e:
            tally.unreadable += 1
            on_error(path, str(e).splitlines()[0])
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
    img = preprocess.to_gray(frame) if frame.ndim == 2 or frame.shape[2] != 3 else frame
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    h, w = img.shape[:2]
    s = max(0.5, min(w, h) / 480)
    th = max(1, round(2 * s))
    if crop is not None:
        x, y, bw, bh = crop.box
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 200, 0), th)
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
    "STOP", "SUMMARY_FILE", "DigitStore", "SourceTally", "collect_frames", "collect_images", "first_crop",
    "key_choice", "key_chooser", "label_from_name", "parse_label", "preprocessing_settings", "preview",
    "scripted_keys", "source_name", "window_keys",
]
