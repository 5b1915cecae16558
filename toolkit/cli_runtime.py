"""`edgekit predict`, `edgekit webcam` and `edgekit info`; registered on the app (cli_app) when edgekit.toolkit.cli imports it.

Both run an exported model through ``edgekit.runtime`` (LiteRT or ONNX Runtime, never TensorFlow); the
runtime and OpenCV are imported inside the commands so `edgekit --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from edgekit.runtime.errors import EXIT_BAD_INPUT, EXIT_OK, EdgekitError, OptionsError, first_line
from edgekit.runtime.images import IMAGE_SUFFIXES
from edgekit.toolkit.cli_app import command
from edgekit.toolkit.cli_options import (
    ALLOW_HOST, EXPORTED_MODEL, ROI, THREADS, TOKEN, announce_token, check_max_pixels, has_display, max_pixels_option,
    model_or_bundled, parse_roi_option, quiet_opencv, serve_address, start_server,
)

def _images(paths: List[Path]) -> list[Path]:
    """Files as given; folders expanded to their image files (sorted, not recursive)."""
    out = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            out.extend(found or [p])  # an empty folder is reported as unreadable below
        else:
            out.append(p)
    return out


def _in_file_pixels(prediction, factor: int):
    """A prediction on an image decoded reduced by ``factor``, with its box in the file's own pixels."""
    from dataclasses import replace

    if factor == 1 or prediction.box is None:
        return prediction
    return replace(prediction, box=tuple(v * factor for v in prediction.box))


