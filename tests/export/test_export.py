"""Every format x quantization, exported ONCE from the small really-trained model and run by its real runtime.

The export is the session's ``small_exports`` (tests/conftest.py), which the validate, runtime and hardening
tests share.

LiteRT runs the .tflite files, ONNX Runtime the .onnx files; Keras is the reference on real MNIST test images.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.export import EXPORTERS, export_model, plan
from edgekit.export.manifest import MANIFEST_NAME, Manifest, merge, read_manifest
from edgekit.runtime.contract import LABELS, PIXEL_OFFSET, PIXEL_SCALE, to_model_input
from edgekit.runtime.errors import ExportError, ModelLoadError
from edgekit.runtime.metadata import metadata_from_bytes, read_metadata
from edgekit.toolkit.data import sha256_file
from measured import check

ALL_FILES = [t.file for t in plan("all")]
FLOAT_FILES = ["model_float32.tflite", "model_float32.onnx"]
N_TEST = 500  # real MNIST test images compared against Keras


@pytest.fixture(scope="module")
def exported(small_exports):
    """`--format all`, once for the session: (folder, manifest, file names the progress callback saw)."""
    return small_exports.folder, small_exports.manifest, small_exports.seen


@pytest.fixture(scope="module")
def test_images(mnist):
    return to_model_input(mnist.x_test[:N_TEST]), mnist.y_test[:N_TEST]


@pytest.fixture(scope="module")
def keras_probs(small_model_path, test_images):
    import keras

    model = keras.saving.load_model(small_model_path, compile=False, safe_mode=True)
    return np.asarray(model.predict(test_images[0], batch_size=250, verbose=0))


def run_model(path: Path, x: np.ndarray) -> np.ndarray:
    """Probabilities from the real runtime the file targets, any batch size; int8 in/out (de)quantized here."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["probabilities"], {"image": x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], x.shape)
    interp.allocate_tensors()
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def test_all_gives_every_pair_and_progress(exported):
    out, manifest, seen = exported
    assert [a.file for a in manifest.artifacts] == ALL_FILES
    assert seen == ALL_FILES
    assert sorted(p.name for p in out.iterdir()) == sorted(ALL_FILES + [MANIFEST_NAME])  # no staging left


def test_manifest_matches_files(exported, small_model_path):
    out, manifest, _ = exported
    on_disk = json.loads((out / MANIFEST_NAME).read_text())
    assert on_disk == manifest.to_dict()
    assert on_disk["source"]["sha256"] == sha256_file(small_model_path)
    for a in on_disk["artifacts"]:
        path = out / a["file"]
        assert a["bytes"] == path.stat().st_size
        assert a["sha256"] == sha256_file(path)
        assert a["export_seconds"] > 0
        assert a["format"] == path.suffix[1:]
        assert len(a["inputs"]) == 1 and len(a["outputs"]) == 1
        assert a["inputs"][0]["shape"] == [None, 28, 28, 1] and a["outputs"][0]["shape"] == [None, 10]


@pytest.mark.numeric
@pytest.mark.parametrize("file", ALL_FILES)
def test_runs_in_its_runtime_with_metadata(exported, test_images, keras_probs, small_model_path, file):
    out, manifest, _ = exported
    path = out / file
    x, y = test_images
    # dynamic batch: one image, then the whole batch, same answers
    probs = run_model(path, x)
    one = run_model(path, x[:1])
    assert probs.shape == (N_TEST, 10) and one.shape == (1, 10)
    check(f"export {file}: max |Δp| batch of 1 vs of 500", np.abs(one[0] - probs[0]).max(), "<=", 1e-5)
    check(f"export {file}: max |sum of probabilities - 1|", np.abs(probs.sum(axis=1) - 1).max(), "<=", 0.02)

    meta = read_metadata(path)
    entry = manifest.artifact(file)
    assert meta["schema"] == 1 and meta["format"] == entry.format and meta["quantization"] == entry.quantization
    assert meta["labels"] == list(LABELS)
    assert meta["source_sha256"] == sha256_file(small_model_path)
    assert meta["input"]["name"] == "image" and meta["input"]["layout"] == "NHWC"
    assert meta["input"]["shape"] == [None, 28, 28, 1] and meta["output"]["shape"] == [None, 10]
    assert meta["input"]["scale"] == pytest.approx(PIXEL_SCALE) and meta["input"]["offset"] == PIXEL_OFFSET
    assert meta["input"]["dtype"] == entry.inputs[0]["dtype"] and meta["output"]["dtype"] == entry.outputs[0]["dtype"]
    assert "training" not in meta  # the session's model was saved by a test: no run folder's metrics.json beside it

    # every export is close to Keras; the float ones are the same model (top-1 identical, |dp| <= 1e-4)
    agree = np.mean(probs.argmax(1) == keras_probs.argmax(1))
    if file in FLOAT_FILES:
        check(f"export {file}: top-1 agreement with Keras, 500 images", agree, "==", 1.0)
        check(f"export {file}: max |Δp| to Keras", np.abs(probs - keras_probs).max(), "<=", 1e-4)
    else:
        check(f"export {file}: top-1 agreement with Keras, 500 images", agree, ">=", 0.97)
        keras_acc, acc = np.mean(keras_probs.argmax(1) == y), np.mean(probs.argmax(1) == y)
        check(f"export {file}: accuracy minus Keras', 500 images", acc - keras_acc, ">=", -0.02)


