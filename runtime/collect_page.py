"""The labelling page (``edgekit collect --serve``, a Pi without a screen): ``collect_served`` shows each frame and
its crop on the page through the server's hub, and ``LabelDesk`` holds the crops the page may still label and
saves what it posts (``/label``) into the store.

Part of collecting (``edgekit.runtime.collect``, which re-exports these names). numpy and cv2 only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edgekit.runtime.camera import FrameSource, frame_loop
from edgekit.runtime.contract import LABELS
from edgekit.runtime.digit_store import DigitStore, SourceTally, boxed_frame, source_name
from edgekit.runtime.live_view import Pacer
from edgekit.runtime.preprocess import DigitCrop

PAGE = Path(__file__).with_name("collect.html")  # the labelling page (beside this module)
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
    img = boxed_frame(frame, crop, max(2, round(frame.shape[0] / 240)))
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
    skips it (as the window waits for a key). Runs on ``camera.frame_loop``, paced by ``live_view.Pacer`` as
    ``edgekit webcam`` is; the source is released whatever happens."""
    tally = SourceTally(source.name, name or source_name(source.name))
    store.tallies.append(tally)
    pacer = Pacer(source)
    shown = 0

    def show(frame: np.ndarray, _captured: float, _dropped: int) -> bool:
        nonlocal shown
        if store.full or stopped():
            return True
        tally.frames += 1
        crop = store.crop(frame)
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
            pacer.restart()
        else:
            pacer.wait()
        tally.skipped = shown - tally.saved
        return False

    try:
        frame_loop(source, show)
    finally:
        tally.skipped = shown - tally.saved
    return tally
