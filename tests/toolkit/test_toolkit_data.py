"""The MNIST loader on good and malformed files, built in tmp_path from real MNIST subsets."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from edgekit.runtime.errors import DataError
from edgekit.toolkit.data import IDX_FILES, load_mnist, sha256_file

from toolkit_files import idx_bytes, write_idx_folder, write_npz


def test_npz_loads_the_real_arrays(small_npz, small_arrays):
    m = load_mnist(small_npz)
    for key, expected in small_arrays.items():
        np.testing.assert_array_equal(getattr(m, key), expected)
    assert m.x_train.dtype == np.uint8 and m.x_train.shape == (1200, 28, 28)
    assert m.sha256 == sha256_file(small_npz) and m.source == str(small_npz)


def test_the_full_file_is_mnist(mnist):
    assert (len(mnist.x_train), len(mnist.x_test)) == (60000, 10000)
    assert sorted(np.unique(mnist.y_train)) == list(range(10))


def test_environment_variable_names_the_data(small_npz, monkeypatch):
    monkeypatch.setenv("EDGEKIT_DATA", str(small_npz))
    assert load_mnist().source == str(small_npz)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(small_arrays, tmp_path, gz):
    folder = write_idx_folder(tmp_path / "idx", **small_arrays, gz=gz)
    m = load_mnist(folder)
    for key, expected in small_arrays.items():
        np.testing.assert_array_equal(getattr(m, key), expected)
    assert m.sha256 and len(m.sha256) == 64


def test_truncated_npz(small_npz, tmp_path):
    bad = tmp_path / "truncated.npz"
    raw = small_npz.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated.npz: not a readable .npz"):
        load_mnist(bad)


def test_npz_member_truncated_inside_a_valid_zip(small_arrays, tmp_path):
    # A zip whose central directory is fine but whose x_train.npy member is cut short.
    good = write_npz(tmp_path / "good.npz", **small_arrays)
    bad = tmp_path / "short-member.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, data[: len(data) // 3] if info.filename == "x_train.npy" else data)
    with pytest.raises(DataError, match="short-member.npz"):
        load_mnist(bad)


def test_not_a_zip_at_all(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_text("this is not MNIST\n")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_mnist(bad)


def test_wrong_keys(small_arrays, tmp_path):
    arrays = dict(small_arrays)
    arrays["images"] = arrays.pop("x_train")
    bad = write_npz(tmp_path / "keys.npz", **arrays)
    with pytest.raises(DataError, match="missing key\\(s\\) x_train"):
        load_mnist(bad)


@pytest.mark.parametrize(
    "key, transform, message",
    [
        ("x_train", lambda x: x.reshape(len(x), 784), r"x_train has shape \(1200, 784\), expected \(N, 28, 28\)"),
        ("x_test", lambda x: x[:, :27, :27], r"x_test has shape \(300, 27, 27\)"),
        ("y_train", lambda y: y[:-1], r"y_train has shape \(1199,\), expected \(1200,\)"),
        ("x_train", lambda x: x.astype(np.float32) / 255, "x_train is float32, expected uint8"),
        ("y_test", lambda y: y.astype(np.float32), "y_test is float32, expected integer labels"),
    ],
)
def test_wrong_shapes_and_dtypes(small_arrays, tmp_path, key, transform, message):
    arrays = dict(small_arrays)
    arrays[key] = transform(arrays[key])
    with pytest.raises(DataError, match=message):
        load_mnist(write_npz(tmp_path / "bad.npz", **arrays))


@pytest.mark.parametrize("label", [10, 255])
def test_labels_out_of_range(small_arrays, tmp_path, label):
    arrays = dict(small_arrays)
    y = arrays["y_train"].copy()
    y[17] = label
    arrays["y_train"] = y
    with pytest.raises(DataError, match=f"y_train has labels 0..{label}, expected 0-9"):
        load_mnist(write_npz(tmp_path / "labels.npz", **arrays))


def test_idx_bad_magic_number(small_arrays, tmp_path):
    folder = write_idx_folder(tmp_path / "idx", **small_arrays)
    # Labels written with the images' magic number (0x803): the loader must refuse, naming the file.
    (folder / IDX_FILES["y_test"]).write_bytes(idx_bytes(small_arrays["y_test"], magic=0x00000803))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: bad IDX magic number 0x00000803, expected 0x00000801"):
        load_mnist(folder)


def test_idx_count_does_not_match_header(small_arrays, tmp_path):
    folder = write_idx_folder(tmp_path / "idx", **small_arrays)
    path = folder / IDX_FILES["x_train"]
    path.write_bytes(path.read_bytes()[:-784])  # one image short of what the header says
    with pytest.raises(DataError, match="train-images-idx3-ubyte: header says"):
        load_mnist(folder)


def test_idx_images_and_labels_disagree(small_arrays, tmp_path):
    arrays = dict(small_arrays, y_train=small_arrays["y_train"][:1000])
    folder = write_idx_folder(tmp_path / "idx", **arrays)
    with pytest.raises(DataError, match=r"y_train has shape \(1000,\)"):
        load_mnist(folder)


def test_idx_folder_missing_a_file(small_arrays, tmp_path):
    folder = write_idx_folder(tmp_path / "idx", **small_arrays)
    (folder / IDX_FILES["x_test"]).unlink()
    with pytest.raises(DataError, match="no t10k-images-idx3-ubyte"):
        load_mnist(folder)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_mnist(tmp_path / "nowhere.npz")
