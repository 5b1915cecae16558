"""Training precision: what `auto` picks from the CPU flags and oneDNN's settings, bfloat16 training that saves
and exports float32, resume of a bfloat16 run, and bfloat16 forced where it is only emulated or cannot run.

The tests that train in bfloat16 run in a child pytest where the whole run has oneDNN capped or off (see
native_bf16.py)."""

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

from native_bf16 import ONEDNN_ENV, ran_in_a_child
from toolkit_files import write_npz
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


def without_onednn_settings(monkeypatch):
    for name in ONEDNN_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "cpuinfo, flags",
    [(SAPPHIRE_RAPIDS, ["avx512_bf16", "amx_bf16"]), (COOPER_LAKE, ["avx512_bf16"]), (HASWELL, []), (PI4, []), ("", [])],
)
def test_native_bf16_flags_are_read_from_the_flags_lines(cpuinfo, flags):
    assert cpu_bf16_flags(cpuinfo) == flags


def test_auto_picks_bfloat16_only_where_it_is_native():
    p = choose("auto", cpuinfo=SAPPHIRE_RAPIDS, gpu=None, env={})
    assert (p.used, p.native, p.why) == ("bfloat16", True, "CPU has avx512_bf16, amx_bf16")
    p = choose("auto", cpuinfo=HASWELL, gpu=None, env={})
    assert (p.used, p.native) == ("float32", True) and "would be emulated" in p.why
    p = choose("auto", cpuinfo=HASWELL, gpu="NVIDIA A100", env={})
    assert (p.used, p.why) == ("bfloat16", "GPU NVIDIA A100 computes bfloat16")
    p = choose("bfloat16", cpuinfo=HASWELL, gpu=None, env={})
    assert (p.used, p.native) == ("bfloat16", False) and "emulated, slower than float32" in p.why
    assert choose("float32", cpuinfo=SAPPHIRE_RAPIDS, env={}).used == "float32"
    with pytest.raises(OptionsError, match="unknown precision 'bf16'"):
        choose("bf16")


