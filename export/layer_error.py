"""Where an int8 TFLite artifact's error comes from: per op, its own error and the error that reaches it.

The anchor is TFLite's ``QuantizationDebugger`` (``tf.lite.experimental.QuantizationDebugger``) in its default,
per-layer mode (``enable_whole_model_verify=False``): "float and quantized ops will be run from same input", so
each op's figure is the error it makes itself, not what it inherits. The debugger feeds both ops the previous
*quantized* output; here each int8 op gets the float model's input to that op (quantized with the op's own input
scale, as the artifact would), the direction ONNX Runtime's ``qdq_loss_debug`` also compares against: the float
model is the reference at every tensor. The artifact already exists (and may have been exported from the
BN-folded rewrite), so it is measured as it is, not re-quantized:

1. The float twin: the Keras reference, rewritten by ``fold.fold_batchnorm`` when the artifact's metadata
   says the fold was applied, converted to a float32 TFLite flatbuffer in memory. The converter gives the
   int8 and the float graph the same tensor names, so each int8 op output has a float counterpart.
2. Both run with LiteRT's ``experimental_preserve_all_tensors`` on one calibration batch (training images);
   every int8 op output is dequantized with its own ``(scale, zero_point)``: the error that *reaches* each op
   (cumulative: each op sees the int8 outputs of the ops before it).
3. The int8 artifact once more, rewired so that every op reads a graph input of its own instead of the output
   of the op before it; each is fed the float twin's tensor, quantized. Each op's output against the float
   twin's is its *own* error. ``worst`` is the op with the largest own error: a damaged or badly quantized
   layer, wherever it sits. (The cumulative figure cannot name it: a saturating softmax over [0, 1] can grow an
   inherited error more than the layer where it was born added -- seen on an AMD machine, where the softmax
   "added" the most while a conv kernel was the damaged one.)

Per op output: RMSE against the float tensor, relative to the float tensor's range (max - min), and the RMSE
in quantization steps (RMSE / scale), both for the error reaching the op and for the op's own.

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
    rmse: float  # the error reaching this output: the int8 graph run as it is
    rel_rmse: float  # rmse / range
    steps: float  # rmse / scale: the error in quantization steps
    own_rmse: float  # the op's own error: the op fed the float model's input to it
    own_rel_rmse: float  # own_rmse / range

    @property
    def own_steps(self) -> float:
        return self.own_rmse / self.scale

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
        """The op with the largest own relative error (where the error comes from)."""
        return max(self.rows, key=lambda r: r.own_rel_rmse) if self.rows else None

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
    flat = artifact.read_bytes()
    flt, _ = _run(_float_tflite(model), images)
    floats = {t["name"]: t["value"] for t in flt}
    quant, graph_input = _run(flat, images)
    floats.setdefault(graph_input, images.astype(np.float32))
    own = {t["index"]: t for t in _run_each_op_alone(flat, floats, images)}

    rows = []
    for t in quant:
        if t["op"] in SKIP_OPS or t["name"] not in floats or not t["scale"] or t["dtype"] != np.int8:
            continue
        ref = floats[t["name"]].astype(np.float64)
        if t["value"].shape != ref.shape or t["index"] not in own:
            continue
        span = float(ref.max() - ref.min())
        rmse, rel = _error(t, ref, span)
        own_rmse, own_rel = _error(own[t["index"]], ref, span)
        layer = "softmax (output)" if t["op"] == "SOFTMAX" else layer_name(t["name"])
        rows.append(LayerError(t["index"], t["op"], layer, tuple(ref.shape[1:]), t["scale"], t["zero_point"],
                               span, rmse, rel, rmse / t["scale"], own_rmse, own_rel))
    return LayerReport(artifact.name, int(len(images)), rows, rewrites)


def _error(t: dict, ref: np.ndarray, span: float) -> tuple[float, float]:
    """RMSE of the dequantized int8 output ``t`` against the float ``ref``, absolute and relative to ``span``."""
    q = (t["value"].astype(np.float64) - t["zero_point"]) * t["scale"]
    rmse = float(np.sqrt(np.mean((q - ref) ** 2)))
    return rmse, (rmse / span if span > 0 else (0.0 if rmse == 0 else math.inf))


def layer_reports(report, x_train: np.ndarray, y_train: np.ndarray, n: int = LAYER_IMAGES,
                  model_input: np.ndarray | None = None) -> list[LayerReport]:
    """The per-layer table of every int8 TFLite artifact a ``ValidationReport`` covers, on ``n`` class-balanced
    training images (the calibration set's kind, never the test images the accuracy is measured on); an image
    model's caller gives its ``model_input`` instead (``x_train``/``y_train`` then unused)."""
    from edgekit.export.calibration import representative_images

    int8 = [a for a in report.artifacts if a.format == "tflite" and a.quantization == "int8"]
    if not int8:
        return []
    reference = report.model  # the Keras model validate loaded and measured; loaded again only for a report without it
    if reference is None:
        from edgekit.export.validate import load_reference

        reference = load_reference(report.reference_path)
    images = representative_images(x_train, y_train, n) if model_input is None else model_input[:n]
    return [measure_layers(Path(report.export_dir) / a.name, reference, images) for a in int8]


def _float_tflite(model) -> bytes:
    from edgekit.export.formats import Quantization
    from edgekit.export.options import ExportContext, ExportOptions
    from edgekit.export.tflite import convert

    with tempfile.TemporaryDirectory(prefix="edgekit-layers-") as tmp:
        return convert(model, Quantization.NONE, ExportContext(ExportOptions(), "", workdir=Path(tmp)))


def _interpreter(flat: bytes):
    import warnings

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():  # "intended for debugging purposes only": that is what this is
        warnings.simplefilter("ignore")
        return Interpreter(model_content=bytes(flat), experimental_preserve_all_tensors=True,  # no XNNPACK: every op
                           experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def _as_input(value: np.ndarray, detail: dict) -> np.ndarray:
    """A float tensor as the input ``detail`` takes it (quantized with its scale and zero point if int8)."""
    x = value.astype(np.float32)
    if detail["dtype"] == np.int8:
        s, z = detail["quantization"]
        x = np.clip(np.round(x / s + z), -128, 127).astype(np.int8)
    return x


def _run(flat: bytes, images: np.ndarray) -> tuple[list[dict], str]:
    """Every op's first output after one invoke on ``images`` (name, op, dtype, value, scale, zero_point), and
    the name of the graph's input tensor."""
    interp = _interpreter(flat)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], images.shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], _as_input(images, inp))
    interp.invoke()
    return _outputs(interp), inp["name"]


