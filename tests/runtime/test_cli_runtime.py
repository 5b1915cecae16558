"""`edgekit predict` and `edgekit webcam` through the real CLI: JSON lines, one-line errors, exit codes,
a generated video file as the camera, and a network camera that goes away mid-stream."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.runtime import Classifier
from edgekit.runtime.camera import IterSource, annotate, run_loop
from edgekit.runtime.errors import EXIT_BAD_INPUT, CameraError, ModelLoadError
from edgekit.toolkit.cli import app
from edgekit.toolkit.synthetic import digit_strip, empty_frame, write_video
from measured import check

runner = CliRunner()
HEADLESS_KEYS = {"frame", "digit", "confidence", "box", "fps", "latency_ms", "capture_to_result_ms", "dropped"}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory, camera_frames, digits):
    d = tmp_path_factory.mktemp("images")
    for k in range(6):
        cv2.imwrite(str(d / f"digit_{k}.png"), camera_frames[k][0])
    cv2.imwrite(str(d / "blank.jpg"), empty_frame("paper", np.random.default_rng(0)))
    x, _ = digits
    cv2.imwrite(str(d / "strip.png"), digit_strip(x[[1, 0, 1, 6]], np.random.default_rng(3))[0])  # 2 7 2 4... labels below
    return d


@pytest.fixture(scope="module")
def video(tmp_path_factory, camera_frames):
    path = tmp_path_factory.mktemp("video") / "desk.avi"
    write_video(path, [f for f, _, _ in camera_frames[:30]], fps=15)
    return path


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# -- predict ----------------------------------------------------------------------------------------


@pytest.mark.numeric
def test_predict_json_lines(models, image_dir, camera_frames):
    r = runner.invoke(app, ["predict", str(models["int8.tflite"]), *(str(image_dir / f"digit_{k}.png") for k in range(6)), "--json"])
    assert r.exit_code == 0, r.output
    rows = _lines(r.stdout)
    assert [set(row) for row in rows] == [{"path", "digit", "confidence", "box"}] * 6
    check("predict int8: frames read right, of 6", sum(row["digit"] == camera_frames[k][1] for k, row in enumerate(rows)), ">=", 5)
    assert all(0 < row["confidence"] <= 1 and len(row["box"]) == 4 for row in rows)


def test_predict_folder_with_an_unreadable_file(models, image_dir, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    r = runner.invoke(app, ["predict", str(models["float32.onnx"]), str(image_dir), str(bad), str(tmp_path / "missing.png")])
    assert r.exit_code == 2
    out = r.stdout.splitlines()
    assert len(out) == 8  # 6 digits, the blank page and the strip: one line each, the rest went on
    assert any(line.startswith(str(image_dir / "blank.jpg")) and line.endswith("no digit") for line in out)
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 2 and "broken.png" in errors[0] and "missing.png" in errors[1]
    assert "Traceback" not in r.output


def test_predict_json_marks_failures_and_blank(models, image_dir, tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_text("text")
    r = runner.invoke(app, ["predict", str(models["int8.tflite"]), str(image_dir / "blank.jpg"), str(bad), "--json"])
    assert r.exit_code == 2
    blank, broken = _lines(r.stdout)
    assert blank == {"path": str(image_dir / "blank.jpg"), "digit": None, "confidence": 0.0, "box": None}
    assert broken["digit"] is None and "error" in broken


@pytest.mark.numeric
def test_predict_multi(models, image_dir, digits):
    _, y = digits
    r = runner.invoke(app, ["predict", str(models["int8.tflite"]), str(image_dir / "strip.png"), "--json", "--multi"])
    assert r.exit_code == 0, r.output
    (row,) = _lines(r.stdout)
    assert len(row["digits"]) == 4 and len(row["digit"]) == 4
    xs = [d["box"][0] for d in row["digits"]]
    assert xs == sorted(xs)
    expected = "".join(str(y[i]) for i in (1, 0, 1, 6))
    check("predict --multi int8: digits read right, of 4", sum(a == b for a, b in zip(row["digit"], expected)), ">=", 3)


def test_predict_bad_model_and_roi(models, image_dir, tmp_path):
    r = runner.invoke(app, ["predict", str(tmp_path / "nope.tflite"), str(image_dir)])
    assert r.exit_code == 2 and r.stderr.strip().count("\n") == 0 and "no such model file" in r.stderr
    r = runner.invoke(app, ["predict", str(models["int8.tflite"]), str(image_dir), "--roi", "1,2"])
    assert r.exit_code == 2 and "--roi" in r.stderr


# -- no model given: the bundled one (its own tests, with the file, are in test_bundled_model.py) --------------


def test_predict_with_a_model_says_nothing_about_the_bundled_one(models, image_dir):
    """`predict MODEL IMAGE` (a first argument ending in .onnx/.tflite) and `predict --model MODEL IMAGE` agree."""
    image = str(image_dir / "digit_0.png")
    outputs = []
    for args in (["predict", str(models["float32.onnx"]), image], ["predict", "--model", str(models["float32.onnx"]), image]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert "bundled" not in r.stderr and r.stdout.startswith(f"{image}: ")
        outputs.append(r.stdout)
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 1


def test_predict_a_model_and_no_images(models):
    r = runner.invoke(app, ["predict", str(models["int8.tflite"])])
    assert r.exit_code == EXIT_BAD_INPUT and r.stderr.startswith("edgekit: error: no images to read")


def test_info_of_an_exported_model_without_a_run_folder(models):
    """The session's small model was saved by a test, not `edgekit train`: no metrics.json, so no recipe."""
    for name, quantization in (("float32.onnx", "none"), ("int8.tflite", "int8")):
        r = runner.invoke(app, ["info", str(models[name])])
        assert r.exit_code == 0, r.output
        rows = dict(line.split(None, 1) for line in r.stdout.splitlines() if not line.startswith("exported by"))
        assert rows["model"] == str(models[name]) and rows["format"] == name.split(".")[1]
        assert rows["quantization"] == quantization and rows["labels"] == "0 1 2 3 4 5 6 7 8 9"
        assert rows["sha256"] == hashlib.sha256(models[name].read_bytes()).hexdigest()
        assert rows["recipe"].startswith("unknown") and "validated" not in rows
        assert r.stdout.splitlines()[-1].startswith("exported by  edgekit ")
    r = runner.invoke(app, ["info", str(models["int8.tflite"]), "--json"])
    info = json.loads(r.stdout)
    assert info["bundled"] is False and info["metadata"]["input"]["dtype"] == "int8" and info["bytes"] == models["int8.tflite"].stat().st_size


