"""`edgekit validate`: accuracy parity of every exported artifact against the Keras model, in one table."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekit.export.parity import Thresholds
from edgekit.export.validate import ValidateOptions
from edgekit.runtime.errors import OptionsError
from edgekit.toolkit.cli_app import command

_DEFAULT = Thresholds()


@command("validate")
def validate_command(
    export_dir: Annotated[Path, typer.Argument(help="The folder `edgekit export` wrote (with manifest.json).")] = Path("runs/mnist/export"),
    reference: Annotated[Optional[Path], typer.Option("--reference", help="The Keras model to compare with; default: the manifest's source model.")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="The digit model: MNIST, a Keras-layout .npz or an IDX folder (default $EDGEKIT_DATA, else Keras' cache); any other model: your labelled images, a folder of class folders or an .npz of x and y.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use only the first N test images (default: all 10,000).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON to this file.")] = None,
    html_path: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained HTML report to this file.")] = None,
    max_abs_diff: Annotated[float, typer.Option("--max-abs-diff", help="float32 exports: largest |Δ probability| allowed against Keras.")] = _DEFAULT.float_max_abs_diff,
    float_agreement: Annotated[float, typer.Option("--float-agreement", help="float32 exports: top-1 agreement with Keras, percent.")] = _DEFAULT.float_min_agreement,
    float16_agreement: Annotated[float, typer.Option("--float16-agreement", help="float16 exports: top-1 agreement with Keras, percent.")] = _DEFAULT.float16_min_agreement,
    max_drop: Annotated[float, typer.Option("--max-drop", help="dynamic-range and int8 exports: accuracy lost against Keras, points.")] = _DEFAULT.quantized_max_drop,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch for accuracy and throughput.")] = 250,
    latency_runs: Annotated[int, typer.Option("--latency-runs", help="Single-image calls timed per artifact for p50/p95.")] = 200,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Inference threads for the runtime (default: the backend's).")] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Also print, per layer of each int8 TFLite artifact, its error against the float model on calibration images (and put it in the HTML report).")] = False,
) -> None:
    """Prove that every exported model is as accurate as the Keras model, on the real MNIST test set.

    Runs the Keras reference and every artifact in EXPORT_DIR/manifest.json through the edgekit runtime,
    prints one table (size, accuracy, Δ against Keras, top-1 agreement, max |Δp|, latency, throughput,
    ✓/✗ with the reason) and exits 0 when all pass, 1 when any threshold fails, 2 on bad input.
    """
    thresholds = Thresholds(
        float_max_abs_diff=max_abs_diff, float_min_agreement=float_agreement,
        float16_min_agreement=float16_agreement, quantized_max_drop=max_drop,
    )
    options = ValidateOptions(reference=reference, limit=limit, thresholds=thresholds, batch_size=batch_size,
                              latency_runs=latency_runs, threads=threads)
    for option, path in (("--json", json_path), ("--html", html_path)):
        if path is not None and not path.parent.is_dir():
            raise OptionsError(f"{option} {path}: the folder {path.parent} does not exist; create it or pick another path")

    from edgekit.export.validate import folder_contract, validate
    from edgekit.toolkit.data import load_mnist

    contract = folder_contract(export_dir)
    if contract.crop == "digit":
        mnist = load_mnist(data)  # here, not in validate: --layers and the HTML report read it too
        images = None
    else:  # an image model: the user's labelled images, loaded for its contract (docs/your-model.md)
        from edgekit.export.image_data import load_images

        if data is None:
            raise OptionsError("an image model is validated on your labelled images: pass --data DIR (class folders) or an .npz of x and y")
        mnist, images = None, load_images(data, contract)
    report = validate(export_dir, dataclasses.replace(options, data=mnist or images), on_progress=_Progress(),
                      raise_on_failure=False)
    typer.echo(report.table())
    if layers:
        from edgekit.export.layer_error import format_layers, layer_reports

        if images is None:
            report.layers = layer_reports(report, mnist.x_train, mnist.y_train)
        else:
            report.layers = layer_reports(report, None, None, model_input=images.model_input(contract))
        for table in report.layers:
            typer.echo("\n" + format_layers(table))
        if not report.layers:
            typer.echo("\n--layers: no int8 TFLite artifact in this export folder; nothing to break down", err=True)
    if json_path is not None:
        report.write_json(json_path)
        typer.echo(f"JSON: {json_path}", err=True)
    if html_path is not None:
        from edgekit.toolkit.report import write_html

        write_html(report, html_path, mnist=mnist)
        typer.echo(f"HTML report: {html_path}", err=True)
    report.check()  # ParityError -> "edgekit: error: parity failed for ..." and exit 1
    typer.echo(report.summary())


class _Progress:
    """Progress on stderr: a line redrawn per batch on a terminal, one line per model otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, p) -> None:
        line = f"[{p.model}/{p.models}] {p.name}: {p.done:,}/{p.total:,} images"
        if self.tty:
            sys.stderr.write(f"\r{line}\033[K" + ("\n" if p.done >= p.total else ""))
            sys.stderr.flush()
        elif p.done >= p.total:
            typer.echo(line, err=True)
