"""`edgekit benchmark` on two real small artifacts: every column, every JSON field, a recommendation that is one
of the rows; bad input (a corrupt model, an empty folder, --threads 0) is one line and exit 2. Speeds are not
asserted: they are what the command measures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.runtime.benchmark import Row, camera_like_frames, load_labelled
from edgekit.runtime.errors import EXIT_BAD_INPUT
from edgekit.toolkit.cli import app

runner = CliRunner()
COLUMNS = ("artifact", "threads", "size MB", "accuracy", "invoke p50", "frame p50", "FPS", "peak MB")


@pytest.fixture(scope="module")
def two_models(models, tmp_path_factory):
    d = tmp_path_factory.mktemp("bench-models")
    for name in ("float32.tflite", "int8.tflite"):
        shutil.copyfile(models[name], d / f"model_{name}")
    return d


@pytest.fixture(scope="module")
def small_npz(mnist, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench-data") / "mnist_small.npz"
    np.savez(path, x_test=mnist.x_test[:300], y_test=mnist.y_test[:300])
    return path


@pytest.fixture(scope="module")
def bench(two_models, small_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out") / "bench.json"
    r = runner.invoke(app, ["benchmark", str(two_models), "--data", str(small_npz), "--threads", "1,2",
                            "--frames", "20", "--json", str(out)])
    return r, out


def test_table_json_and_recommendation(bench, two_models):
    r, out = bench
    assert r.exit_code == 0, r.output
    header = r.stdout.splitlines()[0]
    for column in COLUMNS:
        assert column in header
    files = sorted(p.name for p in two_models.iterdir())
    rows_text = [line for line in r.stdout.splitlines() if line.split() and line.split()[0] in files]
    assert len(rows_text) == 4  # 2 artifacts x 2 thread counts
    report = json.loads(out.read_text())
    assert [(row["file"], row["threads"]) for row in report["rows"]] == [(f, t) for f in files for t in (1, 2)]
    fields = set(Row.__dataclass_fields__)
    for row in report["rows"]:
        assert set(row) == fields
        assert row["accuracy"] is not None and 0 <= row["accuracy"] <= 100
        assert 0 < row["invoke_p50_ms"] <= row["invoke_p95_ms"]
        assert 0 < row["frame_p50_ms"] <= row["frame_p95_ms"]
        assert row["fps"] > 0 and row["peak_rss_mb"] > 0 and row["bytes"] == (two_models / row["file"]).stat().st_size
    assert report["images"] == 300
    rec = report["recommendation"]
    assert (rec["file"], rec["threads"]) in {(row["file"], row["threads"]) for row in report["rows"]}
    best = max(row["accuracy"] for row in report["rows"])
    chosen = next(row for row in report["rows"] if (row["file"], row["threads"]) == (rec["file"], rec["threads"]))
    assert chosen["accuracy"] >= best - report["options"]["tolerance_points"]
    assert rec["line"] in r.stdout and rec["line"].startswith(f"recommended: {rec['file']} with {rec['threads']} thread")
    assert "[4/4]" in r.stderr  # the progress line


def test_accuracy_is_the_runtimes_own(bench, small_npz, two_models):
    """The accuracy column is the classifier's argmax on the npz's test images, counted again here."""
    from edgekit.runtime import Classifier
    from edgekit.runtime.contract import to_model_input

    _, out = bench
    x, y = load_labelled(small_npz)
    for row in json.loads(out.read_text())["rows"]:
        p = Classifier(two_models / row["file"]).probabilities(to_model_input(x))
        assert row["accuracy"] == pytest.approx(100.0 * (p.argmax(1) == y).mean())


def test_bundled_model_by_default_without_data():
    r = runner.invoke(app, ["benchmark", "--threads", "1", "--frames", "5"])
    assert r.exit_code == 0, r.output
    assert "model_int8.tflite" in r.stdout and "accuracy not measured" in r.stdout


def test_frames_are_camera_like():
    frames = list(camera_like_frames(12))
    assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f, _ in frames)
    assert len({label for _, label in frames}) > 3


@pytest.mark.parametrize("case", ["corrupt model", "empty folder", "threads 0", "threads text", "missing model", "bad data"])
def test_bad_input_is_one_line_exit_2(case, tmp_path, two_models):
    args = {
        "corrupt model": lambda: [str(_write(tmp_path / "bad.tflite", b"not a model"))],
        "empty folder": lambda: [str(_mkdir(tmp_path / "empty"))],
        "threads 0": lambda: [str(two_models), "--threads", "0"],
        "threads text": lambda: [str(two_models), "--threads", "one"],
        "missing model": lambda: [str(tmp_path / "nope.onnx")],
        "bad data": lambda: [str(two_models), "--data", str(_write(tmp_path / "x.npz", b"nope"))],
    }[case]()
    r = runner.invoke(app, ["benchmark", *args, "--frames", "2"])
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1 and "Traceback" not in r.output
    assert r.stdout == ""


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path


def test_a_digit_folder_as_data(two_models, mnist, tmp_path):
    import cv2

    for k in range(20):
        folder = tmp_path / "digits" / str(int(mnist.y_test[k]))
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"crop-{k}.png"), mnist.x_test[k])
    out = tmp_path / "bench.json"
    r = runner.invoke(app, ["benchmark", str(two_models / "model_int8.tflite"), "--data", str(tmp_path / "digits"),
                            "--threads", "1", "--frames", "3", "--json", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert report["images"] == 20 and report["rows"][0]["accuracy"] is not None


def _row(name, threads, accuracy, frame_ms):
    return Row(name, "tflite", "int8", threads, 1, accuracy, 0.1, 0.2, frame_ms, frame_ms * 2, 1000 / frame_ms, 1.0, 50.0)


def test_recommendation_is_the_fastest_within_the_tolerance():
    from edgekit.runtime.benchmark import BenchmarkOptions, Report

    rows = [_row("float32", 1, 99.6, 3.0), _row("int8", 1, 99.5, 1.0), _row("int8", 2, 99.5, 0.8), _row("tiny", 1, 98.0, 0.1)]
    report = Report(rows, BenchmarkOptions(tolerance=0.2), "data.npz", 100)
    assert (report.recommendation.file, report.recommendation.threads) == ("int8", 2)  # tiny is fastest but 1.6 points worse
    strict = Report(rows, BenchmarkOptions(tolerance=0.0), "data.npz", 100)
    assert strict.recommendation.file == "float32"
    no_data = Report([r.__class__(**{**r.__dict__, "accuracy": None}) for r in rows], BenchmarkOptions(), None, 0)
    assert no_data.recommendation.file == "tiny" and "accuracy not measured" in no_data.recommendation_line()
