"""The web view for a Pi with no screen: a small page with the annotated frames and the live digit and FPS,
an MJPEG stream and a JSON status. Standard library only (``http.server.ThreadingHTTPServer``).

The page says one thing at a time: it fetches ``/frame.jpg?after=N``, which waits for the first frame newer
than sequence number N and answers with that frame's JPEG and, in the same response, the status it was
published with (``X-Edgekit-Status``, JSON). The page decodes the picture, then swaps it in and writes the
header in one step, so the digit in the header is always the digit of the frame on screen (an MJPEG stream
beside a polled status showed one frame's picture under another frame's digit, the gap growing over Wi-Fi).
``/stream.mjpg`` (for VLC, ffplay, an ``<img>`` elsewhere) and ``/status.json`` (for scripts) stay.

It serves five GET paths — ``/`` (the page, also as ``/index.html``), ``/frames.js`` (its script), ``/frame.jpg``,
``/stream.mjpg`` and ``/status.json`` — and 404 for anything else, so nothing on the device's disk is reachable through it. A caller
may add POST paths (``edgekit collect --serve`` adds ``/label``, see ``Actions``): they take a small JSON object
and answer one. It binds to 127.0.0.1 unless the caller names another host.

Who may ask (every request, GET as POST, before anything else is looked at):
- **Host**: one of the exact names this server is reachable by, with its port (``HostPolicy``): the loopback
  names, the bind address, the machine's host name and ``NAME.local``, the address the connection arrived on
  (an address of one of this machine's interfaces, by construction), and what the caller adds
  (``--allow-host``). Anything else is 403: a page on a DNS name someone else controls, pointed at this
  machine (DNS rebinding), can neither watch the camera nor label.
- **Origin**, when the browser sends one: ``http://`` and an allowed name and port, else 403.
- **Token**, when the server has one (``edgekit`` gives one to a server bound beyond loopback): ``?token=`` in
  the URL or the cookie the first page load sets; else 401. "Anyone on the Wi-Fi" is then not "the user".

Slow or hostile clients hold nothing for long (``Limits``): the request line and headers must arrive within
``header_s`` in all and within ``max_header_bytes`` (431), a body within ``body_s`` (408), each write within
``write_s``; at most ``max_connections`` connections are open (when all are taken, the one that has been sending
its headers longest makes room), and streams and the page's ``/frame.jpg`` polls have separate slots, so stream
viewers never make the page "busy". Every refusal is a status and one JSON line
``{"error": "..."}``; a client that resets or stops reading ends only its own thread, and at most one line a
minute says so on stderr, never a traceback.

Why one module of ~700 lines: it is one security boundary (who may ask, what they may ask for, how long they may
hold a connection), and it reads better whole than spread over files a reviewer would have to hold side by side.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import parse_qs, urlsplit

from edgekit.runtime.errors import CameraError, OptionsError, first_line

BOUNDARY = "edgekitframe"
PAGE = Path(__file__).with_name("page.html")
FRAMES_JS = Path(__file__).with_name("frames.js")  # the pages' frame-by-frame fetching, shared
FRAME_WAIT = 2.0  # seconds /frame.jpg waits for a newer frame before answering 204 (no new frame)
MAX_BODY = 1024  # bytes: a POST body is a small JSON object
MAX_DRAIN = 64 * 1024  # bytes of a larger body read (and dropped) before refusing it
MAX_JSON_DEPTH = 8  # nesting of a POST body ({"frame": 3, "label": "7"} is 1)
LOG_EVERY = 60.0  # seconds between two lines about dropped connections
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("", "0.0.0.0", "::")

log = logging.getLogger(__name__)

# POST path -> handler(request JSON object) -> (HTTP status, response JSON object). A handler raises nothing
# for a bad request: it answers 4xx with {"error": "one line"}.
Actions = dict[str, Callable[[dict], tuple[int, dict]]]


@dataclass(frozen=True)
class Limits:
    """What one client may hold. The defaults serve a phone or laptop over Wi-Fi with a wide margin (a browser
    sends its headers in one packet, ~1 KB, and reads a 30-60 KB frame in well under a second)."""

    header_s: float = 10.0  # the request line and all headers, in all (not per line: slowloris)
    body_s: float = 10.0  # a POST body, in all; a shorter body than its Content-Length is then 408
    write_s: float = 10.0  # each write (a page, a frame, one part of a stream), in all
    max_header_bytes: int = 16 * 1024  # request line and headers together; over it 431
    max_connections: int = 64  # open at once (one thread each); see _Server.process_request
    max_streams: int = 8  # /stream.mjpg viewers at once
    max_frame_waits: int = 32  # /frame.jpg requests waiting for a frame at once (the pages' polls)

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


def _name(text: str) -> str:
    """A host name as compared: lower case; an IP address in its one canonical spelling (an IPv4-mapped IPv6
    address as the IPv4 one, no zone)."""
    name = text.strip().strip("[]").lower()
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return name
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def split_host(text: str, default_port: int = 80) -> tuple[str, int] | None:
    """``NAME``, ``NAME:PORT``, ``V4:PORT`` or ``[V6]:PORT`` (a Host header, an ``--allow-host``) -> (name, port);
    None for anything else (user info, a path, spaces, an empty name, a bad port)."""
    text = text.strip()
    if not text or any(c in text for c in "@/\\?# \t,"):
        return None
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return _name(parts.hostname), default_port if port is None else port


@dataclass(frozen=True)
class HostPolicy:
    """The exact (name, port) pairs a request's Host (and Origin) may name; see the module's docstring.
    Names are compared whole: ``raspberrypi.attacker.example`` is not ``raspberrypi``."""

    allowed: frozenset[tuple[str, int]]
    port: int

    @classmethod
    def for_server(cls, bind: str, port: int, extra: Iterable[str] = ()) -> "HostPolicy":
        """Loopback names, the bind address (unless a wildcard), the host name, its first label and
        ``FIRST.local``, each with ``port``; and ``extra`` (``NAME`` with ``port``, or ``NAME:PORT``).
        (The address each connection arrived on is allowed per request: see ``allows``.)"""
        host = socket.gethostname().lower()
        names = {*LOOPBACK_NAMES, host, host.split(".")[0], f"{host.split('.')[0]}.local"}
        if bind not in WILDCARDS:
            names.add(bind)
        allowed = {(_name(n), port) for n in names if n}
        for text in extra:
            pair = split_host(text, port)
            if pair is None:
                raise OptionsError(f"--allow-host {text!r}: expected a host name or address, optionally with :PORT "
                                   "(e.g. pi.example.org or localhost:9000)")
            allowed.add(pair)
        return cls(frozenset(allowed), port)

    def allows(self, host: str, local_address: str | None = None) -> bool:
        """Whether a Host header's value is allowed; ``local_address`` is the address the request arrived on."""
        pair = split_host(host)
        if pair is None:
            return False
        return pair in self.allowed or (local_address is not None and pair == (_name(local_address), self.port))

    def allows_origin(self, origin: str, local_address: str | None = None) -> bool:
        """An Origin header: ``http://`` (this server speaks no TLS), an allowed name and the port, no path."""
        try:
            parts = urlsplit(origin.strip())
        except ValueError:
            return False
        if parts.scheme != "http" or parts.path not in ("", "/") or parts.query or parts.username is not None:
            return False
        return self.allows(parts.netloc, local_address)


