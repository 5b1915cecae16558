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

numpy and cv2 only, like the rest of the runtime: collecting runs on a Pi without TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from edgekit.runtime import contract, preprocess
from edgekit.runtime.camera import FrameSource, frames_with_retries
from edgekit.runtime.contract import LABELS
from edgekit.runtime.errors import DataError, OptionsError, first_line
from edgekit.runtime.files import write_json
from edgekit.runtime.images import read_image
from edgekit.runtime.metadata import edgekit_version
from edgekit.runtime.preprocess import Box, DigitCrop, find_digits
from edgekit.runtime.sources import SourceKind, source_kind

SUMMARY_FILE = "collect.json"
STOP = "stop"  # what a chooser returns to end collecting
Choice = int | str | None  # a digit to save the crop as, None to skip it, STOP to quit

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def source_name(spec: str | os.PathLike) -> str:
    """The ``<source-name>`` part of a crop's file name: a file's stem, ``cam0`` for camera 0, ``video2`` for
    /dev/video2, the host of a URL; reduced to letters, digits, ``.``, ``_`` and ``-``."""
    text = str(spec).strip()
    kind = source_kind(text)
    if kind is SourceKind.INDEX:
        name = f"cam{text}"
    elif kind is SourceKind.URL:
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
        "polarity": contract.POLARITY,
        "roi": list(roi) if roi is not None else None,
    }


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
            raise DataError(f"{self.summary_path}: not a collect.json edgekit can add to ({first_line(e)}); "
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
            "edgekit_version": edgekit_version(),
            "sessions": sessions,
        }
        write_json(self.summary_path, summary)
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
    img = _boxed(frame, crop, th)
    if crop is not None:
        side = max(56, min(h, w) // 3)
        big = cv2.resize(crop.image, (side, side), interpolation=cv2.INTER_NEAREST)
        img[:side, w - side:] = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    status = f"{HELP_LINE}   saved {tally.saved}" + ("" if crop is not None else "   (no digit)")
    cv2.putText(img, status, (int(10 * s), h - int(12 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (0, 0, 0), th + 2)
    cv2.putText(img, status, (int(10 * s), h - int(12 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (255, 255, 255), th)
    return img


def _boxed(frame: np.ndarray, crop: DigitCrop | None, thickness: int) -> np.ndarray:
    """A BGR copy of the frame with the crop's box drawn in green (none when there is no crop)."""
    img = preprocess.to_gray(frame) if frame.ndim == 2 or frame.shape[2] != 3 else frame
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    if crop is not None:
        x, y, bw, bh = crop.box
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 200, 0), thickness)
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


# -- the page (--serve: a Pi without a screen) --------------------------------------------------------------

PAGE = Path(__file__).with_name("collect.html")
HOLD = 256  # the latest crops the page may still label (28x28 bytes each; over 8 s of a 30 fps camera)
CROP_SCALE = 10  # the crop is shown 280x280, each pixel a 10x10 square
SKIP = "skip"


class LabelDesk:
    """Between the camera loop and the page: the crops the page may still label, and the labels it sends.

    The loop ``offer``s each frame's crop under a frame number that never repeats in a run; the page posts
    ``{"frame": N, "label": "3"}`` (or ``"skip"``) for the picture it shows, and exactly that crop is saved (the
    ``HOLD`` latest are kept; an older frame is refused, so a click never saves a crop the user did not see).
    Thread-safe: the loop runs in one thread, each request in its own."""

    def __init__(self, store: DigitStore, hold: int = HOLD):
        self.store, self.hold = store, hold
        self._cond = threading.Condition()
        self._held: OrderedDict[int, tuple[np.ndarray, SourceTally]] = OrderedDict()
        self._decided: OrderedDict[int, str] = OrderedDict()  # frame -> what became of it, for a second click
        self._next = 0
        self._closed = False

    def offer(self, crop: np.ndarray | None, tally: SourceTally) -> int:
        """The next frame number; its crop (if any) can be labelled from now on."""
        with self._cond:
            n, self._next = self._next, self._next + 1
            if crop is not None:
                self._held[n] = (crop, tally)
                while len(self._held) > self.hold:
                    self._held.popitem(last=False)
            return n

    def wait_decision(self, frame: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the page to label or skip ``frame``; whether it did."""
        with self._cond:
            return self._cond.wait_for(lambda: frame in self._decided, timeout)

    def label(self, request: dict) -> tuple[int, dict]:
        """The ``/label`` action: save the held crop of ``request["frame"]`` as ``request["label"]`` (or skip it)."""
        frame, label = request.get("frame"), request.get("label")
        if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
            return 400, {"error": f"frame must be a frame number (an integer from 0), got {frame!r}"}
        if not (isinstance(label, (str, int)) and not isinstance(label, bool) and str(label) in (*LABELS, SKIP)):
            return 400, {"error": f"label must be a digit 0-9 or {SKIP!r}, got {label!r}"}
        label = str(label)
        with self._cond:
            if self._closed:
                return 503, {"error": "collecting has stopped; nothing saved"}
            if frame in self._decided:
                return 409, {"error": f"frame {frame} was already {self._decided[frame]}; nothing saved: label the crop on screen now"}
            if frame not in self._held:
                if frame >= self._next:
                    return 409, {"error": f"frame {frame} has not been shown yet; nothing saved: label the crop on screen"}
                return 409, {"error": f"frame {frame} is no longer held (the camera moved on, or it had no digit); "
                                      "nothing saved: label the crop on screen now"}
            if self.store.full:
                return 409, {"error": f"--max {self.store.max_crops} reached; nothing saved"}
            crop, tally = self._held.pop(frame)
            if label == SKIP:
                outcome, answer = "skipped", {"frame": frame, "skipped": True, "message": f"frame {frame} skipped"}
            else:
                path = self.store.save(crop, int(label), tally.name)
                tally.saved += 1
                self.store.write_summary()
                outcome = f"saved as {label}"
                answer = {"frame": frame, "label": int(label), "file": f"{label}/{path.name}", "saved": self.store.saved,
                          "message": f"frame {frame} saved as {label} ({label}/{path.name}); {self.store.saved} saved"}
            self._decided[frame] = outcome
            while len(self._decided) > self.hold:
                self._decided.popitem(last=False)
            self._cond.notify_all()
            return 200, answer

    def close(self) -> None:
        """Refuse every label from now on (waits for one being saved): after this the store is the caller's."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def page_picture(frame: np.ndarray, crop: DigitCrop | None) -> np.ndarray:
    """What the page shows: the crop CROP_SCALE times (each pixel a square) beside the frame with the digit's box,
    scaled to the same height. No digit: the crop's square is dark grey."""
    side = 28 * CROP_SCALE
    img = _boxed(frame, crop, max(2, round(frame.shape[0] / 240)))
    if crop is not None:
        big = cv2.cvtColor(cv2.resize(crop.image, (side, side), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR)
    else:
        big = np.full((side, side, 3), 48, np.uint8)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w * side / h)), side), interpolation=cv2.INTER_AREA)
    gap = np.full((side, 8, 3), 17, np.uint8)
    return np.hstack([big, gap, small])


def collect_served(source: FrameSource, store: DigitStore, desk: LabelDesk, hub, name: str | None = None,
                   stopped: Callable[[], bool] = lambda: False) -> SourceTally:
    """Crops from a camera or video into ``store``, labelled on the page: each frame's picture goes to ``hub``
    (``serve.FrameHub``) with its frame number, its crop to ``desk``, which saves what the page posts.
    A live camera is not held up; a video file waits on each frame with a digit until the page labels or
    skips it (as the window waits for a key). The source is released whatever happens."""
    tally = SourceTally(source.name, name or source_name(source.name))
    store.tallies.append(tally)
    pace = 1.0 / source.fps if getattr(source, "fps", 0) and not source.live else 0.0
    shown = 0
    try:
        for frame in frames_with_retries(source):
            if store.full or stopped():
                break
            t0 = time.perf_counter()
            tally.frames += 1
            crop = first_crop(frame, store.roi)
            if crop is None:
                tally.no_digit += 1
            else:
                shown += 1
            n = desk.offer(None if crop is None else crop.image, tally)
            ok, jpeg = cv2.imencode(".jpg", page_picture(frame, crop), [cv2.IMWRITE_JPEG_QUALITY, 90])
            hub.publish(jpeg.tobytes(), {"frame": n, "source": tally.name, "source_frame": tally.frames - 1,
                                         "crop": crop is not None, "saved": store.saved,
                                         "counts": dict(store.added), "waiting": crop is not None and not source.live})
            if crop is not None and not source.live:
                while not desk.wait_decision(n, 0.5) and not stopped() and not store.full:
                    pass
            elif pace:
                time.sleep(max(0.0, pace - (time.perf_counter() - t0)))
            tally.skipped = shown - tally.saved
    finally:
        source.release()
        tally.skipped = shown - tally.saved
    return tally


__all__ = [
    "STOP", "SKIP", "SUMMARY_FILE", "DigitStore", "LabelDesk", "collect_served", "page_picture", "SourceTally", "collect_frames", "collect_images", "first_crop",
    "key_choice", "key_chooser", "label_from_name", "parse_label", "preprocessing_settings", "preview",
    "scripted_keys", "source_name", "window_keys",
]