def test_missing_bundled_model_is_one_line(monkeypatch, image_dir, tmp_path):
    """A source checkout or a wheel built without runtime/bundled/: one line, exit 2, wherever the model is implied."""
    from edgekit.runtime import bundled_model

    monkeypatch.setattr(bundled_model, "BUNDLED_MODEL", tmp_path / "model_int8.tflite")
    with pytest.raises(ModelLoadError, match="no bundled model in this installation"):
        Classifier()
    image = str(image_dir / "digit_0.png")
    for args in (["predict", image], ["info"], ["webcam", "--source", image, "--headless"]):
        r = runner.invoke(app, args)
        assert r.exit_code == EXIT_BAD_INPUT, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgekit: error: no bundled model in this installation"), r.stderr
        assert "build_bundled_model" in lines[0] and "Traceback" not in r.output


# -- webcam -----------------------------------------------------------------------------------------


@pytest.mark.numeric
def test_webcam_headless_over_a_video_file(models, video, camera_frames):
    r = runner.invoke(app, ["webcam", "--model", str(models["int8.tflite"]), "--source", str(video), "--headless", "--threads", "1"])
    assert r.exit_code == 0, r.output
    rows = _lines(r.stdout)
    assert len(rows) == 30 and [row["frame"] for row in rows] == list(range(30))
    assert all(set(row) == HEADLESS_KEYS for row in rows)
    assert all(row["latency_ms"] > 0 for row in rows) and rows[-1]["fps"] > 0
    correct = sum(row["digit"] == camera_frames[k][1] for k, row in enumerate(rows))
    check("webcam int8: video frames read right, of 30", correct, ">=", 26)
    assert "30 frames" in r.stderr and "end of" in r.stderr


def test_webcam_max_frames_and_roi(models, video):
    r = runner.invoke(app, ["webcam", "-m", str(models["float32.onnx"]), "-s", str(video), "--headless", "--max-frames", "5", "--roi", "0,0,320,240"])
    assert r.exit_code == 0, r.output
    rows = _lines(r.stdout)
    assert len(rows) == 5
    assert all(row["box"] is None or (row["box"][0] + row["box"][2] <= 321 and row["box"][1] + row["box"][3] <= 241) for row in rows)


@pytest.mark.parametrize("source", ["/dev/video97", "97", "no_such_video.avi"])
def test_webcam_camera_that_cannot_be_opened(models, source, tmp_path):
    r = runner.invoke(app, ["webcam", "-m", str(models["int8.tflite"]), "-s", source, "--headless"])
    assert r.exit_code == 3
    assert r.stderr.startswith("edgekit: error: cannot open") and r.stderr.count("\n") == 1, r.stderr


