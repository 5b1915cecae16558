"""`edgekit collect --serve` over a real loopback socket: a label saves exactly the crop of the frame it names;
a stale, repeated or malformed request is refused with a clear HTTP error and one JSON line, never a traceback,
and nothing is saved. (The page itself, clicked in Chromium: tests/runtime/test_browser.py.)"""

from __future__ import annotations

import http.client
import json
import threading
import time

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.runtime import collect as rc
from edgekit.runtime.camera import IterSource
from edgekit.runtime.serve import StreamServer
from edgekit.toolkit.cli import app
from edgekit.toolkit.synthetic import empty_frame

runner = CliRunner()


@pytest.fixture
def served(camera_frames, tmp_path):
    """A video-like source (waits for a label on each frame with a digit) of frames 0, 1, a blank one (2), 3-5,
    collected through the page's server on an ephemeral loopback port."""
    frames = [f for f, _, _ in camera_frames[:5]]
    frames.insert(2, empty_frame("paper", np.random.default_rng(1)))
    store = rc.DigitStore(tmp_path / "mine")
    desk = rc.LabelDesk(store)
    server = StreamServer("127.0.0.1", 0, page=rc.PAGE, actions={"/label": desk.label}).start()
    crops = [(c.image if (c := rc.first_crop(f, None)) else None) for f in frames]
    done = threading.Event()
    stop = threading.Event()
    thread = threading.Thread(target=lambda: (rc.collect_served(IterSource(frames, name="desk"), store, desk, server.hub,
                                                                stopped=stop.is_set), done.set()), daemon=True)
    thread.start()
    yield server, store, crops, done
    stop.set()
    desk.close()
    thread.join(timeout=10)
    server.stop()


def post(server, body, path="/label", headers=None) -> tuple[int, dict]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    assert b"Traceback" not in raw, raw
    return r.status, json.loads(raw)


def shown_frame(server, after: int = -1) -> tuple[int, dict]:
    """The next picture's (sequence number, status) after ``after``, as the page fetches it (asking again
    while the server answers 204, no new picture yet)."""
    host, port = server.address
    for _ in range(15):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", f"/frame.jpg?after={after}")
        r = conn.getresponse()
        r.read()
        conn.close()
        if r.status == 200:
            return int(r.getheader("X-Edgekit-Seq")), json.loads(r.getheader("X-Edgekit-Status"))
        time.sleep(0.1)
    raise AssertionError(f"no new picture after {after} in 30 s")


