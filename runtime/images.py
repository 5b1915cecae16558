"""Image files for ``edgekit predict``: sized from their header before anything is decoded, so memory stays bounded.

A small file can hold a huge picture: a 0.95 MB PNG of one grey level can be 30,000 x 30,000 pixels, and
decoding it made ``edgekit predict`` peak at 1.86 GB resident — the OOM killer on a Raspberry Pi, not an error
line. So the width and height are read from the header (PNG, JPEG, BMP, TIFF, WebP, GIF, PNM/PAM/PFM) first:

- at most ``max_pixels`` (``DEFAULT_MAX_PIXELS``, or ``$EDGEKIT_MAX_IMAGE_PIXELS``): decoded as it is;
- a larger JPEG is decoded reduced by 2, 4 or 8 inside libjpeg (``cv2.IMREAD_REDUCED_*``: the full picture is
  never in memory), the smallest reduction that fits. The digit is still read — the analysis looks at a frame at
  most 320 px wide anyway — and the caller scales the box back with the returned factor;
- anything else larger is refused with ``DataError`` (one line) before decoding.

Formats whose header is not read here (JPEG 2000, OpenEXR, Radiance HDR, ...) are left to OpenCV's own limit
(``OPENCV_IO_MAX_IMAGE_PIXELS``, 2^30 pixels unless set before OpenCV is loaded).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np

from edgekit.runtime.errors import DataError, OptionsError

ENV_MAX_PIXELS = "EDGEKIT_MAX_IMAGE_PIXELS"
# 64 million pixels: an 8000 x 8000 photo, beyond every phone camera's full resolution (48-50 MP).
# Peak resident memory of `edgekit predict` measured at this size (docs/bad-inputs.md): 8000 x 6000 grey PNG
# 0.22 GB, colour 0.42 GB; 8000 x 8000 colour PNG 0.52 GB.
DEFAULT_MAX_PIXELS = 64_000_000
REDUCTIONS = (2, 4, 8)  # what libjpeg can do while decoding (cv2.IMREAD_REDUCED_*)
# The image files edgekit reads (predict, collect, a digit folder): what OpenCV decodes that a camera or scanner
# writes. One list, so a folder `predict` reads is a folder `collect` and training read too.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pbm", ".tif", ".tiff", ".webp")


def max_pixels_from_env() -> int:
    """``$EDGEKIT_MAX_IMAGE_PIXELS`` if set (a positive integer; OptionsError otherwise), else the default."""
    text = os.environ.get(ENV_MAX_PIXELS, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise OptionsError(f"{ENV_MAX_PIXELS}={os.environ[ENV_MAX_PIXELS]!r}: expected a positive number of pixels")
    return int(text)


# -- sizes from headers -----------------------------------------------------------------------------------


def _png(b: bytes):
    if b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR" and len(b) >= 24:
        return struct.unpack(">II", b[16:24])
    return None


def _jpeg(b: bytes):
    if b[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # standalone markers, no length
            i += 2
            continue
        (length,) = struct.unpack(">H", b[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0..SOF15: the frame header
            if i + 9 > len(b):
                return None
            height, width = struct.unpack(">HH", b[i + 5 : i + 9])
            return width, height
        if marker == 0xDA or length < 2:  # image data before any frame header: not a JPEG we can size
            return None
        i += 2 + length
    return None


def _bmp(b: bytes):
    if b[:2] != b"BM" or len(b) < 26:
        return None
    (dib,) = struct.unpack("<I", b[14:18])
    if dib == 12:
        return struct.unpack("<HH", b[18:22])
    width, height = struct.unpack("<ii", b[18:26])
    return abs(width), abs(height)


def _gif(b: bytes):
    return struct.unpack("<HH", b[6:10]) if b[:6] in (b"GIF87a", b"GIF89a") and len(b) >= 10 else None


def _webp(b: bytes):
    if b[:4] != b"RIFF" or b[8:12] != b"WEBP" or len(b) < 30:
        return None
    chunk = b[12:16]
    if chunk == b"VP8 " and b[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and b[20] == 0x2F:
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    return None


def _tiff(b: bytes):
    if b[:4] == b"II*\x00":
        e = "<"
    elif b[:4] == b"MM\x00*":
        e = ">"
    else:
        return None
    try:
        (ifd,) = struct.unpack(e + "I", b[4:8])
        (count,) = struct.unpack(e + "H", b[ifd : ifd + 2])
        found = {}
        for k in range(count):
            entry = b[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
            tag, kind = struct.unpack(e + "HH", entry[:4])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
                found[tag] = struct.unpack(e + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
        return (found[256], found[257]) if len(found) == 2 else None
    except (struct.error, KeyError):
        return None


_PNM = re.compile(rb"\A(P[1-6]|P[Ff])((?:\s+|#[^\n]*\n)+)(\d+)((?:\s+|#[^\n]*\n)+)(\d+)")


def _pnm(b: bytes):
    head = b[:4096]
    m = _PNM.match(head)
    if m:
        return int(m.group(3)), int(m.group(5))
    if head[:3] == b"P7\n":  # PAM
        w, h = re.search(rb"\nWIDTH\s+(\d+)", head), re.search(rb"\nHEIGHT\s+(\d+)", head)
        return (int(w.group(1)), int(h.group(1))) if w and h else None
    return None


_READERS = {"PNG": _png, "JPEG": _jpeg, "BMP": _bmp, "GIF": _gif, "WebP": _webp, "TIFF": _tiff, "PNM": _pnm}


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) read from an image file's bytes without decoding, or None if the header is not
    one of PNG, JPEG, BMP, GIF, WebP, TIFF, PNM/PAM/PFM (or is damaged)."""
    for name, reader in _READERS.items():
        size = reader(data)
        if size is not None:
            return name, int(size[0]), int(size[1])
    return None


