"""What several commands read the same way: ``--roi``, ``--serve``'s companions, the model argument's default,
whether a window can open, and OpenCV's own logging turned down.

Imported by the command modules (``cli_runtime``, ``cli_collect``, ``cli_benchmark``); imports no command module.
The runtime is imported inside the functions, so `edgekit --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from edgekit.runtime.errors import OptionsError


def parse_roi_option(text: Optional[str]):
    """``--roi x,y,w,h`` as a box, or None; a malformed one is an OptionsError (one line, exit 2)."""
    if text is None:
        return None
    from edgekit.runtime.preprocess import parse_roi

    try:
        return parse_roi(text)
    except ValueError as e:
        raise OptionsError(str(e)) from None


def quiet_opencv() -> None:
    """OpenCV's and FFmpeg's own messages (a truncated PNG, a camera probe, "Stream ends prematurely") would be
    extra lines beside edgekit's one-line errors."""
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used


def has_display() -> bool:
    """Whether a window can open: always off Linux; on Linux, an X11 or Wayland display."""
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def model_or_bundled(model: Optional[Path]) -> Path:
    """``model`` as given, or the model bundled with edgekit, announced in one line on stderr."""
    if model is not None:
        return model
    from edgekit.runtime.bundled_model import bundled_model_path, validation
    from edgekit.runtime.metadata import read_metadata

    path = bundled_model_path()
    meta = read_metadata(path) or {}
    training = meta.get("training") or {}
    what = ", ".join(filter(None, [
        f"{training['recipe']} recipe" if training.get("recipe") else None,
        f"{meta.get('quantization', '?')} {meta.get('format', 'tflite')}",
    ]))
    measured = validation()
    accuracy = f", {measured['accuracy']:.2f} % on the {measured['images']:,} MNIST test images" if measured else ""
    typer.echo(f"edgekit: no model given, using the bundled one ({what}{accuracy}): {path}", err=True)
    return path


# Options several commands take, each spelled once.
ROI = typer.Option("--roi", help="Only look inside x,y,w,h (pixels).")
THREADS = typer.Option("--threads", help="Inference threads (default: the backend's).")
EXPORTED_MODEL = typer.Option("--model", "-m", help="An exported model: .tflite or .onnx (default: the bundled one).")


def max_pixels_option(what: str):
    """``--max-pixels``: ``what`` the limit does in this command, then its default."""
    from edgekit.runtime.images import DEFAULT_MAX_PIXELS, ENV_MAX_PIXELS

    return typer.Option("--max-pixels", help=f"{what} (default: ${ENV_MAX_PIXELS}, else {DEFAULT_MAX_PIXELS:,}).")


def check_max_pixels(max_pixels: Optional[int]) -> None:
    """``--max-pixels``, when given, is a positive number of pixels (OptionsError otherwise)."""
    if max_pixels is not None and max_pixels < 1:
        raise OptionsError(f"--max-pixels must be at least 1, got {max_pixels}")


# --serve's companions, shared by `webcam` and `collect` (docs/runtime.md, "Who may use the page").
ALLOW_HOST = typer.Option(
    "--allow-host", metavar="NAME[:PORT]",
    help="With --serve: another name the page may be opened by (repeatable): a DNS name of this machine, or "
         "localhost:9000 for an SSH tunnel on another port. Its own addresses, localhost, NAME and NAME.local always may.")
TOKEN = typer.Option(
    "--token/--no-token",
    help="With --serve: ask every request for an access token, printed once in the URL at start (the first page "
         "load keeps it in a cookie). Default: on when HOST is not loopback ($EDGEKIT_SERVE_TOKEN fixes its value).",
    show_default=False)


def serve_address(serve: Optional[str], allow_host: Optional[List[str]], token: Optional[bool]):
    """``--serve``'s (host, port), or None; its companions refused without it."""
    if serve is None:
        if allow_host or token is not None:
            raise OptionsError(f"{'--allow-host' if allow_host else '--token/--no-token'} goes with --serve HOST:PORT")
        return None
    from edgekit.runtime.serve import HostPolicy, parse_address

    address = parse_address(serve)
    HostPolicy.for_server(address[0], address[1], allow_host or ())  # a bad --allow-host: one line, before anything opens
    return address


def start_server(server_class, address, allow_host: Optional[List[str]], token: Optional[bool], **kwargs):
    """The web view on ``address`` with the Host policy's extra names and, when wanted, an access token."""
    from edgekit.runtime.serve import new_token, wants_token

    value = (os.environ.get("EDGEKIT_SERVE_TOKEN") or new_token()) if wants_token(address[0], token) else None
    return server_class(*address, allow_hosts=allow_host or (), token=value, **kwargs).start()


def announce_token(server) -> None:
    if server.httpd.token:
        typer.echo("edgekit: open that URL as printed: it holds the page's access token (--no-token: none)", err=True)
