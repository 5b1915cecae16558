"""Where an int8 TFLite artifact's error comes from: per layer, its output against the float model's.

The anchor is TFLite's ``QuantizationDebugger`` (``tf.lite.experimental.QuantizationDebugger``), which
re-quantizes a model from its converter to compare each op with its float twin. Here the artifact already
exists (and may have been exported from the BN-folded rewrite), so the same measurement is made directly:

1. The float twin: the Keras reference, rewritten by ``fold.fold_batchnorm`` when the artifact's metadata
   says the fold was applied, converted to a float32 TFLite flatbuffer in memory. The converter gives the
   int8 and the float graph the same tensor names, so each int8 op output has a float counterpart.
2. Both run with LiteRT's ``experimental_preserve_all_tensors`` on one calibration batch (training images);
   every int8 op output is dequantized with its own ``(scale, zero_point)``.
3. Per op output: RMSE against the float tensor, relative to the float tensor's range (max - min), the RMSE
   in quantization steps (RMSE / scale), and ``added``: the relative RMSE minus the previous layer's. The
   error is cumulative (each layer sees the int8 outputs of the layers before it), so the layer where the
   error *comes from* is the one that adds the most; ``worst`` names it.

Needs TensorFlow (the float twin is converted here): workstation-side only, like the rest of ``validate``.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.runtime.errors import ModelLoadError

LAYER_IMAGES = 100  # calibration images for the table (LiteRT keeps every tensor of the batch: ~200 MB at 100)
SKIP_OPS = {"SHAPE", "STRIDED_SLICE", "PACK", "QUANTIZE", "DEQUANTIZE"}  # shape bookkeeping, no arithmetic


@dataclass(frozen=True)
class LayerError:
    """One op output of the int8 artifact against the float model."""

    index: int  # position in the int8 graph's execution order
    op: str  # TFLite builtin, e.g. CONV_2D
    layer: str  # the Keras layer it comes from (read from the tensor name)
    shape: tuple[int, ...]
    scale: float  # the int8 tensor's quantization scale
    zero_point: int
    range: float  # max - min of the float tensor on the batch
    rmse: float
    rel_rmse: float  # rmse / range
    steps: float  # rmse / scale: the error in quantization steps
    added: float  # rel_rmse minus the previous layer's rel_rmse

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else _finite(v) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


@dataclass
class LayerReport:
    """The per-layer table of one int8 artifact."""

    artifact: str
    images: int
    rows: list[LayerError] = field(default_factory=list)
    rewrites: list[str] = field(default_factory=list)

    @property
    def worst(self) -> LayerError | None:
        """The layer that adds the most relative error (where the error comes from)."""
        return max(self.rows, key=lambda r: r.added) if self.rows else None

    def to_dict(self) -> dict:
        worst = self.worst
        return {"artifact": self.artifact, "images": self.images, "rewrites": list(self.rewrites),
                "worst": worst.layer if worst else None, "layers": [r.to_dict() for r in self.rows]}


def layer_name(tensor_name: str) -> str:
    """``model_1/conv2d_1_2/Relu;...`` -> ``conv2d_1``: the Keras layer, without the tracing suffix ``_N``."""
    first = tensor_name.split(";")[0]
    parts = first.split("/")
    scope = parts[1] if len(parts) > 2 else parts[0]
    return re.sub(r"_\d+$", "", scope)


def measure_layers(artifact: str | Path, reference, images: np.ndarray) -> LayerReport:
    """The per-layer table of an int8 ``.tflite`` against the Keras ``reference`` on ``images`` (float32 NHWC)."""
    from edgekit.runtime.metadata import read_metadata

    artifact = Path(artifact)
    meta = read_metadata(artifact) or {}
    if artifact.suffix != ".tflite" or meta.get("quantization") != "int8":
        raise ModelLoadError(f"{artifact}: the per-layer table is for int8 TFLite artifacts")
    rewrites = sorted((meta.get("rewrites") or {}).keys())
    model = reference
    if "bn_fold" in rewrites:
        from edgekit.export.fold import fold_batchnorm

        model, _ = fold_batchnorm(reference)
    float_flat = _float_tflite(model)
    quant = _run(artifact.read_bytes(), images)
    flt = {t["name"]: t for t in _run(float_flat, images)}

    rows, previous = [], 0.0
    for t in quant:
        if t["op"] in SKIP_OPS or t["name"] not in flt or not t["scale"] or t["dtype"] != np.int8:
            continue
        ref = flt[t["name"]]["value"].astype(np.float64)
        q = (t["value"].astype(np.float64) - t["zero_point"]) * t["scale"]
        if q.shape != ref.shape:
            continue
        rmse = float(np.sqrt(np.mean((q - ref) ** 2)))
        span = float(ref.max() - ref.min())
        rel = rmse / span if span > 0 else (0.0 if rmse == 0 else math.inf)
        layer = "softmax (output)" if t["op"] == "SOFTMAX" else layer_name(t["name"])
        rows.append(LayerError(t["index"], t["op"], layer, tuple(q.shape[1:]), t["scale"],
                               t["zero_point"], span, rmse, rel, rmse / t["scale"], rel - previous))
        previous = rel
    return LayerReport(artifact.name, int(len(images)), rows, rewrites)


def layer_reports(report, x_train: np.ndarray, y_train: np.ndarray, n: int = LAYER_IMAGES) -> list[LayerReport]:
    """The per-layer table of every int8 TFLite artifact a ``ValidationReport`` covers, on ``n`` class-balanced
    training images (the calibration set's kind, never the test images the accuracy is measured on)."""
    from edgekit.export.calibration import representative_images
    from edgekit.export.validate import load_reference

    int8 = [a for a in report.artifacts if a.format == "tflite" and a.quantization == "int8"]
    if not int8:
        return []
    reference = load_reference(report.reference_path)
    images = representative_images(x_train, y_train, n)
    return [measure_layers(Path(report.export_dir) / a.name, reference, images) for a in int8]


def _float_tflite(model) -> bytes:
    from edgekit.export.formats import Quantization
    from edgekit.export.options import ExportContext, ExportOptions
    from edgekit.export.tflite import convert

    with tempfile.TemporaryDirectory(prefix="edgekit-layers-") as tmp:
        return convert(model, Quantization.NONE, ExportContext(ExportOptions(), "", workdir=Path(tmp)))


def _run(flat: bytes, images: np.ndarray) -> list[dict]:
    """Every op's first output after one invoke on ``images``: name, op, dtype, value, scale, zero_point."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():  # "intended for debugging purposes only": that is what this is
        warnings.simplefilter("ignore")
        interp = Interpreter(model_content=flat, experimental_preserve_all_tensors=True,  # no XNNPACK: every op
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], images.shape)
    interp.allocate_tensors()
    x = images.astype(np.float32)
    if inp["dtype"] == np.int8:
        s, z = inp["quantization"]
        x = np.clip(np.round(x / s + z), -128, 127).astype(np.int8)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    details = {t["index"]: t for t in interp.get_tensor_details()}
    out = []
    for op in interp._get_ops_details():  # the public API has no op list; QuantizationDebugger reads it too
        if not len(op["outputs"]):
            continue
        d = details[op["outputs"][0]]
        scale, zero = d["quantization"]
        out.append({"index": op["index"], "op": op["op_name"], "name": d["name"], "dtype": d["dtype"],
                    "value": interp.get_tensor(d["index"]), "scale": float(scale), "zero_point": int(zero)})
    return out


# --- writers ------------------------------------------------------------------------------------------

COLUMNS = ("#", "op", "layer", "shape", "scale", "range", "RMSE", "RMSE/range", "steps", "added")


def cells(r: LayerError) -> list[str]:
    return [str(r.index), r.op, r.layer, "×".join(map(str, r.shape)), f"{r.scale:.3g}", f"{r.range:.3g}",
            f"{r.rmse:.3g}", f"{100 * r.rel_rmse:.2f} %", f"{r.steps:.2f}", f"{100 * r.added:+.2f} %"]


def format_layers(report: LayerReport) -> str:
    """The plain-text table (what ``edgekit validate --layers`` prints)."""
    rows = [list(COLUMNS)] + [cells(r) for r in report.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i in (1, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    worst = report.worst
    folded = f" (exported from the {', '.join(report.rewrites)} rewrite)" if report.rewrites else ""
    head = (f"{report.artifact}{folded}: int8 vs float, per layer, on {report.images} calibration images "
            "(RMSE/range: error relative to the float tensor's range; steps: RMSE / scale; added: RMSE/range "
            "minus the previous layer's)")
    tail = f"most error added by: {worst.layer} ({worst.op}, {100 * worst.added:+.2f} % of its range)" if worst else "no int8 layers matched"
    return "\n".join([head, *lines, tail])


def _finite(value: float):
    return float(value) if math.isfinite(value) else None
