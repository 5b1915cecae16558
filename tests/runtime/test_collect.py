"""`edgekit collect`: real camera-like frames (MNIST digits photographed) through the runtime's preprocessing,
saved as the 28x28 crops the model would see; from a video file, a folder of images, and an injected source
driven by scripted key presses. No TensorFlow is needed for any of it."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.runtime import collect as rc
from edgekit.runtime.camera import IterSource
from edgekit.runtime.preprocess import find_digits
from edgekit.toolkit.cli import app
from edgekit.toolkit.synthetic import empty_frame, mnist_frames, write_video

runner = CliRunner()


def one_error_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [l for l in (result.stderr or result.output).splitlines() if l.startswith("edgekit: error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def threes(mnist):
    """Eight real MNIST test 3s photographed, and two frames with no digit (blank paper, a dark frame)."""
    idx = np.flatnonzero(mnist.y_test == 3)[:8]
    frames = [f for f, _, _ in mnist_frames(mnist.x_test[idx], mnist.y_test[idx], seed=7)]
    rng = np.random.default_rng(3)
    return frames[:3] + [empty_frame("paper", rng)] + frames[3:6] + [empty_frame("dark", rng)] + frames[6:]


def _read_png(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def _video_frames(path):
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def test_collect_from_a_video_file_saves_the_runtime_crops(tmp_path, threes):
    video = write_video(tmp_path / "threes.avi", threes)
    out = tmp_path / "mine"
    result = runner.invoke(app, ["collect", str(video), "--label", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    # What the model would see in each decoded frame (the video is MJPG: compare with its own frames).
    expected = [c[0].image for c in (find_digits(f) for f in _video_frames(video)) if c]
    assert len(expected) == 8  # the blank and dark frames give no crop
    files = sorted((out / "3").iterdir(), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert [p.name for p in files] == [f"threes-{i}.png" for i in range(8)]
    for path, crop in zip(files, expected):
        img = _read_png(path)
        assert img.dtype == np.uint8 and img.shape == (28, 28)
        np.testing.assert_array_equal(img, crop)
        ring = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        assert ring.max() == 0 and img.max() == 255  # MNIST polarity: ink bright on black
    assert sorted(p.name for p in out.iterdir()) == ["3", "collect.json"]
    summary = json.loads((out / "collect.json").read_text())
    assert summary["counts"] == {**{str(d): 0 for d in range(10)}, "3": 8}
    assert summary["total"] == 8 and summary["frames_no_digit"] == 2
    (source,) = summary["sessions"][0]["sources"]
    assert source == {"source": str(video), "name": "threes", "frames": 10, "saved": 8, "no_digit": 2, "skipped": 0, "unreadable": 0}
    assert summary["preprocessing"]["function"] == "edgekit.runtime.preprocess.find_digits"
    assert summary["preprocessing"]["digit_box"] == 20 and summary["edgekit_version"]
    assert "saved 8 crop(s)" in result.output and "2 frame(s) with no digit" in result.output


def test_collect_from_a_folder_with_labels_from_names_adds_and_never_overwrites(tmp_path, mnist):
    folder = tmp_path / "scans"
    folder.mkdir()
    frames = list(mnist_frames(mnist.x_test[:6], mnist.y_test[:6], seed=11))
    for i, (f, label, _) in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}_{label}.jpg"), f)
    (folder / "0099_4.png").write_bytes(b"not a png")  # unreadable: one line, the rest go on
    cv2.imwrite(str(folder / "0100_x.png"), frames[0][0])  # no label in its name
    out = tmp_path / "mine"
    result = runner.invoke(app, ["collect", str(folder), "--labels-from-names", "--out", str(out)])
    assert result.exit_code == 2, result.output
    errors = [l for l in result.output.splitlines() if l.startswith("edgekit: error:")]
    assert len(errors) == 2 and "0099_4.png: not an image" in errors[0] and "0100_x.png: no label in its name" in errors[1]
    labels = [int(l) for _, l, _ in frames]
    for i, label in enumerate(labels):
        assert (out / str(label) / f"{i:04d}_{label}-0.png").is_file()
    first = {p: p.read_bytes() for p in out.rglob("*.png")}
    assert len(first) == 6

    # Again into the same folder: every name is taken, so each crop gets the next number; nothing replaced.
    result = runner.invoke(app, ["collect", str(folder), "--labels-from-names", "--out", str(out)])
    assert result.exit_code == 2
    for path, data in first.items():
        assert path.read_bytes() == data
    assert len(list(out.rglob("*.png"))) == 12
    for i, label in enumerate(labels):
        assert (out / str(label) / f"{i:04d}_{label}-1.png").is_file()
    summary = json.loads((out / "collect.json").read_text())
    assert summary["total"] == 12 and len(summary["sessions"]) == 2
    assert sum(t["unreadable"] for t in summary["sessions"][1]["sources"]) == 2


def test_max_stops_after_n_crops(tmp_path, threes):
    video = write_video(tmp_path / "threes.avi", threes)
    result = runner.invoke(app, ["collect", str(video), "--label", "3", "--out", str(tmp_path / "o"), "--max", "5"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "o" / "3").glob("*.png"))) == 5


def test_scripted_keys_on_an_injected_live_source(tmp_path, mnist):
    """Keys 0-9 save the crop on screen with that label, space skips, a digit key on a frame with no digit
    saves nothing, q quits (the frames after it are never read) and the source is released."""
    picks = [int(np.flatnonzero(mnist.y_test == d)[0]) for d in (5, 2, 8, 1)]
    frames = [f for f, _, _ in mnist_frames(mnist.x_test[picks], mnist.y_test[picks], seed=5)]
    frames.insert(2, empty_frame("paper", np.random.default_rng(1)))
    source = IterSource(frames, name="0", live=True)  # as if camera 0
    keys = rc.scripted_keys(["5", " ", "3", "8", "q"])
    store = rc.DigitStore(tmp_path / "mine")
    tally = rc.collect_frames(source, store, choose=rc.key_chooser(keys, live=True), name=rc.source_name("0"))
    store.write_summary()
    assert source.released
    assert (tally.frames, tally.saved, tally.skipped, tally.no_digit) == (5, 2, 1, 1)
    assert sorted(str(p.relative_to(tmp_path / "mine")) for p in (tmp_path / "mine").rglob("*.png")) == ["5/cam0-0.png", "8/cam0-0.png"]
    np.testing.assert_array_equal(_read_png(tmp_path / "mine" / "5" / "cam0-0.png"), find_digits(frames[0])[0].image)
    np.testing.assert_array_equal(_read_png(tmp_path / "mine" / "8" / "cam0-0.png"), find_digits(frames[3])[0].image)
    assert len(keys.shown) == 5 and all(s == frames[0].shape for s in keys.shown)  # the window saw every frame
    assert json.loads((tmp_path / "mine" / "collect.json").read_text())["counts"]["5"] == 1


def test_key_choice():
    assert [rc.key_choice(ord(c)) for c in "0719"] == [0, 7, 1, 9]
    assert rc.key_choice(ord(" ")) is None and rc.key_choice(-1) is None
    assert rc.key_choice(ord("q")) == rc.STOP and rc.key_choice(27) == rc.STOP


def test_source_names_and_labels_from_names():
    assert rc.source_name("0") == "cam0" and rc.source_name("/dev/video2") == "video2"
    assert rc.source_name("/a/b/my clip.mp4") == "my_clip" and rc.source_name("rtsp://cam.local:554/x") == "cam.local_554"
    assert rc.label_from_name("0042_7.jpg") == 7 and rc.label_from_name("a_b_0.png") == 0
    with pytest.raises(Exception, match="no label in its name"):
        rc.label_from_name("0042_17.jpg")


@pytest.mark.parametrize(
    "args, message",
    [
        (["x.avi", "--label", "12"], "--label must be a digit 0-9"),
        (["x.avi", "--label", "3", "--labels-from-names"], "not both"),
        (["x.avi", "--label", "3", "--max", "0"], "--max must be at least 1"),
        (["0", "--labels-from-names"], "a camera has none"),
        (["x.avi", "--label", "3", "--roi", "1,2"], "--roi must be four integers"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["collect", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert message in one_error_line(result)
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_images_need_a_label_and_the_window_needs_a_display(tmp_path, monkeypatch, threes):
    cv2.imwrite(str(tmp_path / "a.png"), threes[0])
    result = runner.invoke(app, ["collect", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "images need --label D or --labels-from-names" in one_error_line(result)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = write_video(tmp_path / "v.avi", threes[:2])
    result = runner.invoke(app, ["collect", str(video), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no display for the labelling window" in one_error_line(result)


def test_a_missing_video_is_one_line_and_the_rest_go_on(tmp_path, threes):
    video = write_video(tmp_path / "threes.avi", threes[:3])
    result = runner.invoke(app, ["collect", str(tmp_path / "gone.avi"), str(video), "--label", "3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "gone.avi" in one_error_line(result)
    assert len(list((tmp_path / "o" / "3").glob("threes-*.png"))) == 3


def test_a_foreign_collect_json_is_left_alone(tmp_path, threes):
    out = tmp_path / "o"
    out.mkdir()
    (out / "collect.json").write_text("[1, 2")
    video = write_video(tmp_path / "v.avi", threes[:2])
    result = runner.invoke(app, ["collect", str(video), "--label", "3", "--out", str(out)])
    assert result.exit_code == 2 and "not a collect.json edgekit can add to" in one_error_line(result)
    assert (out / "collect.json").read_text() == "[1, 2" and not (out / "3").exists()


@pytest.mark.skipif(not __import__("shutil").which("Xvfb"), reason="needs a virtual X display: apt-get install -y xvfb")
def test_the_real_window_under_a_virtual_display(tmp_path, threes):
    """The labelling window with real OpenCV HighGUI on a (virtual) X display: it opens, shows each preview and,
    with no key pressed, skips every crop; nothing is saved. (Key presses themselves come from scripted_keys in
    the test above: there is no way to type into Xvfb here.)"""
    import os
    import subprocess
    import sys
    import time

    np.save(tmp_path / "frames.npy", np.stack(threes[:4]))
    script = f"""
import numpy as np
from edgekit.runtime import collect as rc
from edgekit.runtime.camera import IterSource
frames = list(np.load({str(tmp_path / 'frames.npy')!r}))
store = rc.DigitStore({str(tmp_path / 'mine')!r})
t = rc.collect_frames(IterSource(frames, name="0"), store, choose=rc.key_chooser(rc.window_keys(), live=True))
print(t.frames, t.saved, t.skipped, t.no_digit)
"""
    display = f":{100 + (os.getpid() + 7) % 500}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "DISPLAY": display, "QT_LOGGING_RULES": "default.warning=false"})
    finally:
        xvfb.kill()
        xvfb.wait()
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["4", "0", "3", "1"]  # threes[:4]: three digits shown and skipped, one blank frame
    assert not list((tmp_path / "mine").rglob("*.png"))
