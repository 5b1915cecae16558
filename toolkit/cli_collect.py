"""`edgekit collect`: the user's own digits from a camera, a video or image files, as a folder dataset.

The capture itself is ``edgekit.runtime.collect`` (numpy + cv2: it runs on a Pi without TensorFlow); this
module reads the options, checks them before any source is opened, and reports.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from edgekit.runtime.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_TERMINATED, EdgekitError, OptionsError
from edgekit.runtime.images import IMAGE_SUFFIXES
from edgekit.runtime.sources import SourceKind, source_kind
from edgekit.toolkit.cli_app import command, fail
from edgekit.toolkit.cli_options import (
    ALLOW_HOST, ROI, TOKEN, announce_token, check_max_pixels, has_display, max_pixels_option, parse_roi_option,
    quiet_opencv, serve_address, start_server,
)


def _is_image_source(spec: str) -> bool:
    p = Path(spec)
    return p.is_dir() or (p.suffix.lower() in IMAGE_SUFFIXES and source_kind(spec) is SourceKind.FILE)


def _image_files(spec: str) -> list[Path]:
    p = Path(spec)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    return [p]


def _is_camera(spec: str) -> bool:
    return source_kind(spec).live


@command("collect")
def collect(
    sources: Annotated[List[str], typer.Argument(metavar="SOURCE", help="Camera index (0), /dev/videoN, picamera2, a video file, image files or folders of images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The digit folder: crops go to OUT/<digit>/<source>-<n>.png, the summary to OUT/collect.json.")],
    label: Annotated[Optional[str], typer.Option("--label", help="Save every crop as this digit (headless: a video or images of one digit), or as this label of an image --model.")] = None,
    labels_from_names: Annotated[bool, typer.Option("--labels-from-names", help="The label is the last _-separated part of each file's name (0042_7.jpg -> 7; 0042_tulip.jpg -> tulip for an image --model).")] = False,
    model: Annotated[Optional[Path], typer.Option("--model", "-m", metavar="MODEL", help="An exported image model (docs/your-model.md): save the whole frame or ROI as OUT/<label>/<source>-<n>.png under its labels, for export/validate --data. A digit model collects digit crops, as without it.")] = None,
    max_crops: Annotated[Optional[int], typer.Option("--max", help="Stop after saving this many crops.")] = None,
    roi: Annotated[Optional[str], ROI] = None,
    max_pixels: Annotated[Optional[int], max_pixels_option("Largest image or frame to accept, in pixels")] = None,
    serve: Annotated[Optional[str], typer.Option("--serve", metavar="HOST:PORT", help="Label on a web page instead of a window (a Pi without a screen): the crop, and buttons 0-9 that save it. Host 127.0.0.1 unless given.")] = None,
    allow_host: Annotated[Optional[List[str]], ALLOW_HOST] = None,
    token: Annotated[Optional[bool], TOKEN] = None,
) -> None:
    """Collect your own digits: each frame goes through the runtime's preprocessing and the 28x28 crop the model
    would see is saved under its digit. Without --label or --labels-from-names a window shows the camera: keys
    0-9 save the crop as that digit, space skips, q quits; with --serve HOST:PORT a web page does the same
    (Ctrl-C stops). Exit 0, or 2 when a source could not be read (the others are still collected); Ctrl-C 130 and
    SIGTERM 143, each after writing collect.json and the summary."""
    from edgekit.runtime import collect as rc

    contract = _image_contract(model)  # None: digit crops (no --model, or a digit model)
    if contract is None:
        digit = rc.parse_label(label) if label is not None else None
        label_of = rc.label_from_name
    else:
        digit = rc.parse_image_label(label, contract.labels) if label is not None else None
        label_of = functools.partial(rc.image_label_from_name, labels=contract.labels)
    if digit is not None and labels_from_names:
        raise OptionsError("give --label D or --labels-from-names, not both")
    if max_crops is not None and max_crops < 1:
        raise OptionsError(f"--max must be at least 1, got {max_crops}")
    check_max_pixels(max_pixels)
    box = parse_roi_option(roi)
    kinds = [(s, _is_image_source(s)) for s in sources]
    interactive = digit is None and not labels_from_names
    address = serve_address(serve, allow_host, token)
    if address is not None and not interactive:
        raise OptionsError("--serve labels each crop on the page; --label and --labels-from-names label them all: give one")
    if interactive and contract is not None:
        raise OptionsError(f"{model}: an image model's frames are saved with --label NAME or --labels-from-names "
                           "(the window's keys and the --serve page label digits)")
    if interactive:
        images = [s for s, is_image in kinds if is_image]
        if images:
            raise OptionsError(f"{images[0]}: images need --label D or --labels-from-names (keys and the page label only a camera or video)")
        if address is None and not has_display():
            raise OptionsError("no display for the labelling window; use --serve 127.0.0.1:8080 to label on a web page, "
                               "--label D (every crop is that digit), or run where a window can open")
    if labels_from_names:
        cameras = [s for s, _ in kinds if _is_camera(s)]
        if cameras:
            raise OptionsError(f"{cameras[0]}: --labels-from-names takes labels from file names; a camera has none (use --label D or the window)")

    from edgekit.runtime.camera import open_source

    quiet_opencv()
    store = rc.DigitStore(out, roi=box, max_crops=max_crops) if contract is None else \
        rc.ImageStore(out, contract, roi=box, max_crops=max_crops)
    worst = EXIT_OK

    def report(path, line: str) -> None:
        nonlocal worst
        worst = max(worst, 2)
        typer.echo(f"edgekit: error: {path}: {line}", err=True)

    window = False
    server = desk = None
    if address is not None:
        from edgekit.runtime.serve import StreamServer

        desk = rc.LabelDesk(store)
        server = start_server(StreamServer, address, allow_host, token, page=rc.PAGE, actions={"/label": desk.label})
        typer.echo(f"edgekit: serving the collect page on {server.url} (Ctrl-C stops)", err=True)
        announce_token(server)
    stopped: KeyboardInterrupt | None = None
    previous = _end_on_sigterm()
    try:
        for spec, is_image in kinds:
            if store.full:
                break
            if is_image:
                files = _image_files(spec)
                if not files:
                    report(spec, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
                    continue
                rc.collect_images(files, store, label=digit, label_of=label_of if labels_from_names else None,
                                  on_error=report, max_pixels=max_pixels)
                continue
            try:
                this = label_of(spec) if labels_from_names else digit
                source = open_source(spec, max_pixels)
            except EdgekitError as e:  # a file is bad input (2); a camera that cannot open keeps its own code (3)
                worst = max(worst, e.exit_code if _is_camera(spec) else EXIT_BAD_INPUT)
                typer.echo(f"edgekit: error: {e}" if spec in str(e) else f"edgekit: error: {spec}: {e}", err=True)
                continue
            choose = None
            if this is None and server is None:
                os.environ.setdefault("QT_LOGGING_RULES", "default.warning=false")
                window = True
                choose = rc.key_chooser(rc.window_keys(), live=source.live)
            try:
                if server is not None:
                    rc.collect_served(source, store, desk, server.hub)
                else:
                    rc.collect_frames(source, store, label=this, choose=choose)
            except EdgekitError as e:  # a camera that stopped delivering: what it gave is kept
                worst = max(worst, e.exit_code)
                typer.echo(f"edgekit: error: {e}", err=True)
                continue
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (_Terminated): stop, then end as below
        stopped = e
    finally:
        hold = _hold_signals()  # a second Ctrl-C or SIGTERM waits: collect.json is written whatever comes
        try:
            if server is not None:
                desk.close()  # no label is saved after this: the summary below is the last word
                server.stop()
            if window:
                import cv2

                cv2.destroyAllWindows()
            summary = store.write_summary()
        finally:
            _restore_signals(hold, previous)
    no_digit = sum(t.no_digit for t in store.tallies)
    unreadable = sum(t.unreadable for t in store.tallies)
    added = ", ".join(f"{d}: {n}" for d, n in store.added.items() if n) or "none"
    what = "crop(s)" if contract is None else "image(s)"
    skipped = f"; {no_digit} frame(s) with no digit skipped" if contract is None else ""
    typer.echo(f"saved {store.saved} {what} to {out} ({added}){skipped}"
               + (f"; {unreadable} file(s) unreadable" if unreadable else ""))
    typer.echo(f"{out} now holds {summary['total']} {what}: "
               + ", ".join(f"{d}: {n}" for d, n in summary["counts"].items()) + f" (see {out / rc.SUMMARY_FILE})")
    if isinstance(stopped, _Terminated):
        raise fail("terminated (SIGTERM); what was saved is kept", EXIT_TERMINATED)
    if stopped is not None:
        raise stopped  # the command's "interrupted", exit 130
    raise typer.Exit(worst)


def _image_contract(model: Path | None):
    """An image model's input contract (its labels name the folders), or None for no model or a digit model."""
    if model is None:
        return None
    from edgekit.runtime.classifier import Classifier

    contract = Classifier(model).contract
    return contract if contract.crop == "image" else None


class _Terminated(KeyboardInterrupt):
    """SIGTERM (systemd's stop, `kill`), raised in the main thread to end collecting as Ctrl-C does."""


def _end_on_sigterm():
    """SIGTERM raises _Terminated from now on (once); the previous handler, or None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def terminated(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated

    return signal.signal(signal.SIGTERM, terminated)


def _hold_signals():
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _restore_signals(hold, previous) -> None:
    if hold is None:
        return
    signal.signal(signal.SIGINT, hold[0])
    signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