def too_large(what: str, width: int, height: int, max_pixels: int) -> str:
    """The one line for a picture above the limit."""
    return (f"{what} is {width:,} x {height:,} pixels ({width * height / 1e6:,.1f} MP), above the "
            f"limit of {max_pixels:,} pixels that keeps memory bounded; shrink it, or raise the limit with "
            f"--max-pixels N or {ENV_MAX_PIXELS}=N")


# -- decoding ---------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[np.ndarray, int]:
    """An image file decoded at its own depth and channels (transparency laid on white paper), and the factor
    (1, 2, 4 or 8) by which it was decoded reduced: pixel (x, y) of the result is (x * f, y * f) in the file.

    Raises DataError (one line) for a folder, an unreadable or undecodable file, or a picture above
    ``max_pixels`` (default: ``max_pixels_from_env()``) that cannot be decoded reduced.
    """
    import cv2

    path = Path(path)
    limit = max_pixels_from_env() if max_pixels is None else max_pixels
    if path.is_dir():
        raise DataError("folder holds no images (.png, .jpg, .bmp, .pgm, .tif, .webp)")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DataError(e.strerror or str(e)) from None
    factor, flags = 1, cv2.IMREAD_UNCHANGED
    size = image_size(data.tobytes()) if data.size else None  # the whole file: a JPEG's frame header may sit behind EXIF
    if size is not None:
        kind, width, height = size
        if width * height > limit:
            fits = [f for f in REDUCTIONS if -(-width // f) * -(-height // f) <= limit]
            if kind != "JPEG" or not fits:
                raise DataError(too_large(f"a {kind}", width, height, limit))
            factor = fits[0]
            flags = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[factor]
    try:
        img = cv2.imdecode(data, flags) if data.size else None
    except cv2.error:  # OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS) on a format sized only by OpenCV
        raise DataError(f"too large for OpenCV to decode (its OPENCV_IO_MAX_IMAGE_PIXELS limit)") from None
    if img is None:
        raise DataError("not an image OpenCV can decode")
    if img.ndim == 3 and img.shape[2] == 4:
        top = 65535.0 if img.dtype == np.uint16 else 255.0
        alpha = img[..., 3:].astype(np.float32) / top
        img = (img[..., :3].astype(np.float32) * alpha + top * (1.0 - alpha)).astype(img.dtype)
    return img, factor


__all__ = ["DEFAULT_MAX_PIXELS", "ENV_MAX_PIXELS", "image_size", "max_pixels_from_env", "read_image", "too_large"]
