"""The web view for a Pi with no screen: an MJPEG stream of the annotated frames, a small page with the live
digit and FPS, and a JSON status. Standard library only (``http.server.ThreadingHTTPServer``).

It serves exactly three paths — ``/`` (the page), ``/stream.mjpg`` and ``/status.json`` — and 404 for
anything else, so nothing on the device's disk is reachable through it. It binds to 127.0.0.1 unless the
caller names another host. Each viewer gets its own thread; a viewer that goes away (closed tab, dropped
Wi-Fi) only ends its own thread. At most ``MAX_VIEWERS`` streams run at once, so a forgotten tab or a
flood of connections cannot starve the camera loop.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from edgekit.runtime.errors import CameraError, OptionsError

BOUNDARY = "edgekitframe"
MAX_VIEWERS = 8
PAGE = Path(__file__).with_name("page.html")


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
        with self._cond:
            if self._seq == seen and not self.closed:
                self._cond.wait(timeout)
            return self._seq, self._jpeg


class _Handler(BaseHTTPRequestHandler):
    server_version = "edgekit"
    sys_version = ""
    timeout = 10  # a viewer that stops reading for this long is dropped
    hub: FrameHub
    viewers: threading.BoundedSemaphore

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
            self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif path == "/status.json":
            self._send(200, json.dumps(self.hub.status).encode(), "application/json")
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    do_HEAD = do_GET

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
    """The web view, running in a background thread until ``stop()``. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, hub: FrameHub | None = None):
        self.hub = hub or FrameHub()
        handler = type("Handler", (_Handler,), {"hub": self.hub, "viewers": threading.BoundedSemaphore(MAX_VIEWERS)})
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
