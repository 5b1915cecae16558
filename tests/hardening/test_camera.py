"""An absent camera, a video file that ends, a truncated video, and a camera lost mid-stream: one line and the
documented exit code (3 for the camera, 0 for a file that simply ends), the source always released."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from edgekit.runtime.errors import EXIT_ENVIRONMENT, CameraError

from measured import check

from .conftest import cli, error_line, subprocess_env


def headless(model, source, *extra):
    return cli("webcam", "--model", model, "--source", source, "--headless", *extra)


@pytest.fixture(scope="module")
def video(mnist, tmp_path_factory):
    """A real 6-frame MJPG video of camera-like digits, and its labels."""
    from edgekit.toolkit.synthetic import mnist_frames, write_video

    frames, labels = [], []
    for frame, label, _ in mnist_frames(mnist.x_test[:6], mnist.y_test[:6], seed=3):
        frames.append(frame)
        labels.append(label)
    path = write_video(tmp_path_factory.mktemp("video") / "digits.avi", frames, fps=10)
    return path, labels


@pytest.mark.parametrize("source, expected", [
    ("/dev/video99", "no such device"),
    ("9", "does not exist"),
    ("missing.avi", "no such file"),
    ("", "--source is empty"),
])
def test_absent_camera(exported, tmp_path, monkeypatch, source, expected):
    monkeypatch.chdir(tmp_path)
    line = error_line(headless(exported / "model_float32.onnx", source), EXIT_ENVIRONMENT)
    assert expected in line and (source in line or not source)


@pytest.mark.parametrize("name", ["camera.avi", "camera.mp4", "camera.png"])
def test_a_text_file_as_video_source(exported, tmp_path, name):
    fake = tmp_path / name
    fake.write_text("not a video\n")
    line = error_line(headless(exported / "model_float32.onnx", fake), EXIT_ENVIRONMENT)
    assert str(fake) in line


@pytest.mark.numeric
def test_video_file_that_ends_is_a_clean_end(exported, video):
    path, labels = video
    result = headless(exported / "model_int8.tflite", path)
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in rows] == list(range(len(labels)))
    check("webcam int8 (hardening): video frames read right, of 6", sum(r["digit"] == y for r, y in zip(rows, labels)),
          ">=", len(labels) - 1)  # the model reads them
    assert result.stderr.strip().splitlines()[-1] == f"edgekit: {len(labels)} frames from {path}; end of {path}"


def test_truncated_video_ends_or_fails_in_one_line(exported, video, tmp_path):
    path, labels = video
    cut = tmp_path / "cut.avi"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result = headless(exported / "model_int8.tflite", cut)
    assert "Traceback" not in result.stderr
    if result.exit_code == 0:  # the frames before the cut, then the end
        frames = len(result.stdout.splitlines())
        assert 0 < frames < len(labels)
        assert result.stderr.strip().splitlines()[-1].startswith(f"edgekit: {frames} frames from {cut}")
    else:
        error_line(result, EXIT_ENVIRONMENT)


def test_frame_source_that_starts_failing_raises_cameraerror_and_releases(exported, video):
    from edgekit.runtime import Classifier
    from edgekit.runtime.camera import IterSource, run_loop

    frame = cv2.VideoCapture(str(video[0])).read()[1]
    source = IterSource([frame, frame, frame], name="usb camera", live=True)  # then every read fails
    seen = []
    with pytest.raises(CameraError) as e:
        run_loop(source, Classifier(exported / "model_float32.onnx"), seen.append, retries=2, retry_delay=0.0)
    assert len(seen) == 3 and source.released
    assert "usb camera stopped delivering frames" in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == EXIT_ENVIRONMENT


def test_network_camera_lost_mid_stream_through_the_real_cli(exported):
    """A real MJPEG camera over HTTP (edgekit's own web view as the camera) that goes away mid-stream."""
    from edgekit.runtime.serve import StreamServer

    frame = np.full((240, 320, 3), 230, np.uint8)
    cv2.putText(frame, "7", (120, 190), cv2.FONT_HERSHEY_SIMPLEX, 6, (20, 20, 20), 14)
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    server = StreamServer(port=0).start()
    stop = threading.Event()

    def camera():
        while not stop.is_set():
            server.hub.publish(jpeg, {})
            time.sleep(0.03)

    threading.Thread(target=camera, daemon=True).start()
    url = f"http://127.0.0.1:{server.address[1]}/stream.mjpg"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from edgekit.toolkit.cli import main; main()", "webcam", "--model",
         str(exported / "model_float32.onnx"), "--source", url, "--headless"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
    )
    try:
        rows = [json.loads(proc.stdout.readline()) for _ in range(5)]  # the camera works ...
        assert [r["frame"] for r in rows] == list(range(5))
    finally:
        stop.set()
        server.stop()  # ... and is gone
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_ENVIRONMENT, err
    assert err.strip().splitlines() == [
        f"edgekit: error: {url} stopped delivering frames (6 failed reads in a row); check the camera and its cable"
    ]


def test_web_view_port_already_taken(exported):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = error_line(cli("webcam", "--model", exported / "model_float32.onnx", "--source", "missing.avi",
                              "--serve", f"127.0.0.1:{port}"), EXIT_ENVIRONMENT)
    assert f"cannot serve on 127.0.0.1:{port}" in line and "pick another --serve port" in line
