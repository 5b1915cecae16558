"""The served pages (`edgekit webcam --serve`, `edgekit collect --serve`) tried as an attacker would, over real
loopback sockets (issue 26): one Host/Origin policy on every request, an access token, one JSON line for every
refused request and never a traceback, slots a slow client cannot hold, and SIGTERM ending `collect` like Ctrl-C.

Every server here binds 127.0.0.1; nothing leaves the machine.

Why one file of ~500 lines: every test attacks the one security boundary of runtime/serve.py (one module for the
same reason), and the attacks read best side by side."""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.runtime import collect as rc
from edgekit.runtime.errors import EXIT_INTERRUPTED, EXIT_TERMINATED
from edgekit.runtime.serve import Limits, StreamServer

REPO = Path(__file__).resolve().parents[2]

ME = socket.gethostname().lower()
SHORT = ME.split(".")[0]
GET_PATHS = ["/", "/frames.js", "/frame.jpg?after=-1", "/stream.mjpg", "/status.json"]


# --- raw HTTP over a socket ----------------------------------------------------------------------------

def raw(port: int, request: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send ``request`` as is; (status, headers, body) of the answer (status 0: the server closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
                if b"multipart/x-mixed-replace" in data:  # a stream never ends: its head is enough
                    break
        except ConnectionResetError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        return 0, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def request(port: int, method: str = "GET", path: str = "/status.json", host: str | None = None,
            headers: dict | None = None, body: bytes = b"") -> tuple[int, dict, bytes]:
    host = f"127.0.0.1:{port}" if host is None else host
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def one_json_error(status: int, body: bytes) -> str:
    """The refusal's one line: a JSON object {"error": "..."} on one line, no traceback."""
    assert b"Traceback" not in body and body.count(b"\n") <= 1, body
    answer = json.loads(body)
    assert list(answer) == ["error"] and "\n" not in answer["error"], answer
    return answer["error"]


def label_post(port: int, host: str | None = None, origin: str | None = None, body: bytes | None = None,
               headers: dict | None = None):
    extra = {"Content-Type": "application/json", **({"Origin": origin} if origin else {}), **(headers or {})}
    return request(port, "POST", "/label", host=host, headers=extra,
                   body=body if body is not None else b'{"frame": 0, "label": "9"}')


# --- servers -------------------------------------------------------------------------------------------

@pytest.fixture
def collect_server(camera_frames, tmp_path):
    """`collect --serve`'s server with a held crop for frame 0 (a post for it would save 9/desk-0.png)."""
    store = rc.DigitStore(tmp_path / "mine")
    desk = rc.LabelDesk(store)
    desk.offer(rc.first_crop(camera_frames[0][0], None).image, rc.SourceTally("desk", "desk"))
    server = StreamServer("127.0.0.1", 0, page=rc.PAGE, actions={"/label": desk.label}).start()
    server.hub.publish(cv2.imencode(".jpg", camera_frames[0][0])[1].tobytes(), {"frame": 0})
    yield server, store
    desk.close()
    server.stop()


@pytest.fixture
def webcam_server(camera_frames):
    server = StreamServer("127.0.0.1", 0).start()
    server.hub.publish(cv2.imencode(".jpg", camera_frames[0][0])[1].tobytes(), {"frame": 0, "digit": 7})
    yield server
    server.stop()


@pytest.fixture(params=["webcam", "collect"])
def any_server(request):
    if request.param == "webcam":
        return request.getfixturevalue("webcam_server")
    return request.getfixturevalue("collect_server")[0]


def pngs(store) -> list[str]:
    return sorted(p.relative_to(store.out).as_posix() for p in store.out.rglob("*.png"))


# --- finding 1: a name that only starts with the host name ---------------------------------------------

def test_a_name_that_starts_with_the_host_name_may_not_post(collect_server):
    server, store = collect_server
    port = server.address[1]
    evil = f"{SHORT}.attacker.example:{port}"
    status, _, body = label_post(port, host=evil, origin=f"http://{evil}")
    assert status == 403, (status, body)
    assert "not a name of this server" in one_json_error(status, body)
    assert pngs(store) == []
    status, _, body = label_post(port)  # the same post from this server's own page saves the crop
    assert status == 200 and pngs(store) == ["9/desk-0.png"], body


# --- finding 2: the GET paths -------------------------------------------------------------------------

@pytest.mark.parametrize("path", GET_PATHS)
def test_every_get_path_refuses_a_foreign_host(any_server, path):
    port = any_server.address[1]
    status, headers, body = request(port, path=path, host="evil.example")
    assert status == 403, (path, status, body[:80])
    assert headers["content-type"] == "application/json" and b"\xff\xd8" not in body  # no JPEG
    assert "evil.example" in one_json_error(status, body)
    status, _, _ = request(port, "HEAD", path, host=f"evil.example:{port}")
    assert status == 403


# --- the policy: names it accepts and look-alikes it refuses -------------------------------------------

@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "[::1]", ME, f"{SHORT}.local", "LOCALHOST"])
def test_the_policy_accepts_the_machine_s_own_names(any_server, name):
    port = any_server.address[1]
    status, _, body = request(port, host=f"{name}:{port}")
    assert status == 200 and "running" in json.loads(body), (name, status, body)