def _run_each_op_alone(flat: bytes, floats: dict[str, np.ndarray], images: np.ndarray) -> list[dict]:
    """The int8 graph rewired so each op reads the float model's input to it, quantized with that input's own
    scale; every op's output after one invoke (as ``_run``). Inputs that are not int8 activations with a float
    twin (shape bookkeeping) stay wired as they were."""
    import copy

    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    graph = model.subgraphs[0]
    produced = set(graph.inputs) | {i for op in graph.operators for i in op.outputs}
    feeds: dict[int, str] = {}  # new graph input -> the float tensor it is fed
    for op in graph.operators:
        for k, i in enumerate(op.inputs):
            tensor = graph.tensors[i] if i >= 0 else None
            name = tensor.name.decode() if tensor is not None else ""
            if i not in produced or name not in floats or tensor.quantization is None or not len(tensor.quantization.scale or []):
                continue
            alone = copy.deepcopy(tensor)
            alone.name = f"edgekit_alone_{len(feeds)}/{name}".encode()
            model.buffers.append(type(model.buffers[0])())  # an empty buffer of its own
            alone.buffer = len(model.buffers) - 1
            graph.tensors.append(alone)
            op.inputs[k] = len(graph.tensors) - 1
            graph.inputs = [*graph.inputs, len(graph.tensors) - 1]
            feeds[len(graph.tensors) - 1] = name
    interp = _interpreter(flatbuffer_utils.convert_object_to_bytearray(model))
    inputs = [(d, floats[feeds[d["index"]]] if d["index"] in feeds else images) for d in interp.get_input_details()]
    for detail, value in inputs:
        interp.resize_tensor_input(detail["index"], value.shape)
    interp.allocate_tensors()
    for detail, value in inputs:
        interp.set_tensor(detail["index"], _as_input(value, detail))
    interp.invoke()
    return _outputs(interp)


def _outputs(interp) -> list[dict]:
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

COLUMNS = ("#", "op", "layer", "shape", "scale", "range", "own RMSE/range", "own steps", "RMSE/range", "steps")


def cells(r: LayerError) -> list[str]:
    return [str(r.index), r.op, r.layer, "×".join(map(str, r.shape)), f"{r.scale:.3g}", f"{r.range:.3g}",
            f"{100 * r.own_rel_rmse:.2f} %", f"{r.own_steps:.2f}", f"{100 * r.rel_rmse:.2f} %", f"{r.steps:.2f}"]


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
            "(own: the op alone, fed the float model's input to it; the other two: the error reaching this output "
            "through the int8 layers before it. RMSE/range: relative to the float tensor's range; steps: RMSE / scale)")
    tail = (f"largest own error: {worst.layer} ({worst.op}, {100 * worst.own_rel_rmse:.2f} % of its range)"
            if worst else "no int8 layers matched")
    return "\n".join([head, *lines, tail])


def _finite(value: float):
    return float(value) if math.isfinite(value) else None
