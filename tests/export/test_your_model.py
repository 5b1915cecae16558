"""Your own Keras image classifier (issue 23): the input contract in the metadata, export and validate on the user's
images, the runtime reading the contract, and the bad inputs refused in one line.

The models are ``colour_digits``' (tests/conftest.py): real MNIST digits 0-4 rendered 32x32 in colour, five classes
named by their folders, one model with a Rescaling layer and one without; a few seconds to train, cached.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import colour_digits as cd
from measured import check
from edgekit.export import ExportOptions, export_model
from edgekit.export.input_options import InputOptions
from edgekit.export.validate import validate
from edgekit.runtime import Classifier
from edgekit.runtime import contract as digit
from edgekit.runtime.contract import InputContract
from edgekit.runtime.errors import EXIT_BAD_INPUT, DataError, OptionsError
from edgekit.runtime.image_input import prepare
from edgekit.runtime.metadata import read_metadata
from edgekit.toolkit.cli import app

runner = CliRunner()
BYTE = 1 / 255  # what --scale takes for pixels in [0, 1]
FAST = dict(latency_runs=3, batch_size=100)


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result, code: int = EXIT_BAD_INPUT) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def rescaling_export(colour_digits, tmp_path_factory):
    """The Rescaling model exported to TFLite float32 + int8 and ONNX float32, calibrated on the training folder."""
    out = tmp_path_factory.mktemp("rescaling") / "export"
    options = ExportOptions(formats=["tflite", "onnx"], quantizations=["none", "int8"], data=colour_digits.train_dir,
                            calib_samples=100, input=InputOptions(color="rgb"))
    export_model(colour_digits.rescaling_model, out, options)
    return out


@pytest.fixture(scope="module")
def rescaling_report(colour_digits, rescaling_export):
    """``rescaling_export`` validated on the held-out folder (once for the module)."""
    return validate(rescaling_export, data=colour_digits.test_dir, raise_on_failure=False, **FAST)


@pytest.fixture(scope="module")
def plain_export(colour_digits, tmp_path_factory):
    """The model without Rescaling (logits, BN after ReLU), pixels / 255 given as options, labels from a file."""
    root = tmp_path_factory.mktemp("plain")
    labels = root / "labels.txt"
    labels.write_text("\n".join(cd.NAMES) + "\n")
    options = ExportOptions(formats=["tflite"], quantizations=["none", "int8"], data=colour_digits.train_dir,
                            calib_samples=100, input=InputOptions(color="rgb", scale=BYTE, labels=labels))
    export_model(colour_digits.plain_model, root / "export", options)
    return root / "export"


# --- the seed CNN: today's contract, gaining the new fields --------------------------------------------------

def test_the_digit_models_metadata_keeps_its_contract(small_exports):
    for name in ("model_float32.tflite", "model_int8.tflite", "model_float32.onnx"):
        meta = read_metadata(small_exports.folder / name)
        inp = meta["input"]
        assert inp["shape"] == [None, 28, 28, 1] and inp["scale"] == digit.PIXEL_SCALE and inp["offset"] == 0.0
        assert inp["polarity"] == digit.POLARITY and inp["name"] == "image" and inp["layout"] == "NHWC"
        assert meta["labels"] == list(digit.LABELS) and meta["output"]["shape"] == [None, 10]
        assert (inp["crop"], inp["color"], inp["channels"], inp["resize"]) == ("digit", "gray", 1, "stretch")
        assert meta["output"]["scores"] == "probabilities"
        assert InputContract.from_metadata(meta) == digit.DIGIT


def test_metadata_from_before_the_contract_reads_as_the_digit_model(small_exports):
    meta = read_metadata(small_exports.folder / "model_int8.tflite")
    for key in ("crop", "color", "channels", "resize"):
        del meta["input"][key]
    del meta["output"]["scores"]
    assert InputContract.from_metadata(meta) == digit.DIGIT
    assert InputContract.from_metadata(None) == digit.DIGIT


def test_the_digit_contract_prepares_pixels_as_today(mnist):
    x = mnist.x_test[:50]
    np.testing.assert_array_equal(prepare(list(x), digit.DIGIT), digit.to_model_input(x))


def test_the_digit_model_refuses_image_options(small_model_path, tmp_path):
    result = cli("export", "--model", small_model_path, "--out", tmp_path / "out", "--resize", "letterbox")
    assert "a digit model's input is fixed" in one_error_line(result)
    assert not (tmp_path / "out").exists()


# --- a model with a Rescaling layer: everything inferred but the colour order ---------------------------

@pytest.mark.numeric
def test_rescaling_model_exports_and_validates(colour_digits, rescaling_export, rescaling_report):
    meta = read_metadata(rescaling_export / "model_int8.tflite")
    contract = InputContract.from_metadata(meta)
    assert contract == InputContract(32, 32, 3, "rgb", 1.0, 0.0, "stretch", "image", cd.NAMES, "probabilities")
    report = rescaling_report
    assert len(report.labels) == len(colour_digits.y_test) and report.class_names == cd.NAMES
    by_name = {a.name: a for a in report.artifacts}
    for name in ("model_float32.tflite", "model_float32.onnx"):
        assert by_name[name].passed, by_name[name].reasons  # agreement 100 %, max |Δp| <= 1e-4
    check("rescaling model: Keras accuracy %, 200 colour digits", report.reference.accuracy, ">", 60)
    check("rescaling model: int8 TFLite agreement with Keras %", by_name["model_int8.tflite"].agreement, ">=", 90)
    data = report.to_dict()
    assert data["labels"] == list(cd.NAMES) and data["images"] == len(colour_digits.y_test)


def test_validate_reads_an_npz_as_well_as_a_folder(colour_digits, rescaling_export, rescaling_report):
    folder = rescaling_report
    npz = validate(rescaling_export, data=colour_digits.test_npz, raise_on_failure=False, **FAST)
    order = np.argsort(npz.labels, kind="stable")  # the folder is read class by class, each class's files in turn
    np.testing.assert_array_equal(folder.labels, npz.labels[order])
    for a, b in zip(folder.artifacts, npz.artifacts):  # PNG files and the arrays: the same pixels, the same answers
        np.testing.assert_array_equal(a.predictions, b.predictions[order])


def test_validate_cli_names_the_classes(colour_digits, rescaling_export, tmp_path):
    report = tmp_path / "report.html"
    result = cli("validate", rescaling_export, "--data", colour_digits.test_dir, "--latency-runs", "3",
                 "--html", report, "--json", tmp_path / "r.json")
    assert result.exit_code in (0, 1), result.output  # 1: an int8 threshold; the float artifacts are checked above
    assert f"{len(colour_digits.y_test)} labelled images" in result.stdout
    html = report.read_text(encoding="utf-8")
    assert all(f"<th>{name}</th>" in html for name in cd.NAMES)
    assert json.loads((tmp_path / "r.json").read_text())["labels"] == list(cd.NAMES)


def test_the_contract_travels_in_tflite_and_onnx_and_info_shows_it(rescaling_export):
    tflite = read_metadata(rescaling_export / "model_float32.tflite")
    onnx = read_metadata(rescaling_export / "model_float32.onnx")
    assert InputContract.from_metadata(tflite) == InputContract.from_metadata(onnx)
    assert {k: v for k, v in tflite["input"].items() if k not in ("dtype", "quantization")} == \
           {k: v for k, v in onnx["input"].items() if k not in ("dtype", "quantization")}
    result = cli("info", rescaling_export / "model_float32.onnx")
    assert result.exit_code == 0, result.output
    assert "Nx32x32x3" in result.stdout and "the whole frame (or --roi); 3 channel(s) rgb, resize stretch" in result.stdout
    assert "labels       " + " ".join(cd.NAMES) in result.stdout
    assert "its scores are probabilities" in result.stdout


# --- a model without Rescaling: pixel options required, logits, the BN fold --------------------------------

def test_a_model_without_rescaling_needs_its_pixel_scale(colour_digits, tmp_path):
    result = cli("export", "--model", colour_digits.plain_model, "--data", colour_digits.train_dir, "--color", "rgb",
                 "--out", tmp_path / "out")
    assert "no Rescaling or Normalization layer" in one_error_line(result)
    assert not (tmp_path / "out").exists()


def test_a_model_with_rescaling_refuses_a_pixel_scale(colour_digits, tmp_path):
    result = cli("export", "--model", colour_digits.rescaling_model, "--data", colour_digits.train_dir, "--color", "rgb",
                 "--scale", BYTE, "--out", tmp_path / "out")
    assert "rescales its pixels itself" in one_error_line(result)


@pytest.mark.numeric
def test_plain_model_exports_logits_and_validates(colour_digits, plain_export):
    meta = read_metadata(plain_export / "model_int8.tflite")
    contract = InputContract.from_metadata(meta)
    assert (contract.scores, contract.scale, contract.offset, contract.labels) == ("logits", BYTE, 0.0, cd.NAMES)
    assert "bn_fold" in meta["rewrites"]  # BatchNormalization after ReLU: folded, proven by its float gate
    report = validate(plain_export, data=colour_digits.test_dir, raise_on_failure=False, **FAST)
    float32 = next(a for a in report.artifacts if a.quantization == "none")
    assert float32.passed, float32.reasons  # the runtime's softmax of the logits against Keras' softmax
    int8 = next(a for a in report.artifacts if a.quantization == "int8")
    check("plain model: int8 TFLite agreement with Keras %", int8.agreement, ">=", 90)


def test_the_runtime_turns_logits_into_probabilities(colour_digits, plain_export):
    clf = Classifier(plain_export / "model_float32.tflite")
    p = clf.probabilities(prepare([cv2_bgr(x) for x in colour_digits.x_test[:20]], clf.contract))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


# --- the runtime reads the contract ----------------------------------------------------------------------

def cv2_bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


@pytest.mark.numeric
def test_the_runtime_classifies_whole_frames_of_an_image_model(colour_digits, rescaling_export):
    clf = Classifier(rescaling_export / "model_int8.tflite")
    assert clf.contract.crop == "image" and clf.labels == list(cd.NAMES)
    frames = [cv2_bgr(x) for x in colour_digits.x_test]  # camera frames are BGR
    preds = clf.classify(frames)
    assert all(p.digit is None and p.box == (0, 0, 32, 32) for p in preds)
    hits = np.mean([p.label == cd.NAMES[y] for p, y in zip(preds, colour_digits.y_test)])
    check("image model through Classifier.classify: accuracy %, 200 colour digits", 100 * hits, ">", 60)
    # A larger frame is resized by the contract, never searched for digits: one answer for the whole frame.
    big = np.kron(frames[0], np.ones((3, 4, 1), np.uint8))
    p = clf.classify(big)
    assert p.box == (0, 0, big.shape[1], big.shape[0]) and p.label in cd.NAMES
    assert p.to_dict()["label"] == p.label
    roi = clf.classify(big, roi=(10, 5, 40, 30))
    assert roi.box == (10, 5, 40, 30)
    with pytest.raises(DataError, match="reads whole frames"):
        clf.classify_crops([])  # digit crops mean nothing to an image model, even none


def test_predict_prints_the_label_and_the_top_classes(colour_digits, rescaling_export):
    image = sorted((colour_digits.test_dir / "two").iterdir())[0]
    result = cli("predict", rescaling_export / "model_float32.tflite", image, "--top", "3", "--json")
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["digit"] is None and line["label"] in cd.NAMES and len(line["top"]) == 3
    assert line["top"][0]["label"] == line["label"]
    assert [t["confidence"] for t in line["top"]] == sorted((t["confidence"] for t in line["top"]), reverse=True)
    text = cli("predict", rescaling_export / "model_float32.tflite", image)
    assert text.stdout.strip().startswith(f"{image}: {line['label']} (")


# --- bad input: one line, exit 2, nothing written ------------------------------------------------------

def _save(model, path):
    model.save(path)
    return path


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory):
    """Models edgekit cannot treat as image classifiers (untrained: only their shapes matter)."""
    import keras
    from keras import layers

    root = tmp_path_factory.mktemp("odd")
    a, b = keras.Input((16, 16, 3)), keras.Input((16, 16, 3))
    two = keras.Model([a, b], layers.Dense(3, activation="softmax")(layers.Flatten()(layers.Concatenate()([a, b]))))
    vector = keras.Sequential([keras.Input((20,)), layers.Dense(3, activation="softmax")])
    segment = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(3, 1, activation="softmax")])
    sigmoid = keras.Sequential([keras.Input((16, 16, 3)), layers.Flatten(), layers.Dense(3, activation="sigmoid")])
    return {name: _save(m, root / f"{name}.keras") for name, m in
            (("two_inputs", two), ("vector_input", vector), ("not_a_class_vector", segment), ("sigmoid", sigmoid))}


@pytest.mark.parametrize("name, expected", [
    ("two_inputs", "has 2 inputs"),
    ("vector_input", "is not an image"),
    ("not_a_class_vector", "is not a vector of class scores"),
    ("sigmoid", "sigmoid activation, not class scores"),
])
def test_export_refuses_a_model_that_is_not_an_image_classifier(odd_models, name, expected, tmp_path):
    result = cli("export", "--model", odd_models[name], "--out", tmp_path / "out", "--color", "rgb")
    assert expected in one_error_line(result)
    assert not (tmp_path / "out").exists()


def _copy_dataset(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_export_refuses_data_that_is_not_the_models(colour_digits, tmp_path):
    base = ("export", "--model", colour_digits.rescaling_model, "--color", "rgb", "--out", tmp_path / "out")
    # Class count: a sixth class folder.
    six = _copy_dataset(colour_digits.train_dir, tmp_path / "six")
    shutil.copytree(six / "two", six / "five")
    assert "6 labels for a model of 5 classes" in one_error_line(cli(*base, "--data", six))
    # Class names: --labels that are not the folders'.
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    assert "the data's classes must be the model's" in one_error_line(cli(*base, "--data", colour_digits.train_dir,
                                                                          "--labels", labels))
    # An empty class folder.
    empty = _copy_dataset(colour_digits.train_dir, tmp_path / "empty")
    for f in (empty / "one").iterdir():
        f.unlink()
    assert "an empty class folder" in one_error_line(cli(*base, "--data", empty))
    # Images of the wrong channel count: a grayscale image for a 3-channel model.
    gray = _copy_dataset(colour_digits.train_dir, tmp_path / "gray")
    import cv2

    first = sorted((gray / "zero").iterdir())[0]
    cv2.imwrite(str(first), cv2.imread(str(first), cv2.IMREAD_GRAYSCALE))
    assert "a grayscale image for a 3-channel model" in one_error_line(cli(*base, "--data", gray))
    # No data at all for int8: an image model is never calibrated on MNIST.
    names = tmp_path / "names.txt"
    names.write_text("\n".join(cd.NAMES))
    assert "calibrated on your images" in one_error_line(cli(*base, "--labels", names))
    assert not (tmp_path / "out").exists()


def test_validate_refuses_data_that_is_not_the_models(colour_digits, rescaling_export, tmp_path):
    four = _copy_dataset(colour_digits.test_dir, tmp_path / "four")
    shutil.rmtree(four / "zero")
    assert "missing: zero" in one_error_line(cli("validate", rescaling_export, "--data", four))
    assert "pass --data DIR" in one_error_line(cli("validate", rescaling_export))
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=colour_digits.x_test[..., 0], y=colour_digits.y_test)  # one channel for a 3-channel model
    assert "images of 1 channel(s) for a 3-channel model" in one_error_line(cli("validate", rescaling_export, "--data", bad))


def test_contract_options_are_checked_before_any_work():
    with pytest.raises(OptionsError, match="unknown --resize 'squash'"):
        InputOptions(resize="squash")
    with pytest.raises(OptionsError, match="--mean takes 1 or 3"):
        InputOptions(mean="1,2")


def test_the_camera_loop_runs_an_image_model(colour_digits, rescaling_export):
    from edgekit.runtime.camera import IterSource, annotate, run_loop

    clf = Classifier(rescaling_export / "model_float32.tflite")
    frames = [cv2_bgr(np.kron(x, np.ones((4, 4, 1), np.uint8))) for x in colour_digits.x_test[::40]]  # 128x128
    results = []
    end = run_loop(IterSource(frames), clf, results.append)
    assert end.frames == len(frames)
    for result, frame in zip(results, frames):
        line = result.to_dict()
        assert line["digit"] is None and line["label"] == clf.classify(frame).label and line["box"] == [0, 0, 128, 128]
        drawn = annotate(result)
        assert drawn.shape == frame.shape and not np.array_equal(drawn, frame)  # the box and label drawn on it


def test_benchmark_times_an_image_model_and_refuses_digit_data_for_it(colour_digits, rescaling_export, mnist_path, tmp_path):
    model = rescaling_export / "model_int8.tflite"
    result = cli("benchmark", model, "--threads", "1", "--frames", "5", "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "b.json").read_text())["rows"][0]
    assert row["file"] == model.name and row["accuracy"] is None and row["frames_read_right"] is None
    assert row["invoke_p50_ms"] > 0 and row["frame_p50_ms"] > 0
    result = cli("benchmark", model, "--threads", "1", "--frames", "5", "--data", mnist_path)
    assert "an image model; --data here holds digits" in one_error_line(result)


def test_collect_saves_an_image_models_frames_under_its_labels(colour_digits, rescaling_export, tmp_path):
    """``collect --model IMAGE_MODEL``: each image (or video frame's ROI) saved whole, unresized, as
    OUT/<label>/...png, a folder export and validate --data read back as the same pixels; bad labels refused."""
    import cv2

    from edgekit.export.image_data import load_images
    from edgekit.toolkit.synthetic import write_video

    model = rescaling_export / "model_int8.tflite"
    photos = tmp_path / "photos"
    photos.mkdir()
    picks = [int(np.flatnonzero(colour_digits.y_test == k)[0]) for k in range(len(cd.NAMES))]
    for i in picks:  # 0003_two.png: the label is the file name's last _-separated part
        big = np.kron(colour_digits.x_test[i], np.ones((2, 3, 1), np.uint8))  # 64x96: saved unresized
        cv2.imwrite(str(photos / f"{i:04d}_{cd.NAMES[colour_digits.y_test[i]]}.png"), cv2_bgr(big))
    out = tmp_path / "mine"
    result = cli("collect", photos, "--out", out, "--model", model, "--labels-from-names")
    assert result.exit_code == 0, result.output
    assert f"saved {len(picks)} image(s)" in result.stdout
    summary = json.loads((out / "collect.json").read_text())
    assert summary["counts"] == {n: 1 for n in cd.NAMES} and summary["preprocessing"]["crop"] == "image"
    back = load_images(out, Classifier(model).contract)  # what export/validate --data read
    for i in picks:
        saved = cv2.imread(str(next((out / cd.NAMES[colour_digits.y_test[i]]).glob("*.png"))), cv2.IMREAD_UNCHANGED)
        assert saved.shape == (64, 96, 3) and np.array_equal(saved, cv2_bgr(np.kron(colour_digits.x_test[i], np.ones((2, 3, 1), np.uint8))))
    assert sorted(back.y.tolist()) == list(range(len(cd.NAMES))) and back.x.shape[1:] == (32, 32, 3)

    video = write_video(tmp_path / "four.avi", [np.full((120, 160, 3), 40 * k, np.uint8) for k in range(4)], fps=10)
    result = cli("collect", video, "--out", out, "--model", model, "--label", "four", "--roi", "10,20,50,40")
    assert result.exit_code == 0, result.output
    fours = sorted((out / "four").glob("four-*.png"))
    assert len(fours) == 4 and all(cv2.imread(str(f)).shape == (40, 50, 3) for f in fours)

    for args, message in [(["--label", "7"], "--label must be one of the model's labels"),
                          ([], "an image model's frames are saved with --label NAME or --labels-from-names")]:
        result = cli("collect", video, "--out", tmp_path / "none", "--model", model, *args)
        assert message in one_error_line(result)
        assert not (tmp_path / "none").exists()


def test_a_three_channel_model_needs_its_colour_order_and_multi_is_for_digits(colour_digits, rescaling_export, tmp_path):
    result = cli("export", "--model", colour_digits.rescaling_model, "--data", colour_digits.train_dir, "--out", tmp_path / "out")
    assert "pass --color rgb" in one_error_line(result)
    assert not (tmp_path / "out").exists()
    image = sorted((colour_digits.test_dir / "one").iterdir())[0]
    result = cli("predict", rescaling_export / "model_int8.tflite", image, "--multi")
    assert "--multi reads every digit of a digit model" in one_error_line(result)


def _without_metadata(path) -> bytes:
    """A .tflite's flatbuffer with edgekit's metadata entry and its buffer emptied: the converted model alone."""
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    ours = [m for m in obj.metadata if (m.name.decode() if isinstance(m.name, bytes) else m.name) == "edgekit"]
    obj.buffers[ours[0].buffer].data = None
    obj.metadata = [m for m in obj.metadata if m not in ours]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def test_the_seed_cnn_through_the_image_path_gives_the_digit_paths_artifacts(small_model_path, mnist, tmp_path):
    """The seed CNN exported as a plain image classifier (labels 0-9, gray, pixels / 255, calibrated on an x/y npz
    of the same training images) converts to the same TFLite bytes, float32 and int8, as through today's digit
    path; only the metadata's crop mode differs."""
    n = 2000
    data = tmp_path / "mnist-both.npz"  # the digit path reads x_train/y_train, the image path x/y: the same images
    np.savez(data, x_train=mnist.x_train[:n], y_train=mnist.y_train[:n], x_test=mnist.x_test[:10],
             y_test=mnist.y_test[:10], x=mnist.x_train[:n], y=mnist.y_train[:n])
    labels = tmp_path / "digits.txt"
    labels.write_text("\n".join(digit.LABELS))
    common = dict(formats=["tflite"], quantizations=["none", "int8"], data=data, calib_samples=100)
    export_model(small_model_path, tmp_path / "digit", ExportOptions(**common))
    export_model(small_model_path, tmp_path / "image", ExportOptions(**common, input=InputOptions(
        crop="image", labels=labels, color="gray", scale=BYTE)))
    for name in ("model_float32.tflite", "model_int8.tflite"):
        assert _without_metadata(tmp_path / "digit" / name) == _without_metadata(tmp_path / "image" / name), name
        a, b = read_metadata(tmp_path / "digit" / name), read_metadata(tmp_path / "image" / name)
        assert (a["input"]["crop"], b["input"]["crop"]) == ("digit", "image") and a["labels"] == b["labels"]
        assert a["rewrites"] == b["rewrites"]


def test_max_drop_holds_out_the_users_images_for_an_image_model(colour_digits, tmp_path):
    """``--max-drop`` on an image model measures on the user's images (none of them a calibration image), never
    on MNIST, and the artifact still carries the image contract."""
    options = ExportOptions(formats=["tflite"], quantizations=["int8"], data=colour_digits.train_dir, calib_samples=100,
                            max_drop=0.5, input=InputOptions(color="rgb"))
    export_model(colour_digits.rescaling_model, tmp_path / "out", options)
    meta = read_metadata(tmp_path / "out" / "model_int8.tflite")
    assert InputContract.from_metadata(meta).crop == "image"
    train_images = cd.TRAIN_PER_CLASS * len(cd.NAMES)
    assert 0 < meta["selective"]["holdout_images"] <= train_images - 100  # the folder minus the calibration images