@pytest.mark.parametrize("host", [
    f"{ME}.evil.example:{{port}}", "evil.example:{port}", f"{SHORT}evil:{{port}}", "127.0.0.1.evil.example:{port}",
    "203.0.113.7:{port}", "[2001:db8::1]:{port}", "0.0.0.0:{port}", "localhost.:{port}",
    "127.0.0.1:{other}", "localhost", f"{SHORT}.lan:{{port}}", "127.0.0.1:{port}@evil.example", "", "127.0.0.1:{port} x",
])
def test_the_policy_refuses_look_alikes(any_server, host):
    port = any_server.address[1]
    status, _, body = request(port, host=host.format(port=port, other=port + 1))
    assert status == 403, (host, status, body)
    one_json_error(status, body)


def test_the_address_a_request_arrived_on_is_one_of_the_names():
    """Bound to every interface, a laptop opens http://<the Pi's LAN address>:PORT/: that address is the one the
    connection arrived on, so it is allowed without listing interfaces; another address is not."""
    from edgekit.runtime.serve import HostPolicy

    policy = HostPolicy.for_server("0.0.0.0", 8080)
    assert policy.allows("192.168.1.20:8080", local_address="192.168.1.20")
    assert policy.allows("192.168.1.20:8080", local_address="::ffff:192.168.1.20")  # a dual-stack socket's spelling
    assert policy.allows("[fe80::1]:8080", local_address="fe80::1")
    assert not policy.allows("192.168.1.21:8080", local_address="192.168.1.20")
    assert not policy.allows("192.168.1.20:8081", local_address="192.168.1.20")
    assert not policy.allows("0.0.0.0:8080", local_address="192.168.1.20")
    assert not policy.allows("192.168.1.20:8080")


def test_a_request_without_host_is_refused(any_server):
    status, _, body = raw(any_server.address[1], b"GET /status.json HTTP/1.0\r\n\r\n")
    assert status == 403 and "Host" in one_json_error(status, body)


@pytest.mark.parametrize("origin, ok", [
    ("http://127.0.0.1:{port}", True), ("http://localhost:{port}", True),
    ("https://127.0.0.1:{port}", False), ("http://127.0.0.1:{other}", False), ("http://127.0.0.1", False),
    ("http://evil.example:{port}", False), (f"http://{SHORT}.attacker.example:{{port}}", False), ("null", False),
])
def test_origin_compares_scheme_host_and_port(collect_server, origin, ok):
    server, store = collect_server
    port = server.address[1]
    status, _, body = label_post(port, origin=origin.format(port=port, other=port + 1))
    if ok:
        assert status == 200 and pngs(store) == ["9/desk-0.png"], body
    else:
        assert status == 403 and "may not" in one_json_error(status, body) and pngs(store) == []
    # a GET naming a foreign origin is refused too
    status, _, _ = request(port, headers={"Origin": origin.format(port=port, other=port + 1)})
    assert status == (200 if ok else 403)


def test_allow_host_adds_exact_names(camera_frames):
    with StreamServer("127.0.0.1", 0, allow_hosts=["pi.example.org", "tunnel.example:9000"]) as server:
        port = server.address[1]
        assert request(port, host=f"pi.example.org:{port}")[0] == 200
        assert request(port, host="tunnel.example:9000")[0] == 200  # a forwarded port, named with it
        for refused in (f"x.pi.example.org:{port}", f"pi.example.org.evil:{port}", f"tunnel.example:{port}"):
            assert request(port, host=refused)[0] == 403, refused


# --- the access token -----------------------------------------------------------------------------------