@pytest.mark.numeric
def test_tflite_signature_names_image_and_probabilities(exported, test_images, keras_probs):
    from ai_edge_litert.interpreter import Interpreter

    out, _, _ = exported
    interp = Interpreter(model_path=str(out / "model_float32.tflite"))
    assert interp.get_signature_list() == {"serving_default": {"inputs": ["image"], "outputs": ["probabilities"]}}
    probs = interp.get_signature_runner()(image=test_images[0][:8])["probabilities"]
    check("export model_float32.tflite signature runner: max |Δp| to Keras", np.abs(probs - keras_probs[:8]).max(), "<=", 1e-4)


def test_int8_tflite_has_int8_io_with_its_own_quantization(exported):
    out, manifest, _ = exported
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(out / "model_int8.tflite"))
    entry = manifest.artifact("model_int8.tflite")
    meta = read_metadata(out / "model_int8.tflite")
    for details, listed, described in ((interp.get_input_details()[0], entry.inputs[0], meta["input"]),
                                       (interp.get_output_details()[0], entry.outputs[0], meta["output"])):
        assert details["dtype"] == np.int8 and listed["dtype"] == "int8"
        scale, zero = details["quantization"]
        assert listed["quantization"] == described["quantization"] == {"scale": pytest.approx(scale), "zero_point": zero}
    # [0, 1] input maps onto the full int8 range
    assert entry.inputs[0]["quantization"]["zero_point"] == -128
    assert entry.inputs[0]["quantization"]["scale"] == pytest.approx(1 / 255, rel=1e-3)


def test_sizes_track_quantization(exported):
    _, manifest, _ = exported
    size = {a.file: a.bytes for a in manifest.artifacts}
    floor32 = 1_022_858 * 4
    assert floor32 <= size["model_float32.tflite"] <= floor32 * 1.03
    assert size["model_float16.tflite"] <= size["model_float32.tflite"] * 0.52
    for f in ("model_dynamic.tflite", "model_int8.tflite", "model_int8.onnx"):
        assert size[f] <= 1.10e6, f


def test_onnx_passes_checker_and_names(exported):
    import onnx

    out, _, _ = exported
    for file in ("model_float32.onnx", "model_int8.onnx"):
        model = onnx.load(str(out / file))
        onnx.checker.check_model(model, full_check=True)
        assert [i.name for i in model.graph.input] == ["image"]
        assert [o.name for o in model.graph.output] == ["probabilities"]
        assert model.opset_import[0].version == 17 or any(o.version == 17 for o in model.opset_import if o.domain in ("", "ai.onnx"))
    int8 = onnx.load(str(out / "model_int8.onnx"))
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # per-channel: at least one weight DequantizeLinear has a vector of scales
    inits = {i.name: i for i in int8.graph.initializer}
    scales = [inits[n.input[1]] for n in int8.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits]
    assert any(len(s.dims) == 1 and s.dims[0] > 1 for s in scales)


