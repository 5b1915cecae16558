"""A real headless Chromium opens `edgekit webcam --serve` and shows the live stream and prediction.

Needs Debian's chromium (`apt-get install -y chromium`); skipped with that reason when it is absent.
The screenshot is kept in the test's tmp folder (its path is printed) for a person to look at."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import cv2
import pytest

from edgekit.toolkit.synthetic import write_video

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--hide-scrollbars"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get update && apt-get install -y chromium"),
]


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=90)


def test_chromium_shows_the_live_page(models, camera_frames, tmp_path, terminal_sigint):
    video = write_video(tmp_path / "desk.avi", [f for f, _, _ in camera_frames[:300]], fps=10)  # plays for 30 s
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit.toolkit.cli", "webcam", "-m", str(models["int8.tflite"]), "-s", str(video),
         "--serve", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=terminal_sigint,
    )
    try:
        url = None
        for _ in range(20):
            line = proc.stderr.readline()
            if m := re.search(r"serving the camera on (http://\S+)", line):
                url = m.group(1)
                break
        assert url and url.startswith("http://127.0.0.1:"), "webcam --serve did not say where it serves"
        for _ in range(3):  # on a loaded machine Chromium may stop the page before its first status poll returns
            dom = _chromium("--timeout=8000", "--dump-dom", url).stdout
            if 'id="state">connecting' not in dom:
                break
        shot = tmp_path / "webcam_page.png"
        _chromium("--timeout=4000", "--window-size=900,640", f"--screenshot={shot}", url)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the camera is released, the server stopped, exit 130
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    # the page's script has fetched the live status: a digit, a confidence and an FPS, and it is live
    digit = re.search(r'id="digit"[^>]*>([^<]*)<', dom).group(1)
    assert digit in list("0123456789") + ["–"]
    header = dom[dom.find("<header>") : dom.find("</header>")]
    assert re.search(r'id="state">live<', header), header
    assert float(re.search(r'id="fps">([\d.]+)<', dom).group(1)) > 1
    assert int(re.search(r'id="frame">(\d+)<', dom).group(1)) > 0
    # the screenshot shows the stream: the image area is a frame, with the overlay's green box in it
    print(f"\nscreenshot: {shot}")
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (640, 900)
    stream = img[80:560, 16:656]
    assert stream.std() > 5, "the stream area is blank"
    green = (stream[..., 1] > 150) & (stream[..., 0] < 80) & (stream[..., 2] < 80)
    assert green.sum() > 200, "no overlay (box and digit) drawn on the stream"
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "edgekit: error: interrupted", err
