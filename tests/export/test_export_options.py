"""The format table and option checking: no TensorFlow, no conversions, milliseconds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.export.calibration import representative_images
from edgekit.export.formats import FORMATS, Quantization, plan, valid_pairs
from edgekit.export.options import ExportOptions
from edgekit.runtime.errors import EXIT_BAD_INPUT, OptionsError


def files(targets):
    return [t.file for t in targets]


def test_defaults():
    assert files(plan("tflite")) == ["model_float32.tflite", "model_int8.tflite"]
    assert files(plan("onnx")) == ["model_float32.onnx"]
    assert files(plan(["tflite", "onnx"])) == ["model_float32.tflite", "model_int8.tflite", "model_float32.onnx"]
    assert files(plan("all")) == [
        "model_float32.tflite", "model_float16.tflite", "model_dynamic.tflite", "model_int8.tflite",
        "model_float32.onnx", "model_int8.onnx",
    ]


def test_explicit_quantizations():
    assert files(plan("tflite", ["float16", "dynamic"])) == ["model_float16.tflite", "model_dynamic.tflite"]
    assert files(plan("onnx", "int8")) == ["model_int8.onnx"]
    assert files(plan("all", "int8")) == ["model_int8.tflite", "model_int8.onnx"]
    assert files(plan("all", "float16")) == ["model_float16.tflite"]  # with all: to the formats that accept it
    assert files(plan("tflite", ["float32", "FP16"])) == ["model_float32.tflite", "model_float16.tflite"]  # aliases


def test_generators_are_read_once():
    # A generator is empty on a second pass; plan() used to read the quantizations twice and return [].
    assert files(plan("tflite", iter(["int8"]))) == ["model_int8.tflite"]
    assert files(plan(iter(["tflite", "onnx"]), (q for q in ["float32"]))) == ["model_float32.tflite", "model_float32.onnx"]
    assert files(plan("onnx", iter([]))) == ["model_float32.onnx"]  # nothing given: the defaults, as with []


@pytest.mark.parametrize("option, value, suggestion", [
    ("format", "tflit", "tflite"), ("format", "onxx", "onnx"), ("format", "al", "all"),
    ("quantization", "dynamc", "dynamic"), ("quantization", "int-8", "int8"), ("quantization", "flot16", "float16"),
])
def test_typo_gets_the_nearest_name(option, value, suggestion):
    with pytest.raises(OptionsError) as err:
        plan(value) if option == "format" else plan("tflite", value)
    message = str(err.value)
    assert f"unknown {option} '{value}'" in message and f"did you mean '{suggestion}'?" in message
    assert "\n" not in message and err.value.exit_code == EXIT_BAD_INPUT


def test_nonsense_gets_the_list_without_a_guess():
    with pytest.raises(OptionsError, match=r"unknown format 'coreml'; valid: tflite, onnx, all"):
        plan("coreml")


@pytest.mark.parametrize("fmt, quant, refused", [
    ("onnx", "float16", "onnx/float16"), ("onnx", "dynamic", "onnx/dynamic"),
    (["tflite", "onnx"], "float16", "onnx/float16"),
])
def test_unsupported_combination_lists_the_valid_ones(fmt, quant, refused):
    with pytest.raises(OptionsError) as err:
        plan(fmt, quant)
    message = str(err.value)
    assert f"unsupported combination {refused}" in message
    for pair in valid_pairs():
        assert pair in message
    assert "onnx/float16" not in valid_pairs()


def test_table_is_consistent():
    for f in FORMATS.values():
        assert set(f.defaults) <= set(f.quantizations) and f.suffix.startswith(".")
    names = [t.file for t in plan("all")]
    assert len(names) == len(set(names)) == sum(len(f.quantizations) for f in FORMATS.values())
    assert Quantization.NONE.file_tag == "float32"


@pytest.mark.parametrize("kwargs", [{"calib_samples": 0}, {"calib_samples": 10**6}, {"opset": 9}, {"opset": True}])
def test_bad_numbers_refused(kwargs):
    with pytest.raises(OptionsError):
        ExportOptions(**kwargs)


def test_calibration_is_class_balanced_training_images(mnist):
    x = representative_images(mnist.x_train, mnist.y_train, 300)
    assert x.shape == (300, 28, 28, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    # every picked image is a training image (never test), 30 of each digit, reproducibly
    train = {img.tobytes(): int(lbl) for img, lbl in zip(mnist.x_train, mnist.y_train)}
    labels = [train[np.round(img[..., 0] * 255).astype(np.uint8).tobytes()] for img in x]
    assert np.bincount(labels, minlength=10).tolist() == [30] * 10
    np.testing.assert_array_equal(x, representative_images(mnist.x_train, mnist.y_train, 300))
    assert representative_images(mnist.x_train, mnist.y_train, 7).shape[0] == 7


def test_format_table_needs_no_tensorflow():
    import subprocess

    code = ("import sys; from edgekit.export.formats import plan; plan('all'); import edgekit.export; "
            "import edgekit.toolkit.cli_export; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_export_options_hold_the_plan():
    options = ExportOptions(formats=iter(["onnx"]), quantizations=(q for q in ["int8"]), data=Path("mnist.npz"))
    assert files(options.targets) == ["model_int8.onnx"]
    assert options.formats == ("onnx",) and options.quantizations == ("int8",) and options.data == "mnist.npz"
    assert files(ExportOptions().targets) == files(plan("tflite"))  # the default is written once (DEFAULT_FORMATS)
    with pytest.raises(OptionsError, match="did you mean 'onnx'"):
        ExportOptions(formats="onx")


def test_export_model_takes_options_or_keywords_not_both(tmp_path):
    from edgekit.export import export_model

    with pytest.raises(OptionsError, match="not both"):
        export_model(tmp_path / "model.keras", tmp_path / "out", ExportOptions(), formats="onnx")
    assert not (tmp_path / "out").exists()
