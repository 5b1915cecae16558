"""The web view for a Pi with no screen: a small page with the annotated frames and the live digit and FPS,
an MJPEG stream and a JSON status. Standard library only (``http.server.ThreadingHTTPServer``).

The page says one thing at a time: it fetches ``/frame.jpg?after=N``, which waits for the first frame newer
than sequence number N and answers with that frame's JPEG and, in the same response, the status it was
published with (``X-Edgekit-Status``, JSON). The page decodes the picture, then swaps it in and writes the
header in one step, so the digit in the header is always the digit of the frame on screen (an MJPEG stream
beside a polled status showed one frame's picture under another frame's digit, the gap growing over Wi-Fi).
``/stream.mjpg`` (for VLC, ffplay, an ``<img>`` elsewhere) and ``/status.json`` (for scripts) stay.

It serves exactly five paths — ``/`` (the page), ``/frames.js`` (its script), ``/frame.jpg``, ``/stream.mjpg`` and
``/status.json`` — and 404 for anything else, so nothing on the device's disk is reachable through it. A caller may add POST paths
(``edgekit collect --serve`` adds ``/label``, see ``Actions``): they take a small JSON object and answer one,
only from a page of this server (a JSON body, which a page of another site cannot send without asking first;
an ``Origin``, if any, naming this server's ``Host``; a ``Host`` that is an IP address, localhost or this
machine's name (NAME, NAME.local, NAME.lan), against DNS rebinding), so another site open in the same browser cannot post to them. It binds to 127.0.0.1 unless the
caller names another host. Each viewer gets its own thread; a viewer that goes away (closed tab, dropped
Wi-Fi) only ends its own thread. At most ``MAX_VIEWERS`` streams and waiting frame requests run at once, so a
forgotten tab or a flood of connections cannot starve the camera loop.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from edgekit.runtime.errors import CameraError, OptionsError

BOUNDARY = "edgekitframe"
MAX_VIEWERS = 8
PAGE = Path(__file__).with_name("page.html")
FRAMES_JS = Path(__file__).with_name("frames.js")  # the pages' frame-by-frame fetching, shared
FRAME_WAIT = 2.0  # seconds /frame.jpg waits for a newer frame before answering 204 (no new frame)
MAX_BODY = 1024  # bytes: a POST body is a small JSON object
MAX_DRAIN = 64 * 1024  # bytes of a larger body read (and dropped) before refusing it

# POST path -> handler(request JSON object) -> (HTTP status, response JSON object). A handler raises nothing
# for a bad request: it answers 4xx with {"error": "one line"}.
Actions = dict[str, Callable[[dict], tuple[int, dict]]]


class FrameHub:
    """The latest JPEG and status, handed from the camera loop to every viewer's thread."""

    def __init__(self):
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self.status: dict = {"frame": -1, "digit": None, "confidence": 0.0, "box": None, "fps": 0.0, "latency_ms": 0.0, "running": True}
        self.closed = False

    def publish(self, jpeg: bytes, status: dict) -> None:
        with self._cond:
            self._jpeg, self._seq = jpeg, self._seq + 1
            self.status = {**status, "running": True}
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self.status = {**self.status, "running": False}
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        """The next frame after sequence number ``seen`` (or the same one after ``timeout``)."""
        seq, jpeg, _ = self.wait_with_status(seen, timeout)
        return seq, jpeg

    def wait_with_status(self, seen: int, timeout: float = 1.0) -> tuple[int, bytes | None, dict]:
        """The next frame after sequence number ``seen`` and the status published with it, read together
        (or the same ones after ``timeout``)."""
        with self._cond:
            if (self._seq <= seen or self._jpeg is None) and not self.closed:  # before the first frame too
                self._cond.wait(timeout)
            return self._seq, self._jpeg, self.status


