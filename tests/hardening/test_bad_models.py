"""Missing, zero-byte, truncated, random-bytes and wrong-format model files, for every way edgekit takes a model:
``export --model``, ``validate`` (its artifacts and ``--reference``), ``predict MODEL``, ``info MODEL``,
``webcam --model`` and the Python ``Classifier``. Each is one error line, exit 2, no traceback, nothing written."""

from __future__ import annotations

import shutil

import pytest

from edgekit.runtime.errors import EXIT_BAD_INPUT, ModelLoadError

from .conftest import BAD_KINDS, cli, error_line, listing, make_bad_model


def _has_command(name: str) -> bool:
    from edgekit.toolkit.cli import app

    return any(c.name == name for c in app.registered_commands)


# --- export --model (a .keras) ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", BAD_KINDS)
def test_export_bad_model(kind, small_model_path, exported, tmp_path):
    model = make_bad_model(kind, small_model_path, exported / "model_float32.tflite", tmp_path)
    out = tmp_path / "out"
    line = error_line(cli("export", "--model", model, "--format", "tflite", "--quantize", "none", "--out", out),
                      EXIT_BAD_INPUT)
    assert str(model) in line
    assert ("no such model file" in line) if kind == "missing" else ("cannot load the Keras model" in line)
    assert "File not found" not in line  # what Keras itself says about an existing but broken file
    assert not out.exists()


def test_export_a_zip_that_is_not_a_keras_model(small_npz, tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(small_npz.read_bytes())  # a real zip archive (an .npz), but no Keras model inside
    out = tmp_path / "out"
    line = error_line(cli("export", "--model", model, "--out", out), EXIT_BAD_INPUT)
    assert str(model) in line and "cannot load the Keras model" in line
    assert not out.exists()


def test_export_model_with_another_suffix(exported, tmp_path):
    out = tmp_path / "out"
    line = error_line(cli("export", "--model", exported / "model_float32.tflite", "--out", out), EXIT_BAD_INPUT)
    assert "not a .keras file" in line
    assert not out.exists()


# --- validate: a bad artifact in the export folder, a bad --reference -------------------------------

@pytest.fixture
def export_copy(exported, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(exported, copy)
    return copy


@pytest.mark.parametrize("artifact", ["model_float32.tflite", "model_float32.onnx"])
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_validate_bad_artifact(kind, artifact, export_copy, exported, small_model_path, small_npz, tmp_path):
    target = export_copy / artifact
    other = exported / ("model_float32.onnx" if artifact.endswith(".tflite") else "model_float32.tflite")
    bad = make_bad_model(kind, target, other, tmp_path, suffix=target.suffix)
    target.unlink()
    if bad.exists():
        shutil.move(bad, target)
    before = listing(export_copy)
    json_out = tmp_path / "report.json"
    line = error_line(
        cli("validate", export_copy, "--reference", small_model_path, "--data", small_npz, "--limit", 50,
            "--latency-runs", 1, "--json", json_out),
        EXIT_BAD_INPUT,
    )
    assert artifact in line
    assert ("missing" in line) if kind == "missing" else ("cannot load" in line or "re-run `edgekit export`" in line)
    assert listing(export_copy) == before
    assert not json_out.exists()


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_validate_bad_reference(kind, export_copy, small_model_path, exported, small_npz, tmp_path):
    ref = make_bad_model(kind, small_model_path, exported / "model_float32.onnx", tmp_path)
    before = listing(export_copy)
    line = error_line(
        cli("validate", export_copy, "--reference", ref, "--data", small_npz, "--limit", 50, "--latency-runs", 1),
        EXIT_BAD_INPUT,
    )
    assert str(ref) in line
    assert ("no such Keras model" in line) if kind == "missing" else ("cannot load the Keras model" in line)
    assert "File not found" not in line
    assert listing(export_copy) == before


# --- the Python Classifier --------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_classifier_bad_model(kind, suffix, exported, tmp_path):
    from edgekit.runtime import Classifier

    good = exported / f"model_float32{suffix}"
    wrong = exported / ("model_float32.onnx" if suffix == ".tflite" else "model_float32.tflite")
    path = make_bad_model(kind, good, wrong, tmp_path)
    with pytest.raises(ModelLoadError) as e:
        Classifier(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    assert e.value.exit_code == EXIT_BAD_INPUT


def test_classifier_unknown_suffix(small_model_path):
    from edgekit.runtime import Classifier

    with pytest.raises(ModelLoadError, match="unknown model format '.keras'"):
        Classifier(small_model_path)


# --- predict MODEL and webcam --model ---------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_predict_bad_model(kind, suffix, exported, digit_png, tmp_path):
    if not _has_command("predict"):
        pytest.fail("edgekit predict is not registered")
    wrong = exported / ("model_float32.onnx" if suffix == ".tflite" else "model_float32.tflite")
    model = make_bad_model(kind, exported / f"model_float32{suffix}", wrong, tmp_path)
    line = error_line(cli("predict", model, digit_png), EXIT_BAD_INPUT)
    assert str(model) in line


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_info_bad_model(kind, suffix, exported, tmp_path):
    """`edgekit info MODEL` reads only the file's bytes (no backend): a bad file is still one line, exit 2."""
    if not _has_command("info"):
        pytest.fail("edgekit info is not registered")
    wrong = exported / ("model_float32.onnx" if suffix == ".tflite" else "model_float32.tflite")
    model = make_bad_model(kind, exported / f"model_float32{suffix}", wrong, tmp_path)
    line = error_line(cli("info", model), EXIT_BAD_INPUT)
    assert str(model) in line


def test_info_folder_and_unknown_suffix(small_model_path, tmp_path):
    assert "is a folder" in error_line(cli("info", tmp_path), EXIT_BAD_INPUT)
    assert "unknown model format '.keras'" in error_line(cli("info", small_model_path), EXIT_BAD_INPUT)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_webcam_bad_model(kind, exported, digit_png, tmp_path):
    if not _has_command("webcam"):
        pytest.fail("edgekit webcam is not registered")
    model = make_bad_model(kind, exported / "model_int8.tflite", exported / "model_float32.onnx", tmp_path)
    line = error_line(cli("webcam", "--model", model, "--source", digit_png, "--headless"), EXIT_BAD_INPUT)
    assert str(model) in line


# --- validate: a bad manifest.json --------------------------------------------------------------------

def _manifest(folder, text: str | None) -> None:
    path = folder / "manifest.json"
    if text is None:
        path.unlink()
    else:
        path.write_text(text)


@pytest.mark.parametrize("text, expected", [
    (None, "manifest.json: not found"),
    ("", "manifest.json: not valid JSON"),
    ("{not json", "manifest.json: not valid JSON"),
    ("[1, 2]", "manifest.json: lists no artifacts"),
    ('{"artifacts": []}', "manifest.json: lists no artifacts"),
    ('{"artifacts": [{"file": 3}]}', "artifact #1 lacks file, format or quantization"),
    ('{"artifacts": [{"file": "../../../etc/passwd", "format": "tflite", "quantization": "none"}]}',
     "is not a plain file name inside the folder"),
    ('{"artifacts": [{"file": "model_float32.tflite", "format": "tflite", "quantization": "int4"}]}',
     "has quantization 'int4'"),
])
def test_validate_bad_manifest(text, expected, export_copy, small_model_path, small_npz):
    _manifest(export_copy, text)
    before = listing(export_copy)
    line = error_line(cli("validate", export_copy, "--reference", small_model_path, "--data", small_npz, "--limit", 20),
                      EXIT_BAD_INPUT)
    assert expected in line
    assert listing(export_copy) == before
