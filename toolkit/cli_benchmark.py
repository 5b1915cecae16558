"""`edgekit benchmark`; registered on the app (cli_app) when edgekit.toolkit.cli imports it. The measuring is ``edgekit.runtime.benchmark``
(runtime only: it runs on the Pi as installed, without TensorFlow)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from edgekit.runtime.files import write_json
from edgekit.toolkit.cli_app import command


@command("benchmark")
def benchmark(
    models: Annotated[
        Optional[List[Path]],
        typer.Argument(metavar="[MODEL...]", show_default=False,
                       help="Exported models (.tflite, .onnx) and/or folders of them (default: the bundled model)."),
    ] = None,
    data: Annotated[
        Optional[Path],
        typer.Option("--data", help="Labelled images for accuracy: a Keras-layout mnist.npz (its test split) or a DIR/<digit>/ folder (digit models; an image model is timed only: edgekit validate --data measures it)."),
    ] = None,
    threads: Annotated[str, typer.Option("--threads", help="Thread counts to try, separated by commas.")] = "1,2,4",
    frames: Annotated[int, typer.Option("--frames", help="Timed calls per row (model invoke and frame -> digit each).")] = 200,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Accuracy points below the best that still count for the recommendation.")
    ] = 0.2,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the rows and the recommendation to this JSON file.")] = None,
) -> None:
    """Which artifact and how many threads on this machine: size, accuracy, model invoke and 640x480 frame -> digit
    p50/p95, FPS and peak memory for every model x thread count, then one recommended pair."""
    from edgekit.runtime.benchmark import BenchmarkOptions, format_table, model_files, parse_threads
    from edgekit.runtime.benchmark import benchmark as measure
    from edgekit.toolkit.cli_options import model_or_bundled, quiet_opencv

    options = BenchmarkOptions(threads=parse_threads(threads), frames=frames, tolerance=tolerance)
    files = model_files(models) if models else [model_or_bundled(None)]
    quiet_opencv()
    live = sys.stderr.isatty()

    def progress(text: str) -> None:
        if live:  # one line, rewritten in place
            sys.stderr.write("\r\033[K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    report = measure(files, options, data=data, progress=progress)
    if live:
        sys.stderr.write("\r\033[K")
    typer.echo(format_table(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_out, report.to_dict())
