"""Memory on a small device: a picture is sized from its header before it is decoded.

A 0.94 MB PNG of 30,000 x 30,000 grey pixels made `edgekit predict` peak at 1.88 GB resident; now it is one
line and exit 2 at the resident size of the interpreter and the model. A larger JPEG is decoded reduced inside
libjpeg and its digit still read, box in the file's pixels. A webcam source announcing frames above the limit
is refused before its first frame. Measured figures: docs/bad-inputs.md, "Pictures too large to decode".
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import cli, error_line, subprocess_env
from edgekit.runtime.errors import DataError
from edgekit.runtime.images import DEFAULT_MAX_PIXELS, image_size, read_image
from edgekit.toolkit.synthetic import camera_frame, write_video

# Peak resident memory of the refused `edgekit predict` child: measured 124 MB (interpreter, LiteRT, the model,
# the file's 0.94 MB); before the header check 1,884 MB. 400 MB is 3x the measured, 4.7x below the old peak.
MAX_REFUSAL_RSS_MB = 400


def huge_png(path: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A one-grey-level PNG, written row by row through zlib (the picture is never in memory): ~0.94 MB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * width
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def huge_png_path(tmp_path_factory) -> Path:
    return huge_png(tmp_path_factory.mktemp("huge") / "huge.png")


@pytest.fixture(scope="module")
def digit_frame(mnist):
    """A 640 x 480 camera-like frame of the first MNIST test digit (a 7), and its label."""
    frame, _ = camera_frame(mnist.x_test[0], np.random.default_rng(1))
    return frame, int(mnist.y_test[0])


# --- sizes from headers --------------------------------------------------------------------------------

@pytest.mark.parametrize("ext, kind", [(".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP"), (".tif", "TIFF"),
                                       (".webp", "WebP"), (".pgm", "PNM"), (".ppm", "PNM")])
@pytest.mark.parametrize("shape", [(37, 53), (480, 640, 3), (1, 3001)])
def test_header_size_matches_what_opencv_decodes(ext, kind, shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    if ext == ".pgm" and img.ndim == 3 or ext == ".ppm" and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if img.ndim == 3 else cv2.COLOR_GRAY2BGR)
    ok, data = cv2.imencode(ext, img)
    assert ok
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    assert image_size(data.tobytes()) == (kind, decoded.shape[1], decoded.shape[0])


def test_jpeg_frame_header_behind_a_large_exif_block():
    ok, data = cv2.imencode(".jpg", np.zeros((120, 200), np.uint8))
    data = data.tobytes()
    app1 = b"\xff\xe1" + (65533 + 2).to_bytes(2, "big") + b"Exif\x00\x00" + bytes(65527)  # 64 KB of EXIF
    padded = data[:2] + app1 + app1 + data[2:]
    assert cv2.imdecode(np.frombuffer(padded, np.uint8), cv2.IMREAD_UNCHANGED).shape == (120, 200)
    assert image_size(padded) == ("JPEG", 200, 120)


def test_header_size_of_the_30000_pixel_png(huge_png_path):
    assert huge_png_path.stat().st_size < 1_000_000
    assert image_size(huge_png_path.read_bytes()[:64]) == ("PNG", 30_000, 30_000)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"hello", b"RIFF....WEBP"])
def test_damaged_or_unknown_headers_give_no_size(data):
    assert image_size(data) is None


# --- predict -----------------------------------------------------------------------------------------

def test_predict_refuses_the_huge_png_in_one_line_and_bounded_memory(exported, huge_png_path):
    """Run in a fresh child whose only child is `edgekit predict`, so RUSAGE_CHILDREN is that process's peak."""
    model = exported / "model_int8.tflite"
    probe = (
        "import resource, subprocess, sys\n"
        f"r = subprocess.run([sys.executable, '-m', 'edgekit.toolkit.cli', 'predict', {str(model)!r}, "
        f"{str(huge_png_path)!r}], capture_output=True, text=True)\n"
        "sys.stderr.write(r.stderr)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=subprocess_env(), timeout=300)
    code, peak_kb = map(int, done.stdout.split())
    done.returncode = code
    line = error_line(done, 2)
    assert "30,000 x 30,000 pixels" in line and "--max-pixels" in line, line
    assert 0 < peak_kb / 1024 < MAX_REFUSAL_RSS_MB, f"peak RSS {peak_kb / 1024:.0f} MB"


def test_predict_reads_a_large_jpeg_reduced_with_its_box_in_file_pixels(exported, digit_frame, tmp_path):
    frame, label = digit_frame
    big = cv2.resize(frame, (3200, 2400), interpolation=cv2.INTER_LINEAR)  # 7.7 MP
    path = tmp_path / "big.jpg"
    assert cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    model = exported / "model_int8.tflite"

    full = cli("predict", model, path, "--json")
    reduced = cli("predict", model, path, "--json", "--max-pixels", 1_000_000)  # 3200 x 2400 / 4 = 0.48 MP fits
    assert full.exit_code == 0 and reduced.exit_code == 0, (full.stderr, reduced.stderr)
    import json

    a, b = json.loads(full.stdout), json.loads(reduced.stdout)
    assert a["digit"] == b["digit"] == label
    # The box of the reduced decode is in the file's pixels: within a few reduced pixels of the full decode's.
    assert np.abs(np.array(a["box"]) - np.array(b["box"])).max() <= 4 * 4, (a["box"], b["box"])
    assert max(b["box"][0] + b["box"][2], a["box"][0] + a["box"][2]) > 1000  # not the reduced image's pixels

    img, factor = read_image(path, 1_000_000)
    assert factor == 4 and img.shape == (600, 800)


def test_a_large_png_is_refused_and_raising_the_limit_reads_it(exported, digit_frame, tmp_path):
    frame, label = digit_frame
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), cv2.resize(frame, (1600, 1200)))
    model = exported / "model_int8.tflite"
    line = error_line(cli("predict", model, path, "--max-pixels", 1_000_000), 2)
    assert "1,600 x 1,200 pixels" in line and "limit of 1,000,000 pixels" in line, line
    ok = cli("predict", model, path, "--max-pixels", 2_000_000)
    assert ok.exit_code == 0 and f": {label} (" in ok.stdout, ok.stdout
    with pytest.raises(DataError, match="above the limit"):
        read_image(path, 1_000_000)


