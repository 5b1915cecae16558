"""Training precision: what `auto` picks from the CPU flags, bfloat16 training that saves and exports float32,
resume of a bfloat16 run, and bfloat16 forced where it is only emulated."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.runtime.errors import OptionsError
from edgekit.toolkit.cli import app
from edgekit.toolkit.precision import CPUINFO_ENV, choose, cpu_bf16_flags
from edgekit.toolkit.train import BF16_RECIPES, RECIPES, TrainingInterrupted, TrainOptions, train

from test_toolkit_train import interrupt_at, op_determinism, weights_of  # noqa: F401  (a fixture)

SAPPHIRE_RAPIDS = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\n"
    "flags\t\t: fpu vme sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n\n"
    "processor\t: 1\nflags\t\t: fpu vme sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
)
COOPER_LAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
HASWELL = "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i7-4770\nflags\t\t: fpu sse2 avx avx2 fma\n"
# A Raspberry Pi 4 (Cortex-A72): no bfloat16. The word in a model name is not a flag.
PI4 = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nModel\t\t: avx512_bf16 lookalike\n"


@pytest.mark.parametrize(
    "cpuinfo, flags",
    [(SAPPHIRE_RAPIDS, ["avx512_bf16", "amx_bf16"]), (COOPER_LAKE, ["avx512_bf16"]), (HASWELL, []), (PI4, []), ("", [])],
)
def test_native_bf16_flags_are_read_from_the_flags_lines(cpuinfo, flags):
    assert cpu_bf16_flags(cpuinfo) == flags


def test_auto_picks_bfloat16_only_where_it_is_native():
    p = choose("auto", cpuinfo=SAPPHIRE_RAPIDS, gpu=None)
    assert (p.used, p.native, p.why) == ("bfloat16", True, "CPU has avx512_bf16, amx_bf16")
    p = choose("auto", cpuinfo=HASWELL, gpu=None)
    assert (p.used, p.native) == ("float32", True) and "would be emulated" in p.why
    p = choose("auto", cpuinfo=HASWELL, gpu="NVIDIA A100")
    assert (p.used, p.why) == ("bfloat16", "GPU NVIDIA A100 computes bfloat16")
    p = choose("bfloat16", cpuinfo=HASWELL, gpu=None)
    assert (p.used, p.native) == ("bfloat16", False) and "emulated, slower than float32" in p.why
    assert choose("float32", cpuinfo=SAPPHIRE_RAPIDS).used == "float32"
    with pytest.raises(OptionsError, match="unknown precision 'bf16'"):
        choose("bf16")


def test_presets_take_the_bf16_form_only_when_training_in_bfloat16(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text(SAPPHIRE_RAPIDS)
    monkeypatch.setenv(CPUINFO_ENV, str(fake))
    o = TrainOptions.preset("default")
    assert o.precision.used == "bfloat16" and o.recipe == BF16_RECIPES["default"]
    assert o.recipe.name == "default"  # still the default recipe, in its bfloat16 form
    assert TrainOptions.preset("seed").precision.used == "float32"  # the reference stays the notebook's
    forced = TrainOptions.preset("default", precision="float32")
    assert forced.recipe == dataclasses.replace(RECIPES["default"], precision="float32")  # not "+custom"
    fake.write_text(HASWELL)
    o = TrainOptions.preset("default")
    assert o.precision.used == "float32" and o.recipe == RECIPES["default"]  # a machine without bf16: as before
    assert TrainOptions.from_json(json.loads(json.dumps(o.to_json()))) == o


def tiny_bf16(out, data, **kw):
    """A few bfloat16 steps: 320 images in batches of 32, 2 epochs (20 steps; what they learn is not asserted)."""
    kw = {"limit": 320, "batch_size": 32, "epochs": 2, "val_split": 100, "precision": "bfloat16", **kw}
    return TrainOptions.preset("default", data=str(data), out=out, **kw)


def dtype_policies(model) -> set[str]:
    return {layer.dtype_policy.name for layer in model.layers}


def test_bfloat16_training_saves_and_exports_float32(small_npz, tmp_path):
    import keras
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    run = tmp_path / "run"
    result = train(tiny_bf16(run, small_npz))
    checkpoint = keras.saving.load_model(run / "checkpoint.keras", safe_mode=True)
    assert "mixed_bfloat16" in dtype_policies(checkpoint)  # it really trained in bfloat16
    assert "TrainingBatchNormalization" in {type(layer).__name__ for layer in checkpoint.layers}  # fused kernel

    model = keras.saving.load_model(result.model_path, safe_mode=True)
    assert dtype_policies(model) == {"float32"}
    with zipfile.ZipFile(result.model_path) as saved:  # Keras' own layers only: it loads without edgekit
        assert "edgekit>" not in saved.read("config.json").decode()
    assert {str(w.dtype) for w in model.weights} <= {"float32", "int64", "uint32"}  # (dropout RNG state: ints)
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in model.get_weights()]),
                                  np.concatenate([w.ravel() for w in checkpoint.get_weights()]))
    assert result.metrics["precision"]["used"] == "bfloat16"

    out = tmp_path / "exports"
    exported = CliRunner().invoke(app, ["export", "--model", str(result.model_path), "--format", "all",
                                        "--data", str(small_npz), "--calib-samples", "100", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    tflites = sorted(out.glob("*.tflite"))
    assert len(tflites) == 4
    for path in tflites:
        interp = Interpreter(model_path=str(path))
        ops = {op["op_name"] for op in interp._get_ops_details()}  # the public API has no op list
        assert "CAST" not in ops, (path.name, ops)
        dtypes = {np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
        assert not any("bfloat16" in d for d in dtypes), (path.name, dtypes)
    for path in sorted(out.glob("*.onnx")):
        graph = onnx.load(str(path)).graph
        casts = [n for n in graph.node if n.op_type == "Cast"]
        assert not [n for n in casts if any(a.i == onnx.TensorProto.BFLOAT16 for a in n.attribute)], path.name
        assert not [t.name for t in graph.initializer if t.data_type == onnx.TensorProto.BFLOAT16], path.name


def test_resume_keeps_bfloat16_and_the_optimizer_state(small_npz, tmp_path, op_determinism):
    import keras

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(tiny_bf16(out, small_npz), callbacks=[interrupt_at(epoch=1, batch=2)])
    notes = []
    resumed = train(TrainOptions(data=str(small_npz), out=out, resume=True), log=notes.append)
    assert "resuming default+custom (bfloat16) from epoch 1 of 2" in notes[0]
    assert resumed.metrics["precision"]["used"] == "bfloat16"
    checkpoint = keras.saving.load_model(out / "checkpoint.keras", safe_mode=True)
    assert "mixed_bfloat16" in dtype_policies(checkpoint)
    assert int(checkpoint.optimizer.iterations.numpy()) == 2 * 10  # the optimizer state survived: all 20 steps

    whole = train(tiny_bf16(tmp_path / "whole", small_npz))
    for a, b in zip(weights_of(resumed.model_path), weights_of(whole.model_path), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bfloat16_forced_without_native_support_says_so_and_works(small_npz, tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text(HASWELL)
    monkeypatch.setenv(CPUINFO_ENV, str(fake))
    result = CliRunner().invoke(app, ["train", "--data", str(small_npz), "--out", str(tmp_path / "run"),
                                      "--limit", "128", "--batch-size", "32", "--epochs", "1", "--val-split", "100",
                                      "--precision", "bfloat16"])
    assert result.exit_code == 0, result.output
    notes = [l for l in result.stderr.splitlines() if "precision" in l]
    assert notes == ["edgekit: precision bfloat16 (bfloat16: asked for, but no avx512_bf16/amx_bf16 CPU flag and no "
                     "bfloat16 GPU: emulated, slower than float32)"], result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["precision"] == {"requested": "bfloat16", "used": "bfloat16", "native": False,
                                    "why": notes[0].split("(bfloat16: ")[1].rstrip(")")}
