"""What a frame loop does with its frames, for a person watching: ``Pacer`` plays a video file at its own frame
rate, ``LiveView`` sends each of ``camera.run_loop``'s results to its sinks (JSON lines, a web view's hub, a
window). ``edgekit webcam`` runs ``run_loop`` with a ``LiveView``; ``edgekit collect --serve`` runs the same loop
(``camera.frame_loop``) and paces its frames with the same ``Pacer``. numpy and cv2 only.
"""

from __future__ import annotations

import json
import time

import cv2

from edgekit.runtime.camera import FrameResult, FrameSource, annotate
from edgekit.runtime.preprocess import Box


class Pacer:
    """Plays a video file at its own frame rate where someone watches it (a window, the web page); a camera or a
    stream sets its own pace, and an unwatched run (JSON lines) goes flat out. ``wait()`` before each frame."""

    def __init__(self, source: FrameSource, watched: bool = True):
        fps = getattr(source, "fps", 0)
        self.period = 1.0 / fps if watched and fps and not source.live else 0.0
        self._next = time.monotonic()

    def wait(self) -> None:
        if self.period:
            self._next += self.period
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def restart(self) -> None:
        """Count from now: after a pause (the labelling page deciding), the next frame is not hurried."""
        self._next = time.monotonic()


class LiveView:
    """``run_loop``'s ``on_result`` for a live view: paced, then each result to its sinks — a JSON line on
    ``json_out``, the annotated frame to a web view's ``hub`` (``serve.FrameHub``) and/or a window (q, Esc or
    closing it stops the loop). ``close()`` closes the window."""

    WINDOW = "edgekit webcam"
    JPEG_QUALITY = 80

    def __init__(self, pacer: Pacer, json_out=None, hub=None, window: bool = False, roi: Box | None = None):
        self.pacer, self.json_out, self.hub, self.window, self.roi = pacer, json_out, hub, window, roi

    def __call__(self, result: FrameResult) -> bool:
        self.pacer.wait()
        if self.json_out is not None:
            self.json_out.write(json.dumps(result.to_dict()) + "\n")
            self.json_out.flush()
        if self.hub is None and not self.window:
            return False
        img = annotate(result, self.roi)
        if self.hub is not None:
            ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.JPEG_QUALITY])
            if ok:
                self.hub.publish(jpeg.tobytes(), result.to_dict())
        if self.window:
            if result.index == 0:  # a plain window: no Qt toolbar, sized to the frame
                cv2.namedWindow(self.WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
            cv2.imshow(self.WINDOW, img)
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), 27) or cv2.getWindowProperty(self.WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                return True
        return False

    def close(self) -> None:
        if self.window:
            cv2.destroyAllWindows()