def test_the_environment_variable_sets_the_limit(exported, digit_frame, tmp_path):
    frame, _ = digit_frame
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), frame)
    model = exported / "model_int8.tflite"
    env = {**subprocess_env(), "EDGEKIT_MAX_IMAGE_PIXELS": "100000"}
    done = subprocess.run([sys.executable, "-m", "edgekit.toolkit.cli", "predict", str(model), str(path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert "640 x 480 pixels" in error_line(done, 2)
    env["EDGEKIT_MAX_IMAGE_PIXELS"] = "many"
    done = subprocess.run([sys.executable, "-m", "edgekit.toolkit.cli", "predict", str(model), str(path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert "EDGEKIT_MAX_IMAGE_PIXELS" in error_line(done, 2)
    assert DEFAULT_MAX_PIXELS >= 8000 * 6000  # a 48 MP phone photo is read (test_api_inputs.py::test_very_large_frame)


# --- webcam ------------------------------------------------------------------------------------------

def test_webcam_refuses_a_source_announcing_frames_above_the_limit(exported, digit_frame, tmp_path):
    frame, _ = digit_frame
    video = write_video(tmp_path / "v.avi", [frame] * 3)
    model = exported / "model_int8.tflite"
    line = error_line(cli("webcam", "--model", model, "--source", video, "--headless", "--max-pixels", 100_000), 2)
    assert "640 x 480 pixels" in line and "limit of 100,000 pixels" in line, line
    ok = cli("webcam", "--model", model, "--source", video, "--headless", "--max-frames", 2)
    assert ok.exit_code == 0 and ok.stdout.count('"frame"') == 2, ok.stderr


def test_webcam_refuses_the_huge_png_as_a_source_from_its_header(exported, huge_png_path):
    line = error_line(cli("webcam", "--model", exported / "model_int8.tflite", "--source", huge_png_path, "--headless"), 2)
    assert "30,000 x 30,000 pixels" in line, line
