"""A folder of digits (DIR/<digit>/*.png, what `edgekit collect` writes) as a dataset: read, split, validated."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.runtime.errors import DataError
from edgekit.toolkit.cli import app
from edgekit.toolkit.data import holdout_split, is_digit_folder, load_digit_folder, load_mnist

runner = CliRunner()


def write_folder(root, images, labels, start: int = 0):
    for i, (img, label) in enumerate(zip(images, labels), start):
        (root / str(int(label))).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / str(int(label)) / f"img-{i}.png"), img)
    return root


@pytest.fixture
def folder(tmp_path, mnist):
    return write_folder(tmp_path / "mine", mnist.x_test[:100], mnist.y_test[:100])


def test_a_digit_folder_reads_back_exactly(folder, mnist):
    d = load_digit_folder(folder)
    assert d.x.dtype == np.uint8 and d.x.shape == (100, 28, 28)
    order = np.argsort([f"{l}/img-{i}.png" for i, l in enumerate(mnist.y_test[:100])], kind="stable")
    by_file = {f: i for i, f in enumerate(d.files)}
    for i, label in enumerate(mnist.y_test[:100]):
        j = by_file[str(folder / str(label) / f"img-{i}.png")]
        np.testing.assert_array_equal(d.x[j], mnist.x_test[i])
        assert d.y[j] == label
    assert len(order) == 100 and len(d.sha256) == 64
    assert is_digit_folder(folder) and not is_digit_folder(folder / "3")


def test_the_holdout_is_a_seeded_fifth_of_each_digit(folder):
    d = load_digit_folder(folder)
    train, held = holdout_split(d.y)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == 100
    for digit in range(10):
        n = int(np.sum(d.y == digit))
        assert int(np.sum(d.y[held] == digit)) == max(1 if n >= 2 else 0, round(0.2 * n))
    again = holdout_split(d.y)
    np.testing.assert_array_equal(held, again[1])
    m = load_mnist(folder)  # the same split, as train/test
    assert m.kind == "folder" and len(m.x_test) == len(held)
    np.testing.assert_array_equal(m.x_test, d.x[held])


def _one_error_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [l for l in (result.stderr or result.output).splitlines() if l.startswith("edgekit: error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda root: (root / "cats").mkdir(), "cats: unknown class folder 'cats'"),
        (lambda root: (root / "3" / "bad.png").write_bytes(b"\x89PNG garbage"), "3/bad.png: not an image OpenCV can decode"),
        (lambda root: (root / "3" / "empty.png").write_bytes(b""), "3/empty.png: not an image OpenCV can decode"),
        (lambda root: cv2.imwrite(str(root / "4" / "big.png"), np.zeros((32, 30), np.uint8)), "4/big.png: 30x32 pixels; a digit crop is 28x28"),
        (lambda root: cv2.imwrite(str(root / "4" / "paper.png"), np.full((28, 28), 230, np.uint8)), "4/paper.png: dark ink on a light background"),
        (lambda root: cv2.imwrite(str(root / "4" / "rgb.png"), np.dstack([np.zeros((28, 28), np.uint8)] * 2 + [np.full((28, 28), 9, np.uint8)])), "4/rgb.png: a colour image"),
        (lambda root: cv2.imwrite(str(root / "4" / "deep.png"), np.zeros((28, 28), np.uint16)), "4/deep.png: uint16 pixels"),
        (lambda root: (root / "4" / "notes.txt").write_text("hello"), "4/notes.txt: not an image file"),
    ],
)
def test_bad_folders_are_one_line_naming_the_file_and_exit_2(folder, tmp_path, break_it, message):
    break_it(folder)
    with pytest.raises(DataError, match=message.split(": ", 1)[1].split("'")[0]):
        load_digit_folder(folder)
    result = runner.invoke(app, ["train", "--data", str(folder), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert message in _one_error_line(result)
    assert not (tmp_path / "run").exists()


def test_an_empty_digit_folder_is_refused(tmp_path):
    (tmp_path / "mine" / "3").mkdir(parents=True)
    with pytest.raises(DataError, match="no digit images"):
        load_digit_folder(tmp_path / "mine")


def test_files_beside_the_class_folders_are_not_images_of_a_class(folder):
    (folder / "collect.json").write_text("{}")
    (folder / "README.txt").write_text("my digits")
    assert len(load_digit_folder(folder).y) == 100


def test_train_from_scratch_on_a_digit_folder(folder, tmp_path):
    """`edgekit train --data DIR`: no MNIST; the folder's held-out 20 % is the test set (--val-split defaults to 0).
    Two steps: what they learn is not asserted, only that the run is an ordinary one on the right images."""
    import json

    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(folder), "--out", str(out), "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    d = load_digit_folder(folder)
    _, held = holdout_split(d.y)
    assert m["test"]["images"] == len(held) and m["train_images"] == 100 - len(held) and m["val_images"] == 0
    assert m["data"] == {"source": str(folder), "sha256": d.sha256}
    assert (out / "model.keras").is_file()
