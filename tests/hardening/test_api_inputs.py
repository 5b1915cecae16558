"""Wrong shapes and dtypes through the Python API, odd frames (1x1, 8000x6000, 16-bit, 4-channel, float,
all-black, all-white) through preprocessing, ``classify`` and ``edgekit predict``, and image files that are
not images (text, empty, truncated, random bytes, a model, a missing path, an empty folder)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgekit.runtime.errors import EXIT_BAD_INPUT, DataError
from edgekit.runtime.preprocess import DigitCrop, frame_to_input

from measured import check

from .conftest import cli, error_line


@pytest.fixture(scope="module", params=["model_int8.tflite", "model_float32.onnx"])
def clf(request, exported):
    from edgekit.runtime import Classifier

    return Classifier(exported / request.param)


# --- Classifier.probabilities: the model's input -----------------------------------------------------

BAD_INPUTS = {
    "one image without batch axis": np.zeros((28, 28, 1), np.float32),
    "2-d image": np.zeros((28, 28), np.float32),
    "empty batch": np.zeros((0, 28, 28, 1), np.float32),
    "three channels": np.zeros((1, 28, 28, 3), np.float32),
    "NCHW layout": np.zeros((1, 1, 28, 28), np.float32),
    "wrong size": np.zeros((1, 32, 32, 1), np.float32),
    "scalar": np.float32(0.5),
    "None": None,
    "uint8 pixels not scaled": np.full((1, 28, 28, 1), 255, np.uint8),
    "int64 list": [[[[0]] * 28] * 28],
    "text": np.full((1, 28, 28, 1), "a"),
    "objects": np.full((1, 28, 28, 1), None, dtype=object),
    "complex": np.zeros((1, 28, 28, 1), np.complex64),
    "NaN": np.full((1, 28, 28, 1), np.nan, np.float32),
    "infinity": np.full((2, 28, 28, 1), np.inf, np.float64),
    "ragged list": [np.zeros((28, 28, 1)), np.zeros((27, 28, 1))],
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_probabilities_refuses_bad_input_with_dataerror(clf, name):
    with pytest.raises(DataError) as e:
        clf.probabilities(BAD_INPUTS[name])
    assert "\n" not in str(e.value) and "model input" in str(e.value)


BAD_CROPS = {
    "one crop, not a list": lambda good: good,
    "a bare image": lambda good: [good.image],
    "a float image": lambda good: [DigitCrop(good.image.astype(np.float32), good.box)],
    "a crop of the wrong size": lambda good: [DigitCrop(good.image[:20], good.box)],
    "a string": lambda good: "0123",
    "None": lambda good: None,
}


@pytest.mark.parametrize("name", list(BAD_CROPS))
def test_classify_crops_refuses_what_is_not_a_crop_with_dataerror(clf, name):
    good = DigitCrop(np.zeros((28, 28), np.uint8), (0, 0, 28, 28))
    with pytest.raises(DataError) as e:
        clf.classify_crops(BAD_CROPS[name](good))
    assert "\n" not in str(e.value)


@pytest.mark.numeric
def test_probabilities_accepts_other_float_dtypes_and_layouts(clf, mnist):
    from edgekit.runtime.contract import to_model_input

    x = to_model_input(mnist.x_test[:5])
    want = clf.probabilities(x)
    assert want.shape == (5, 10) and want.dtype == np.float32 and np.isfinite(want).all()
    np.testing.assert_allclose(clf.probabilities(x.astype(np.float64)), want, atol=1e-6)
    name = f"api {clf.quantization} .{clf.format}"
    check(f"{name}: max |Δp| float16 vs float32 input", np.abs(clf.probabilities(x.astype(np.float16)) - want).max(),
          "<=", 0.02)
    np.testing.assert_allclose(clf.probabilities(np.asfortranarray(x)), want, atol=1e-6)
    np.testing.assert_allclose(clf.probabilities(x.tolist()), want, atol=1e-6)
    check(f"{name}: max |Δp| batch of 1 vs of 5", np.abs(clf.probabilities(x[:1]) - want[:1]).max(), "<=", 1e-6)


# --- odd frames through preprocessing and classify ---------------------------------------------------

def paper_frame(digit: np.ndarray, size=(320, 240), height=120) -> np.ndarray:
    """A clean photo-like gray uint8 frame: an MNIST digit in dark ink on light paper."""
    w, h = size
    glyph = cv2.resize(digit, (round(height * 28 / 20),) * 2, interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    frame = np.full((h, w), 235.0, np.float32)
    gh, gw = glyph.shape
    y, x = (h - gh) // 2, (w - gw) // 2
    frame[y:y + gh, x:x + gw] = frame[y:y + gh, x:x + gw] * (1 - glyph) + 25.0 * glyph
    return np.clip(frame, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def digit(mnist):
    """(frame, label) for a test digit the small model reads right from the clean frame."""
    return paper_frame(mnist.x_test[0]), int(mnist.y_test[0])


def variants(gray: np.ndarray) -> dict[str, np.ndarray]:
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    return {
        "gray uint8": gray,
        "BGR uint8": bgr,
        "BGRA uint8": cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA),
        "gray (H, W, 1)": gray[..., None],
        "16-bit gray": gray.astype(np.uint16) * 257,
        "16-bit BGR": bgr.astype(np.uint16) * 257,
        "float32 in [0, 1]": gray.astype(np.float32) / 255,
        "float64 in [0, 255]": gray.astype(np.float64),
        "BGR float32 in [0, 1]": bgr.astype(np.float32) / 255,
    }


def test_every_frame_layout_reads_the_same_digit(clf, digit):
    frame, label = digit
    for name, f in variants(frame).items():
        p = clf.classify(f)
        assert p.digit == label, (name, p)
        result = frame_to_input(f)
        assert result is not None and result[0].shape == (1, 28, 28, 1), name


def test_very_large_frame(clf, digit):
    frame, label = digit
    big = cv2.resize(frame, (8000, 6000), interpolation=cv2.INTER_LINEAR)
    p = clf.classify(big)
    assert p.digit == label, p
    x, y, w, h = p.box
    assert 0 <= x and 0 <= y and x + w <= 8000 and y + h <= 6000 and h > 1000


BLANK = [(shape, value, dtype) for shape in [(480, 640), (480, 640, 3), (480, 640, 4)]
         for value, dtype in [(0, np.uint8), (255, np.uint8), (0, np.uint16), (65535, np.uint16), (0.0, np.float32),
                              (1.0, np.float32)]]
BLANK += [((6000, 8000), 0, np.uint8), ((6000, 8000, 3), 255, np.uint8), ((6000, 8000), 65535, np.uint16)]


@pytest.mark.parametrize("shape, value, dtype", BLANK)
def test_all_black_and_all_white_frames_have_no_digit(exported, shape, value, dtype):
    from edgekit.runtime import Classifier

    frame = np.full(shape, value, dtype)
    assert frame_to_input(frame) is None
    p = Classifier(exported / "model_int8.tflite").classify(frame)
    assert p.digit is None and p.box is None and p.confidence == 0.0


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (7, 500), (500, 7, 4), (0, 0), (10, 10, 2), (10, 10, 5), (5,), ()])
def test_frames_too_small_or_oddly_shaped_are_one_dataerror(clf, shape):
    frame = np.full(shape, 128, np.uint8)
    with pytest.raises(ValueError):
        frame_to_input(frame)
    with pytest.raises(DataError) as e:
        clf.classify(frame)
    assert "\n" not in str(e.value)


# --- edgekit predict on image files ------------------------------------------------------------------

def write(path, img) -> str:
    assert cv2.imwrite(str(path), img), path
    return path


def test_predict_reads_odd_image_files(exported, digit, tmp_path):
    frame, label = digit
    files = {
        "gray.png": write(tmp_path / "gray.png", frame),
        "bgr.jpg": write(tmp_path / "bgr.jpg", cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)),
        "bgra.png": write(tmp_path / "bgra.png", cv2.cvtColor(frame, cv2.COLOR_GRAY2BGRA)),
        "16bit.png": write(tmp_path / "16bit.png", frame.astype(np.uint16) * 257),
        "16bit.tif": write(tmp_path / "16bit.tif", cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR).astype(np.uint16) * 257),
        "float.tif": write(tmp_path / "float.tif", frame.astype(np.float32) / 255),
        "big.png": write(tmp_path / "big.png", cv2.resize(frame, (8000, 6000))),
    }
    result = cli("predict", exported / "model_int8.tflite", *files.values())
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(files)
    for name, line in zip(files, lines):
        assert line.startswith(f"{files[name]}: {label} ("), (name, line)


def test_predict_blank_images_say_no_digit(exported, tmp_path):
    black = write(tmp_path / "black.png", np.zeros((480, 640), np.uint8))
    white = write(tmp_path / "white.png", np.full((480, 640, 3), 255, np.uint8))
    result = cli("predict", exported / "model_float32.onnx", black, white)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().splitlines() == [f"{black}: no digit", f"{white}: no digit"]


@pytest.fixture
def bad_images(tmp_path, digit, exported):
    """Files given to predict as images that are not readable images."""
    png = cv2.imencode(".png", digit[0])[1].tobytes()
    jpg = cv2.imencode(".jpg", digit[0])[1].tobytes()
    (tmp_path / "empty-folder").mkdir()
    files = {
        "text": ("notes.png", b"this is not an image\n"),
        "zero-byte": ("empty.png", b""),
        "truncated PNG": ("truncated.png", png[: len(png) // 3]),
        "truncated JPEG": ("truncated.jpg", jpg[: len(jpg) // 3]),
        "random bytes": ("random.jpg", np.random.default_rng(1).bytes(5000)),
        "PNG header only": ("header.png", png[:64]),
        "a model": ("model.png", (exported / "model_int8.tflite").read_bytes()[:200_000]),
    }
    paths = {}
    for kind, (name, data) in files.items():
        (tmp_path / name).write_bytes(data)
        paths[kind] = tmp_path / name
    paths["missing file"] = tmp_path / "missing.png"
    paths["empty folder"] = tmp_path / "empty-folder"
    paths["1x1 image"] = write(tmp_path / "pixel.png", np.zeros((1, 1), np.uint8))
    return paths


BAD_IMAGE_KINDS = ["text", "zero-byte", "truncated PNG", "truncated JPEG", "random bytes", "PNG header only",
                   "a model", "missing file", "empty folder", "1x1 image"]


@pytest.mark.parametrize("kind", BAD_IMAGE_KINDS)
def test_predict_bad_image_is_one_line_and_exit_2(kind, bad_images, exported):
    path = bad_images[kind]
    result = cli("predict", exported / "model_int8.tflite", path)
    line = error_line(result, EXIT_BAD_INPUT)
    assert str(path) in line
    assert result.stdout == ""


def test_predict_goes_on_after_a_bad_image(exported, bad_images, digit, tmp_path):
    good = write(tmp_path / "good.png", digit[0])
    result = cli("predict", exported / "model_int8.tflite", bad_images["text"], good, "--json")
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stderr.count("edgekit: error:") == 1 and "Traceback" not in result.stderr
    import json

    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["digit"] is None and rows[0]["error"]
    assert rows[1]["digit"] == digit[1]


# --- first_line: every one-line error report goes through it ------------------------------------------


@pytest.mark.parametrize("error, expected", [
    (ValueError("bad\nsecond line"), "bad"),
    (ValueError(""), "ValueError"),            # an empty message: the type, never an IndexError
    (OSError("  \n  "), "OSError"),            # white space only, likewise
    (RuntimeError("\n  real reason \nmore"), "real reason"),
    ("text, not an error\nmore", "text, not an error"),
    ("", ""),
])
def test_first_line_of_an_error(error, expected):
    from edgekit.runtime.errors import first_line

    assert first_line(error) == expected
    assert first_line(error, 4) == expected[:4]
