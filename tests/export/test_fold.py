"""The BN-fold rewrite (export/fold.py): exact in float, right for negative multipliers, refused when not exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.export import export_model
from edgekit.export import fold as fold_module
from edgekit.export.fold import TOLERANCE, FoldReport, fold_batchnorm, prove
from edgekit.runtime.contract import INPUT_NAME, INPUT_SHAPE, OUTPUT_NAME, to_model_input
from edgekit.runtime.errors import ExportError
from edgekit.runtime.metadata import read_metadata
from edgekit.toolkit.data import sha256_file
from measured import check


@pytest.fixture(scope="module")
def small_model(small_model_path):
    import keras

    return keras.saving.load_model(small_model_path, compile=False, safe_mode=True)


@pytest.fixture(scope="module")
def test_x(mnist):
    return to_model_input(mnist.x_test[:500])


def _synthetic_with_negative_multipliers():
    """A tiny model shaped like edgekit's (Conv+ReLU -> BN, Dense+ReLU -> BN -> Dense) whose BNs have
    negative, zero and positive multipliers and nonzero means/shifts."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME),
        L.Conv2D(6, 3, padding="same", activation="relu"), L.BatchNormalization(),
        L.MaxPooling2D(4), L.Flatten(),
        L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dropout(0.25),
        L.Dense(10, activation="softmax", name=OUTPUT_NAME),
    ])
    rng = np.random.default_rng(0)
    for bn, gamma in zip([l for l in model.layers if isinstance(l, L.BatchNormalization)],
                         ([1.5, -0.7, 0.0, 2.0, -3.0, 0.4], [0.3, -1.2, 2.5, 0.9, -0.1, 1.0, 0.0, 5.0])):
        n = len(gamma)
        bn.set_weights([np.array(gamma, np.float32), rng.normal(size=n).astype(np.float32),
                        rng.normal(size=n).astype(np.float32), rng.uniform(0.2, 3.0, n).astype(np.float32)])
    return model


def _bn_count(model) -> int:
    from keras import layers as L

    return sum(isinstance(l, L.BatchNormalization) for l in model.layers)


@pytest.mark.numeric
def test_fold_is_exact_on_a_really_trained_model(small_model, test_x):
    folded, report = fold_batchnorm(small_model)
    assert report.folded and len(report.folded) == _bn_count(small_model) == 6 and not report.refused
    assert _bn_count(folded) == 0  # every BN became a per-channel shift (or went into the last Dense)
    assert folded.layers[-1].name == OUTPUT_NAME and folded.input_shape[1:] == INPUT_SHAPE
    diff = prove(small_model, folded, test_x, report)
    check("fold: max |Δp| folded vs trained Keras model, 500 images", diff, "<=", TOLERANCE)
    assert report.max_abs_diff == diff and report.check_images == len(test_x)
    p0, p1 = small_model.predict_on_batch(test_x), folded.predict_on_batch(test_x)
    check("fold: top-1 agreement folded vs trained Keras model, 500 images", np.mean(np.argmax(p0, 1) == np.argmax(p1, 1)),
          "==", 1.0)


def test_negative_and_zero_multipliers_stay_exact_and_are_reported():
    model = _synthetic_with_negative_multipliers()
    folded, report = fold_batchnorm(model)
    conv_bn, dense_bn = [l.name for l in model.layers if "batch_normalization" in l.name]
    assert report.folded == [conv_bn, dense_bn]
    assert report.kept == {conv_bn: 3, dense_bn: 3}  # gamma <= 0 channels kept their multiplier
    x = np.random.default_rng(2).random((64, *INPUT_SHAPE), dtype=np.float32)
    assert prove(model, folded, x, FoldReport()) <= TOLERANCE
    # the logits, not just the (possibly saturated) probabilities, must agree: compare the last layer's input
    import keras

    def before_softmax(m):
        return keras.Model(m.inputs, m.layers[-2].output).predict_on_batch(x)

    b0, b1 = before_softmax(model), before_softmax(folded)  # before: BN/Dropout out; after: the folded Dense
    w0, bias0 = model.layers[-1].get_weights()
    w1, bias1 = folded.layers[-1].get_weights()
    np.testing.assert_allclose(b0 @ w0 + bias0, b1 @ w1 + bias1, atol=1e-4)