def test_the_token_is_asked_of_every_request_and_the_first_page_load_sets_a_cookie(camera_frames, tmp_path):
    store = rc.DigitStore(tmp_path / "mine")
    desk = rc.LabelDesk(store)
    desk.offer(rc.first_crop(camera_frames[0][0], None).image, rc.SourceTally("desk", "desk"))
    with StreamServer("127.0.0.1", 0, page=rc.PAGE, actions={"/label": desk.label}, token="s3cret-token") as server:
        port = server.address[1]
        assert server.url == f"http://127.0.0.1:{port}/?token=s3cret-token"
        for path in GET_PATHS:
            status, _, body = request(port, path=path)
            assert status == 401 and "token" in one_json_error(status, body), path
        assert request(port, path="/?token=wrong")[0] == 401
        assert label_post(port)[0] == 401 and pngs(store) == []
        status, headers, _ = request(port, path="/?token=s3cret-token")
        assert status == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        jar = {"Cookie": cookie.split(";")[0]}
        assert request(port, path="/", headers=jar)[0] == 200
        assert request(port, path="/status.json?token=s3cret-token")[0] == 200  # for scripts and VLC
        assert request(port, headers={"Cookie": f"edgekit-{port}=wrong"})[0] == 401
        status, _, body = label_post(port, headers=jar)
        assert status == 200 and pngs(store) == ["9/desk-0.png"], body
        assert request(port, host="evil.example", headers=jar)[0] == 403  # the token does not lift the Host check
    desk.close()


def test_a_server_bound_beyond_loopback_wants_a_token_by_default():
    from edgekit.runtime.serve import page_url, wants_token

    assert not wants_token("127.0.0.1", None) and not wants_token("::1", None) and not wants_token("localhost", None)
    assert wants_token("0.0.0.0", None) and wants_token("::", None) and wants_token("192.168.1.20", None)
    assert wants_token("raspberrypi.local", None)
    assert not wants_token("0.0.0.0", False) and wants_token("127.0.0.1", True)
    # the URL printed for a laptop to open: the machine's NAME.local for a server on every interface
    assert page_url("0.0.0.0", 8080, "abc") == f"http://{SHORT}.local:8080/?token=abc"
    assert page_url("::", 8080) == f"http://{SHORT}.local:8080/"
    assert page_url("::1", 8080) == "http://[::1]:8080/" and page_url("192.168.1.20", 80, "t") == "http://192.168.1.20:80/?token=t"


# --- finding 3: every refusal one JSON line, never a traceback -----------------------------------------

def test_deeply_nested_json_is_a_400_not_a_traceback(collect_server, capfd):
    server, store = collect_server
    port = server.address[1]
    status, _, body = label_post(port, body=b"[" * 1000)
    assert status == 400 and "nested" in one_json_error(status, body)
    status, _, body = label_post(port, body=b'{"frame": 0, "label": "9", "x": ' + b"[" * 40 + b"]" * 40 + b"}")
    assert status == 400 and "nested" in one_json_error(status, body)
    assert pngs(store) == []
    err = capfd.readouterr().err
    assert "Traceback" not in err and "RecursionError" not in err, err


def _reset(port: int, data: bytes) -> None:
    """Connect, send ``data``, then reset the connection (RST, not FIN)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_resets_and_broken_pipes_log_one_line_at_most(any_server, capfd, caplog):
    caplog.set_level("WARNING", logger="edgekit.runtime.serve")
    port = any_server.address[1]
    for _ in range(9):
        _reset(port, f"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())  # mid-request
    for _ in range(3):
        _reset(port, f"GET /frame.jpg?after=-1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())  # mid-answer
    time.sleep(0.5)
    assert request(port)[0] == 200  # still well
    err = capfd.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
    lines = [r.getMessage() for r in caplog.records if r.name == "edgekit.runtime.serve"]
    assert len(lines) == 1 and lines[0].startswith("edgekit: web view: 1 connection(s) ended early"), lines
    assert any_server.httpd.drops.total >= 9  # every reset counted, one line said so


@pytest.mark.parametrize("headers, words", [
    ([f"X-Pad-{i}: {'a' * 1000}" for i in range(60)], "headers over"),   # 60 KB: each line short, the total not
    ([f"X-{i}: a" for i in range(200)], "headers"),                        # more headers than http.server takes
    ([f"X-Long: {'a' * 70000}"], "header"),                                # one line over 64 KB
])
def test_header_totals_over_the_bound_are_431(any_server, headers, words):
    port = any_server.address[1]
    req = "\r\n".join([f"GET /status.json HTTP/1.1", f"Host: 127.0.0.1:{port}", *headers]) + "\r\n\r\n"
    status, _, body = raw(port, req.encode())
    assert status == 431 and words in one_json_error(status, body)


def test_a_body_shorter_than_its_content_length_is_a_408(camera_frames, tmp_path):
    store = rc.DigitStore(tmp_path / "mine")
    desk = rc.LabelDesk(store)
    with StreamServer("127.0.0.1", 0, page=rc.PAGE, actions={"/label": desk.label}, limits=Limits(body_s=1.0)) as server:
        port = server.address[1]
        req = (f"POST /label HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: 100\r\n\r\n{{\"frame\": 0").encode()
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # the client keeps its end open
            s.sendall(req)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        took = time.monotonic() - t0
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split()[1] == b"408" and "body" in one_json_error(408, body), data
        assert 0.9 < took < 8, took
    desk.close()


# --- finding 4: slots a slow client cannot hold --------------------------------------------------------

def _slow_reader(port: int, path: str = "/stream.mjpg") -> socket.socket:
    """A viewer that asks for the stream and then never reads (a tiny receive buffer, so its writes block)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return s


