"""The ``--source`` grammar, read in one place: what a source text names.

    0, 1, ...            a camera index (OpenCV; /dev/videoN on Linux)
    /dev/video0          a V4L2 device
    rtsp://..., http://  a stream URL
    picamera2            the Raspberry Pi camera through libcamera's picamera2
    anything else        a file: a video, or an image (``edgekit collect`` reads image files and folders itself)

Standard library only, so the CLI can read a source before OpenCV is imported. ``camera.open_source`` opens one.
"""

from __future__ import annotations

import enum


class SourceKind(str, enum.Enum):
    INDEX = "index"
    DEVICE = "device"
    URL = "url"
    PICAMERA2 = "picamera2"
    FILE = "file"

    @property
    def live(self) -> bool:
        """A camera or a stream: frames come at the source's pace, and one lost is not the end."""
        return self is not SourceKind.FILE


def source_kind(spec: str | int) -> SourceKind:
    """What ``spec`` (as typed after ``--source``, white space stripped) names."""
    text = str(spec).strip()
    if text == "picamera2":
        return SourceKind.PICAMERA2
    if text.isdigit():
        return SourceKind.INDEX
    if text.startswith("/dev/"):
        return SourceKind.DEVICE
    if "://" in text:
        return SourceKind.URL
    return SourceKind.FILE
