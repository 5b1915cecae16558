"""`edgekit export` command(s); registered on the app (cli_app) when edgekit.toolkit.cli imports it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from edgekit.export.calibration import DEFAULT_CALIB_SAMPLES
from edgekit.export.formats import ALL, DEFAULT_FORMATS, FORMATS, Quantization
from edgekit.export.options import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from edgekit.toolkit.cli_app import command

DEFAULT_MODEL = Path("runs/mnist/model.keras")


def _split(values: Optional[List[str]]) -> Optional[List[str]]:
    """Repeated options and comma-separated lists both work: --quantize none,int8 == --quantize none --quantize int8."""
    if not values:
        return None
    return [v for value in values for v in value.split(",") if v.strip()]


def _or(names) -> str:
    *rest, last = names
    return f"{', '.join(rest)} or {last}"


# The names come from the format table (not Typer choices: --format/--quantize take comma-separated lists and the
# table's aliases, and a typo gets the nearest name).
_FORMAT_HELP = f"{_or([*FORMATS, ALL])}; repeat or comma-separate for several."
_QUANTIZE_HELP = (f"{_or([q.value for q in Quantization])}; repeat or comma-separate. Default: "
                  + ", ".join(f"{f.name} -> {'+'.join(q.value for q in f.defaults)}" for f in FORMATS.values())
                  + f", {ALL} -> every supported pair.")


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


@command("export")
def export(
    model: Annotated[Path, typer.Option("--model", "-m", metavar="PATH", help="The trained Keras model (RUN/model.keras).")] = DEFAULT_MODEL,
    format: Annotated[
        List[str], typer.Option("--format", "-f", metavar="FORMAT", help=_FORMAT_HELP)
    ] = list(DEFAULT_FORMATS),
    quantize: Annotated[
        Optional[List[str]],
        typer.Option(
            "--quantize", "-q", metavar="QUANT",
            help=_QUANTIZE_HELP,
        ),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", metavar="DIR", help="Output folder. Default: an 'export' folder beside the model.")
    ] = None,
    calib_samples: Annotated[
        int, typer.Option("--calib-samples", metavar="N", help="Training images for int8 calibration (class-balanced, fixed seed).")
    ] = DEFAULT_CALIB_SAMPLES,
    data: Annotated[
        Optional[str], typer.Option("--data", metavar="PATH", help="int8 calibration images: for the digit model MNIST (.npz or IDX "
                                    "folder, training split only); for any other model your images: a folder of class "
                                    "folders or an .npz of x and y (docs/your-model.md).")
    ] = None,
    opset: Annotated[int, typer.Option("--opset", metavar="N", help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET}.")] = DEFAULT_OPSET,
    fold: Annotated[
        bool, typer.Option("--fold/--no-fold", help="Fold the post-ReLU BatchNormalization scales into the layer before "
                           "them for the dynamic/int8 exports (proven exact first; docs/quantization.md).")
    ] = True,
    max_drop: Annotated[
        Optional[float], typer.Option("--max-drop", metavar="POINTS", help="int8: accuracy points the artifact may lose "
                                      "against the float model on held-out training images; over it, the most "
                                      "sensitive layers stay float (docs/quantization.md).")
    ] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", metavar="FILE", help="Class names, one per line in the model's "
                                                   "output order (default: the --data folder's class folders).")] = None,
    color: Annotated[Optional[str], typer.Option("--color", metavar="ORDER", help="A 3-channel model's channel order: rgb "
                                                 "(Keras' image loaders) or bgr (OpenCV).")] = None,
    scale: Annotated[Optional[str], typer.Option("--scale", metavar="S", help="Model input = pixel x S + OFFSET (1 or 3 "
                                                 "comma-separated numbers); needed when the model has no Rescaling layer.")] = None,
    offset: Annotated[Optional[str], typer.Option("--offset", metavar="OFFSET", help="See --scale (default 0).")] = None,
    mean: Annotated[Optional[str], typer.Option("--mean", metavar="M", help="Model input = (pixel - M) / STD, instead of --scale.")] = None,
    std: Annotated[Optional[str], typer.Option("--std", metavar="STD", help="See --mean.")] = None,
    resize: Annotated[Optional[str], typer.Option("--resize", metavar="MODE", help="stretch (default), crop (centre) or "
                                                  "letterbox: how a frame becomes the model's input size.")] = None,
    crop: Annotated[Optional[str], typer.Option("--crop", metavar="MODE", help="digit (find digits first; default for a "
                                                "28x28x1 model of 10 classes) or image (the whole frame or ROI).")] = None,
) -> None:
    """Export a trained model to TFLite and/or ONNX, with metadata inside every file and a manifest.json."""
    from edgekit.export.input_options import InputOptions
    from edgekit.export.options import ExportOptions

    # Every option is checked against the format table before anything heavy is imported or loaded.
    contract_options = InputOptions(labels=labels, color=color, scale=scale, offset=offset, mean=mean, std=std,
                                    resize=resize, crop=crop)
    options = ExportOptions(formats=_split(format) or DEFAULT_FORMATS, quantizations=_split(quantize),
                            calib_samples=calib_samples, opset=opset, data=data, fold_bn=fold,
                            max_drop=max_drop, input=contract_options)
    targets = options.targets
    out_dir = out if out is not None else model.parent / "export"
    typer.echo(f"edgekit export: {model} -> {out_dir}/ ({', '.join(str(t) for t in targets)})")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgekit.export import export_model

    def progress(a) -> None:
        folded = "  (BN folded)" if a.rewrites else ""
        typer.echo(f"  {a.format:<7}{a.quantization:<9}{_mb(a.bytes):>10}{a.export_seconds:>8.1f} s  {a.file}{folded}")
        if a.selective:
            from edgekit.export.selective import summary

            typer.echo(f"    --max-drop: {summary(a.selective)}")

    with warnings.catch_warnings():  # the converters' UserWarnings are not the user's business here
        warnings.simplefilter("ignore")
        manifest = export_model(model, out_dir, options, on_artifact=progress, on_contract=_show_contract)
    total = sum(a.export_seconds for a in manifest.artifacts if a.file in {t.file for t in targets})
    typer.echo(f"wrote {len(targets)} artifact(s) in {total:.1f} s; manifest: {out_dir / 'manifest.json'}")


def _show_contract(contract, spec) -> None:
    """One line: what the exports will say the model sees, and how its output was read."""
    if contract.crop == "digit":
        typer.echo("  input: digit crops (28x28 gray, pixels / 255, found by find_digits), labels 0-9")
        return
    names = ", ".join(contract.labels[:8]) + (", ..." if len(contract.labels) > 8 else "")
    pixels = "raw 0-255 (the model rescales: " + spec.rescales + ")" if spec.rescales else f"x {contract.scale} + {contract.offset}"
    typer.echo(f"  input: {contract.height}x{contract.width} {contract.color}, {contract.resize}, pixels {pixels}; "
               f"{contract.classes} labels ({names}); output: {contract.scores}, as {spec.scores_because}")
