"""Camera frames to digits: generated frames of real MNIST test digits, read by a really trained model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.runtime import Classifier
from edgekit.runtime.contract import to_model_input
from edgekit.runtime.preprocess import find_digits, parse_roi, to_gray
from edgekit.toolkit.synthetic import Look, camera_frame, digit_strip, empty_frame
from measured import check


def _iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def clf(models):
    return Classifier(models["int8.tflite"])


@pytest.mark.numeric
def test_frames_read_almost_as_well_as_the_28x28_digits(clf, digits, camera_frames):
    """The same 300 test digits: as MNIST 28x28 images, and photographed (ink on paper, anywhere, any size,
    rotated, under a lighting gradient, noisy, JPEG). Reading the photos may cost a few points, no more."""
    x, y = digits
    acc28 = float((clf.probabilities(to_model_input(x)).argmax(1) == y).mean())
    preds = clf.classify([f for f, _, _ in camera_frames])
    found = [p for p in preds if p.digit is not None]
    acc_frames = float(np.mean([p.digit == label for p, (_, label, _) in zip(preds, camera_frames)]))
    ious = [_iou(p.box, box) for p, (_, _, box) in zip(preds, camera_frames) if p.box is not None]
    check("frames: share of 300 frames with a digit found", len(found) / len(preds), ">=", 0.98)
    check("frames: median IoU of the boxes", np.median(ious), ">", 0.85)
    check("frames: accuracy on frames minus on 28x28 (int8)", acc_frames - acc28, ">=", -0.04)
    check("frames: accuracy on 300 frames (int8)", acc_frames, ">=", 0.88)


@pytest.mark.numeric
def test_light_ink_on_dark_board(clf, digits):
    x, y = digits
    rng = np.random.default_rng(7)
    look = Look(light_on_dark=1.0)
    frames = [camera_frame(img, rng, look)[0] for img in x[:60]]
    assert all(f.mean() < 110 for f in frames)  # really dark boards
    preds = clf.classify(frames)
    acc = np.mean([p.digit == label for p, label in zip(preds, y[:60])])
    check("frames: light-on-dark accuracy, 60 frames (int8)", acc, ">=", 0.85)


@pytest.mark.parametrize("kind", ["paper", "dark", "noise"])
def test_no_digit_when_nothing_is_there(clf, kind):
    rng = np.random.default_rng({"paper": 1, "dark": 2, "noise": 3}[kind])
    frames = [empty_frame(kind, rng) for _ in range(25)]
    preds = clf.classify(frames)
    assert [p.digit for p in preds] == [None] * 25
    assert all(p.box is None and p.confidence == 0.0 for p in preds)


@pytest.mark.numeric
def test_multi_digit_left_to_right(clf, digits):
    x, y = digits
    rng = np.random.default_rng(11)
    exact = correct = total = 0
    for k in range(20):
        idx = rng.choice(len(x), 4, replace=False)
        frame, boxes = digit_strip(x[idx], rng)
        preds = clf.classify(frame, multi=True)
        assert len(preds) == 4, f"strip {k}: found {len(preds)} digits, wrote 4"
        assert [p.box[0] for p in preds] == sorted(p.box[0] for p in preds)
        assert all(_iou(p.box, b) > 0.5 for p, b in zip(preds, boxes))  # each box is its own digit, in order
        got = [p.digit for p in preds]
        exact += got == list(y[idx])
        correct += sum(g == t for g, t in zip(got, y[idx]))
        total += 4
    check("strips: digits read right, 20 strips of 4 (int8)", correct / total, ">=", 0.85)
    check("strips: strips read exactly, of 20 (int8)", exact, ">=", 10)


@pytest.mark.numeric
def test_region_of_interest_picks_the_digit_inside(clf, digits):
    x, y = digits
    rng = np.random.default_rng(5)
    frame, boxes = digit_strip(x[[0, 1]], rng)  # a 7 and a 2
    (x0, y0, w0, h0), (x1, y1, w1, h1) = boxes
    roi = (x1 - 10, max(0, y1 - 10), w1 + 20, h1 + 20)
    p = clf.classify(frame, roi=roi)
    assert p.box[0] >= roi[0]
    check("roi: the 2 inside the region read right (int8)", p.digit == y[1], "==", 1)
    check("roi: the 7 inside the region read right (int8)",
          clf.classify(frame, roi=(x0 - 10, max(0, y0 - 10), w0 + 20, h0 + 20)).digit == y[0], "==", 1)
    with pytest.raises(ValueError):
        find_digits(frame, roi=(5000, 5000, 50, 50))
    assert parse_roi("1,2,30,40") == (1, 2, 30, 40)
    with pytest.raises(ValueError, match="four integers"):
        parse_roi("1,2,3")


def test_any_dtype_and_channels_give_the_same_box(camera_frames):
    frame, _, box = camera_frames[3]
    gray = to_gray(frame)
    variants = {
        "bgr": frame,
        "gray": gray,
        "gray1": gray[..., None],
        "bgra": np.dstack([frame, np.full(gray.shape, 255, np.uint8)]),
        "float01": gray.astype(np.float32) / 255.0,
        "uint16": gray.astype(np.uint16) * 257,
    }
    boxes = {k: find_digits(v)[0].box for k, v in variants.items()}
    assert all(_iou(b, box) > 0.7 for b in boxes.values()), boxes


def test_crop_looks_like_mnist(camera_frames):
    """Longest side 20 px, centre of mass at the centre, ink bright on black."""
    for frame, _, _ in camera_frames[:20]:
        img = find_digits(frame)[0].image
        assert img.shape == (28, 28) and img.dtype == np.uint8
        rows, cols = np.nonzero(img > 30)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 in range(17, 23)
        m = img.astype(float)
        cy, cx = (m.sum(1) @ np.arange(28)) / m.sum(), (m.sum(0) @ np.arange(28)) / m.sum()
        assert abs(cy - 13.5) < 1.5 and abs(cx - 13.5) < 1.5
        assert img[0].max() == 0 and img[:, 0].max() == 0 and img.max() == 255


def _loops(image: np.ndarray) -> int:
    """The number of holes in a digit's ink (> 127): an 8 has two, a 6 or a 9 one."""
    _, hierarchy = cv2.findContours((image > 127).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return 0 if hierarchy is None else int((hierarchy[0][:, 3] >= 0).sum())


@pytest.mark.numeric
def test_a_digit_sized_image_keeps_its_loops(mnist):
    """A digit-sized image (``edgekit predict`` on a 28x28 file) is cut out without the light blur meant for a
    camera's noise: at 28 px that blur thickens every stroke by a pixel and closes the small loops of 8s, 6s and
    9s. The first 2,000 MNIST test images keep as many loops as they had in 1,827-1,869 of every 2,000 (the five
    blocks of the test set), 1,715-1,758 with the blur; read right by five models, 2-22 more of the 10,000."""
    kept = sum(bool(c := find_digits(img)) and _loops(c[0].image) == _loops(img) for img in mnist.x_test[:2000])
    check("digit-sized MNIST images of 2,000 whose crop keeps their loops", kept, ">=", 1800)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(8, 300), w=st.integers(8, 300), channels=st.sampled_from([0, 1, 3, 4]),
    dtype=st.sampled_from(["uint8", "uint16", "float32", "bool"]), seed=st.integers(0, 2**16),
)
def test_any_frame_never_crashes(h, w, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 0 else (h, w, channels)
    frame = (rng.random(shape) * {"uint8": 255, "uint16": 65535, "float32": 1, "bool": 2}[dtype]).astype(dtype)
    for c in find_digits(frame, multi=True):
        assert c.image.shape == (28, 28)
        x, y, bw, bh = c.box
        assert 0 <= x < w and 0 <= y < h and bw >= 1 and bh >= 1


def test_counted_quantiles_are_the_histograms():
    """find_digits finds its quantiles by threshold-and-count bisection (faster than a histogram of a mostly flat
    image); the answers must be the 256-bin histogram's exactly, whatever the start (``upward``, ``at_least``)."""
    from edgekit.runtime.preprocess import count_quantile, histogram, hist_quantile, quantile_at_most

    rng = np.random.default_rng(25)
    images = [np.zeros((30, 40), np.uint8), np.full((17, 9), 255, np.uint8), rng.integers(0, 256, (37, 41), dtype=np.uint8),
              np.minimum(rng.exponential(3.0, (120, 160)), 255).astype(np.uint8),  # mostly small, like ink strength
              np.where(rng.random((64, 64)) < 0.002, 200, 3).astype(np.uint8)]  # a thin tail
    for a in images:
        for q in (0.001, 0.5, 0.998, 0.999, 1.0):
            want = hist_quantile(histogram(a), q)
            for upward in (0, 1, 3):
                for at_least in (0, 5, 100):
                    assert count_quantile(a, q, upward=upward, at_least=at_least) == max(at_least, want), (a.shape, q, upward, at_least)
            for k in (0, int(want) - 1, int(want), 254):
                assert quantile_at_most(a, q, k) == (want <= k)


def test_quarter_and_components_are_opencvs():
    """find_digits quarters its working image in two float32 halvings and measures a few connected components one
    by one (both cheaper than OpenCV's own way); the results must be ``cv2.resize(INTER_AREA)``'s and
    ``cv2.connectedComponentsWithStats``' exactly: half-way averages round to even, labels and boxes the same."""
    import cv2

    from edgekit.runtime.preprocess import FEW_COMPONENTS, components, quarter

    rng = np.random.default_rng(25)
    images = [rng.integers(0, 256, (240, 320), dtype=np.uint8), cv2.GaussianBlur(rng.integers(0, 256, (120, 160), dtype=np.uint8), (7, 7), 0),
              np.full((64, 64), 7, np.uint8), rng.integers(0, 256, (90, 126), dtype=np.uint8)]  # 126: not divisible by 4
    ties = np.zeros((64, 64), np.uint8)
    ties[::4, ::4] = rng.choice([8, 24, 40, 56], (16, 16))  # 4x4 averages of exactly 0.5, 1.5, 2.5, 3.5
    images.append(ties)
    for a in images:
        want = cv2.resize(a, (a.shape[1] // 4, a.shape[0] // 4), interpolation=cv2.INTER_AREA)
        assert np.array_equal(quarter(a), want), a.shape
    masks = [(rng.random((60, 80)) < p).astype(np.uint8) for p in (0.0005, 0.002, 0.01, 0.3)]  # few to many components
    for mask in masks:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_16U)
        for min_area in (1, 3):
            got_labels, big = components(mask, min_area)
            want = [(i, *stats[i].tolist()) for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
            assert np.array_equal(got_labels, labels) and big == want, (n, min_area)
    assert any(cv2.connectedComponents(m, connectivity=8)[0] - 1 <= FEW_COMPONENTS for m in masks[:2])  # both ways ran
    assert any(cv2.connectedComponents(m, connectivity=8)[0] - 1 > FEW_COMPONENTS for m in masks[2:])
