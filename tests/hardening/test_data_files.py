"""Malformed data files through ``train --data``, ``export --data`` (int8 calibration) and ``validate --data``:
one line naming the file and what is wrong, exit 2, no traceback, nothing written."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from edgekit.runtime.errors import EXIT_BAD_INPUT

from .conftest import cli, error_line, listing

GOOD = {
    "x_train": np.zeros((300, 28, 28), np.uint8), "y_train": np.arange(300, dtype=np.uint8) % 10,
    "x_test": np.zeros((50, 28, 28), np.uint8), "y_test": np.arange(50, dtype=np.uint8) % 10,
}

# kind -> (how to make it in a folder, what the one line must say)
DATA_KINDS = {
    "missing": (lambda d: d / "nope.npz", "no such file or folder"),
    "zero-byte .npz": (lambda d: _raw(d / "empty.npz", b""), "not a readable .npz (an empty file)"),
    "truncated .npz": (lambda d: _raw(d / "cut.npz", _npz_bytes(d)[:2000]), "not a readable .npz"),
    "random bytes": (lambda d: _raw(d / "random.npz", np.random.default_rng(0).bytes(4096)), "not a zip archive"),
    "text file": (lambda d: _raw(d / "mnist.npz", b"x_train,y_train\n1,2\n"), "not a zip archive"),
    "a .npy array": (lambda d: _npy(d / "x.npy"), "a single .npy array"),
    "pickled object array": (lambda d: _npz(d / "obj.npz", x_train=np.array([None] * 300, dtype=object)),
                             "Object arrays cannot be loaded when allow_pickle=False"),
    "missing keys": (lambda d: _npz_only(d / "keys.npz", x_train=GOOD["x_train"]), "missing key(s) y_train, x_test, y_test"),
    "wrong image shape": (lambda d: _npz(d / "shape.npz", x_train=np.zeros((300, 32, 32), np.uint8)),
                          "x_train has shape (300, 32, 32), expected (N, 28, 28)"),
    "float images": (lambda d: _npz(d / "float.npz", x_test=np.zeros((50, 28, 28), np.float32)),
                     "x_test is float32, expected uint8"),
    "labels out of range": (lambda d: _npz(d / "labels.npz", y_train=np.full(300, 10, np.int64)),
                            "y_train has labels 10..10, expected 0-9"),
    "label count mismatch": (lambda d: _npz(d / "count.npz", y_test=np.zeros(49, np.uint8)),
                             "y_test has shape (49,), expected (50,)"),
    "empty split": (lambda d: _npz(d / "split.npz", x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8)),
                    "the test split is empty"),
    "empty folder": (lambda d: _folder(d / "idx"), "no train-images-idx3-ubyte[.gz]"),
    "IDX bad magic": (lambda d: _idx(d, magic=0x0803), "bad IDX magic number 0x00000803, expected 0x00000801"),
    "IDX truncated": (lambda d: _idx(d, cut=True), "header says"),
    "IDX .gz not gzip": (lambda d: _idx(d, fake_gz=True), "cannot read"),
}


def _raw(path, data: bytes):
    path.write_bytes(data)
    return path


def _npz_bytes(d) -> bytes:
    return _npz(d / "whole.npz").read_bytes()


def _npz(path, **changes):
    np.savez(path, **{**GOOD, **changes})
    return path


def _npz_only(path, **arrays):
    np.savez(path, **arrays)
    return path


def _npy(path):
    np.save(path, GOOD["x_train"])
    return path


def _folder(path):
    path.mkdir()
    return path


def _idx(d, magic: int | None = None, cut: bool = False, fake_gz: bool = False):
    folder = _folder(d / "idx")
    for name, arr, m in [("train-images-idx3-ubyte", GOOD["x_train"], 0x0803), ("train-labels-idx1-ubyte", GOOD["y_train"], 0x0801),
                         ("t10k-images-idx3-ubyte", GOOD["x_test"], 0x0803), ("t10k-labels-idx1-ubyte", GOOD["y_test"], 0x0801)]:
        header = m.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
        data = header + arr.tobytes()
        if name == "t10k-labels-idx1-ubyte" and magic is not None:
            data = magic.to_bytes(4, "big") + data[4:]
        if name == "train-images-idx3-ubyte" and cut:
            data = data[: len(data) - 100]
        if name == "train-labels-idx1-ubyte" and fake_gz:
            (folder / (name + ".gz")).write_bytes(b"not gzip at all")
            continue
        (folder / name).write_bytes(data)
    return folder


def test_the_good_data_really_loads(tmp_path):
    from edgekit.toolkit.data import load_mnist

    assert len(load_mnist(_npz(tmp_path / "good.npz")).x_train) == 300
    assert len(load_mnist(_idx(tmp_path)).x_test) == 50
    gz = tmp_path / "gz"
    gz.mkdir()
    for f in (tmp_path / "idx").iterdir():
        (gz / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
    assert len(load_mnist(gz).y_train) == 300


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_train_bad_data(kind, tmp_path):
    make, expected = DATA_KINDS[kind]
    data = make(tmp_path)
    out = tmp_path / "run"
    line = error_line(cli("train", "--data", data, "--out", out, "--limit", 64, "--val-split", 10, "--epochs", 1), EXIT_BAD_INPUT)
    assert str(data) in line and expected in line
    assert not out.exists()


# export loads the Keras model (~1 s) before the data: a subset of kinds, the loader is the same code.
@pytest.mark.parametrize("kind", ["missing", "zero-byte .npz", "random bytes", "pickled object array", "wrong image shape",
                                  "IDX bad magic"])
def test_export_int8_bad_calibration_data(kind, small_model_path, tmp_path):
    make, expected = DATA_KINDS[kind]
    data = make(tmp_path)
    out = tmp_path / "out"
    line = error_line(cli("export", "--model", small_model_path, "--quantize", "int8", "--data", data, "--out", out), EXIT_BAD_INPUT)
    assert str(data) in line and expected in line
    assert not out.exists()


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_validate_bad_data(kind, exported, small_model_path, tmp_path):
    make, expected = DATA_KINDS[kind]
    data = make(tmp_path)
    before = listing(exported)
    report = tmp_path / "report.json"
    line = error_line(cli("validate", exported, "--reference", small_model_path, "--data", data, "--json", report),
                      EXIT_BAD_INPUT)
    assert str(data) in line and expected in line
    assert listing(exported) == before and not report.exists()
