"""The OpenCV and numpy behaviour edgekit's preprocessing depends on, against a golden recorded on this machine.

edgekit's dependencies have lower bounds only (pyproject.toml), so a fresh install takes whatever is newest -- the
issue that added this saw OpenCV 5.1 where the suite was written on 5.0. Upper bounds were not chosen: they would
hold a new Python or a Raspberry Pi back on old wheels, and nobody here would know when to raise them. Instead CI
prints the versions it had (.ci/environment.py, one line) and this test fails loudly, naming both versions, when
what edgekit calls on a frame changes: JPEG encode/decode (and its reduced-size decode), colour to grey, the
resizes (area, linear, nearest), a Gaussian blur, the morphological opening/closing of the paper estimate, a
threshold and Otsu's, the bounding box of a mask, connected components with their boxes, a rotation (warpAffine), and numpy's rounding and casts.

The frame is synthetic and fixed (numpy only: a lit gradient, two strokes, noise from a seeded generator), so
the inputs are the same everywhere. Tolerances: OpenCV's SIMD paths may round a level differently from one CPU to
another (measured on the aarch64 emulation: 1-2 grey levels on some pixels, docs/raspberry-pi.md), so images may
differ by at most TOLERANCE_LEVELS on at most TOLERANCE_SHARE of their pixels; component counts and boxes must be
equal. A change of behaviour (a different default, a different interpolation, a channel order, a decode that
fails) moves far more than that.

To re-record after reviewing a change (and say so in the commit):
    python tests/runtime/test_dependency_behaviour.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).with_name("golden") / "dependency_behaviour.npz"
TOLERANCE_LEVELS = 3  # grey levels
TOLERANCE_SHARE = 0.02  # of an image's pixels


def frame() -> np.ndarray:
    """A 240x320 BGR frame: a light gradient (uneven light), two dark strokes, seeded noise."""
    rng = np.random.default_rng(22)
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float64)
    light = 150 + 60 * xx / 320 + 30 * yy / 240
    ink = (np.abs(xx - 1.4 * yy - 40) < 6) & (yy > 40) & (yy < 200)  # a slanted bar
    ring = np.abs(np.hypot(xx - 70, yy - 160) - 40) < 5  # a zero, apart from the bar
    grey = light - 110 * (ink | ring) + rng.normal(0, 4, light.shape)
    bgr = np.stack([grey - 6, grey, grey + 8], axis=-1)
    return np.clip(np.round(bgr), 0, 255).astype(np.uint8)


def outputs() -> dict[str, np.ndarray]:
    """What the preprocessing's OpenCV and numpy calls give on ``frame()``."""
    import cv2

    bgr = frame()
    out: dict[str, np.ndarray] = {}
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    out["jpeg_decoded_colour"] = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[::4, ::4]  # every 4th pixel: a small golden
    out["jpeg_decoded_grey_half"] = cv2.imdecode(jpeg, cv2.IMREAD_REDUCED_GRAYSCALE_2)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    out["grey"] = gray[::4, ::4]
    out["area_28"] = cv2.resize(gray, (28, 28), interpolation=cv2.INTER_AREA)
    out["area_half"] = cv2.resize(gray, (160, 120), interpolation=cv2.INTER_AREA)
    out["linear_up"] = cv2.resize(out["area_28"], (56, 56), interpolation=cv2.INTER_LINEAR)
    out["nearest"] = cv2.resize(gray, (80, 60), interpolation=cv2.INTER_NEAREST)
    out["blur"] = cv2.GaussianBlur(gray, (3, 3), 0)[100:160, 40:120]
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    out["paper_close"] = cv2.morphologyEx(out["area_half"], cv2.MORPH_CLOSE, kernel)
    out["paper_open"] = cv2.morphologyEx(out["area_half"], cv2.MORPH_OPEN, kernel)
    ink = cv2.subtract(out["paper_close"], out["area_half"])
    mask = cv2.threshold(ink, 40, 1, cv2.THRESH_BINARY)[1]
    out["mask"] = mask
    out["otsu"] = np.array([cv2.threshold(ink, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[0]])  # find_digits' threshold
    out["ink_box"] = np.array(cv2.boundingRect(mask), np.int64)  # where find_digits labels components
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_16U)
    big = stats[1:][stats[1:, cv2.CC_STAT_AREA] >= 20]
    out["components"] = big[np.lexsort((big[:, 1], big[:, 0]))].astype(np.int64)  # x, y, w, h, area; sorted
    rotation = cv2.getRotationMatrix2D((14, 14), 12, 1.0)
    out["rotated"] = cv2.warpAffine(out["area_28"], rotation, (28, 28), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # numpy: half to even, and the float -> uint8 path the model input contract takes
    out["numpy_round"] = np.round(np.array([0.5, 1.5, 2.5, -0.5, 254.5]))
    out["numpy_scale"] = (out["area_28"].astype(np.float32) / 255.0).astype(np.float32)
    return out


def versions() -> dict[str, str]:
    import cv2

    return {"opencv": cv2.__version__, "numpy": np.__version__}


EXACT = ("components", "numpy_round")  # counts, boxes, rounding rules: no CPU may differ


def differences(got: dict[str, np.ndarray], golden: dict[str, np.ndarray]) -> list[str]:
    problems = []
    for name, want in golden.items():
        have = got.get(name)
        if have is None or have.shape != want.shape or have.dtype != want.dtype:
            problems.append(f"{name}: {None if have is None else (have.shape, str(have.dtype))} "
                            f"where the golden has {(want.shape, str(want.dtype))}")
            continue
        if name in EXACT:
            if not np.array_equal(have, want):
                problems.append(f"{name}: {have.tolist()} where the golden has {want.tolist()}")
            continue
        scale = 255.0 if np.issubdtype(want.dtype, np.floating) else 1.0  # [0, 1] floats in grey levels
        diff = np.abs(have.astype(np.float64) - want.astype(np.float64)) * scale
        share = float(np.mean(diff > 0.5))
        if diff.max() > TOLERANCE_LEVELS or share > TOLERANCE_SHARE:
            problems.append(f"{name}: differs by up to {diff.max():.1f} grey levels on {100 * share:.1f} % of pixels "
                            f"(allowed {TOLERANCE_LEVELS} on {100 * TOLERANCE_SHARE:g} %)")
    return problems


def test_opencv_and_numpy_behave_as_when_the_golden_was_recorded():
    with np.load(GOLDEN) as saved:
        golden = {k: saved[k] for k in saved.files if k != "versions"}
        recorded = json.loads(str(saved["versions"]))
    problems = differences(outputs(), golden)
    assert not problems, (
        f"OpenCV/numpy behaviour changed (recorded with {recorded}, running {versions()}): " + "; ".join(problems)
        + ". Check what edgekit's preprocessing does with it, then re-record: "
        "python tests/runtime/test_dependency_behaviour.py --write")


def test_the_comparison_fails_on_a_changed_behaviour():
    import cv2

    got = outputs()
    assert differences(got, got) == []
    changed = dict(got)
    gray = cv2.cvtColor(frame(), cv2.COLOR_BGR2GRAY)
    changed["area_28"] = cv2.resize(gray, (28, 28), interpolation=cv2.INTER_LINEAR)  # another interpolation
    changed["components"] = got["components"][:-1]
    problems = differences(changed, got)
    assert [p.split(":")[0] for p in problems] == ["area_28", "components"], problems


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit(__doc__.rsplit("\n\n", 1)[-1])
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, versions=np.array(json.dumps(versions())), **outputs())
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes) with {versions()}")
