"""Load on the web view (issue 26), on loopback only: does the page still answer while slow clients hold on?

    python benchmarks/serve_load.py [--readers 8] [--frame-readers 8] [--slowloris 24] [--seconds 20]
                                    [--server PATH/serve.py] [--tag NAME]

A ``StreamServer`` on 127.0.0.1 gets a 640x480 JPEG published at 30 fps, and for ``--seconds``:
- ``--readers`` viewers of ``/stream.mjpg`` and ``--frame-readers`` of ``/frame.jpg`` that read 1 KB a second
  (a 4 KB receive buffer, so the server's writes block);
- ``--slowloris`` sockets that send a request line, then one header line a second and never the blank line;
- the page: ``/frame.jpg?after=N`` in a loop as frames.js asks it, and ``/`` once a second, each timed from
  connect to the last byte of the answer.
Prints one table (the page's latency: median, 95th percentile, worst; failures; what happened to the slow
clients) and writes benchmarks/results/serve_load.json. ``--server`` loads ``StreamServer`` from another copy of
serve.py (e.g. ``git show <rev>:runtime/serve.py > /tmp/old_serve.py``) to measure the code before a change;
that server gets no ``Limits``.

Everything is bounded: one run lasts ``--seconds`` plus at most a few seconds to close; every socket has a
timeout; every thread is a daemon.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import socket
import statistics
import threading
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
GOAL_MS = 1000.0  # the page answers within 1 s


def _jpeg() -> bytes:
    """A camera-like 640x480 JPEG (a gradient with noise: ~40-60 KB at quality 80, like the annotated frames)."""
    rng = np.random.default_rng(0)
    img = np.tile(np.linspace(40, 220, 640, dtype=np.float32), (480, 1))
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def _timed_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, float, dict]:
    """(status, seconds from connect to the answer's last byte, headers); status 0 when refused or timed out."""
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return 0, time.perf_counter() - t0, {}
    took = time.perf_counter() - t0
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    return (int(head[0].split()[1]) if head and head[0] else 0), took, headers


def _slow_reader(port: int, path: str, stop: threading.Event, out: dict) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(2.0)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        while not stop.is_set():
            try:
                chunk = s.recv(1024)
            except TimeoutError:
                chunk = b"."
            if not chunk:
                out["ended"] += 1
                return
            time.sleep(1.0)
    except OSError:
        out["ended"] += 1
    finally:
        s.close()


def _slowloris(port: int, stop: threading.Event, out: dict, t_start: float) -> None:
    s = socket.socket()
    s.settimeout(2.0)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        while not stop.is_set():
            time.sleep(1.0)
            s.sendall(b"X-Slow: 1\r\n")
            s.setblocking(False)
            try:
                answer = s.recv(65536)
            except BlockingIOError:
                answer = None
            s.setblocking(True)
            s.settimeout(2.0)
            if answer is not None:  # an answer (408) or the server closed: dropped
                out["dropped"] += 1
                out["dropped_after_s"].append(time.monotonic() - t_start)
                return
    except OSError:
        out["dropped"] += 1
        out["dropped_after_s"].append(time.monotonic() - t_start)
    finally:
        s.close()


def run_load(readers: int = 8, frame_readers: int = 8, slowloris: int = 24, seconds: float = 20.0,
             limits=None, server_class=None) -> dict:
    """One bounded run; the figures as a dict (see the module's docstring)."""
    if server_class is None:
        from edgekit.runtime.serve import StreamServer as server_class
    kwargs = {} if limits is None else {"limits": limits}
    server = server_class("127.0.0.1", 0, **kwargs).start()
    port = server.address[1]
    jpeg = _jpeg()
    stop = threading.Event()

    def publish():
        k = 0
        while not stop.is_set():
            server.hub.publish(jpeg, {"frame": k, "digit": k % 10, "confidence": 0.9, "box": None, "fps": 30.0, "latency_ms": 1.0})
            k += 1
            time.sleep(1 / 30)

    threads = [threading.Thread(target=publish, daemon=True)]
    readers_out = {"ended": 0}
    loris_out = {"dropped": 0, "dropped_after_s": []}
    t_start = time.monotonic()
    streams = [threading.Thread(target=_slow_reader, args=(port, "/stream.mjpg", stop, readers_out), daemon=True)
               for _ in range(readers)]
    for t in [*threads, *streams]:
        t.start()
    time.sleep(0.5)  # the stream viewers first: they took the slots the page needed before issue 26
    threads = [threading.Thread(target=_slow_reader, args=(port, "/frame.jpg?after=-1", stop, readers_out), daemon=True)
                for _ in range(frame_readers)]
    threads += [threading.Thread(target=_slowloris, args=(port, stop, loris_out, t_start), daemon=True)
                for _ in range(slowloris)]
    for t in threads:
        t.start()
    threads += streams
    time.sleep(1.0)  # every slow client connected and holding on

    frame_ms, page_ms, codes, slowest = [], [], {}, []
    seen, next_page = -1, time.monotonic()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status, took, headers = _timed_get(port, f"/frame.jpg?after={seen}")
        codes[status] = codes.get(status, 0) + 1
        frame_ms.append(took * 1000)
        slowest.append((round(took * 1000, 1), round(time.monotonic() - t_start, 1), "/frame.jpg"))
        if status == 200:
            seen = int(headers.get("x-edgekit-seq", seen))
        if time.monotonic() >= next_page:
            status, took, _ = _timed_get(port, "/")
            codes[f"/ {status}"] = codes.get(f"/ {status}", 0) + 1
            page_ms.append(took * 1000)
            slowest.append((round(took * 1000, 1), round(time.monotonic() - t_start, 1), "/"))
            next_page += 1.0
    open_at_end = getattr(server.httpd, "open_connections", None)
    drops = getattr(getattr(server.httpd, "drops", None), "total", None)
    stop.set()
    server.stop()
    for t in threads:
        t.join(timeout=5)
    every = frame_ms + page_ms
    failures = sum(n for c, n in codes.items() if c not in (200, 204, "/ 200"))
    return {
        "readers": readers, "frame_readers": frame_readers, "slowloris": slowloris, "seconds": seconds,
        "limits": None if limits is None else vars(limits),
        "jpeg_bytes": len(jpeg),
        "page_requests": len(every),
        "page_failures": failures,
        "codes": {str(k): v for k, v in codes.items()},
        "frame_p50_ms": round(statistics.median(frame_ms), 1) if frame_ms else None,
        "frame_p95_ms": round(float(np.percentile(frame_ms, 95)), 1) if frame_ms else None,
        "page_p50_ms": round(statistics.median(page_ms), 1) if page_ms else None,
        "page_max_ms": round(max(every), 1) if every else None,
        "slowest_answers": [{"ms": ms, "at_s": at, "path": path} for ms, at, path in sorted(slowest, reverse=True)[:5]],
        "slowloris_dropped": loris_out["dropped"],
        "slowloris_dropped_after_s": round(max(loris_out["dropped_after_s"]), 1) if loris_out["dropped_after_s"] else None,
        "readers_ended": readers_out["ended"],
        "server_open_connections_at_end": open_at_end,
        "server_drops": drops,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--frame-readers", type=int, default=8)
    ap.add_argument("--slowloris", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--server", type=Path, help="another serve.py to load StreamServer from (no Limits)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "serve_load.json")
    ap.add_argument("--tag", help="the run's key in the JSON (default: current, or old with --server)")
    args = ap.parse_args()
    server_class, label = None, "this tree"
    if args.server:
        spec = importlib.util.spec_from_file_location("other_serve", args.server)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        server_class, label = module.StreamServer, str(args.server)
    r = run_load(args.readers, args.frame_readers, args.slowloris, args.seconds, server_class=server_class)
    r["server"] = label
    r["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    r["goal_ms"] = GOAL_MS
    r["meets_goal"] = r["page_failures"] == 0 and r["page_max_ms"] is not None and r["page_max_ms"] < GOAL_MS

    rows = [
        ("server", label),
        ("load", f"{r['readers']} stream + {r['frame_readers']} frame readers at 1 KB/s, {r['slowloris']} slowloris, {r['seconds']:g} s"),
        ("page requests", f"{r['page_requests']} ({r['page_failures']} failed: {r['codes']})"),
        ("/frame.jpg", f"median {r['frame_p50_ms']} ms, 95th pct {r['frame_p95_ms']} ms"),
        ("/", f"median {r['page_p50_ms']} ms"),
        ("worst answer", f"{r['page_max_ms']} ms (goal < {GOAL_MS:g} ms): {'MET' if r['meets_goal'] else 'MISSED'}"),
        ("slowloris", f"{r['slowloris_dropped']} of {r['slowloris']} dropped, the last after {r['slowloris_dropped_after_s']} s"),
        ("slow readers", f"{r['readers_ended']} of {r['readers'] + r['frame_readers']} saw their connection end "
                         "(a dropped one first reads what the kernel had buffered, at 1 KB/s)"),
        ("server at end", f"{r['server_open_connections_at_end']} open connection(s); {r['server_drops']} dropped "
                          "in all (writes past the deadline, resets)"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs[args.tag or ("old" if args.server else "current")] = r
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
