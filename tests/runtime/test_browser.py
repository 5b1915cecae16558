"""A real headless Chromium opens `edgekit webcam --serve` and shows the live stream and prediction, and the
digit in the page's header is always the digit of the frame the page is showing; and it clicks the buttons of
`edgekit collect --serve`, which save exactly the crop on screen.

Needs Debian's chromium (`apt-get install -y chromium`); skipped with that reason when it is absent.
The screenshot is kept in the test's tmp folder (its path is printed) for a person to look at."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from edgekit.toolkit.synthetic import write_video

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--hide-scrollbars"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get update && apt-get install -y chromium"),
]


# --- Chromium, driven through the DevTools protocol ----------------------------------------------------

class DevTools:
    """Chromium driven through the DevTools protocol over ``--remote-debugging-pipe``: JSON messages ending in
    NUL, read by Chromium from fd 3 and written to fd 4 (no WebSocket library needed)."""

    def __init__(self):
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()

        def fds():  # the pipe ends as fd 3 and 4 in the child
            a, b = os.dup(to_chrome), os.dup(from_chrome)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, "--remote-debugging-pipe", "about:blank"], pass_fds=(3, 4),
                                     preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self.session = b"", 0, None

    def call(self, method: str, timeout: float = 30.0, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                chunk = os.read(self._in, 1 << 20)
                assert chunk, "Chromium closed the DevTools pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply["error"]
                return reply["result"]
        raise TimeoutError(method)

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self._in)
        os.close(self._out)


# Read in one JavaScript task, so the page cannot change in between: the header's digit and frame number, and
# the picture the page shows right now, drawn at its own size into a canvas.
SAMPLE = """(() => {
  const img = document.getElementById("stream");
  if (!img || !img.complete || !img.naturalWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  canvas.getContext("2d").drawImage(img, 0, 0);
  return {digit: document.getElementById("digit").textContent, frame: document.getElementById("frame").textContent,
          state: document.getElementById("state").textContent, picture: canvas.toDataURL("image/png")};
})()"""


def _which_frame(picture: np.ndarray, sources: np.ndarray) -> tuple[int, float, float]:
    """The index of the source frame a shown (annotated, JPEG-compressed) picture is, its mean grey-level
    difference, and the next best one's."""
    small = cv2.resize(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY), (160, 120), interpolation=cv2.INTER_AREA).astype(np.float32)
    diffs = np.abs(sources - small).mean(axis=(1, 2))
    best, second = np.argsort(diffs)[:2]
    return int(best), float(diffs[best]), float(diffs[second])


