"""Classifier on real exported models: probabilities for any batch, int8 round trip, metadata, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime import Classifier, Prediction
from edgekit.runtime.contract import to_model_input
from edgekit.runtime.errors import DataError, ModelLoadError, OptionsError
from measured import check


@pytest.fixture(scope="module")
def test_batch(mnist):
    return to_model_input(mnist.x_test[:500]), mnist.y_test[:500].astype(int)


@pytest.mark.numeric
@pytest.mark.parametrize("name", ["float32.tflite", "int8.tflite", "float32.onnx"])
def test_probabilities_any_batch_size(models, test_batch, name):
    clf = Classifier(models[name], threads=1)
    x, y = test_batch
    full = clf.probabilities(x)
    assert full.shape == (500, 10) and full.dtype == np.float32
    check(f"classifier {name}: max |sum of probabilities - 1|", np.abs(full.sum(axis=1) - 1).max(), "<=", 0.02)
    check(f"classifier {name}: accuracy, 500 test images", (full.argmax(1) == y).mean(), ">", 0.90)
    # batch sizes 1, 7, 64 and back to 1 give the same rows as one big batch (resizing the interpreter each time)
    worst = max(np.abs(clf.probabilities(x[:n]) - full[:n]).max() for n in (1, 7, 64, 1))
    check(f"classifier {name}: max |Δp| batch of n vs of 500", worst, "<=", 1e-5)


@pytest.mark.numeric
def test_int8_round_trip_agrees_with_float32(models, test_batch):
    x, y = test_batch
    f32 = Classifier(models["float32.tflite"]).probabilities(x)
    i8 = Classifier(models["int8.tflite"]).probabilities(x)
    agreement = (f32.argmax(1) == i8.argmax(1)).mean()
    check("classifier int8 vs float32 .tflite: top-1 agreement, 500 test images", agreement, ">=", 0.97)
    check("classifier int8 vs float32 .tflite: |accuracy difference|",
          abs((i8.argmax(1) == y).mean() - (f32.argmax(1) == y).mean()), "<=", 0.02)
    # dequantized with the model's output scale (1/256): values lie on that grid, within [0, 1]
    assert np.abs(i8 * 256 - np.round(i8 * 256)).max() < 1e-3 and i8.min() >= 0 and i8.max() <= 1
    check("classifier int8 vs float32 .tflite: max |Δp|", np.abs(f32 - i8).max(), "<", 0.5)


def test_int8_quantization_uses_the_models_own_scale(models, test_batch):
    clf = Classifier(models["int8.tflite"])
    runner = clf._runner
    scale, zero = runner.input_quantization
    x = test_batch[0][:50]
    expected = np.clip(np.rint(x / scale + zero), -128, 127).astype(np.int8)
    np.testing.assert_array_equal(runner._quantize(x), expected)
    assert clf.quantization == "int8" and clf.format == "tflite"


def test_metadata_is_read(models):
    for name, fmt in [("int8.tflite", "tflite"), ("float32.onnx", "onnx")]:
        clf = Classifier(models[name])
        assert clf.has_metadata
        assert clf.metadata["format"] == fmt and clf.format == fmt
        assert clf.labels == [str(d) for d in range(10)]
        assert clf.metadata["input"]["layout"] == "NHWC"


@pytest.mark.numeric
def test_classify_gives_predictions(models, camera_frames):
    clf = Classifier(models["int8.tflite"])
    frame, label, box = camera_frames[0]
    p = clf.classify(frame)
    assert isinstance(p, Prediction) and p.digit == label and p.confidence <= 1.0
    check("classify int8: confidence on camera frame 0", p.confidence, ">", 0.5)
    assert p.probabilities.shape == (10,) and p.to_dict()["box"] == list(p.box)
    batch = clf.classify([f for f, _, _ in camera_frames[:5]])
    assert [q.digit for q in batch][0] == p.digit and len(batch) == 5
    gray = clf.classify(np.stack([f[..., 1] for f, _, _ in camera_frames[:3]]))  # (N, H, W) gray batch
    assert len(gray) == 3


def test_classify_crops_reads_what_classify_reads(models, camera_frames):
    """Crops cut by find_digits, read in one batch, give the predictions classify gives for their frames."""
    from edgekit.runtime.preprocess import find_digits

    clf = Classifier(models["int8.tflite"])
    frames = [f for f, _, _ in camera_frames[:6]]
    crops = [c for f in frames for c in find_digits(f)]
    assert len(crops) == 6
    got, want = clf.classify_crops(crops), clf.classify(frames)
    assert [(p.digit, p.box) for p in got] == [(p.digit, p.box) for p in want]
    np.testing.assert_array_equal(np.stack([p.probabilities for p in got]), np.stack([p.probabilities for p in want]))
    assert clf.classify_crops([]) == []


def test_bad_inputs_and_files(models, tmp_path):
    clf = Classifier(models["float32.onnx"])
    with pytest.raises(DataError, match=r"\(N, 28, 28, 1\)"):
        clf.probabilities(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(DataError):
        clf.classify(np.zeros((3, 3), np.uint8))
    with pytest.raises(ModelLoadError, match="no such model file"):
        Classifier(tmp_path / "missing.tflite")
    with pytest.raises(ModelLoadError, match="unknown model format"):
        Classifier(models["int8.tflite"].with_suffix(".pb"))
    with pytest.raises(OptionsError):
        Classifier(models["int8.tflite"], threads=0)
    for suffix in (".tflite", ".onnx"):
        junk = tmp_path / f"junk{suffix}"
        junk.write_bytes(b"\x00" * 64 + b"not a model")
        with pytest.raises(ModelLoadError) as e:
            Classifier(junk)
        assert "\n" not in str(e.value)


def test_fixed_batch_models_are_run_image_by_image(models, test_batch):
    """A .tflite whose batch is fixed at 1 cannot be resized: the runner loops over the images instead."""
    x, _ = test_batch
    reference = Classifier(models["int8.tflite"]).probabilities(x[:9])
    clf = Classifier(models["int8.tflite"])
    clf._runner.dynamic_batch = False  # what a model exported with a fixed batch of 1 reports
    np.testing.assert_array_equal(clf.probabilities(x[:9]), reference)
    assert clf._runner._batch == 1  # never resized


@pytest.mark.parametrize("polarity, inverted", [
    ("white digit on black", False), (None, False), ("", False),
    ("black digit on white", True), (" Black digit on White ", True),
    ("not a black digit", False),  # decided by the stated value, not by a substring of it
])
def test_polarity_is_read_from_the_metadata_value(polarity, inverted):
    from edgekit.runtime.contract import wants_inverted

    assert wants_inverted(polarity) is inverted