def test_training_facts_come_from_the_run_folder(tmp_path):
    """A run folder's metrics.json (as `edgekit train` writes it) gives the recipe and the Keras test accuracy the
    metadata carries; a model without one, or with an unreadable one, gets no ``training`` entry."""
    from edgekit.export.formats import Quantization
    from edgekit.export.metadata import build, training_facts

    model = tmp_path / "model.keras"
    assert training_facts(model) is None
    (tmp_path / "metrics.json").write_text("{not json")
    assert training_facts(model) is None
    metrics = {"test": {"accuracy": 0.9968, "loss": 0.01, "images": 10000}, "epochs": 8, "seed": 0,
               "recipe": {"name": "full", "epochs": 8, "augment": True}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    facts = training_facts(model)
    assert facts == {"recipe": "full", "seed": 0, "epochs": 8, "test_accuracy": 0.9968, "test_images": 10000}
    tensor = [{"name": "image", "shape": [None, 28, 28, 1], "dtype": "float32", "quantization": None}]
    assert build("tflite", Quantization.NONE, tensor, tensor, "0" * 64, training=facts)["training"] == facts
    assert "training" not in build("tflite", Quantization.NONE, tensor, tensor, "0" * 64)


def test_metadata_reader_agrees_with_the_official_parsers(exported):
    """The hand-written readers against ONNX Runtime's metadata map and TensorFlow's flatbuffer schema."""
    import onnxruntime as ort
    from tensorflow.lite.tools import flatbuffer_utils

    out, _, _ = exported
    for file in ("model_float32.onnx", "model_int8.onnx"):
        session = ort.InferenceSession(str(out / file), providers=["CPUExecutionProvider"])
        assert json.loads(session.get_modelmeta().custom_metadata_map["edgekit"]) == read_metadata(out / file)
    for file in ("model_float32.tflite", "model_int8.tflite"):
        obj = flatbuffer_utils.read_model_from_bytearray(bytearray((out / file).read_bytes()))
        names = [m.name.decode() if isinstance(m.name, bytes) else m.name for m in obj.metadata]
        assert names.count("edgekit") == 1 and "min_runtime_version" in names  # the converter's own entries kept
        entry = obj.metadata[names.index("edgekit")]
        assert json.loads(bytes(obj.buffers[entry.buffer].data).decode()) == read_metadata(out / file)


def test_metadata_reader_is_tensorflow_free(exported):
    out, _, _ = exported
    code = (
        "import sys, json; from edgekit.runtime.metadata import read_metadata\n"
        f"print(json.dumps([read_metadata(p)['quantization'] for p in {[str(out / f) for f in ALL_FILES]!r}]))\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'onnx', 'tf2onnx', 'flatbuffers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [t.quantization.value for t in plan("all")]


def test_metadata_reader_none_and_corrupt(exported, tmp_path):
    import onnx
    from tensorflow.lite.tools import flatbuffer_utils

    out, _, _ = exported
    # valid models without edgekit metadata -> None
    obj = flatbuffer_utils.read_model_from_bytearray(bytearray((out / "model_float32.tflite").read_bytes()))
    obj.metadata = [m for m in obj.metadata if m.name not in (b"edgekit", "edgekit")]
    assert metadata_from_bytes(flatbuffer_utils.convert_object_to_bytearray(obj), ".tflite") is None
    model = onnx.load(str(out / "model_float32.onnx"))
    del model.metadata_props[:]
    assert metadata_from_bytes(model.SerializeToString(), ".onnx") is None
    # truncated / foreign files -> ModelLoadError, never a crash
    for file in ("model_int8.tflite", "model_int8.onnx"):
        data = (out / file).read_bytes()
        bad = tmp_path / file
        for cut in (data[:3], data[:len(data) // 2], b"\x00" * 64):
            bad.write_bytes(cut)
            try:
                result = read_metadata(bad)
            except ModelLoadError as e:
                assert str(e).startswith(str(bad))
            else:
                assert result is None or isinstance(result, dict)
    with pytest.raises(ModelLoadError):
        read_metadata(tmp_path / "missing.tflite")


def test_merge_keeps_same_source_entries_only(exported, tmp_path):
    out, manifest, _ = exported
    folder = tmp_path / "merged"
    shutil.copytree(out, folder)
    first = manifest.artifacts[0]
    new = Manifest(manifest.edgekit_version, manifest.source, [first])
    merged = merge(new, read_manifest(folder), folder)
    assert [a.file for a in merged.artifacts] == ALL_FILES
    (folder / "model_int8.onnx").write_bytes(b"changed")  # a file no longer matching its entry is dropped
    assert "model_int8.onnx" not in [a.file for a in merge(new, read_manifest(folder), folder).artifacts]
    other = Manifest(manifest.edgekit_version, {"path": "x", "sha256": "0" * 64}, [first])
    assert merge(other, read_manifest(folder), folder).artifacts == [first]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else None


def test_failure_after_first_artifact_leaves_folder_as_it_was(exported, small_model_path, monkeypatch, tmp_path):
    out, _, _ = exported
    folder = tmp_path / "existing"
    folder.mkdir()
    shutil.copy(out / "model_float32.onnx", folder)  # an older export already there
    shutil.copy(out / MANIFEST_NAME, folder)
    (folder / "notes.txt").write_text("user file")
    before = snapshot(folder)
    calls = []

    def broken_onnx(model, path, quantization, context):
        calls.append(path)
        raise RuntimeError("converter exploded\nsecond line")

    monkeypatch.setitem(EXPORTERS, "onnx", broken_onnx)
    with pytest.raises(ExportError) as err:
        export_model(small_model_path, folder, formats=["tflite", "onnx"], quantizations=["none"])
    assert calls, "the failure was not reached"
    assert "onnx/none" in str(err.value) and "converter exploded" in str(err.value) and "\n" not in str(err.value)
    assert snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)  # no hidden staging folder either


def test_interrupt_in_a_new_folder_leaves_nothing(small_model_path, monkeypatch, tmp_path):
    def interrupted(model, path, quantization, context):
        path.write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setitem(EXPORTERS, "tflite", interrupted)
    folder = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        export_model(small_model_path, folder, formats="tflite", quantizations="none")
    assert not folder.exists()


def test_metadata_reader_survives_random_damage(exported, tmp_path):
    """Flipped bytes and truncations anywhere: a dict, None or ModelLoadError — never another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    out, _, _ = exported
    blobs = {f: (out / f).read_bytes() for f in ("model_int8.tflite", "model_int8.onnx")}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(sorted(blobs)), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
           st.floats(0, 1))
    def check(file, flips, keep):
        data = bytearray(blobs[file])
        # damage the places the readers walk: the flatbuffer's root/vtables at the front, protobuf fields anywhere
        for where, value in flips:
            data[int(where * (len(data) - 1)) if where > 0.5 else int(where * 2 * min(len(data) - 1, 4096))] = value
        data = bytes(data[: max(1, int(keep * len(data)))] if keep < 0.9 else data)
        try:
            result = metadata_from_bytes(data, Path(file).suffix, name=file)
        except ModelLoadError:
            return
        assert result is None or isinstance(result, dict)

    check()


@pytest.mark.parametrize("fail_at", ["second rename", "manifest"])
def test_failure_while_committing_restores_the_folder(exported, small_model_path, mnist_path, monkeypatch, tmp_path,
                                                      fail_at):
    """Replaced files come back and new ones go when the final renames or the manifest write fail."""
    import edgekit.export as ex

    out, _, _ = exported
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "model_float32.tflite").write_bytes(b"an older export")  # would be replaced
    (folder / MANIFEST_NAME).write_text('{"old": true}')
    before = snapshot(folder)

    # The converters already ran once for this module: reuse their (real) outputs to reach the commit quickly.
    def copy_real(model, path, quantization, context):
        shutil.copy(out / path.name, path)
        return [], []

    monkeypatch.setitem(EXPORTERS, "tflite", copy_real)
    if fail_at == "manifest":
        def broken_manifest(folder, manifest):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(ex, "write_manifest", broken_manifest)
    else:
        real_replace, calls = ex.os.replace, []

        def flaky_replace(src, dst):
            calls.append(dst)
            if len(calls) == 2:
                raise OSError(5, "Input/output error")
            return real_replace(src, dst)
        monkeypatch.setattr(ex.os, "replace", flaky_replace)
    with pytest.raises(OSError):
        export_model(small_model_path, folder, formats="tflite", quantizations=["none", "int8"], data=mnist_path)
    assert snapshot(folder) == before
    if fail_at == "second rename":
        assert [Path(c).name for c in calls[:2]] == ["model_float32.tflite", "model_int8.tflite"]