class _Handler(BaseHTTPRequestHandler):
    server_version = "edgekit"
    sys_version = ""
    timeout = 10  # a viewer that stops reading for this long is dropped
    hub: FrameHub
    viewers: threading.BoundedSemaphore
    page: Path = PAGE
    actions: Actions = {}

    def log_message(self, format, *args) -> None:  # noqa: A002 - no request log on stderr
        pass

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(200, self.page.read_bytes(), "text/html; charset=utf-8")
        elif path == "/frames.js":
            self._send(200, FRAMES_JS.read_bytes(), "text/javascript; charset=utf-8")
        elif path == "/status.json":
            self._send(200, json.dumps(self.hub.status).encode(), "application/json")
        elif path == "/stream.mjpg":
            self._stream()
        elif path == "/frame.jpg":
            self._frame()
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    do_HEAD = do_GET

    def _answer(self, code: int, body: dict) -> None:
        self.close_connection = True
        self._send(code, json.dumps(body).encode(), "application/json")

    def do_POST(self) -> None:
        """One of ``actions``: a JSON object in, a JSON object out; every refusal a 4xx with one line."""
        # The body is read before any answer: a server that answers and closes with the request's bytes
        # still unread resets the connection, and the client sees a reset instead of the answer.
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = None
        if not self.actions:  # a view without actions (edgekit webcam) takes no POST, as it takes no PUT
            if length and length > 0:
                self.rfile.read(min(length, MAX_DRAIN))
            return self._answer(501, {"error": "this view takes GET and HEAD only"})
        if length is None:
            return self._answer(411, {"error": "Content-Length required"})
        if length < 0:
            return self._answer(400, {"error": "a negative Content-Length"})
        raw = self.rfile.read(min(length, MAX_DRAIN))
        action = self.actions.get(urlsplit(self.path).path)
        if action is None:
            return self._answer(404, {"error": "not found"})
        if not _own_host(self.headers.get("Host", "")):
            return self._answer(403, {"error": "address this server by its IP address, localhost or its own host name"})
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            return self._answer(403, {"error": f"a page from {origin} may not post here; use this server's own page"})
        if self.headers.get_content_type() != "application/json":
            return self._answer(415, {"error": "send a JSON object (Content-Type: application/json)"})
        if length > MAX_BODY:
            return self._answer(413, {"error": f"body over {MAX_BODY} bytes"})
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            return self._answer(400, {"error": "the body is not JSON"})
        if not isinstance(body, dict):
            return self._answer(400, {"error": "send a JSON object"})
        try:
            code, answer = action(body)
        except Exception as e:  # noqa: BLE001 - a failure is one line to the page, never a traceback
            code, answer = 500, {"error": (str(e) or type(e).__name__).strip().splitlines()[0][:300]}
        self._answer(code, answer)

    def _frame(self) -> None:
        """The first frame newer than ``?after=SEQ`` with its own status in the headers; 204 when none came."""
        after = parse_qs(urlsplit(self.path).query).get("after", ["-1"])[0]
        try:
            seen = int(after)
        except ValueError:
            return self._send(400, b"after must be an integer\n", "text/plain; charset=utf-8")
        if self.command == "HEAD":
            return self._send(200, b"", "image/jpeg")
        if not self.viewers.acquire(blocking=False):
            return self._send(503, b"too many viewers\n", "text/plain; charset=utf-8")
        try:
            seq, jpeg, status = self.hub.wait_with_status(seen, FRAME_WAIT)
        finally:
            self.viewers.release()
        new = jpeg is not None and seq > seen
        self.send_response(200 if new else 204)
        self.send_header("X-Edgekit-Seq", str(seq))
        self.send_header("X-Edgekit-Status", json.dumps(status))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if new:
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
        self.end_headers()
        if new:
            self.wfile.write(jpeg)

    def _stream(self) -> None:
        if self.command == "HEAD" or not self.viewers.acquire(blocking=False):
            if self.command == "HEAD":
                return self._send(200, b"", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            return self._send(503, b"too many viewers\n", "text/plain; charset=utf-8")
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            seen = -1
            while not self.hub.closed:
                seq, jpeg = self.hub.wait(seen)
                if jpeg is None or seq == seen:
                    continue
                seen = seq
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n"
                )
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            pass  # the viewer went away
        finally:
            self.close_connection = True
            self.viewers.release()


def _own_host(host_header: str) -> bool:
    """Whether a request's Host names this machine: an IP address, localhost, or a name whose first part is
    its host name (NAME, NAME.local, NAME.lan as a home router calls it).
    A name that is none of these is a DNS name someone else controls pointing at us (DNS rebinding)."""
    import ipaddress
    import socket

    host = urlsplit(f"//{host_header}").hostname or ""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    me = socket.gethostname().lower().split(".")[0]
    return host == "localhost" or host.split(".")[0] == me  # raspberrypi, raspberrypi.local, raspberrypi.lan


def parse_address(text: str) -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); the host defaults to 127.0.0.1."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise OptionsError(f"--serve {text!r}: expected HOST:PORT or PORT with a port from 0 to 65535, e.g. 127.0.0.1:8080")
    return host, int(port)


class StreamServer:
    """The web view, running in a background thread until ``stop()``. Use as a context manager. ``page`` is
    the HTML served at ``/``; ``actions`` the POST paths (none for ``edgekit webcam``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, hub: FrameHub | None = None,
                 page: Path = PAGE, actions: Actions | None = None):
        self.hub = hub or FrameHub()
        handler = type("Handler", (_Handler,), {"hub": self.hub, "viewers": threading.BoundedSemaphore(MAX_VIEWERS),
                                                "page": page, "actions": dict(actions or {})})
        cls = ThreadingHTTPServer
        if ":" in host:
            import socket

            cls = type("V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        try:
            self.httpd = cls((host, port), handler)
        except OSError as e:
            raise CameraError(f"cannot serve on {host}:{port}: {e.strerror or e}; pick another --serve port") from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> "StreamServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.hub.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "StreamServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