def wants_token(bind: str, choice: bool | None) -> bool:
    """Whether a server asks for an access token: ``choice`` when given (``--token``/``--no-token``), else
    yes exactly when it is bound beyond loopback (reachable from the network)."""
    if choice is not None:
        return choice
    name = _name(bind)
    if name == "localhost":
        return False
    try:
        return not ipaddress.ip_address(name).is_loopback
    except ValueError:
        return True  # a name: whatever it resolves to may be reachable from elsewhere


def new_token() -> str:
    return secrets.token_urlsafe(16)


class _DropLog:
    """Connections ended early (reset, broken pipe, too slow) and unexpected errors: counted, and at most one
    line every ``LOG_EVERY`` seconds on the ``edgekit.runtime.serve`` logger, never a traceback."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count = 0
        self._last: float | None = None
        self.total = 0

    def note(self, what: str) -> None:
        with self._lock:
            self._count += 1
            self.total += 1
            now = time.monotonic()
            if self._last is not None and now - self._last < LOG_EVERY:
                return
            count, self._count, self._last = self._count, 0, now
        log.warning("edgekit: web view: %d connection(s) ended early in the last %.0f s (latest: %s)", count, LOG_EVERY, what)


class _Refused(Exception):
    """A request answered with ``code`` and ``{"error": message}`` before it reached a path."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class _Reader:
    """The request's bytes from the socket, against a deadline for the whole of a phase (the request line and
    headers; then the body) rather than per read, and a byte budget for the headers."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buf = bytearray()
        self._deadline = time.monotonic()
        self._budget: int | None = None
        self.closed = False

    def phase(self, seconds: float, late: str, budget: int | None = None) -> None:
        """From now on: everything read within ``seconds`` (else 408 ``late``), at most ``budget`` bytes of lines."""
        self._deadline, self._late, self._budget = time.monotonic() + seconds, late, budget

    def _fill(self) -> bool:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _Refused(408, self._late)
        self._sock.settimeout(left)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise _Refused(408, self._late) from None
        self._buf += chunk
        return bool(chunk)

    def readline(self, limit: int = -1) -> bytes:
        while (i := self._buf.find(b"\n")) < 0 and (limit < 0 or len(self._buf) < limit) and self._fill():
            pass
        n = i + 1 if i >= 0 else len(self._buf)
        n = min(n, limit) if limit >= 0 else n
        line = bytes(self._buf[:n])
        del self._buf[:n]
        if self._budget is not None:
            self._budget -= len(line)
            if self._budget < 0:
                raise _Refused(431, "request headers over the limit; send less")
        return line

    def read(self, size: int) -> bytes:
        while len(self._buf) < size and self._fill():
            pass
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def close(self) -> None:
        self.closed = True


def _json_depth(text: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text (outside its strings), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text.decode("utf-8", "replace"):
        if in_string:
            escaped, in_string = (False, in_string) if escaped else (c == "\\", c != '"')
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


class _Handler(BaseHTTPRequestHandler):
    server_version = "edgekit"
    sys_version = ""
    hub: FrameHub
    page: Path = PAGE
    actions: Actions = {}
    server: "_Server"

    def log_message(self, format, *args) -> None:  # noqa: A002 - no request log on stderr
        pass

    # -- one request per connection, every failure one JSON line --------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.rfile = _Reader(self.connection)

    def handle(self) -> None:
        self.close_connection = True
        self.request_version, self.command, self.requestline, self.path = "HTTP/1.0", None, "", "/"
        limits = self.server.limits
        try:
            self.rfile.phase(limits.header_s, f"request line and headers not received within {limits.header_s:g} s; "
                                              "send them at once", limits.max_header_bytes)
            self._request()
        except _Refused as r:
            try:
                self._answer(r.code, {"error": str(r)})
                self._linger()
            except (OSError, ValueError):
                pass
        except (ConnectionError, TimeoutError) as e:  # the client went away, or stopped reading for write_s
            self.server.drops.note("a write timed out" if isinstance(e, TimeoutError) else type(e).__name__)
        except Exception as e:  # noqa: BLE001 - a bug here costs one connection and one line, never a traceback
            self.server.drops.note(f"internal error: {type(e).__name__}: {(str(e) or '').splitlines()[:1]}")
            try:
                self._answer(500, {"error": f"internal error: {type(e).__name__}"})
            except (OSError, ValueError):
                pass

    def _linger(self) -> None:
        """After a refusal: stop sending and read (and drop) what the client is still sending, briefly, so that
        closing does not reset the connection before the client has read the answer."""
        self.connection.shutdown(socket.SHUT_WR)
        end = time.monotonic() + 1.0
        for _ in range(64):  # at most 4 MB and 1 s
            left = end - time.monotonic()
            if left <= 0:
                break
            self.connection.settimeout(left)
            if not self.connection.recv(65536):
                break

    def _request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            return
        if len(self.raw_requestline) > 65536:
            raise _Refused(414, "request line over 64 KB")
        if not self.parse_request():  # has answered (send_error below)
            return
        self.server.headers_read(self.request)
        self._body = self._read_body()
        self._admit()
        method = getattr(self, f"do_{self.command}", None)
        if method is None:
            raise _Refused(501, "this view takes GET and HEAD only" if not self.actions else "this view takes GET, HEAD and POST only")
        method()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a bad request line, too many headers, a line over 64 KB): one JSON line."""
        if code == 431:
            message = f"request headers over the limit ({message or 'too many'}); send less"
        self._answer(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def _read_body(self) -> bytes | None:
        """Up to MAX_DRAIN bytes of the body its Content-Length announces (None without one), read before any
        answer: a server that answers and closes with the request's bytes unread resets the connection."""
        text = self.headers.get("Content-Length")
        if text is None:
            return None
        try:
            length = int(text)
        except ValueError:
            raise _Refused(400, "Content-Length is not a number") from None
        if length < 0:
            raise _Refused(400, "a negative Content-Length")
        late = f"body shorter than its Content-Length ({length} bytes) after {self.server.limits.body_s:g} s"
        self.rfile.phase(self.server.limits.body_s, late)
        body = self.rfile.read(min(length, MAX_DRAIN))
        if len(body) < min(length, MAX_DRAIN):  # the client closed its side early
            raise _Refused(400, f"body shorter than its Content-Length ({length} bytes)")
        return body

    def _admit(self) -> None:
        """The Host/Origin policy, then the token: see the module's docstring."""
        server, local = self.server, self.connection.getsockname()[0]
        host = self.headers.get("Host")
        if host is None:
            raise _Refused(403, "no Host header; address this server by one of its names")
        if not server.policy.allows(host, local):
            raise _Refused(403, f"{host[:100]!r} is not a name of this server; open it by its address, localhost or "
                                "its host name, or add the name with --allow-host")
        origin = self.headers.get("Origin")
        if origin is not None and not server.policy.allows_origin(origin, local):
            raise _Refused(403, f"a page from {origin[:100]!r} may not use this server; open this server's own page")
        if server.token is None:
            return
        given = parse_qs(urlsplit(self.path).query).get("token", [None])[0]
        if given is None:
            try:
                morsel = SimpleCookie(self.headers.get("Cookie", "")).get(server.cookie)
            except CookieError:
                morsel = None
            given = morsel.value if morsel is not None else None
        if given is None or not hmac.compare_digest(given.encode(), server.token.encode()):
            raise _Refused(401, "this server asks for its access token: open the URL edgekit printed when it started "
                                "(it ends in ?token=...)")

    def _answer(self, code: int, body: dict) -> None:
        self.close_connection = True
        self._send(code, json.dumps(body).encode(), "application/json")

    def _send(self, code: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.connection.settimeout(self.server.limits.write_s)  # the whole answer, not each piece of it
        if self.request_version == "HTTP/0.9":  # a garbled request line: answer with a status all the same
            self.request_version = "HTTP/1.0"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- the paths ------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            if self.server.token is not None and "token" in parse_qs(url.query):  # the first load: a cookie
                cookie = f"{self.server.cookie}={self.server.token}; Path=/; HttpOnly; SameSite=Lax"
                return self._send(303, b"", "text/plain; charset=utf-8", {"Location": "/", "Set-Cookie": cookie})
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
            self._answer(404, {"error": "not found"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        """One of ``actions``: a JSON object in, a JSON object out; every refusal a 4xx with one line."""
        if not self.actions:  # a view without actions (edgekit webcam) takes no POST, as it takes no PUT
            return self._answer(501, {"error": "this view takes GET and HEAD only"})
        if self._body is None:
            return self._answer(411, {"error": "Content-Length required"})
        action = self.actions.get(urlsplit(self.path).path)
        if action is None:
            return self._answer(404, {"error": "not found"})
        if self.headers.get_content_type() != "application/json":
            return self._answer(415, {"error": "send a JSON object (Content-Type: application/json)"})
        if int(self.headers["Content-Length"]) > MAX_BODY:
            return self._answer(413, {"error": f"body over {MAX_BODY} bytes"})
        if _json_depth(self._body) > MAX_JSON_DEPTH:
            return self._answer(400, {"error": f"the body is nested deeper than {MAX_JSON_DEPTH} levels; send a flat JSON object"})
        try:
            body = json.loads(self._body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):
            return self._answer(400, {"error": "the body is not JSON"})
        if not isinstance(body, dict):
            return self._answer(400, {"error": "send a JSON object"})
        try:
            code, answer = action(body)
        except Exception as e:  # noqa: BLE001 - a failure is one line to the page, never a traceback
            code, answer = 500, {"error": first_line(e, 300)}
        self._answer(code, answer)

    def _frame(self) -> None:
        """The first frame newer than ``?after=SEQ`` with its own status in the headers; 204 when none came."""
        after = parse_qs(urlsplit(self.path).query).get("after", ["-1"])[0]
        try:
            seen = int(after)
        except ValueError:
            return self._answer(400, {"error": "after must be an integer"})
        if self.command == "HEAD":
            return self._send(200, b"", "image/jpeg")
        if not self.server.frame_waits.acquire(blocking=False):
            return self._answer(503, {"error": "too many frame requests at once; try again"})
        try:
            seq, jpeg, status = self.hub.wait_with_status(seen, FRAME_WAIT)
        finally:
            self.server.frame_waits.release()
        new = jpeg is not None and seq > seen
        headers = {"X-Edgekit-Seq": str(seq), "X-Edgekit-Status": json.dumps(status)}
        if new:
            self._send(200, jpeg, "image/jpeg", headers)
        else:
            self.connection.settimeout(self.server.limits.write_s)
            self.send_response(204)
            for k, v in {**headers, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}.items():
                self.send_header(k, v)
            self.end_headers()

    def _stream(self) -> None:
        if self.command == "HEAD":
            return self._send(200, b"", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        if not self.server.streams.acquire(blocking=False):
            return self._answer(503, {"error": f"too many viewers of the stream ({self.server.limits.max_streams}); "
                                               "the page itself still works"})
        try:
            self.connection.settimeout(self.server.limits.write_s)  # each write below: a viewer that stops reading is dropped
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
        finally:
            self.close_connection = True
            self.server.streams.release()


class _Server(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with a bound on open connections, the policy, the token and the slots."""

    daemon_threads = True
    policy: HostPolicy
    token: str | None = None
    cookie = "edgekit-token"

    def __init__(self, address, handler, limits: Limits):
        self.limits = limits
        self.drops = _DropLog()
        self.streams = threading.BoundedSemaphore(limits.max_streams)
        self.frame_waits = threading.BoundedSemaphore(limits.max_frame_waits)
        self._open = 0
        self._reading: dict[socket.socket, float] = {}  # connections still sending their headers -> since when
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        """A thread for the connection, within ``max_connections``. When they are all taken, the one that has
        been sending its headers longest is closed to make room (a slowloris socket, never a page being
        served); when none is, the new connection is answered 503 at once."""
        evict = None
        with self._open_lock:
            full = self._open >= self.limits.max_connections
            if full and self._reading:
                evict = min(self._reading, key=self._reading.get)
                del self._reading[evict]
                full = False
            if not full:
                self._open += 1
                self._reading[request] = time.monotonic()
        if evict is not None:
            self.drops.note("a connection still sending its headers, closed to make room")
            try:
                evict.shutdown(socket.SHUT_RDWR)  # its thread reads the end and finishes
            except OSError:
                pass
        if full:  # answered here, in the accepting thread, without waiting on the client
            self.drops.note("too many connections")
            body = json.dumps({"error": f"too many connections ({self.limits.max_connections}); try again"}).encode()
            try:
                request.settimeout(0)
                request.send(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._closed_one(request)
            raise

    def headers_read(self, request) -> None:
        with self._open_lock:
            self._reading.pop(request, None)

    def _closed_one(self, request) -> None:
        with self._open_lock:
            self._open -= 1
            self._reading.pop(request, None)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._closed_one(request)

    def handle_error(self, request, client_address) -> None:  # one line at most, never socketserver's traceback
        kind = sys.exc_info()[0]
        self.drops.note(kind.__name__ if kind is not None else "error")

    @property
    def open_connections(self) -> int:
        return self._open


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


def page_url(host: str, port: int, token: str | None = None) -> str:
    """The URL to open for a server bound to ``host``: that address, or this machine's ``NAME.local`` when bound
    to every interface (``0.0.0.0`` is no address to open from a laptop); ``?token=`` when it has a token."""
    if host in WILDCARDS:
        host = f"{socket.gethostname().lower().split('.')[0]}.local"
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"http://{netloc}/" + (f"?token={token}" if token else "")


class StreamServer:
    """The web view, running in a background thread until ``stop()``. Use as a context manager. ``page`` is
    the HTML served at ``/``; ``actions`` the POST paths (none for ``edgekit webcam``); ``allow_hosts`` names
    added to the Host policy (``NAME`` or ``NAME:PORT``); ``token`` the access token asked of every request
    (None: none); ``limits`` what one client may hold."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, hub: FrameHub | None = None,
                 page: Path = PAGE, actions: Actions | None = None, allow_hosts: Iterable[str] = (),
                 token: str | None = None, limits: Limits = Limits()):
        self.hub = hub or FrameHub()
        handler = type("Handler", (_Handler,), {"hub": self.hub, "page": page, "actions": dict(actions or {})})
        cls = _Server
        if ":" in host:
            cls = type("V6Server", (_Server,), {"address_family": socket.AF_INET6})
        try:
            self.httpd = cls((host, port), handler, limits)
        except OSError as e:
            raise CameraError(f"cannot serve on {host}:{port}: {e.strerror or e}; pick another --serve port") from None
        try:
            self.httpd.policy = HostPolicy.for_server(host, self.address[1], allow_hosts)
        except OptionsError:
            self.httpd.server_close()
            raise
        self.httpd.token = token
        self.httpd.cookie = f"edgekit-{self.address[1]}"  # cookies are not kept apart by port: the name is
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return host, port

    @property
    def url(self) -> str:
        return page_url(*self.address, self.httpd.token)

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
