"""Frame sources and the camera loop: frames in, one ``FrameResult`` per frame out.

Sources: a camera index (``0``), a V4L2 device (``/dev/video0``), a video or image file, a stream URL
(``rtsp://``, ``http://``), the Raspberry Pi camera through picamera2 (``picamera2``), or any iterable of
numpy frames (tests, a custom capture). Whatever the source, ``frame_loop`` releases it in a ``finally``: the
one loop ``run_loop`` (classifying, ``edgekit webcam``) and the collecting loops (``edgekit collect``) run on.

A live camera is read on its own thread, which keeps only the newest frame: the loop always classifies the
latest picture, however long classifying takes, instead of working through frames that queued up in the
driver's buffer while it was busy (the picture on screen lagging further and further behind). The frames it
never got to are counted as dropped. A video file (or an iterable) is still read frame by frame, in order.

Failures: a source that cannot be opened raises CameraError (one line). A camera whose reads fail is retried
a few times and then the loop raises CameraError; a file that ends simply ends the loop. Reads are bounded
by OpenCV's open/read timeouts, so a vanished network camera ends the loop instead of hanging it.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

import cv2
import numpy as np

from edgekit.runtime.classifier import NO_DIGIT, Classifier, Prediction
from edgekit.runtime.errors import BackendMissingError, CameraError, DataError, first_line
from edgekit.runtime.images import image_size, max_pixels_from_env, too_large
from edgekit.runtime.preprocess import Box, to_uint8
from edgekit.runtime.sources import SourceKind, source_kind

READ_RETRIES = 5  # failed reads in a row before a live camera counts as lost
RETRY_DELAY = 0.1  # seconds between those retries
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000


class FrameSource(Protocol):
    """Where frames come from. ``read`` returns a frame, or None for a failed read."""

    name: str
    live: bool  # a camera or stream (a failed read is retried, then an error); False for files (a failed read is the end)
    # Optional ``realtime`` (default: ``live``): frames arrive at the source's own pace whether or not they are read,
    # so the loop reads them on a thread and classifies the newest; False reads every frame in turn.

    def read(self) -> np.ndarray | None: ...

    def release(self) -> None: ...


class OpenCVSource:
    """cv2.VideoCapture on a camera index, a /dev/videoN device, a video file or a stream URL."""

    def __init__(self, spec: str, max_pixels: int | None = None):
        self.name = spec
        self.max_pixels = max_pixels_from_env() if max_pixels is None else max_pixels
        kind = source_kind(spec)
        target, self.live = (int(spec) if kind is SourceKind.INDEX else spec), kind.live
        if kind is SourceKind.INDEX:
            if sys.platform.startswith("linux") and not Path(f"/dev/video{spec}").exists():
                raise CameraError(f"cannot open camera {spec}: /dev/video{spec} does not exist; list cameras with `ls /dev/video*`")
        elif kind is SourceKind.DEVICE:
            if not Path(spec).exists():
                raise CameraError(f"cannot open camera {spec}: no such device; list cameras with `ls /dev/video*`")
        elif kind is SourceKind.FILE:
            if not Path(spec).is_file():
                raise CameraError(f"cannot open video source {spec}: no such file, camera index, /dev/videoN or URL")
            _refuse_huge_image_file(spec, self.max_pixels)  # OpenCV would decode an image file while opening it
        self.realtime = self.live
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        self.capture = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        if not self.capture.isOpened():
            self.capture.release()
            hint = (
                "check that the camera is connected, not used by another program, and that you may read it (group video)"
                if self.live and kind is not SourceKind.URL
                else "check the address and that the stream is up" if kind is SourceKind.URL
                else "is it a video OpenCV can decode?"
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

    live = realtime = True

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
            raise CameraError(f"cannot open the Pi camera through picamera2: {first_line(e)}") from None

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
    """Frames from any iterable (a list of arrays, a generator); ``None`` items are failed reads. Read frame by
    frame unless ``realtime`` (a generator that paces itself like a camera)."""

    def __init__(self, frames: Iterable[np.ndarray | None], name: str = "frames", live: bool = False, realtime: bool = False):
        self._it = iter(frames)
        self.name, self.live, self.realtime = name, live, realtime
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
    if source_kind(spec) is SourceKind.PICAMERA2:
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
    latency_ms: float  # classifying this frame
    capture_to_result_ms: float = 0.0  # from the moment the frame was read off the source to its prediction
    dropped: int = 0  # frames the camera delivered that the loop skipped for newer ones, so far

    def to_dict(self) -> dict:
        return {"frame": self.index, **self.prediction.to_dict(), "fps": round(self.fps, 1), "latency_ms": round(self.latency_ms, 2),
                "capture_to_result_ms": round(self.capture_to_result_ms, 2), "dropped": self.dropped}


@dataclass
class LoopEnd:
    """Why the loop stopped: ``frames`` classified, a one-line ``reason``, and the frames ``dropped`` for newer ones."""

    frames: int
    reason: str
    dropped: int = 0


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


class NewestFrame:
    """Reads a realtime source on its own thread and hands out only the newest frame.

    ``take()`` waits for a frame newer than the last one taken and returns it with the time it was read
    (``time.perf_counter``) and how many frames it skipped, or None when the source has ended. A failed live
    camera's CameraError (after its retries) is raised by ``take()`` in the caller's thread. ``close()`` stops the
    thread and waits for it (at most one read, itself bounded by OpenCV's read timeout); then the source may be
    released."""

    def __init__(self, source: FrameSource, retries: int = READ_RETRIES, delay: float = RETRY_DELAY, end: LoopEnd | None = None):
        self._source, self._retries, self._delay, self._end = source, retries, delay, end
        self._ready = threading.Condition()
        self._newest: tuple[np.ndarray, float] | None = None
        self._read = self._taken = 0
        self._error: BaseException | None = None
        self._done = False
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"edgekit-read {source.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for frame in frames_with_retries(self._source, self._retries, self._delay, self._end):
                now = time.perf_counter()
                with self._ready:
                    self._newest, self._read = (frame, now), self._read + 1
                    self._ready.notify()
                if self._stop.is_set():
                    break
        except BaseException as e:  # handed to the loop's thread, which raises it
            self._error = e
        finally:
            with self._ready:
                self._done = True
                self._ready.notify()

    def take(self) -> tuple[np.ndarray, float, int] | None:
        with self._ready:
            while self._read == self._taken and not self._done:
                self._ready.wait(0.5)  # a timeout, so Ctrl-C is seen promptly
            if self._read > self._taken:
                skipped, self._taken = self._read - self._taken - 1, self._read
                frame, captured = self._newest
                self._newest = None  # the loop holds it now; nothing older stays alive
                return frame, captured, skipped
            if self._error is not None:
                raise self._error
            return None

    def close(self, timeout: float = READ_TIMEOUT_MS / 1000 + 1.0) -> None:
        self._stop.set()
        self.thread.join(timeout)


def _in_turn(source: FrameSource, retries: int, delay: float, end: LoopEnd) -> Iterator[tuple[np.ndarray, float, int]]:
    for frame in frames_with_retries(source, retries, delay, end):
        yield frame, time.perf_counter(), 0


def frame_loop(
    source: FrameSource,
    on_frame: Callable[[np.ndarray, float, int], bool | None],
    max_frames: int | None = None,
    retries: int = READ_RETRIES,
    retry_delay: float = RETRY_DELAY,
) -> LoopEnd:
    """The frame loop ``edgekit webcam`` (``run_loop``) and ``edgekit collect`` both run on: ``on_frame(frame,
    captured, dropped)`` for each frame until the source ends, ``max_frames`` are done or ``on_frame`` returns True
    (stop). ``captured`` is when the frame was read off the source (``time.perf_counter``), ``dropped`` how many
    frames were skipped for newer ones so far.

    A realtime source (a camera: ``source.realtime``, else ``source.live``) is read on its own thread and the loop
    takes the newest frame each time (``NewestFrame``); others are read frame by frame. The reading thread
    is stopped and the source released whatever happens (errors, Ctrl-C). Raises CameraError when a live source
    stops delivering frames."""
    end = LoopEnd(0, "")
    reader = NewestFrame(source, retries, retry_delay, end) if getattr(source, "realtime", source.live) else None
    frames = iter(reader.take, None) if reader is not None else _in_turn(source, retries, retry_delay, end)
    try:
        for frame, captured, skipped in frames:
            end.dropped += skipped
            end.frames += 1
            if on_frame(frame, captured, end.dropped):
                end.reason = "stopped"
                break
            if max_frames is not None and end.frames >= max_frames:
                end.reason = f"--max-frames {max_frames} reached"
                break
    finally:
        if reader is not None:
            reader.close()
        source.release()
    return end


def run_loop(
    source: FrameSource,
    classifier: Classifier,
    on_result: Callable[[FrameResult], bool | None],
    roi: Box | None = None,
    max_frames: int | None = None,
    retries: int = READ_RETRIES,
    retry_delay: float = RETRY_DELAY,
) -> LoopEnd:
    """Classify frames until the source ends, ``max_frames`` are done or ``on_result`` returns True (stop):
    ``frame_loop`` with the classifier, the frame rate and the latencies in each ``FrameResult``."""
    stamps: deque[float] = deque(maxlen=30)
    index = itertools.count()

    def classify(frame: np.ndarray, captured: float, dropped: int) -> bool | None:
        start = time.perf_counter()
        prediction = classifier.classify(frame, roi=roi)
        now = time.perf_counter()
        stamps.append(now)
        fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
        return on_result(FrameResult(next(index), frame, prediction, fps, (now - start) * 1000.0,
                                     (now - captured) * 1000.0, dropped))

    return frame_loop(source, classify, max_frames, retries, retry_delay)


# -- drawing ------------------------------------------------------------------------------------------


def annotate(result: FrameResult, roi: Box | None = None) -> np.ndarray:
    """A BGR uint8 copy of the frame with the digit's box, the digit, its confidence and the FPS drawn on it
    (and the region of interest, if any, in grey)."""
    f = result.frame
    if f.dtype != np.uint8:
        f = to_uint8(f)
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
    shown = p.label if p.label is not None else p.digit  # an image model's class name, or the digit
    if shown is not None and p.box is not None:
        x, y, bw, bh = p.box
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 200, 0), th)
        label = f"{shown}  {p.confidence * 100:.0f}%"
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
    "FrameResult", "FrameSource", "IterSource", "LoopEnd", "NO_DIGIT", "NewestFrame", "OpenCVSource", "Picamera2Source",
    "annotate", "frame_loop", "frames_with_retries", "open_source", "run_loop",
]