@pytest.mark.parametrize("env, auto, why", [
    ({}, "bfloat16", "CPU has avx512_bf16, amx_bf16"),
    ({"ONEDNN_MAX_CPU_ISA": "ALL"}, "bfloat16", "CPU has avx512_bf16, amx_bf16"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, "bfloat16", "CPU has avx512_bf16, amx_bf16"),
    ({"TF_ENABLE_ONEDNN_OPTS": "1"}, "bfloat16", "CPU has avx512_bf16, amx_bf16"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "bfloat16",
     "CPU has avx512_bf16 (amx_bf16 unused: oneDNN capped at AVX512_CORE_BF16 by ONEDNN_MAX_CPU_ISA)"),
    ({"DNNL_MAX_CPU_ISA": "avx10_1_512"}, "bfloat16",  # oneDNN's older name; it reads the value in any case
     "CPU has avx512_bf16 (amx_bf16 unused: oneDNN capped at AVX10_1_512 by DNNL_MAX_CPU_ISA)"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, "float32", "CPU has avx512_bf16, amx_bf16 but oneDNN capped at "
     "AVX512_CORE_VNNI by ONEDNN_MAX_CPU_ISA: bfloat16 would be emulated, slower than float32"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "float32", "CPU has avx512_bf16, amx_bf16 but oneDNN capped at AVX2 by "
     "ONEDNN_MAX_CPU_ISA: bfloat16 would be emulated, slower than float32"),
    ({"TF_ENABLE_ONEDNN_OPTS": "false", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, "float32", "CPU has avx512_bf16, "
     "amx_bf16 but oneDNN off (TF_ENABLE_ONEDNN_OPTS=false): bfloat16 would be emulated, slower than float32"),
])
def test_auto_reads_onednn_settings_as_well_as_the_flags(env, auto, why):
    p = choose("auto", cpuinfo=SAPPHIRE_RAPIDS, gpu=None, env=env)
    assert (p.used, p.native, p.why) == (auto, True, why)
    assert choose("auto", cpuinfo=COOPER_LAKE, gpu=None, env=env).used == auto  # avx512_bf16 alone: the same
    assert choose("auto", cpuinfo=SAPPHIRE_RAPIDS, gpu="NVIDIA A100", env=env).used == "bfloat16"


@pytest.mark.parametrize("env", [{"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, {"TF_ENABLE_ONEDNN_OPTS": "0"},
                                 {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"}])
def test_bfloat16_forced_where_onednn_emulates_it_trains_and_says_so(env):
    p = choose("bfloat16", cpuinfo=SAPPHIRE_RAPIDS, gpu=None, env=env)
    assert (p.used, p.native) == ("bfloat16", False)
    assert p.why.startswith("asked for; CPU has avx512_bf16, amx_bf16 but oneDNN ")
    assert p.why.endswith(": emulated, slower than float32")


@pytest.mark.parametrize("cap", ["SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"])
def test_bfloat16_forced_where_onednn_has_no_bfloat16_is_refused(cap):
    for cpuinfo in (SAPPHIRE_RAPIDS, HASWELL):
        with pytest.raises(OptionsError, match=f"^bfloat16 cannot train with oneDNN capped at {cap} by "
                                               "ONEDNN_MAX_CPU_ISA: oneDNN has no bfloat16 convolution below "
                                               "AVX512_CORE; train in float32, or raise or unset the cap$"):
            choose("bfloat16", cpuinfo=cpuinfo, gpu=None, env={"ONEDNN_MAX_CPU_ISA": cap})
    assert choose("bfloat16", cpuinfo=HASWELL, gpu="NVIDIA A100", env={"ONEDNN_MAX_CPU_ISA": cap}).native


def test_train_refuses_bfloat16_under_such_a_cap_in_one_line(small_npz, tmp_path, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(small_npz), "--out", str(out), "--limit", "128",
                                      "--epochs", "1", "--precision", "bfloat16"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["edgekit: error: bfloat16 cannot train with oneDNN capped at AVX2 by "
                                          "ONEDNN_MAX_CPU_ISA: oneDNN has no bfloat16 convolution below AVX512_CORE; "
                                          "train in float32, or raise or unset the cap"], result.stderr
    assert not out.exists()
    fake = tmp_path / "cpuinfo"
    fake.write_text(SAPPHIRE_RAPIDS)
    monkeypatch.setenv(CPUINFO_ENV, str(fake))
    o = TrainOptions.preset("default")  # auto: the default recipe's float32 form, as on a CPU without the flags
    assert o.precision.used == "float32" and o.recipe == RECIPES["default"]


def test_presets_take_the_bf16_form_only_when_training_in_bfloat16(monkeypatch, tmp_path):
    without_onednn_settings(monkeypatch)
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


@pytest.fixture(scope="module")
def bf16_npz(small_arrays, tmp_path_factory):
    """small_npz with 64 test images: a run reads its test set at the end, in bfloat16 too."""
    return write_npz(tmp_path_factory.mktemp("bf16-mnist") / "mnist-bf16.npz",
                     **{**small_arrays, "x_test": small_arrays["x_test"][:64], "y_test": small_arrays["y_test"][:64]})


def tiny_bf16(out, data, **kw):
    """A few bfloat16 steps: 64 images in batches of 32, 2 epochs (4 steps; what they learn is not asserted). Few,
    because on a CPU without avx512_bf16 they train in Eigen's emulation: with 20 steps and 300 test images, the
    three tests that train took 271 s of the suite's 21 minutes on an AMD EPYC (Zen 3, AVX2 only)."""
    kw = {"limit": 64, "batch_size": 32, "epochs": 2, "val_split": 32, "precision": "bfloat16", **kw}
    return TrainOptions.preset("default", data=str(data), out=out, **kw)


def dtype_policies(model) -> set[str]:
    return {layer.dtype_policy.name for layer in model.layers}


def test_bfloat16_training_saves_and_exports_float32(request, bf16_npz, tmp_path):
    if ran_in_a_child(request):
        return
    import keras
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    run = tmp_path / "run"
    result = train(tiny_bf16(run, bf16_npz))
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
                                        "--data", str(bf16_npz), "--calib-samples", "100", "--out", str(out)])
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


def test_resume_keeps_bfloat16_and_the_optimizer_state(request, bf16_npz, tmp_path, op_determinism):
    if ran_in_a_child(request):
        return
    import keras

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(tiny_bf16(out, bf16_npz), callbacks=[interrupt_at(epoch=1, batch=0)])  # mid-epoch
    notes = []
    resumed = train(TrainOptions(data=str(bf16_npz), out=out, resume=True), log=notes.append)
    assert "resuming default+custom (bfloat16) from epoch 1 of 2" in notes[0]
    assert resumed.metrics["precision"]["used"] == "bfloat16"
    checkpoint = keras.saving.load_model(out / "checkpoint.keras", safe_mode=True)
    assert "mixed_bfloat16" in dtype_policies(checkpoint)
    assert int(checkpoint.optimizer.iterations.numpy()) == 2 * 2  # the optimizer state survived: all 4 steps

    whole = train(tiny_bf16(tmp_path / "whole", bf16_npz))
    for a, b in zip(weights_of(resumed.model_path), weights_of(whole.model_path), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bfloat16_forced_without_native_support_says_so_and_works(request, bf16_npz, tmp_path, monkeypatch):
    if ran_in_a_child(request):
        return
    fake = tmp_path / "cpuinfo"
    fake.write_text(HASWELL)
    monkeypatch.setenv(CPUINFO_ENV, str(fake))
    result = CliRunner().invoke(app, ["train", "--data", str(bf16_npz), "--out", str(tmp_path / "run"),
                                      "--limit", "64", "--batch-size", "32", "--epochs", "1", "--val-split", "32",
                                      "--precision", "bfloat16"])
    assert result.exit_code == 0, result.output
    notes = [l for l in result.stderr.splitlines() if "precision" in l]
    assert notes == ["edgekit: precision bfloat16 (bfloat16: asked for, but no avx512_bf16/amx_bf16 CPU flag and no "
                     "bfloat16 GPU: emulated, slower than float32)"], result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["precision"] == {"requested": "bfloat16", "used": "bfloat16", "native": False,
                                    "why": notes[0].split("(bfloat16: ")[1].rstrip(")")}
