"""Frame preprocessing over arbitrary shapes, dtypes and values (hypothesis): it returns a valid model input
(float32 (1, 28, 28, 1), finite, in [0, 1]) with a box inside the frame, or "no digit" (None), or raises
ValueError, its one documented error (which ``Classifier.classify`` turns into DataError, exit 2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgekit.runtime.errors import DataError
from edgekit.runtime.preprocess import find_digits, frame_to_input, parse_roi

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32, np.float16,
                          np.float32, np.float64, np.bool_])
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12),  # anything, mostly wrong
    st.tuples(st.integers(1, 120), st.integers(1, 120)),  # gray frames
    st.tuples(st.integers(1, 120), st.integers(1, 120), st.sampled_from([1, 2, 3, 4, 5])),  # colour frames
)


def frames(shapes=SHAPES, dtypes=DTYPES):
    return st.tuples(dtypes, shapes).flatmap(
        lambda ds: hnp.arrays(ds[0], ds[1], elements=_elements(ds[0]), fill=_elements(ds[0]))
    )


def _elements(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return st.floats(allow_nan=True, allow_infinity=True, width=min(64, 8 * dtype.itemsize))
    if dtype.kind == "b":
        return st.booleans()
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


def check_model_input(result, frame) -> None:
    if result is None:
        return  # "no digit"
    x, box = result
    assert x.dtype == np.float32 and x.shape == (1, 28, 28, 1)
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
    bx, by, bw, bh = box
    h, w = np.asarray(frame).shape[:2]
    assert 0 <= bx < w and 0 <= by < h and bw >= 1 and bh >= 1, (box, (w, h))
    assert bx + bw <= w and by + bh <= h, (box, (w, h))


@FUZZ
@given(frames())
def test_any_array_gives_an_input_no_digit_or_valueerror(frame):
    try:
        result = frame_to_input(frame)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    check_model_input(result, frame)


@FUZZ
@given(
    st.tuples(st.integers(8, 90), st.integers(8, 90)).flatmap(
        lambda hw: st.tuples(
            st.just(hw),
            st.sampled_from(["blank", "noise", "stroke", "blob"]),
            st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**31 - 1),
        )
    )
)
def test_frames_with_strokes_and_noise(case):
    """Frames that look like something: paper of any level with a stroke, a blob or noise on it."""
    (h, w), kind, paper, ink, seed = case
    rng = np.random.default_rng(seed)
    frame = np.full((h, w), paper, np.uint8)
    if kind == "noise":
        frame = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif kind in ("stroke", "blob"):
        x0, y0 = int(rng.integers(0, w - 4)), int(rng.integers(0, h - 4))
        x1, y1 = int(rng.integers(x0 + 2, w)), int(rng.integers(y0 + 2, h))
        if kind == "stroke":
            import cv2

            cv2.line(frame, (x0, y0), (x1, y1), int(ink), int(rng.integers(1, 4)))
        else:
            frame[y0:y1, x0:x1] = ink
    for f in (frame, np.dstack([frame] * 3)):
        check_model_input(frame_to_input(f), f)


@FUZZ
@given(frames(shapes=st.tuples(st.integers(8, 80), st.integers(8, 80)), dtypes=st.just(np.uint8)),
       st.tuples(st.integers(-5, 100), st.integers(-5, 100), st.integers(-5, 100), st.integers(-5, 100)))
def test_any_roi_gives_an_input_no_digit_or_valueerror(frame, roi):
    try:
        box = parse_roi(",".join(map(str, roi)))
        crops = find_digits(frame, roi=box)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    for crop in crops:
        assert crop.image.dtype == np.uint8 and crop.image.shape == (28, 28)


@pytest.fixture(scope="module")
def classifier(exported):
    from edgekit.runtime import Classifier

    return Classifier(exported / "model_int8.tflite")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame=frames())
def test_classify_gives_a_prediction_or_dataerror(classifier, frame):
    try:
        p = classifier.classify(frame)
    except DataError as e:
        assert str(e) and "\n" not in str(e)
        return
    if isinstance(p, list):  # an array read as a batch of frames
        assert len(p) == len(frame)
        preds = p
    else:
        preds = [p]
    for q in preds:
        assert (q.digit is None and q.box is None) or (q.digit in range(10) and 0.0 <= q.confidence <= 1.0)