def test_a_model_the_rewrite_does_not_fit_is_left_alone():
    import keras
    from keras import layers as L

    model = keras.Sequential([keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME), L.Conv2D(4, 3), L.BatchNormalization(),
                              L.Flatten(), L.Dense(10, activation="softmax", name=OUTPUT_NAME)])
    same, report = fold_batchnorm(model)
    assert same is model and not report.applied and "no ReLU" in next(iter(report.refused.values()))


def test_prove_refuses_a_rewrite_that_is_not_exact(small_model, test_x):
    folded, report = fold_batchnorm(small_model)
    kernel, bias = folded.layers[0].get_weights()
    folded.layers[0].set_weights([kernel * 1.01, bias])  # 1 % off: still plausible, no longer the same model
    with pytest.raises(ExportError, match=r"BN fold: .*max \|Δp\|.*nothing was written"):
        prove(small_model, folded, test_x, report)


def test_export_stops_and_writes_nothing_when_the_rewrite_is_not_exact(small_model_path, mnist_path, tmp_path, monkeypatch):
    real = fold_module.fold_batchnorm

    def damaged(model):
        folded, report = real(model)
        w = folded.layers[-1].get_weights()
        folded.layers[-1].set_weights([w[0] * 3.0, w[1]])
        return folded, report

    monkeypatch.setattr(fold_module, "fold_batchnorm", damaged)
    out = tmp_path / "export"
    with pytest.raises(ExportError, match="BN fold") as e:
        export_model(small_model_path, out, formats="tflite", quantizations="dynamic", data=mnist_path)
    assert "\n" not in str(e.value)
    assert not out.exists()


def test_export_says_where_the_fold_was_applied(small_model_path, mnist_path, tmp_path):
    before = sha256_file(small_model_path)
    out = tmp_path / "export"
    manifest = export_model(small_model_path, out, formats="tflite", quantizations=["none", "dynamic"], data=mnist_path)
    rewrites = {a.file: a.rewrites for a in manifest.artifacts}
    assert rewrites == {"model_float32.tflite": [], "model_dynamic.tflite": ["bn_fold"]}
    on_disk = json.loads((out / "manifest.json").read_text())
    assert {a["file"]: a["rewrites"] for a in on_disk["artifacts"]} == rewrites
    meta = read_metadata(out / "model_dynamic.tflite")["rewrites"]["bn_fold"]
    assert len(meta["folded"]) == 6 and meta["max_abs_diff"] <= TOLERANCE and meta["check_images"] > 0
    assert read_metadata(out / "model_float32.tflite")["rewrites"] == {}
    assert sha256_file(small_model_path) == before  # the trained model.keras is never touched

    off = export_model(small_model_path, tmp_path / "off", formats="tflite", quantizations="dynamic", fold_bn=False)
    assert off.artifacts[0].rewrites == [] and read_metadata(tmp_path / "off" / "model_dynamic.tflite")["rewrites"] == {}


def test_cli_no_fold_turns_it_off(small_model_path, tmp_path):
    from typer.testing import CliRunner

    from edgekit.toolkit.cli import app

    for flag, expected in (([], ["bn_fold"]), (["--no-fold"], [])):
        out = tmp_path / f"out{len(flag)}"
        result = CliRunner().invoke(app, ["export", "--model", str(small_model_path), "--format", "tflite",
                                          "--quantize", "dynamic", "--out", str(out), *flag])
        assert result.exit_code == 0, result.output
        assert ("(BN folded)" in result.output) == bool(expected)
        assert json.loads((out / "manifest.json").read_text())["artifacts"][0]["rewrites"] == expected
