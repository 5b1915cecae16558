"""The web view over a real loopback socket: the page, each frame with its own status (/frame.jpg), JPEG frames
from the MJPEG stream, the status, 404 for every other path, two viewers at once, and a viewer that hangs up."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from edgekit.runtime.errors import OptionsError
from edgekit.runtime.serve import BOUNDARY, StreamServer, parse_address


@pytest.fixture
def live_server(camera_frames):
    """A server on an ephemeral loopback port, fed annotated-size JPEGs of camera frames at ~50 fps."""
    server = StreamServer("127.0.0.1", 0).start()
    stop = threading.Event()

    def publish():
        k = 0
        while not stop.is_set():
            frame, label, box = camera_frames[k % len(camera_frames)]
            jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
            server.hub.publish(jpeg, {"frame": k, "digit": label, "confidence": 0.9, "box": list(box), "fps": 50.0, "latency_ms": 2.0})
            k += 1
            time.sleep(0.02)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join()
    server.stop()


def _get(server, path: str) -> tuple[int, dict, bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


def read_jpegs(server, count: int) -> list[np.ndarray]:
    """Read ``count`` JPEG parts from /stream.mjpg over a plain socket and decode them."""
    host, port = server.address
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        f = s.makefile("rb")
        status = f.readline()
        assert b" 200 " in status, status
        headers = {}
        while (line := f.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        assert headers["content-type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        images = []
        while len(images) < count:
            assert f.readline().strip() == f"--{BOUNDARY}".encode()
            part = {}
            while (line := f.readline()) != b"\r\n":
                k, _, v = line.decode().partition(":")
                part[k.strip().lower()] = v.strip()
            assert part["content-type"] == "image/jpeg"
            data = f.read(int(part["content-length"]))
            f.readline()
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape == (480, 640, 3)
            images.append(img)
        return images


def test_page_status_and_stream(live_server):
    status, headers, body = _get(live_server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'id="stream"' in body and b'<script src="/frames.js">' in body
    status, headers, script = _get(live_server, "/frames.js")  # the pages' shared frame-by-frame fetching
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and b'"/frame.jpg?after="' in script
    status, headers, body = _get(live_server, "/status.json")
    s = json.loads(body)
    assert status == 200 and set(s) >= {"frame", "digit", "confidence", "box", "fps", "latency_ms", "running"}
    frames = read_jpegs(live_server, 4)
    assert len(frames) == 4 and not all(np.array_equal(frames[0], f) for f in frames[1:])  # live, not one still


def test_each_frame_comes_with_the_status_it_was_published_with(live_server, camera_frames):
    seen, seqs, waits = -1, [], 0
    while len(seqs) < 12:
        status, headers, body = _get(live_server, f"/frame.jpg?after={seen}")
        if status == 204:  # no new frame within FRAME_WAIT: the publisher thread starved on a loaded machine
            waits += 1
            assert waits <= 10, "no new frame in 10 waits of FRAME_WAIT seconds"
            continue
        assert status == 200 and headers["Content-Type"] == "image/jpeg", (status, headers)
        s = json.loads(headers["X-Edgekit-Status"])
        frame, label, _ = camera_frames[s["frame"] % len(camera_frames)]
        # the JPEG is exactly the one published with this status (the publisher encodes frame k for status k)
        assert body == cv2.imencode(".jpg", frame)[1].tobytes(), f"picture and status of different frames ({s})"
        assert s["digit"] == label and s["running"] is True
        seen = int(headers["X-Edgekit-Seq"])
        seqs.append(seen)
    assert seqs == sorted(set(seqs)), seqs  # always a newer frame, never the same one twice


def test_frame_without_a_new_one_is_204_and_a_bad_query_400():
    with StreamServer("127.0.0.1", 0) as server:
        status, headers, body = _get(server, "/frame.jpg?after=-1")  # nothing published: waits, then 204
        assert status == 204 and body == b"" and json.loads(headers["X-Edgekit-Status"])["frame"] == -1
        assert _get(server, "/frame.jpg?after=seven")[0] == 400


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/etc/passwd", "/page.html", "/serve.py", "/stream.mjpg/../x", "//etc/passwd", "/%2e%2e/%2e%2e/etc/passwd"])
def test_nothing_else_is_served(live_server, path):
    host, port = live_server.address
    with socket.create_connection((host, port), timeout=10) as s:  # raw: http.client might normalize the path
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 404") or reply.startswith(b"HTTP/1.1 404"), reply[:80]
    assert b"root:" not in reply


def test_two_viewers_and_a_viewer_that_hangs_up(live_server):
    # one viewer connects and vanishes mid-stream
    host, port = live_server.address
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    s.recv(1000)
    s.close()
    results: list = [None, None]

    def viewer(i):
        results[i] = read_jpegs(live_server, 3)

    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert all(r is not None and len(r) == 3 for r in results)
    assert _get(live_server, "/status.json")[0] == 200  # the server is still well


def test_binds_to_loopback_unless_told():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address(":9000") == ("127.0.0.1", 9000)
    assert parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_address("[::1]:8080") == ("::1", 8080)
    for bad in ("host:port", "127.0.0.1:70000", ""):
        with pytest.raises(OptionsError):
            parse_address(bad)
    server = StreamServer("127.0.0.1", 0)
    try:
        assert server.address[0] == "127.0.0.1"
    finally:
        server.httpd.server_close()