def test_the_header_shows_the_digit_of_the_frame_on_screen(models, camera_frames, tmp_path, terminal_sigint):
    frames = [f for f, _, _ in camera_frames[:300]]
    video = write_video(tmp_path / "desk.avi", frames, fps=10)  # plays for 30 s; every frame a different digit
    sources = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (160, 120), interpolation=cv2.INTER_AREA)
                        for f in frames]).astype(np.float32)
    # --headless beside --serve: each frame's published status is also a JSON line on stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit.toolkit.cli", "webcam", "-m", str(models["int8.tflite"]), "-s", str(video),
         "--serve", "127.0.0.1:0", "--headless"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=terminal_sigint,
    )
    published: dict[int, object] = {}
    reader = threading.Thread(target=lambda: [published.__setitem__(d["frame"], d["digit"])
                                              for d in map(json.loads, proc.stdout)], daemon=True)
    reader.start()
    browser = None
    samples = []
    try:
        url = None
        for _ in range(20):
            if m := re.search(r"serving the camera on (http://\S+)", proc.stderr.readline()):
                url = m.group(1)
                break
        assert url, "webcam --serve did not say where it serves"
        browser = DevTools()
        browser.open(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(samples) < 12:
            sample = browser.evaluate(SAMPLE)
            if sample and sample["state"] == "live" and sample["frame"].isdigit():
                samples.append(sample)
            time.sleep(0.35)
    finally:
        if browser is not None:
            browser.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
    reader.join(timeout=10)
    assert len(samples) >= 8, f"only {len(samples)} samples of a live page in 60 s"
    mismatches = []
    for s in samples:
        png = np.frombuffer(base64.b64decode(s["picture"].split(",", 1)[1]), np.uint8)
        shown, diff, next_best = _which_frame(cv2.imdecode(png, cv2.IMREAD_COLOR), sources)
        assert diff < 0.5 * next_best, f"cannot tell which frame the page shows ({diff:.1f} vs {next_best:.1f})"
        header_frame = int(s["frame"])
        expected = published.get(shown, "unpublished")
        expected = "–" if expected is None else str(expected)
        if header_frame != shown or s["digit"] != expected:
            mismatches.append(f"picture of frame {shown} (published digit {expected}) under a header saying "
                              f"frame {header_frame}, digit {s['digit']}")
    assert not mismatches, "\n".join(mismatches)
    assert len({int(s["frame"]) for s in samples}) >= 3, "the page did not move on"


def _wait_live(browser: "DevTools", seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if browser.evaluate('(document.getElementById("state") || {}).textContent') == "live":  # null until loaded
            return
        time.sleep(0.3)
    raise AssertionError("the page never went live: " + browser.evaluate("document.querySelector('header').outerHTML"))


def test_chromium_shows_the_live_page(models, camera_frames, tmp_path, terminal_sigint):
    """With --token, as a server bound beyond loopback has by default: Chromium opens the printed URL (its
    ?token=), the first load keeps the token in a cookie, and the page's own requests carry it."""
    video = write_video(tmp_path / "desk.avi", [f for f, _, _ in camera_frames[:300]], fps=10)  # plays for 30 s
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit.toolkit.cli", "webcam", "-m", str(models["int8.tflite"]), "-s", str(video),
         "--serve", "127.0.0.1:0", "--token"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=terminal_sigint,
    )
    browser = None
    try:
        url = None
        for _ in range(20):
            line = proc.stderr.readline()
            if m := re.search(r"serving the camera on (http://\S+)", line):
                url = m.group(1)
                break
        assert url and url.startswith("http://127.0.0.1:"), "webcam --serve did not say where it serves"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{20,}", url), url
        browser = DevTools()
        browser.open(url.split("?")[0])  # without the token: refused, and the page says so
        deadline = time.monotonic() + 30
        while not (text := browser.evaluate("document.body ? document.body.innerText : ''")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "access token" in text, text
        browser.open(url)
        browser.call("Emulation.setDeviceMetricsOverride", width=900, height=640, deviceScaleFactor=1, mobile=False)
        _wait_live(browser)  # on a loaded machine the first frame can take a while
        assert browser.evaluate("location.href") == url.split("?")[0]  # the token went to a cookie, off the address bar
        time.sleep(1.0)
        dom = browser.evaluate("document.documentElement.outerHTML")
        shot = tmp_path / "webcam_page.png"
        shot.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the camera is released, the server stopped, exit 130
        _, err = proc.communicate(timeout=30)
    finally:
        if browser is not None:
            browser.close()
        proc.kill()
    # the page shows the live status: a digit, a confidence and an FPS, and it is live
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


# --- edgekit collect --serve: the labelling page -----------------------------------------------------------

# The picture on screen (the crop, enlarged, beside the frame), its frame number, the state line and the message,
# read in one JavaScript task.
COLLECT_SAMPLE = """(() => {
  const img = document.getElementById("stream");
  if (!img || !img.complete || !img.naturalWidth || img.dataset.frame === undefined) return null;
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  canvas.getContext("2d").drawImage(img, 0, 0);
  return {frame: Number(img.dataset.frame), state: document.getElementById("state").textContent,
          enabled: !document.querySelector('[data-label="0"]').disabled,
          message: document.getElementById("message").textContent, error: document.getElementById("message").className === "error",
          picture: canvas.toDataURL("image/png")};
})()"""


def _click(browser: DevTools, label: str) -> None:
    """A real mouse click (pressed, released) in the middle of the button for ``label``."""
    box = browser.evaluate(f"""(() => {{ const r = document.querySelector('[data-label="{label}"]').getBoundingClientRect();
                                         return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
    for kind in ("mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)


def _wait_for(browser: DevTools, ready, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sample = browser.evaluate(COLLECT_SAMPLE)
        if sample and ready(sample):
            return sample
        time.sleep(0.2)
    raise AssertionError(f"the collect page never got there: {browser.evaluate('document.body.innerText')!r}")


def _shown_crop(sample) -> np.ndarray:
    """The crop as the page shows it: the picture's left 280x280 square, back to 28x28."""
    png = np.frombuffer(base64.b64decode(sample["picture"].split(",", 1)[1]), np.uint8)
    picture = cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
    return cv2.resize(picture[:280, :280], (28, 28), interpolation=cv2.INTER_AREA)


def test_the_header_shows_an_image_models_class_name(tmp_path):
    """An image model's result (``Prediction.label``, digit None) reaches the page's header as its class name and
    confidence, not as "no digit"; a digit result right after it shows the digit again."""
    from edgekit.runtime.camera import FrameResult
    from edgekit.runtime.classifier import Prediction
    from edgekit.runtime.serve import StreamServer

    frame = np.full((120, 160, 3), 90, np.uint8)
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    answers = {"tulip": Prediction(None, 0.973, (0, 0, 160, 120), label="tulip"), "7": Prediction(7, 0.5, (10, 10, 20, 20))}
    browser = None
    with StreamServer("127.0.0.1", 0) as server:
        try:
            browser = DevTools()
            for k, (shown, prediction) in enumerate(answers.items()):
                server.hub.publish(jpeg, FrameResult(k, frame, prediction, fps=10.0, latency_ms=1.0).to_dict())
                if browser.session is None:
                    browser.open(server.url)
                deadline, header = time.monotonic() + 30, None
                while time.monotonic() < deadline:
                    header = browser.evaluate('document.getElementById("frame") && [document.getElementById("frame").textContent, '
                                              'document.getElementById("digit").textContent, document.getElementById("confidence").textContent]')
                    if header and header[0] == str(k):
                        break
                    time.sleep(0.2)
                expected = f"{100 * prediction.confidence:.1f} %"
                assert header == [str(k), shown, expected], f"the header shows {header} for {prediction}"
        finally:
            if browser is not None:
                browser.close()


def test_the_collect_page_saves_the_crop_on_screen(camera_frames, tmp_path, terminal_sigint):
    from edgekit.runtime.preprocess import find_digits
    from edgekit.toolkit.synthetic import empty_frame

    frames = [f for f, _, _ in camera_frames[:6]]
    labels = [int(l) for _, l, _ in camera_frames[:6]]
    frames.insert(2, empty_frame("paper", np.random.default_rng(5)))  # frame 2: no digit
    labels.insert(2, None)
    video = write_video(tmp_path / "desk.avi", frames, fps=10)
    cap = cv2.VideoCapture(str(video))
    decoded = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        decoded.append(f)
    cap.release()
    crops = [(c[0].image if (c := find_digits(f)) else None) for f in decoded]  # what the runtime would see
    assert crops[2] is None and all(c is not None for i, c in enumerate(crops) if i != 2)
    out = tmp_path / "mine"
    proc = subprocess.Popen(  # with a token: the page's label posts carry it in the cookie the first load set
        [sys.executable, "-m", "edgekit.toolkit.cli", "collect", str(video), "--out", str(out), "--serve", "127.0.0.1:0",
         "--token"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=terminal_sigint,
    )
    browser = None
    saved = []
    try:
        url = None
        for _ in range(20):
            if m := re.search(r"serving the collect page on (http://\S+)", proc.stderr.readline()):
                url = m.group(1)
                break
        assert url and url.startswith("http://127.0.0.1:") and "?token=" in url, "collect --serve did not say where it serves"
        browser = DevTools()
        browser.open(url)
        browser.call("Emulation.setDeviceMetricsOverride", width=1000, height=700, deviceScaleFactor=1, mobile=False)

        # Label frames 0 and 1 with their digits by clicking; skip frame 3; label frame 4.
        for frame, action in ((0, "label"), (1, "label"), (3, "skip"), (4, "label")):
            sample = _wait_for(browser, lambda s: s["frame"] == frame and s["enabled"])
            assert sample["state"] == "live"
            label = str(labels[frame]) if action == "label" else "skip"
            _click(browser, label)
            after = _wait_for(browser, lambda s: s["message"].startswith(f"frame {frame} "))
            assert not after["error"], after["message"]
            if action == "label":
                assert f"saved as {label}" in after["message"]
                files = sorted((out / label).glob("*.png"))
                new = [f for f in files if f not in saved]
                assert len(new) == 1, files
                saved.append(new[0])
                png = cv2.imread(str(new[0]), cv2.IMREAD_UNCHANGED)
                assert png.dtype == np.uint8 and png.shape == (28, 28)
                # exactly the runtime's crop of the frame the page showed, and the page showed that crop
                assert np.array_equal(png, crops[frame]), f"frame {frame}: the saved PNG is not its crop"
                diff = np.abs(_shown_crop(sample).astype(int) - png.astype(int)).mean()
                others = min(np.abs(_shown_crop(sample).astype(int) - c.astype(int)).mean()
                             for i, c in enumerate(crops) if c is not None and i != frame)
                print(f"frame {frame}: page's crop vs the PNG {diff:.2f} grey levels, vs the nearest other crop {others:.2f}")
                assert diff < 1 and diff < 0.1 * others, (diff, others)
                summary = json.loads((out / "collect.json").read_text())  # written after every label
                assert summary["total"] == len(saved) and summary["counts"][label] >= 1
            else:
                assert "skipped" in after["message"]
        shot = tmp_path / "collect_page.png"
        shot.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
        print(f"\nscreenshot: {shot}")

        # A stale frame: frame 2 had no digit, so the server holds no crop for it; frame 0 is already saved.
        # The page says so in one line, in red, and nothing is saved.
        _wait_for(browser, lambda s: s["frame"] == 5 and s["enabled"])
        for stale, words in ((2, "is no longer held"), (0, "was already saved as")):
            browser.evaluate(f'document.getElementById("stream").dataset.frame = "{stale}"')
            _click(browser, "9")
            refused = _wait_for(browser, lambda s: s["message"].startswith(f"frame {stale} {words}"))
            assert refused["error"] and "nothing saved" in refused["message"], refused["message"]
        assert not (out / "9").exists() or not list((out / "9").glob("*.png"))
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the server stops, collect.json is written, exit 130
        _, err = proc.communicate(timeout=30)
    finally:
        if browser is not None:
            browser.close()
        proc.kill()
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "edgekit: error: interrupted", err
    summary = json.loads((out / "collect.json").read_text())
    expected = {str(d): sum(1 for f in (0, 1, 4) if labels[f] == d) for d in range(10)}
    assert summary["counts"] == expected and summary["total"] == 3
    tally = summary["sessions"][-1]["sources"][0]
    assert tally["saved"] == 3 and tally["no_digit"] == 1 and tally["frames"] == 6, tally  # frames 0-5 read
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))