def _slowloris(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
    return s


def _publishing(server, frames, stop: threading.Event) -> threading.Thread:
    jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]

    def run():
        k = 0
        while not stop.is_set():
            server.hub.publish(jpegs[k % len(jpegs)], {"frame": k, "digit": 1})
            k += 1
            time.sleep(1 / 30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_stream_viewers_never_lock_the_page_out(camera_frames):
    """Eight viewers that never read held all eight slots, and the page's /frame.jpg got 503 "busy"."""
    stop = threading.Event()
    with StreamServer("127.0.0.1", 0) as server:
        port = server.address[1]
        publisher = _publishing(server, [f for f, _, _ in camera_frames[:10]], stop)
        readers = [_slow_reader(port) for _ in range(12)]
        try:
            time.sleep(0.5)
            for _ in range(5):
                status, headers, body = request(port, path="/frame.jpg?after=-1")
                assert status == 200 and headers["content-type"] == "image/jpeg", (status, body[:80])
            status, _, body = request(port, path="/stream.mjpg")  # the streams' own slots are full
            assert status == 503 and "viewers" in one_json_error(status, body)
        finally:
            stop.set()
            publisher.join()
            for s in readers:
                s.close()


def test_a_slowloris_socket_is_dropped_at_the_header_deadline():
    with StreamServer("127.0.0.1", 0, limits=Limits(header_s=1.0)) as server:
        port = server.address[1]
        s = _slowloris(port)
        t0 = time.monotonic()
        answer = b""
        try:
            while time.monotonic() - t0 < 8:
                s.sendall(b"X-Slow: 1\r\n")  # one header line every 0.3 s, never the blank line
                time.sleep(0.3)
                s.settimeout(0.01)
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    continue
                answer += chunk
                if not chunk or b"\r\n\r\n" in answer:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            s.close()
        took = time.monotonic() - t0
        assert b" 408 " in answer.split(b"\r\n")[0], answer
        assert took < 4, took


def test_open_connections_are_bounded_and_slowloris_makes_room():
    with StreamServer("127.0.0.1", 0, limits=Limits(max_connections=4, header_s=30)) as server:
        port = server.address[1]
        idle = [_slowloris(port) for _ in range(6)]  # more than the bound, all still sending headers
        try:
            time.sleep(0.3)
            assert server.httpd.open_connections <= 4
            assert request(port)[0] == 200  # the oldest one made room
            idle[-1].settimeout(0.5)
            with pytest.raises(TimeoutError):
                idle[-1].recv(1)  # the youngest is still held
            assert idle[0].recv(1) == b""  # the oldest was closed
        finally:
            for s in idle:
                s.close()
    stop = threading.Event()
    with StreamServer("127.0.0.1", 0, limits=Limits(max_connections=4)) as server:
        port = server.address[1]
        publisher = _publishing(server, [np.full((48, 64, 3), 128, np.uint8)], stop)
        viewers = [_slow_reader(port) for _ in range(4)]  # being served, not sending headers: nothing to close
        try:
            time.sleep(0.5)
            status, _, body = request(port)
            assert status == 503 and "too many connections" in one_json_error(status, body)
            for s in viewers:
                s.close()
            time.sleep(1.0)  # each viewer's thread ends at its next write
            assert request(port)[0] == 200
        finally:
            stop.set()
            publisher.join()
            for s in viewers:
                s.close()


@pytest.mark.slow
def test_the_page_answers_under_slow_readers_and_slowloris(camera_frames):
    """The load test, bounded: 8 stream viewers and 8 /frame.jpg requests reading 1 KB/s and 24 slowloris
    sockets, for 8 s (benchmarks/serve_load.py); meanwhile the page polls /frame.jpg as frames.js does and loads /."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("serve_load", REPO / "benchmarks" / "serve_load.py")
    serve_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve_load)
    result = serve_load.run_load(readers=8, frame_readers=8, slowloris=24, seconds=8.0, limits=Limits(header_s=2.0, write_s=2.0))
    assert result["page_requests"] >= 10, result
    assert result["page_failures"] == 0, result
    # A functional bound, not a speed goal (the 1 s goal is benchmarks/serve_load.py's): no answer waited for a
    # stuck socket's deadline (2 s). Measured worst 116 ms over 613 answers under this load on an idle machine
    # (benchmarks/results/serve_load.json), 1,028 ms with a 2-thread training run beside the suite (AMD EPYC, AVX2);
    # the code before issue 26 answered 503 to 28,346 of 28,664.
    assert result["page_max_ms"] < 2000, result
    assert result["slowloris_dropped"] == 24, result  # each at the 2 s header deadline
    assert result["server_drops"] >= 8 and result["server_open_connections_at_end"] <= 2, result  # the streams: write deadline


# --- SIGTERM and SIGINT end `collect` alike ------------------------------------------------------------

@pytest.mark.parametrize("sig, code, line", [
    (signal.SIGTERM, EXIT_TERMINATED, "edgekit: error: terminated (SIGTERM); what was saved is kept"),
    (signal.SIGINT, EXIT_INTERRUPTED, "edgekit: error: interrupted"),
])
def test_a_signal_ends_collect_with_its_summary_and_a_collect_json_equal_to_the_files(
        camera_frames, tmp_path, terminal_sigint, sig, code, line):
    from edgekit.toolkit.synthetic import write_video

    video = write_video(tmp_path / "desk.avi", [f for f, _, _ in camera_frames[:6]], fps=10)
    out = tmp_path / "mine"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit.toolkit.cli", "collect", str(video), "--out", str(out), "--serve", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=terminal_sigint,
    )
    try:
        port = None
        for _ in range(20):
            if m := re.search(r"serving the collect page on http://127\.0\.0\.1:(\d+)/", proc.stderr.readline()):
                port = int(m.group(1))
                break
        assert port, "collect --serve did not say where it serves"
        for frame, label in ((0, "3"), (1, "5")):  # a video waits on each frame with a digit for its label
            deadline = time.monotonic() + 30
            while True:
                status, _, body = label_post(port, body=json.dumps({"frame": frame, "label": label}).encode())
                if status == 200:
                    break
                assert status == 409 and time.monotonic() < deadline, body
                time.sleep(0.1)
        time.sleep(0.3)
        proc.send_signal(sig)
        out_text, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1] == line, err
    assert re.search(r"^saved 2 crop\(s\) to .*\(3: 1, 5: 1\)", out_text, re.M), out_text
    summary = json.loads((out / "collect.json").read_text())
    on_disk = {str(d): len(list((out / str(d)).glob("*.png"))) for d in range(10)}
    assert summary["counts"] == on_disk and summary["total"] == 2 == sum(on_disk.values())
    session = summary["sessions"][-1]
    assert session["saved"] == 2 and session["sources"][0]["saved"] == 2
    assert session["sources"][0]["frames"] >= 2  # the final write, not the one after the last label
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]


# --- the options -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["collect", "webcam"])
@pytest.mark.parametrize("args, words", [
    (["--allow-host", "pi.example.org"], "--allow-host goes with --serve HOST:PORT"),
    (["--no-token"], "--token/--no-token goes with --serve HOST:PORT"),
    (["--serve", "127.0.0.1:0", "--allow-host", "a b"], "--allow-host 'a b': expected a host name or address"),
    (["--serve", "127.0.0.1:0", "--allow-host", "pi@evil.example"], "--allow-host 'pi@evil.example': expected"),
    (["--serve", "127.0.0.1:0", "--allow-host", "pi:http"], "--allow-host 'pi:http': expected"),
])
def test_serve_options_are_checked_before_anything_opens(tmp_path, command, args, words):
    from typer.testing import CliRunner

    from edgekit.toolkit.cli import app

    base = ["collect", "0", "--out", str(tmp_path / "o")] if command == "collect" else ["webcam", "--source", "0", "--headless"]
    result = CliRunner().invoke(app, [*base, *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("edgekit: error:")]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.output, result.output
    assert not (tmp_path / "o").exists()