def test_a_label_saves_exactly_the_crop_of_its_frame(served):
    server, store, crops, _ = served
    seq, status = shown_frame(server)
    assert status["frame"] == 0 and status["crop"] and status["waiting"]
    code, answer = post(server, {"frame": 0, "label": "7"})
    assert code == 200 and answer["file"] == "7/desk-0.png" and "saved as 7" in answer["message"], answer
    png = cv2.imread(str(store.out / "7" / "desk-0.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(png, crops[0])
    summary = json.loads((store.out / "collect.json").read_text())  # written at once, not only at the end
    assert summary["counts"]["7"] == 1 and summary["total"] == 1
    seq, status = shown_frame(server, seq)  # the source moved on to frame 1
    assert status["frame"] == 1 and status["saved"] == 1
    code, answer = post(server, {"frame": 1, "label": 4})  # a number works as well as a string
    assert code == 200 and answer["file"] == "4/desk-0.png"
    assert np.array_equal(cv2.imread(str(store.out / "4" / "desk-0.png"), cv2.IMREAD_UNCHANGED), crops[1])
    seq, status = shown_frame(server, seq)  # frame 2 (blank) goes by, frame 3 waits
    while status["frame"] < 3:
        seq, status = shown_frame(server, seq)
    assert status["frame"] == 3
    assert post(server, {"frame": 3, "label": "skip"}) == (200, {"frame": 3, "skipped": True, "message": "frame 3 skipped"})
    assert sorted(p.relative_to(store.out).as_posix() for p in store.out.rglob("*.png")) == ["4/desk-0.png", "7/desk-0.png"]


@pytest.mark.parametrize("body, code, words", [
    ({"frame": 0, "label": "12"}, 400, "label must be a digit 0-9 or 'skip', got '12'"),
    ({"frame": 0, "label": "x"}, 400, "label must be a digit"),
    ({"frame": 0, "label": True}, 400, "label must be a digit"),
    ({"frame": 0}, 400, "label must be a digit"),
    ({"frame": "0", "label": "3"}, 400, "frame must be a frame number"),
    ({"frame": -1, "label": "3"}, 400, "frame must be a frame number"),
    ({"frame": 1.5, "label": "3"}, 400, "frame must be a frame number"),
    ({"label": "3"}, 400, "frame must be a frame number"),
    ({"frame": 2, "label": "3"}, 409, "frame 2 has not been shown yet; nothing saved"),
    ({"frame": 10 ** 30, "label": "3"}, 409, "has not been shown yet"),
    (b"{not json", 400, "the body is not JSON"),
    (b"[0, 3]", 400, "send a JSON object"),
    (b"x" * 2000, 413, "body over 1024 bytes"),
])
def test_bad_labels_are_refused_in_one_line_and_nothing_is_saved(served, body, code, words):
    server, store, _, _ = served
    shown_frame(server)  # frame 0 is on show
    status, answer = post(server, body)
    assert status == code and words in answer["error"] and list(answer) == ["error"], answer
    assert not list(store.out.rglob("*.png"))


def test_a_stale_or_repeated_frame_is_refused(served):
    server, store, _, _ = served
    seq, _ = shown_frame(server)
    assert post(server, {"frame": 0, "label": "1"})[0] == 200
    code, answer = post(server, {"frame": 0, "label": "2"})  # a second click on the same picture
    assert code == 409 and answer["error"] == "frame 0 was already saved as 1; nothing saved: label the crop on screen now"
    seq, status = shown_frame(server, seq)  # frame 1 on show
    assert status["frame"] == 1
    assert post(server, {"frame": 1, "label": "skip"})[0] == 200
    while status["frame"] < 3:
        seq, status = shown_frame(server, seq)
    code, answer = post(server, {"frame": 2, "label": "5"})  # frame 2 had no digit: no crop held for it
    assert code == 409 and "frame 2 is no longer held" in answer["error"] and "nothing saved" in answer["error"]
    assert [p.parent.name for p in store.out.rglob("*.png")] == ["1"]


def test_a_live_camera_keeps_only_the_latest_crops(camera_frames, tmp_path):
    """A camera is not held up for labels; the desk keeps the HOLD latest crops and refuses older frames."""
    store = rc.DigitStore(tmp_path / "mine")
    desk = rc.LabelDesk(store, hold=3)
    server = StreamServer("127.0.0.1", 0, page=rc.PAGE, actions={"/label": desk.label}).start()
    try:
        frames = [f for f, _, _ in camera_frames[:9]]
        # a live source that ran out would be a lost camera (CameraError): stop after 8 frames instead
        tally = rc.collect_served(IterSource(frames, name="cam", live=True), store, desk, server.hub,
                                  stopped=lambda: store.tallies[-1].frames >= 8)
        assert tally.frames == 8 and tally.saved == 0 and tally.skipped == 8
        code, answer = post(server, {"frame": 4, "label": "3"})
        assert code == 409 and "frame 4 is no longer held (the camera moved on" in answer["error"]
        code, answer = post(server, {"frame": 5, "label": str(camera_frames[5][1])})
        assert code == 200
        assert np.array_equal(cv2.imread(str(store.out / answer["file"]), -1), rc.first_crop(frames[5], None).image)
        desk.close()
        assert post(server, {"frame": 6, "label": "3"}) == (503, {"error": "collecting has stopped; nothing saved"})
    finally:
        server.stop()


@pytest.mark.parametrize("path, headers, body, code, words", [
    ("/label", {"Origin": "http://evil.example"}, {"frame": 0, "label": "3"}, 403, "may not use this server"),
    ("/label", {"Host": "evil.example:8080"}, {"frame": 0, "label": "3"}, 403, "is not a name of this server"),
    ("/label", {"Host": "localhost.evil.example"}, {"frame": 0, "label": "3"}, 403, "is not a name of this server"),
    ("/label", {"Content-Type": "application/x-www-form-urlencoded"}, b"frame=0&label=3", 415, "send a JSON object"),
    ("/label", {"Content-Type": "text/plain"}, {"frame": 0, "label": "3"}, 415, "send a JSON object"),
    ("/elsewhere", {}, {"frame": 0, "label": "3"}, 404, "not found"),
])
def test_posts_from_elsewhere_are_refused(served, path, headers, body, code, words):
    server, store, _, _ = served
    shown_frame(server)
    status, answer = post(server, body, path=path, headers=headers)
    assert status == code and words in answer["error"], answer
    assert not list(store.out.rglob("*.png"))


def test_the_machine_s_own_names_may_post(served):
    import socket

    server, store, _, _ = served
    shown_frame(server)
    me = socket.gethostname().split(".")[0]
    port = server.address[1]  # names are compared with the port (tests/runtime/test_serve_attacks.py: the policy)
    for host in (f"localhost:{port}", f"{me}.local:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
        status, answer = post(server, {"frame": 99, "label": "3"}, headers={"Host": host})
        assert status == 409 and "has not been shown yet" in answer["error"], (host, answer)  # past the host check


def test_the_page_is_served_and_webcam_has_no_label_path(served):
    server, *_ = served
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/")
    page = conn.getresponse().read().decode()
    assert "<title>edgekit collect</title>" in page and page.count("<button data-label=") == 11
    with StreamServer("127.0.0.1", 0) as webcam:  # the webcam's server takes no POST at all
        status, answer = post(webcam, {"frame": 0, "label": "3"})
        assert status == 501 and answer == {"error": "this view takes GET and HEAD only"}


@pytest.mark.parametrize("args, words", [
    (["--label", "3"], "--serve labels each crop on the page; --label and --labels-from-names label them all"),
    (["--labels-from-names"], "--serve labels each crop on the page"),
    (["--serve-port"], None),
])
def test_serve_refuses_other_labelling_options(tmp_path, args, words):
    if words is None:
        result = runner.invoke(app, ["collect", "0", "--out", str(tmp_path / "o"), "--serve", "127.0.0.1:99999"])
        words = "--serve '127.0.0.1:99999': expected HOST:PORT"
    else:
        result = runner.invoke(app, ["collect", "0", "--out", str(tmp_path / "o"), "--serve", "127.0.0.1:0", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [l for l in result.output.splitlines() if l.startswith("edgekit: error:")]
    assert len(lines) == 1 and words in lines[0], result.output
    assert not (tmp_path / "o").exists()