@command("predict")
def predict(
    paths: Annotated[
        List[Path],
        typer.Argument(metavar="[MODEL] IMAGE...", show_default=False,
                       help="Image files and/or folders, after an optional exported model (a first argument ending in "
                            ".tflite or .onnx); without one, the model bundled with edgekit reads them."),
    ],
    model: Annotated[Optional[Path], EXPORTED_MODEL] = None,
    json_lines: Annotated[bool, typer.Option("--json", help='JSON lines: {"path", "digit", "confidence", "box"}.')] = False,
    multi: Annotated[bool, typer.Option("--multi", help="Read every digit in the image, left to right.")] = False,
    roi: Annotated[Optional[str], ROI] = None,
    threads: Annotated[Optional[int], THREADS] = None,
    max_pixels: Annotated[Optional[int], max_pixels_option(
        "Largest image to decode, in pixels; a larger JPEG is decoded reduced, anything else refused")] = None,
    top: Annotated[Optional[int], typer.Option("--top", metavar="K", help="Also list the K most likely classes "
                                               "with their confidence (JSON: \"top\").")] = None,
) -> None:
    """Read the digit in each image: one line per image. Exit 0 when every image was read, 2 when any was not.

    `edgekit predict photo.jpg` uses the model bundled with edgekit; `edgekit predict MODEL photo.jpg` (or
    --model MODEL) uses yours.
    """
    from edgekit.runtime.bundled_model import MODEL_SUFFIXES

    images = list(paths)
    if model is None and images and images[0].suffix.lower() in MODEL_SUFFIXES:
        model, images = images[0], images[1:]
    if not images:
        raise OptionsError("no images to read; usage: edgekit predict [MODEL] IMAGE... (files or folders)")
    box = parse_roi_option(roi)
    if top is not None and top < 1:
        raise OptionsError(f"--top must be at least 1, got {top}")
    model = model_or_bundled(model)

    from edgekit.runtime import Classifier
    from edgekit.runtime.images import max_pixels_from_env, read_image

    check_max_pixels(max_pixels)
    limit = max_pixels if max_pixels is not None else max_pixels_from_env()
    quiet_opencv()
    clf = Classifier(model, threads=threads)
    if multi and clf.contract.crop == "image":
        raise OptionsError("--multi reads every digit of a digit model; this model classifies the whole image (or --roi)")
    failed = 0
    for path in _images(images):
        try:
            img, factor = read_image(path, limit)
            # --roi is in the file's pixels; an image decoded reduced takes it reduced too.
            region = box if factor == 1 or box is None else (box[0] // factor, box[1] // factor,
                                                             -(-box[2] // factor), -(-box[3] // factor))
            result = clf.classify(img, roi=region, multi=multi)
            result = [_in_file_pixels(p, factor) for p in result] if multi else _in_file_pixels(result, factor)
        except (ValueError, EdgekitError) as e:  # unreadable file, bad frame or ROI: report it, go on
            failed += 1
            line = first_line(e)
            if json_lines:
                typer.echo(json.dumps({"path": str(path), "digit": None, "confidence": 0.0, "box": None, "error": line}))
            typer.echo(f"edgekit: error: {path}: {line}", err=True)
            continue
        if multi:
            digits = [p.to_dict() for p in result]
            text = "".join(str(d["digit"]) for d in digits)
            if json_lines:
                typer.echo(json.dumps({"path": str(path), "digit": text or None, "confidence": min((d["confidence"] for d in digits), default=0.0),
                                       "box": _union([d["box"] for d in digits]), "digits": digits}))
            else:
                detail = "  ".join(f"{d['digit']} ({d['confidence'] * 100:.1f}%)" for d in digits)
                typer.echo(f"{path}: {text or 'no digit'}" + (f"  [{detail}]" if digits else ""))
        else:
            d = result.to_dict()
            ranked = clf.top(result, top) if top else []
            more = "  [" + ", ".join(f"{name} {p * 100:.1f}%" for name, p in ranked) + "]" if ranked else ""
            if json_lines:
                extra = {"top": [{"label": name, "confidence": round(p, 4)} for name, p in ranked]} if top else {}
                typer.echo(json.dumps({"path": str(path), **d, **extra}))
            elif "label" in d:  # an image model: the class of the whole image (or ROI)
                typer.echo(f"{path}: {d['label']} ({d['confidence'] * 100:.1f}%){more}")
            elif d["digit"] is None:
                typer.echo(f"{path}: no digit")
            else:
                typer.echo(f"{path}: {d['digit']} ({d['confidence'] * 100:.1f}%) box {','.join(map(str, d['box']))}{more}")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)
    raise typer.Exit(EXIT_OK)


def _union(boxes: list) -> list | None:
    if not boxes:
        return None
    x1 = min(b[0] for b in boxes)
    y1 = min(b[1] for b in boxes)
    x2 = max(b[0] + b[2] for b in boxes)
    y2 = max(b[1] + b[3] for b in boxes)
    return [x1, y1, x2 - x1, y2 - y1]


@command("webcam")
def webcam(
    model: Annotated[Optional[Path], EXPORTED_MODEL] = None,
    source: Annotated[
        str, typer.Option("--source", "-s", help="Camera index (0), /dev/videoN, a video file, a stream URL, or picamera2.")
    ] = "0",
    headless: Annotated[
        bool, typer.Option("--headless", help='No window: one JSON line per frame {"frame", "digit", "confidence", "box", "fps", "latency_ms", '
                                   '"capture_to_result_ms", "dropped"}.')
    ] = False,
    serve: Annotated[
        Optional[str],
        typer.Option("--serve", help="Serve the annotated stream and a live page on HOST:PORT (host 127.0.0.1 unless given)."),
    ] = None,
    allow_host: Annotated[Optional[List[str]], ALLOW_HOST] = None,
    token: Annotated[Optional[bool], TOKEN] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", help="Stop after this many frames.")] = None,
    threads: Annotated[Optional[int], THREADS] = None,
    roi: Annotated[Optional[str], ROI] = None,
    max_pixels: Annotated[Optional[int], max_pixels_option(
        "Largest frame to accept, in pixels; a source announcing more is refused")] = None,
) -> None:
    """Read digits from a camera live: a window (q or Esc quits), JSON lines (--headless) or a web page (--serve)."""
    if max_frames is not None and max_frames < 1:
        raise OptionsError(f"--max-frames must be at least 1, got {max_frames}")
    check_max_pixels(max_pixels)
    box = parse_roi_option(roi)
    window = not headless and serve is None
    if window and not has_display():
        raise OptionsError("no display to open a window on; use --headless for JSON lines or --serve 127.0.0.1:8080 for a web page")
    address = serve_address(serve, allow_host, token)

    from edgekit.runtime import Classifier
    from edgekit.runtime.camera import open_source, run_loop
    from edgekit.runtime.live_view import LiveView, Pacer

    quiet_opencv()
    if window:  # OpenCV's Qt looks for fonts inside the wheel and warns on every frame when they are not there
        os.environ.setdefault("QT_LOGGING_RULES", "default.warning=false")

    clf = Classifier(model_or_bundled(model), threads=threads)
    server = None
    if address is not None:
        from edgekit.runtime.serve import StreamServer

        server = start_server(StreamServer, address, allow_host, token)
        typer.echo(f"edgekit: serving the camera on {server.url} (Ctrl-C stops)", err=True)
        announce_token(server)
    stream = open_source(source, max_pixels)  # after the model and the server, so a failure there never holds the camera
    # A video file shown in a window or served plays at its own frame rate; headless runs flat out.
    view = LiveView(Pacer(stream, watched=not headless or server is not None), json_out=sys.stdout if headless else None,
                    hub=server.hub if server is not None else None, window=window, roi=box)
    try:
        end = run_loop(stream, clf, view, roi=box, max_frames=max_frames)
    finally:
        if server is not None:
            server.stop()
        view.close()
    dropped = f" ({end.dropped} camera frames dropped for newer ones)" if end.dropped else ""
    typer.echo(f"edgekit: {end.frames} frames from {stream.name}{dropped}; {end.reason or 'done'}", err=True)


@command("info")
def info(
    model: Annotated[Optional[Path], typer.Argument(help="An exported model: .tflite or .onnx (default: the bundled one).", show_default=False)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object: path, bytes, sha256, format, bundled, validated and the embedded metadata.")] = False,
) -> None:
    """What a model is: format, quantization, input, labels, recipe, accuracy, sha256 and the edgekit that
    exported it, read from the file's embedded metadata alone (no TensorFlow, no inference)."""
    from edgekit.runtime.bundled_model import bundled_model_path, is_bundled, validation
    from edgekit.runtime.metadata import model_info

    path = bundled_model_path() if model is None else model
    facts = model_info(path)
    bundled = is_bundled(path)
    validated = validation() if bundled else None
    if json_out:
        typer.echo(json.dumps({**facts, "bundled": bundled, "validated": validated}, indent=2))
        return
    for key, value in _info_rows(facts, bundled, validated):
        typer.echo(f"{key:<13}{value}")


def _numbers(value) -> str:
    """A scale or offset: one number, or one per channel."""
    return ",".join(f"{v:.6g}" for v in value) if isinstance(value, list) else f"{value:.6g}"


def _info_rows(facts: dict, bundled: bool, validated: dict | None) -> list[tuple[str, str]]:
    meta = facts["metadata"]
    rows = [("model", facts["path"] + ("  (bundled with edgekit)" if bundled else "")),
            ("size", f"{facts['bytes']:,} bytes ({facts['bytes'] / 1e6:.2f} MB)"),
            ("sha256", facts["sha256"]),
            ("format", facts["format"])]
    if meta is None:
        rows.append(("metadata", "none: not exported by edgekit (the runtime falls back to the MNIST contract)"))
        return rows

    def tensor(t: dict) -> str:
        shape = "x".join("N" if d is None else str(d) for d in t.get("shape") or [])
        q = t.get("quantization")
        qtext = f", scale {q['scale']:.6g} zero point {q['zero_point']}" if isinstance(q, dict) else ""
        return f"{t.get('name', '?')} {shape} {t.get('dtype', '?')}{qtext}"

    inp, out = meta.get("input") or {}, meta.get("output") or {}
    rows.append(("quantization", str(meta.get("quantization", "unknown"))))
    if inp:
        pixels = ""
        if isinstance(inp.get("scale"), (int, float, list)) and isinstance(inp.get("offset"), (int, float, list)):
            pixels = f"; pixels x {_numbers(inp['scale'])} + {_numbers(inp['offset'])}"
            pixels += f", {inp['polarity']}" if inp.get("polarity") else ""
        rows.append(("input", f"{tensor(inp)} ({inp.get('layout', '?')}){pixels}"))
        if "crop" in inp:  # the input contract (docs/your-model.md); older exports: the digit model's, implied
            what = ("digit crops found by find_digits" if inp["crop"] == "digit"
                    else "the whole frame (or --roi)")
            rows.append(("contract", f"{what}; {inp.get('channels', '?')} channel(s) {inp.get('color', '?')}, "
                                     f"resize {inp.get('resize', '?')}"))
    if out:
        scores = {"logits": "; its scores are logits (the runtime applies a softmax)",
                  "probabilities": "; its scores are probabilities"}.get(out.get("scores"), "")
        rows.append(("output", tensor(out) + scores))
    rows.append(("labels", " ".join(str(v) for v in meta.get("labels") or []) or "?"))
    training = meta.get("training")
    if isinstance(training, dict):
        seed = f", seed {training['seed']}" if training.get("seed") is not None else ""
        epochs = f", {training['epochs']} epoch(s)" if training.get("epochs") is not None else ""
        rows.append(("recipe", f"{training.get('recipe', '?')}{epochs}{seed}"))
        if isinstance(training.get("test_accuracy"), (int, float)):
            rows.append(("accuracy", f"{training['test_accuracy'] * 100:.2f} % (the Keras model, "
                                     f"{training.get('test_images', '?'):,} MNIST test images)"))
    else:
        rows.append(("recipe", "unknown (exported from a model without a run folder's metrics.json)"))
    rewrites = meta.get("rewrites")
    if isinstance(rewrites, dict):  # graph rewrites before conversion (export/fold.py); {} = the trained graph as is
        done = [f"{name} ({len(r['folded'])} layers, max |Δ| {r['max_abs_diff']:.1e} on the float model)"
                if isinstance(r, dict) and isinstance(r.get("folded"), list) and isinstance(r.get("max_abs_diff"), (int, float))
                else str(name) for name, r in rewrites.items()]
        rows.append(("rewrites", ", ".join(done) or "none (the trained graph as is)"))
    if validated:
        rows.append(("validated", f"{validated['accuracy']:.2f} % on {validated['images']:,} MNIST test images "
                                  f"(Δ {validated['delta_accuracy']:+.2f} point against Keras, "
                                  f"{'pass' if validated['passed'] else 'FAIL'}), edgekit validate"))
    rows.append(("exported by", f"edgekit {meta.get('edgekit_version', '?')}" + (f" on {meta['created']}" if meta.get("created") else "")))
    return rows
