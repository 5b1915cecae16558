"""Frame sources and the camera loop: frames in, one ``FrameResult`` per frame out.

Sources: a camera index (``0``), a V4L2 device (``/dev/video0``), a video or image file, a stream URL
(``rtsp://``, ``http://``), the Raspberry Pi camera through picamera2 (``picamera2``), or any iterable of
numpy frames (tests, a custom capture). Whatever the source, ``run_loop`` releases it in a ``finally``.

Failures: a source that cannot be opened raises CameraError (one line). A camera whose reads fail is retried
a few times and then the loop raises CameraError; a file that ends simply ends the loop. Reads are bounded
by OpenCV's open/read timeouts, so a vanished network camera ends the loop instead of hanging it.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

import cv2
import numpy as np

from edgekit.runtime.classifier import NO_DIGIT, Classifier, Prediction
from edgekit.runtime.errors import BackendMissingError, CameraError, DataError
from edgekit.runtime.images import image_size, max_pixels_from_env, too_large
from edgekit.runtime.preprocess import Box, _to_uint8

READ_RETRIES = 5  # failed reads in a row before a live camera counts as lost
RETRY_DELAY = 0.1  # seconds between those retries
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000


class FrameSource(Protocol):
    """Where frames come from. ``read`` returns a frame, or None for a failed read."""

    name: str
    live: bool  # a camera or stream (a failed read is retried, then an error); False for files (a failed read is the end)

    def read(self) -> np.ndarray | None: ...

    def release(self) -> None: ...


class OpenCVSource:
    """cv2.VideoCapture on a camera index, a /dev/videoN device, a video file or a stream URL."""

    def __init__(self, spec: str, max_pixels: int | None = None):
        self.name = spec
        self.max_pixels = max_pixels_from_env() if max_pixels is None else max_pixels
        is_url = "://" in spec
        if spec.isdigit():
            target, self.live = int(spec), True
            if sys.platform.startswith("linux") and not Path(f"/dev/video{spec}").exists():
                raise CameraError(f"cannot open camera {spec}: /dev/video{spec} does not exist; list cameras with `ls /dev/video*`")
        elif spec.startswith("/dev/"):
            target, self.live = spec, True
            if not Path(spec).exists():
                raise CameraError(f"cannot open camera {spec}: no such device; list cameras with `ls /dev/video*`")
        elif is_url:
            target, self.live = spec, True
        else:
            target, self.live = spec, False
            if not Path(spec).is_file():
                raise CameraError(f"cannot open video source {spec}: no such file, camera index, /dev/videoN or URL")
            _refuse_huge_image_file(spec, self.max_pixels)  # OpenCV would decode an image file while opening it
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        self.capture = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        if not self.capture.isOpened():
            self.capture.release()
            hint = (
                "check that the camera is connected, not used by another program, and that you may read it (group video)"
                if self.live and not is_url
                else "check the address and that the stream is up" if is_url else "is it a video OpenCV can decode?"
            )
            raise CameraError(f"cannot open video source {spec}: {hint}")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else 0.0
        width, height = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > self.max_pixels:  # what the source announces, before its first frame is decoded
            self.capture.release()
            self._refuse(width, height)

    def _refuse(self, width: int, height: int):
        line = too_large(f"{self.name}: its frame", width, height, self.max_pixels)
        raise CameraError(line) if self.live else DataError(line)

    def read(self) -> np.ndarray | None:
        ok, frame = self.capture.read()
        if ok and frame is not None and frame.ndim >= 2 and frame.shape[0] * frame.shape[1] > self.max_pixels:
            self._refuse(frame.shape[1], frame.shape[0])  # a stream that grows after it opened
        return frame if ok and frame is not None and frame.size else None

    def release(self) -> None:
        self.capture.release()


class Picamera2Source:
    """The Raspberry Pi camera through libcamera's picamera2 (imported only when asked for)."""

    live = True

    def __init__(self, size: tuple[int, int] = (640, 480)):
        self.name = "picamera2"
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError:
            raise BackendMissingError(
                "--source picamera2 needs picamera2: sudo apt install python3-picamera2 (Raspberry Pi OS), "
                "or use --source 0 for a USB camera"
            ) from None
        try:
            self.camera = Picamera2()
            # "RGB888" is laid out B, G, R in memory: what OpenCV calls BGR.
            self.camera.configure(self.camera.create_video_configuration(main={"size": size, "format": "RGB888"}))
            self.camera.start()
        except Exception as e:  # libcamera reports a missing/busy camera with its own exception types
            raise CameraError(f"cannot open the Pi camera through picamera2: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None

    def read(self) -> np.ndarray | None:
        try:
            return self.camera.capture_array()
        except Exception:
            return None

    def release(self) -> None:
        try:
            self.camera.stop()
        finally:
            self.camera.close()


class IterSource:
    """Frames from any iterable (a list of arrays, a generator); ``None`` items are failed reads."""

    def __init__(self, frames: Iterable[np.ndarray | None], name: str = "frames", live: bool = False):
        self._it = iter(frames)
        self.name, self.live = name, live
        self.released = False

    def read(self) -> np.ndarray | None:
        return next(self._it, None)

    def release(self) -> None:
        self.released = True


def _refuse_huge_image_file(path: str, max_pixels: int) -> None:
    """An image file given as a video source is sized from its header before OpenCV decodes it."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return  # VideoCapture reports it
    size = image_size(head)
    if size is not None and size[1] * size[2] > max_pixels:
        raise DataError(too_large(f"{path}: a {size[0]}", size[1], size[2], max_pixels))


def open_source(spec: str | int, max_pixels: int | None = None) -> FrameSource:
    """A frame source from the ``--source`` text: 0, /dev/video0, a file, a URL or ``picamera2``; frames above
    ``max_pixels`` (default: ``$EDGEKIT_MAX_IMAGE_PIXELS``, else 64 MP) are refused."""
    spec = str(spec).strip()
    if spec == "picamera2":
        return Picamera2Source()
    if not spec:
        raise CameraError("--source is empty; give a camera index (0), /dev/videoN, a video file, a URL or picamera2")
    return OpenCVSource(spec, max_pixels)


@dataclass(frozen=True)
class FrameResult:
    """What the loop saw in one frame."""

    index: int
    frame: np.ndarray
    prediction: Prediction
    fps: float
    latency_ms: float

    def to_dict(self) -> dict:
        return {"frame": self.index, **self.prediction.to_dict(), "fps": round(self.fps, 1), "latency_ms": round(self.latency_ms, 2)}


@dataclass
class LoopEnd:
    """Why the loop stopped: ``frames`` read, and a one-line ``reason``."""

    frames: int
    reason: str


def frames_with_retries(source: FrameSource, retries: int = READ_RETRIES, delay: float = RETRY_DELAY,
                        end: LoopEnd | None = None) -> Iterator[np.ndarray]:
    """Frames from ``source``; a live source's failed read is retried ``retries`` times, then CameraError."""
    failures = delivered = 0
    while True:
        frame = source.read()
        if frame is not None:
            failures = 0
            delivered += 1
            yield frame
            continue
        if not source.live:
            if not delivered:  # OpenCV "opens" some files it cannot decode (a text file named .png)
                raise CameraError(f"{source.name}: not a single frame could be read; is it a video or image OpenCV can decode?")
            if end is not None:
                end.reason = f"end of {source.name}"
            return
        failures += 1
        if failures > retries:
            raise CameraError(f"{source.name} stopped delivering frames ({retries + 1} failed reads in a row); check the camera and its cable")
        time.sleep(delay)


def run_loop(
    source: FrameSource,
    classifier: Classifier,
    on_result: Callable[[FrameResult], bool | None],
    roi: Box | None = None,
    max_frames: int | None = None,
    retries: int = READ_RETRIES,
    retry_delay: float = RETRY_DELAY,
) -> LoopEnd:
    """Classify frames until the source ends, ``max_frames`` are done or ``on_result`` returns True (stop).

    The source is always released, whatever happens (errors, Ctrl-C). Raises CameraError when a live
    source stops delivering frames."""
    end = LoopEnd(0, "")
    stamps: deque[float] = deque(maxlen=30)
    try:
        for frame in frames_with_retries(source, retries, retry_delay, end):
            start = time.perf_counter()
            prediction = classifier.classify(frame, roi=roi)
            now = time.perf_counter()
            stamps.append(now)
            fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
            end.frames += 1
            stop = on_result(FrameResult(end.frames - 1, frame, prediction, fps, (now - start) * 1000.0))
            if stop:
                end.reason = "stopped"
                break
            if max_frames is not None and end.frames >= max_frames:
                end.reason = f"--max-frames {max_frames} reached"
                break
    finally:
        source.release()
    return end


# -- drawing ------------------------------------------------------------------------------------------


def annotate(result: FrameResult, roi: Box | None = None) -> np.ndarray:
    """A BGR uint8 copy of the frame with the digit's box, the digit, its confidence and the FPS drawn on it
    (and the region of interest, if any, in grey)."""
    f = result.frame
    if f.dtype != np.uint8:
        f = _to_uint8(f)
    img = cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 or f.shape[2] == 1 else (
        cv2.cvtColor(f, cv2.COLOR_BGRA2BGR) if f.shape[2] == 4 else f.copy()
    )
    h, w = img.shape[:2]
    s = max(0.5, min(w, h) / 480)
    th = max(1, round(2 * s))
    p = result.prediction
    if roi is not None:
        rx, ry, rw, rh = roi
        cv2.rectangle(img, (rx, ry), (rx + rw, ry + rh), (160, 160, 160), max(1, th - 1))
    if p.digit is not None and p.box is not None:
        x, y, bw, bh = p.box
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 200, 0), th)
        label = f"{p.digit}  {p.confidence * 100:.0f}%"
        cv2.putText(img, label, (x, max(int(30 * s), y - int(8 * s))), cv2.FONT_HERSHEY_SIMPLEX, 1.0 * s, (0, 0, 0), th + 2)
        cv2.putText(img, label, (x, max(int(30 * s), y - int(8 * s))), cv2.FONT_HERSHEY_SIMPLEX, 1.0 * s, (0, 230, 0), th)
    else:
        cv2.putText(img, "no digit", (int(10 * s), h - int(12 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * s, (0, 0, 0), th + 2)
        cv2.putText(img, "no digit", (int(10 * s), h - int(12 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * s, (0, 200, 255), th)
    fps = f"{result.fps:.1f} FPS  {result.latency_ms:.1f} ms"
    cv2.putText(img, fps, (int(10 * s), int(28 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * s, (0, 0, 0), th + 2)
    cv2.putText(img, fps, (int(10 * s), int(28 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * s, (255, 255, 255), th)
    return img


__all__ = [
    "FrameResult", "FrameSource", "IterSource", "LoopEnd", "NO_DIGIT", "OpenCVSource", "Picamera2Source",
    "annotate", "frames_with_retries", "open_source", "run_loop",
]
