"""benchmarks/camera.py's stand-in for other people's handwriting (issue 21): the UCI optdigits digits that
scikit-learn ships are 8x8 counts of a 32x32 bitmap, and MNIST's control row brings MNIST digits to the same form.
The control is only a control if the form is the same, and a file that is not optdigits gets a one-line error."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def camera_benchmark():
    spec = importlib.util.spec_from_file_location("camera_benchmark", REPO / "benchmarks" / "camera.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mnist_in_optdigits_form(camera_benchmark, mnist):
    """optdigits' 8x8, as scikit-learn's copy has it: every digit 32 px tall (all 8 rows hold ink, in all 1,797),
    at most 20 px wide (6 blocks: 177 of its 178 0s), a narrow digit kept narrow; counts 0..16, the bitmap's ink."""
    x, y = mnist.x_test, mnist.y_test
    widths = {}
    for digit in (0, 1):
        for image in x[y == digit][:50]:
            counts = camera_benchmark.eight_by_eight(image)
            assert counts.shape == (8, 8) and counts.min() >= 0 and counts.max() <= 16
            assert (counts > 0).any(axis=1).all(), "the digit must fill the 32 px height"
            widths.setdefault(digit, []).append(int((counts > 0).any(axis=0).sum()))
    assert max(widths[0] + widths[1]) <= 6 and np.median(widths[0]) == 6, widths
    assert np.median(widths[1]) <= 4, widths[1]  # measured: 133, 21 and 117 of 300 1s are 2, 3 and 4 blocks wide
    # A bar 10 px wide and 20 tall -> 32 tall and 16 wide, centred at columns 8-23: blocks 2-5 full, the rest empty.
    bar = np.zeros((28, 28), np.uint8)
    bar[4:24, 9:19] = 255
    counts = camera_benchmark.eight_by_eight(bar)
    assert counts[:, 2:6].min() == 16 and counts[:, :2].max() == 0 and counts[:, 6:].max() == 0


def test_optdigits_files_are_read_or_refused_in_one_line(camera_benchmark, tmp_path):
    rows = np.random.default_rng(0).integers(0, 17, (5, 64))
    good = tmp_path / "digits.csv.gz"
    with gzip.open(good, "wt") as f:
        f.writelines(",".join(map(str, r)) + f",{i}\n" for i, r in enumerate(rows))
    counts, labels = camera_benchmark.load_optdigits(str(good))
    assert counts.shape == (5, 8, 8) and np.array_equal(counts.reshape(5, 64), rows) and list(labels) == [0, 1, 2, 3, 4]

    bad = {
        "short.csv": b"1,2,3\n",
        "words.csv": b"a,b\n",
        "range.csv": (",".join(["17"] * 64) + ",3\n").encode(),
        "label.csv": (",".join(["0"] * 64) + ",12\n").encode(),
        "empty.csv": b"",
        "big.csv.gz": gzip.compress(b"0," * (3 << 20)),  # 6 MB of text in 6 KB: refused after 4 MB, not loaded
        "broken.csv.gz": gzip.compress(b"0,1\n")[:-6],
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError) as e:
            camera_benchmark.load_optdigits(str(tmp_path / name))
        assert "\n" not in str(e.value) and name in str(e.value), (name, str(e.value))
    with pytest.raises(ValueError, match="cannot read"):
        camera_benchmark.load_optdigits(str(tmp_path / "missing.csv.gz"))
