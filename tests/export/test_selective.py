"""`edgekit export --quantize int8 --max-drop P` (export/selective.py): a deliberately fragile layer breaks full int8,
and --max-drop keeps it in float and passes; bad values are one line, exit 2, nothing written.

The fragile model is the shared small model with one Dense(256) unit made 1024 times larger by the
BatchNormalization after it (gamma and beta x 1024) and the final Dense's weights reading it / 1024: powers of two,
so the float function is unchanged to the bit. The BN fold moves that factor into the Dense (as it moves every BN
scale), so the Dense's output tensor, quantized per tensor, now spans the one unit's range and rounds the other
255 units to zero: int8 fails, and only the Dense and the layer reading it in float repair it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from measured import check
from edgekit.runtime.errors import EXIT_BAD_INPUT
from edgekit.toolkit.cli import app

SCALE = 1024.0  # a power of two: the float model's arithmetic is unchanged


def make_fragile(src, dst, x: np.ndarray) -> int:
    """Save to ``dst`` the model at ``src`` with its busiest Dense(256) unit (on ``x``) scaled up by SCALE after
    its BatchNormalization and scaled back down in the weights that read it; returns the unit."""
    import keras

    model = keras.models.load_model(src)
    dense, bn, last = (model.get_layer(n) for n in ("dense", "batch_normalization_5", "probabilities"))
    unit = int(keras.Model(model.inputs, dense.output).predict(x, verbose=0).max(0).argmax())
    gamma, beta, mean, var = bn.get_weights()
    gamma[unit] *= SCALE
    beta[unit] *= SCALE
    bn.set_weights([gamma, beta, mean, var])
    w, b = last.get_weights()
    w[unit] /= SCALE
    last.set_weights([w, b])
    model.save(dst)
    return unit


@pytest.fixture(scope="module")
def fragile(small_model_path, mnist, tmp_path_factory):
    from edgekit.runtime.contract import to_model_input

    path = tmp_path_factory.mktemp("fragile") / "model.keras"
    make_fragile(small_model_path, path, to_model_input(mnist.x_train[:500]))
    return path


def edgekit(*args):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def test_the_fragile_model_is_the_same_function_in_float(small_model_path, fragile, mnist):
    import keras

    from edgekit.runtime.contract import to_model_input

    x = to_model_input(mnist.x_test[:200])
    a = keras.models.load_model(small_model_path).predict(x, verbose=0)
    b = keras.models.load_model(fragile).predict(x, verbose=0)
    assert np.array_equal(a.argmax(1), b.argmax(1))
    assert np.array_equal(a, b)  # powers of two: the same bits


@pytest.mark.numeric
@pytest.mark.slow
def test_max_drop_keeps_the_fragile_layers_float_and_passes(fragile, mnist_path, tmp_path):
    from edgekit.export import export_model
    from edgekit.export.selective import load_holdout
    from edgekit.runtime.backends import open_runner
    from edgekit.runtime.metadata import read_metadata

    files = ["model_int8.tflite", "model_int8.onnx"]
    plain = export_model(fragile, tmp_path / "plain", formats="all", quantizations="int8", data=mnist_path,
                         calib_samples=100)
    assert [a.file for a in plain.artifacts] == files and all(a.selective is None for a in plain.artifacts)
    result = edgekit("--model", fragile, "--format", "all", "--quantize", "int8", "--data", mnist_path,
                     "--calib-samples", 100, "--max-drop", 0.5, "--out", tmp_path / "kept")
    assert result.exit_code == 0, result.output
    artifacts = json.loads((tmp_path / "kept" / "manifest.json").read_text())["artifacts"]
    assert [a["file"] for a in artifacts] == files
    lines = [l for l in result.stdout.splitlines() if "--max-drop:" in l]
    assert len(lines) == 2

    x, y = load_holdout(mnist_path, None)  # the held-out images the search measured on, through the device's runtime
    for artifact, line in zip(artifacts, lines):
        selective, name = artifact["selective"], artifact["file"]
        float_accuracy = selective["float_accuracy"]
        plain_accuracy = 100 * np.mean(open_runner(tmp_path / "plain" / name).run(x).argmax(1) == y)
        kept_accuracy = 100 * np.mean(open_runner(tmp_path / "kept" / name).run(x).argmax(1) == y)
        # Without --max-drop int8 is broken; with --max-drop 0.5 it is within budget.
        check(f"{name}: full int8 drop on the fragile model (points)", float_accuracy - plain_accuracy, ">", 20)
        check(f"{name}: the search's own full-int8 drop (points)", selective["drop_int8"], ">", 20)
        check(f"{name}: int8 drop after --max-drop 0.5 (points)", float_accuracy - kept_accuracy, "<=", 0.5)
        assert selective["met"] and selective["drop"] <= 0.5
        # The Dense and the layer reading its output stay float, and the report says so and what it cost.
        assert selective["float_layers"][:2] == ["dense", "probabilities"], selective["float_layers"]
        assert len(selective["float_layers"]) < 6  # a few layers, not the whole model
        assert selective["ranking"][0]["unit"] == "dense"
        assert 0 < artifact["bytes"] - selective["bytes"] < 20_000  # the file: the report's model plus the metadata
        assert selective["bytes"] > selective["bytes_int8"] + 2_000_000  # the Dense's 803k weights in float32
        assert selective["latency_ms"] > 0 and selective["latency_ms_int8"] > 0
        assert read_metadata(tmp_path / "kept" / name)["selective"] == selective
        assert "kept float: dense, probabilities" in line and " MB" in line and "ms/image" in line
        # And the file really holds them in float: the Dense's 3136 x 256 kernel among its float32 weights.
        assert float_weights(tmp_path / "plain" / name) < 10_000
        assert float_weights(tmp_path / "kept" / name) >= 3136 * 256


def float_weights(path) -> int:
    """How many float32 constants (weights) the model file holds."""
    if path.suffix == ".onnx":
        import onnx

        graph = onnx.load(str(path)).graph
        return sum(int(np.prod(t.dims)) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    return sum(int(np.prod(t.shape)) for g in model.subgraphs for t in g.tensors
               if t.type == schema.TensorType.FLOAT32 and model.buffers[t.buffer].data is not None
               and len(model.buffers[t.buffer].data))


def test_a_sound_model_within_budget_keeps_every_layer_int8(small_model_path, mnist_path, tmp_path):
    from edgekit.export import export_model

    manifest = export_model(small_model_path, tmp_path / "out", formats="tflite", quantizations="int8",
                            data=mnist_path, calib_samples=100, max_drop=100)
    selective = manifest.artifacts[0].selective
    assert selective["met"] and selective["float_layers"] == [] and selective["ranking"] == []


@pytest.mark.parametrize("args, expected", [
    (["--quantize", "int8", "--max-drop", "-1"], "--max-drop must be a number of accuracy points from 0 to 100"),
    (["--quantize", "int8", "--max-drop", "nan"], "--max-drop must be"),
    (["--quantize", "int8", "--max-drop", "101"], "--max-drop must be"),
    (["--quantize", "none", "--max-drop", "0.5"], "--max-drop applies to int8 exports"),
    (["--format", "tflite", "--quantize", "float16,dynamic", "--max-drop", "0.5"], "--max-drop applies to int8 exports"),
])
def test_bad_max_drop(small_model_path, tmp_path, args, expected):
    result = edgekit("--model", small_model_path, "--out", tmp_path / "out", *args)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_unit_is_a_tensor_its_producer_and_every_reader_through_scale_sharing_ops():
    from edgekit.export.selective import units_of

    ops = [  # (type, node, inputs, outputs), as the calibrated TFLite graph lists them
        ("CONV_2D", "conv_a", ["image"], ["a"]),
        ("MAX_POOL_2D", "pool", ["a"], ["p"]),
        ("SHAPE", "shape", ["p"], ["s"]),
        ("RESHAPE", "flat", ["p", "s"], ["f"]),
        ("FULLY_CONNECTED", "fc1", ["f"], ["h"]),
        ("FULLY_CONNECTED", "fc2", ["h"], ["z"]),
        ("SOFTMAX", "softmax", ["z"], ["out"]),
    ]
    units = {u.name: u.nodes for u in units_of(ops, lambda kind, node: node)}
    assert units == {"conv_a": ("conv_a", "pool", "flat", "fc1"), "fc1": ("fc1", "fc2"), "fc2": ("fc2", "softmax"),
                     "softmax": ("softmax",)}


def test_held_out_images_are_balanced_and_never_calibration_images(mnist):
    from edgekit.export.calibration import representative_images
    from edgekit.export.selective import holdout_images

    calibration = representative_images(mnist.x_train, mnist.y_train, 300)
    x, y = holdout_images(mnist.x_train, mnist.y_train, calibration, 1000)
    assert x.shape == (1000, 28, 28, 1) and np.bincount(y, minlength=10).tolist() == [100] * 10
    assert not {img.tobytes() for img in x} & {img.tobytes() for img in calibration}
    again, _ = holdout_images(mnist.x_train, mnist.y_train, calibration, 1000)
    assert np.array_equal(x, again)  # seeded: the same images every export
