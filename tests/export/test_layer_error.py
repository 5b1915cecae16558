"""Where the int8 error comes from (export/layer_error.py, `edgekit validate --layers`): the table's shape, and
that it names the layer of a deliberately damaged int8 artifact, for a damage in an early conv, a middle conv,
the last conv and the first Dense. Marked numeric so scripts/margins.py runs them on every model of its sweep:
the naming once failed on a small model trained on another CPU, when the table ranked the error each layer
*added* to the cumulative one (a saturating softmax out-added the damaged conv)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.export.calibration import representative_images
from edgekit.export.layer_error import COLUMNS, format_layers, layer_name, measure_layers
from edgekit.toolkit.cli import app
from measured import check

KERAS_LAYERS = ["conv2d", "conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense", "probabilities"]


@pytest.fixture(scope="module")
def int8_dir(small_model_path, mnist_path, tmp_path_factory) -> Path:
    from edgekit.export import export_model

    out = tmp_path_factory.mktemp("layers") / "export"
    export_model(small_model_path, out, formats="tflite", quantizations="int8", data=mnist_path, calib_samples=100)
    return out


@pytest.fixture(scope="module")
def reference(small_model_path):
    import keras

    return keras.saving.load_model(small_model_path, compile=False, safe_mode=True)


@pytest.fixture(scope="module")
def images(mnist):
    return representative_images(mnist.x_train, mnist.y_train, 50)


DAMAGED = ["conv2d", "conv2d_2", "conv2d_4", "dense"]  # the first conv, the one that broke on AMD, the last, the Dense


def _damage(src: Path, dst: Path, layer: str) -> None:
    """Copy ``src`` with the int8 kernel of ``layer`` shuffled (same values, same scales, wrong places)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    graph = model.subgraphs[0]
    hits = [t for t in graph.tensors if layer_name(t.name.decode()) == layer
            and t.name.decode().endswith(("/convolution", "/MatMul")) and len(t.shape) in (2, 4)]
    assert len(hits) == 1, [t.name for t in hits]
    data = model.buffers[hits[0].buffer].data
    model.buffers[hits[0].buffer].data = np.random.default_rng(0).permutation(data)
    flatbuffer_utils.write_model(model, str(dst))


@pytest.mark.numeric
def test_the_table_has_one_row_per_int8_layer_in_order(int8_dir, reference, images):
    report = measure_layers(int8_dir / "model_int8.tflite", reference, images)
    assert report.rewrites == ["bn_fold"] and report.images == len(images)
    layers = [r.layer for r in report.rows]
    assert [name for name in layers if name in KERAS_LAYERS] == KERAS_LAYERS  # every weighted layer, in order
    assert sum(name.endswith("_shift") for name in layers) == 5  # the five per-channel shifts the fold left
    for r in report.rows:
        assert r.scale > 0 and r.range > 0 and np.isfinite(r.rmse) and np.isfinite(r.own_rmse)
        assert r.rel_rmse >= 0 and r.own_rel_rmse >= 0
    # a sound int8 export: each tensor within 2 % of its range; each op alone about a rounding (0.29 steps)
    check("layers int8: largest relative RMSE of a layer's output", max(r.rel_rmse for r in report.rows), "<", 0.02)
    check("layers int8: largest own error of an op (quantization steps)", max(r.own_steps for r in report.rows), "<", 1.0)
    for r in report.rows:
        assert abs(r.steps - r.rmse / r.scale) < 1e-9
    text = format_layers(report)
    lines = text.splitlines()
    assert [c.strip() for c in lines[1].split("  ") if c.strip()] == list(COLUMNS)
    assert len(lines) == 3 + len(report.rows) + 1
    assert lines[-1].startswith("largest own error: ")
    d = report.to_dict()
    assert d["worst"] == report.worst.layer and len(d["layers"]) == len(report.rows)


@pytest.fixture(scope="module")
def good(int8_dir, reference, images):
    return measure_layers(int8_dir / "model_int8.tflite", reference, images)


@pytest.mark.numeric
@pytest.mark.parametrize("layer", DAMAGED)
def test_the_table_names_the_damaged_layer(layer, good, int8_dir, reference, images, tmp_path):
    bad_path = tmp_path / "model_int8.tflite"
    _damage(int8_dir / "model_int8.tflite", bad_path, layer)
    bad = measure_layers(bad_path, reference, images)
    assert bad.worst.layer == layer, format_layers(bad)
    assert f"largest own error: {layer} (" in format_layers(bad)
    row = next(r for r in bad.rows if r.layer == layer)
    runner_up = max(r.own_rel_rmse for r in bad.rows if r is not row)
    check(f"layers, {layer} damaged: its own error over the next largest", row.own_rel_rmse / runner_up, ">", 5)
    check(f"layers, {layer} damaged: its own error over the sound export's", row.own_rel_rmse
          / next(r for r in good.rows if r.layer == layer).own_rel_rmse, ">", 10)
    # every other op's own error is the sound export's: the damage is not smeared over the layers after it
    for r, g in zip(bad.rows, good.rows):
        assert r is row or r.own_rmse == pytest.approx(g.own_rmse, rel=1e-6, abs=1e-9), (r.layer, format_layers(bad))


def test_validate_layers_prints_the_table_and_puts_it_in_json_and_html(int8_dir, small_model_path, mnist_path, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(int8_dir, folder)
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    result = CliRunner().invoke(app, ["validate", str(folder), "--data", str(mnist_path), "--limit", "200",
                                      "--latency-runs", "3", "--max-drop", "5", "--layers",
                                      "--json", str(out_json), "--html", str(out_html)])
    assert result.exit_code == 0, result.output
    assert "model_int8.tflite (exported from the bn_fold rewrite): int8 vs float, per layer" in result.output
    assert "largest own error:" in result.output
    layers = json.loads(out_json.read_text())["layers"]
    assert [t["artifact"] for t in layers] == ["model_int8.tflite"] and len(layers[0]["layers"]) >= len(KERAS_LAYERS)
    page = out_html.read_text()
    assert "Where the int8 error comes from" in page and page.count('<tr class="worse">') == 1