def test_webcam_window_without_a_display(models, video, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    r = runner.invoke(app, ["webcam", "-m", str(models["int8.tflite"]), "-s", str(video)])
    assert r.exit_code == 2 and "--headless" in r.stderr


def test_network_camera_lost_mid_stream(models, camera_frames):
    """A real MJPEG camera over loopback (edgekit's own server) that stops: a few JSON lines, then one
    error line and exit 3 after the retries. No hang: the whole run is bounded by a timeout."""
    from edgekit.runtime.serve import StreamServer

    server = StreamServer("127.0.0.1", 0).start()
    stop = threading.Event()

    def publish():
        k = 0
        while not stop.is_set():
            server.hub.publish(cv2.imencode(".jpg", camera_frames[k % 30][0])[1].tobytes(), {"frame": k})
            k += 1
            time.sleep(0.03)

    threading.Thread(target=publish, daemon=True).start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit.toolkit.cli", "webcam", "-m", str(models["int8.tflite"]),
         "-s", server.url + "stream.mjpg", "--headless"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        assert all(json.loads(line)["frame"] == k for k, line in enumerate(lines))
        stop.set()
        server.stop()  # the camera goes away
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        stop.set()
    assert proc.returncode == 3, err
    errors = [line for line in err.splitlines() if line.startswith("edgekit:")]
    assert errors == [errors[-1]] and "stopped delivering frames" in errors[-1]
    assert "Traceback" not in err


def test_loop_releases_the_source_and_retries(models, camera_frames):
    clf = Classifier(models["int8.tflite"])
    frames = [f for f, _, _ in camera_frames[:3]]
    seen = []
    live = IterSource(frames + [None] * 10, name="camera 0", live=True)
    with pytest.raises(CameraError, match="stopped delivering frames"):
        run_loop(live, clf, seen.append, retry_delay=0.0)
    assert live.released and len(seen) == 3
    # a failed read in between is retried and the stream goes on
    flaky = IterSource([frames[0], None, None, frames[1], None, frames[2]], live=True)
    seen.clear()
    with pytest.raises(CameraError):
        run_loop(flaky, clf, seen.append, retry_delay=0.0)
    assert len(seen) == 3 and flaky.released
    # a file just ends; on_result returning True stops; errors inside still release
    done = IterSource(frames)
    end = run_loop(done, clf, lambda r: r.index == 1)
    assert end.frames == 2 and end.reason == "stopped" and done.released
    broken = IterSource(frames)
    with pytest.raises(ZeroDivisionError):
        run_loop(broken, clf, lambda r: 1 / 0)
    assert broken.released


def test_annotate_draws_on_any_frame(models, camera_frames):
    clf = Classifier(models["int8.tflite"])
    frame = camera_frames[0][0]
    results = []
    run_loop(IterSource([frame, frame[..., 0], frame.astype(np.float32) / 255]), clf, results.append)
    for r in results:
        img = annotate(r)
        assert img.dtype == np.uint8 and img.shape == (480, 640, 3)
        assert not np.array_equal(img, cv2.cvtColor(r.frame, cv2.COLOR_GRAY2BGR) if r.frame.ndim == 2 else r.frame)
        x, y, w, h = r.prediction.box
        assert tuple(img[y, x + w // 2]) == (0, 200, 0)  # the box's top edge is drawn


@pytest.mark.skipif(not shutil.which("Xvfb"), reason="needs a virtual X display: apt-get install -y xvfb")
def test_webcam_window_under_a_virtual_display(models, video, tmp_path):
    """Window mode on a real (virtual) X display: it draws frames and ends cleanly, without Qt's font noise."""
    display = f":{100 + os.getpid() % 500}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        run = subprocess.run(
            [sys.executable, "-m", "edgekit.toolkit.cli", "webcam", "-m", str(models["int8.tflite"]), "-s", str(video), "--max-frames", "8"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "DISPLAY": display},
        )
    finally:
        xvfb.kill()
        xvfb.wait()
    assert run.returncode == 0, run.stderr
    assert "8 frames" in run.stderr and "QFontDatabase" not in run.stderr
    assert run.stdout == ""  # the window mode prints no JSON


def test_picamera2_missing_is_one_line(models):
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed here")
    r = runner.invoke(app, ["webcam", "-m", str(models["int8.tflite"]), "-s", "picamera2", "--headless"])
    assert r.exit_code == 3 and "python3-picamera2" in r.stderr and r.stderr.count("\n") == 1
