"""The digit folder ``edgekit collect`` writes: ``DIR/<digit>/<source-name>-<n>.png`` crops (a name already taken
is never overwritten) and ``DIR/collect.json`` (the count per digit, each session's sources and tallies, the
preprocessing settings and the edgekit version), and the names and labels read from sources and files.

``ImageStore`` is the same folder for an ``image`` model (docs/your-model.md): ``DIR/<label>/<source-name>-<n>.png``
holds the whole frame or ROI as the camera gave it (grayscale for a 1-channel model), unresized: ``edgekit export
--data DIR`` and ``validate --data DIR`` bring it to the model's input by its contract, as the device does.

Part of collecting (``edgekit.runtime.collect``): this module keeps the store; ``collect`` runs the loops and the
window; ``collect_page`` is the labelling page. numpy and cv2 only.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edgekit.runtime import contract, preprocess
from edgekit.runtime.contract import LABELS
from edgekit.runtime.contract import InputContract
from edgekit.runtime.errors import DataError, OptionsError, first_line
from edgekit.runtime.files import write_json
from edgekit.runtime.image_input import frame_region, to_channels
from edgekit.runtime.metadata import edgekit_version
from edgekit.runtime.preprocess import Box, DigitCrop, find_digits
from edgekit.runtime.sources import SourceKind, source_kind

SUMMARY_FILE = "collect.json"

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


def parse_image_label(text: str, labels: tuple[str, ...]) -> str:
    """``--label`` for an image model: one of its labels."""
    if str(text) not in labels:
        raise OptionsError(f"--label must be one of the model's labels ({', '.join(labels)}), got {text!r}")
    return str(text)


def image_label_from_name(path: str | os.PathLike, labels: tuple[str, ...]) -> str:
    """The image model's label a file's name ends with after a ``_`` (``0042_tulip.jpg`` -> tulip; the longest that fits)."""
    stem = Path(path).stem
    fits = [n for n in labels if stem.endswith("_" + n)]
    if not fits:
        raise DataError(f"no label in its name: {stem!r} does not end in _ and one of the model's labels "
                        f"({', '.join(labels)}); name files like 0042_{labels[0]}.png, or use --label NAME")
    return max(fits, key=len)


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

    def __init__(self, out: str | os.PathLike, roi: Box | None = None, max_crops: int | None = None,
                 labels: tuple[str, ...] = LABELS):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise OptionsError(f"--out {self.out}: a file, not a folder")
        self.summary_path = self.out / SUMMARY_FILE
        self.previous = self._read_summary()  # before anything is written: a foreign collect.json stops us here
        self.out.mkdir(parents=True, exist_ok=True)
        self.roi, self.max_crops = roi, max_crops
        self.saved = 0
        self.labels = tuple(labels)
        self.added = {d: 0 for d in self.labels}
        self.tallies: list[SourceTally] = []
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._next: dict[tuple[str, str], int] = {}

    def crop(self, frame: np.ndarray) -> DigitCrop | None:
        """What is saved of a frame: the first digit ``find_digits`` finds (in the ROI), None when there is none."""
        return first_crop(frame, self.roi)

    def settings(self) -> dict:
        return preprocessing_settings(self.roi)

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

    def save(self, crop: np.ndarray, digit: int | str, name: str) -> Path:
        """Write one crop as the next free ``<name>-<n>.png`` of its digit folder; never replaces a file."""
        folder = self.out / str(digit)
        folder.mkdir(exist_ok=True)
        key = (str(digit), name)
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
        return {d: sum(1 for _ in (self.out / d).glob("*.png")) if (self.out / d).is_dir() else 0 for d in self.labels}

    def write_summary(self) -> dict:
        """Write ``collect.json`` (atomically): counts, every session so far and this one, settings, version."""
        sessions = list(self.previous.get("sessions", []))
        sessions.append({
            "started": self.started,
            "saved": self.saved,
            "added": self.added,
            "sources": [t.to_dict() for t in self.tallies],
            "preprocessing": self.settings(),
        })
        counts = self.counts()
        summary = {
            "counts": counts,
            "total": sum(counts.values()),
            "frames_no_digit": sum(int(t.get("no_digit", 0)) for s in sessions for t in s.get("sources", [])),
            "preprocessing": self.settings(),
            "edgekit_version": edgekit_version(),
            "sessions": sessions,
        }
        write_json(self.summary_path, summary)
        return summary


@dataclass(frozen=True)
class Region:
    """What an ``ImageStore`` saves of a frame: the whole frame or ROI, and where it lies in the frame."""

    image: np.ndarray
    box: Box


class ImageStore(DigitStore):
    """``DIR/<label>/<name>-<n>.png`` for an ``image`` model: the whole frame or ROI (BGR, or gray for a 1-channel
    model) under one of the model's labels. Everything else as ``DigitStore``."""

    def __init__(self, out: str | os.PathLike, contract: InputContract, roi: Box | None = None, max_crops: int | None = None):
        unsafe = [n for n in contract.labels if not n.strip() or n in (".", "..") or "/" in n or "\\" in n or n.startswith(".")]
        if unsafe:
            raise OptionsError(f"the model's label {unsafe[0]!r} cannot name a folder; re-export it with --labels FILE of plain names")
        self.contract = contract
        super().__init__(out, roi, max_crops, labels=tuple(contract.labels))

    def crop(self, frame: np.ndarray) -> Region:
        region, box = frame_region(frame, self.roi)
        if self.contract.channels == 1:
            return Region(to_channels(region, self.contract, "bgr")[..., 0], box)
        return Region(to_channels(region, replace(self.contract, color="bgr"), "bgr"), box)  # BGR, as PNGs are written

    def settings(self) -> dict:
        return {"crop": "image", "saved": "the whole frame or ROI, unresized (export/validate --data resize it by the contract)",
                "channels": self.contract.channels, "labels": list(self.labels), "roi": list(self.roi) if self.roi else None}


# -- the crop a frame gives ---------------------------------------------------------------------------------

def first_crop(frame: np.ndarray, roi: Box | None) -> DigitCrop | None:
    """The crop the runtime would classify in this frame, or None when no digit is in view."""
    crops = find_digits(frame, roi)
    return crops[0] if crops else None


def boxed_frame(frame: np.ndarray, crop: DigitCrop | None, thickness: int) -> np.ndarray:
    """A BGR copy of the frame with the crop's box drawn in green (none when there is no crop)."""
    img = preprocess.to_gray(frame) if frame.ndim == 2 or frame.shape[2] != 3 else frame
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    if crop is not None:
        x, y, bw, bh = crop.box
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 200, 0), thickness)
    return img
