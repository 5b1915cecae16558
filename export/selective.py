"""Selective int8: keep the layers int8 hurts most in float until the accuracy drop is within a budget.

``edgekit export --quantize int8 --max-drop P``: the int8 artifact is measured on held-out images against the
float Keras model; while it loses more than ``P`` points, the most sensitive parts of the graph are kept in float
and the rest stays int8. The anchor is OpenVINO NNCF's ``quantize_with_accuracy_control``: rank groups of
quantizers by what reverting each one alone does to the model's output, then revert them greedily in that order,
re-measuring the accuracy after each, until the drop is within ``max_drop``. What differs here, and why:

- **The unit reverted is a tensor, not an op.** An activation is quantized per tensor; when one op of a pair is
  kept float, the converter puts a QUANTIZE (TFLite) or a Q/DQ pair (ONNX Runtime) at the border with the same
  calibrated range, so a tensor whose range int8 cannot hold stays broken until its producer *and* every consumer
  are float. A unit is one compute op plus every op that reads its output, through the ops that share their
  input's scale (MAX_POOL_2D, RESHAPE; NNCF's "quantize-agnostic" ops): NNCF's quantizer group, in TFLite's terms.
- **The ranking is measured, and continuous.** Sensitivity of a unit = how much the model's output error
  (mean over the held-out images of sum |p_int8 - p_float| over the classes) falls when that unit alone is
  kept float. NNCF's metric-based ranker scores each group by the accuracy on a 300-image subset: a count of
  images, which ties. The per-layer statistics of TFLite's ``QuantizationDebugger`` (RMSE/scale, each op fed
  the previous *quantized* output) were not used to rank: on the test's fragile model (a Dense whose output
  range int8 cannot hold) they give that Dense 0.08 steps, the lowest of any op, and flag only the layer reading
  it (1.41 steps), which kept float alone changes nothing (docs/quantization.md has the rows).
- **A step that does not lower the output error is undone** (NNCF's step back), then the next unit is tried.

TFLite goes through the converter's selective quantization: ``tf.lite.experimental.QuantizationDebugger``
calibrates once (``debugger.calibrated_model``), and each candidate is
``QuantizationDebugOptions(denylisted_nodes=[...], fully_quantize=True)`` then
``debugger.get_nondebug_quantized_model()`` (int8 input and output, as today's int8 artifact). ONNX goes through
ONNX Runtime's ``quantize_static(..., nodes_to_exclude=[...])``. Every candidate runs through the device's own
runtime (``edgekit.runtime.backends.open_runner``), never through TensorFlow.

The held-out images are never the calibration images and, for MNIST, never the test split ``validate``
measures on: ``holdout_images`` draws them class-balanced from the training split, excluding the calibration set.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgekit.runtime.errors import ExportError, OptionsError

HOLDOUT_IMAGES = 1000  # held-out images the drop is measured on: one image is 0.1 point
HOLDOUT_SEED = 1  # calibration draws with seed 0
RANKING_IMAGES = 200  # NNCF's ranking subset (its default is 300): the held-out images int8 moves most
LATENCY_RUNS = 200  # single-image calls per artifact for the speed cost
MAX_DROP_LIMIT = 100.0
# Ops that carry no arithmetic of their own: never a unit, never denylisted.
BOOKKEEPING = {"SHAPE", "STRIDED_SLICE", "PACK", "QUANTIZE", "DEQUANTIZE", "Shape", "Gather", "Unsqueeze",
               "Concat", "Constant", "Cast", "Slice", "QuantizeLinear", "DequantizeLinear"}
# Ops whose int8 output shares its input's scale: a unit extends through them to the next consumers.
# ONNX Runtime's QDQ quantizer gives a Relu its input's range too (it folds it into the op before).
SCALE_SHARING = {"MAX_POOL_2D", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE",
                 "MaxPool", "Reshape", "Squeeze", "Transpose", "Flatten", "Relu"}


def check_max_drop(value) -> float | None:
    """``--max-drop``: None (off) or a finite number of points from 0 to 100."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_DROP_LIMIT:
        raise OptionsError(f"--max-drop must be a number of accuracy points from 0 to {MAX_DROP_LIMIT:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Unit:
    """What is kept float together: the ops' names as the quantizer takes them, and the Keras layers they come from."""

    name: str  # the producing op's layer, what the report calls the unit
    nodes: tuple[str, ...]  # TFLite: the ops' output tensor names (denylisted_nodes); ONNX: node names
    layers: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    """One candidate the search measured."""

    unit: str
    float_layers: list[str]
    drop: float  # points lost against the float model on the held-out images
    error: float  # mean sum |p - p_float|
    accepted: bool


@dataclass
class SelectiveReport:
    """What ``--max-drop`` did to one int8 artifact: the metadata's and the manifest's ``selective`` entry."""

    max_drop: float
    holdout_images: int
    float_accuracy: float  # % on the held-out images
    drop_int8: float  # points lost by the full int8 artifact
    drop: float  # points lost by the artifact written
    met: bool
    float_layers: list[str] = field(default_factory=list)  # the Keras layers kept in float, in graph order
    float_nodes: list[str] = field(default_factory=list)  # what the quantizer was told to leave alone
    ranking: list[dict] = field(default_factory=list)  # [{"unit", "layers", "score"}], most sensitive first
    steps: list[Step] = field(default_factory=list)
    bytes_int8: int = 0
    bytes: int = 0
    latency_ms_int8: float | None = None  # p50 of one-image calls on the export machine
    latency_ms: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("float_accuracy", "drop_int8", "drop"):
            d[k] = round(d[k], 3)
        for k in ("latency_ms_int8", "latency_ms"):
            d[k] = None if d[k] is None else round(d[k], 4)
        d["ranking"] = [{**r, "score": round(r["score"], 5)} for r in d["ranking"]]
        d["steps"] = [{**s, "drop": round(s["drop"], 3), "error": round(s["error"], 5)} for s in d["steps"]]
        d["seconds"] = round(self.seconds, 2)
        return d


def summary(d: dict) -> str:
    """One line for the CLI from a report's ``to_dict()`` (the manifest's ``selective`` entry)."""
    budget = f"{d['holdout_images']} held-out images, budget {d['max_drop']:g}"
    if not d["float_layers"]:
        return f"every layer int8: {d['drop_int8']:.2f} point(s) lost ({budget})"
    size = (d["bytes"] - d["bytes_int8"]) / 1e6
    speed = (f", latency {d['latency_ms_int8']:.3f} -> {d['latency_ms']:.3f} ms/image"
             if d.get("latency_ms") and d.get("latency_ms_int8") else "")
    return (f"kept float: {', '.join(d['float_layers'])}; drop {d['drop_int8']:.2f} -> {d['drop']:.2f} point(s) "
            f"({budget}); size {size:+.2f} MB{speed}")


# --- the search, format-agnostic ----------------------------------------------------------------------

def search(baseline: bytes, quantize: Callable[[Sequence[str]], bytes], find_units: Callable[[], list[Unit]], suffix: str,
           reference: np.ndarray, x: np.ndarray, y: np.ndarray, max_drop: float, workdir: Path) -> tuple[bytes, SelectiveReport]:
    """Keep units float until the artifact loses at most ``max_drop`` points against ``reference`` (the float
    model's probabilities on ``x``); ``baseline`` is the full int8 artifact, ``quantize(nodes)`` the artifact
    with ``nodes`` kept float, ``find_units()`` the candidates (asked for only when ``baseline`` is over the
    budget). Returns the artifact chosen and the report; ExportError if even every unit float
    stays over the budget."""
    start = time.perf_counter()
    y = np.asarray(y).astype(np.int64).ravel()
    float_accuracy = 100.0 * float(np.mean(reference.argmax(1) == y))
    probe = Path(workdir) / f"selective-probe{suffix}"

    def outputs(flat: bytes, rows=slice(None)) -> np.ndarray:
        return _probabilities(flat, probe, x[rows])

    def drop_and_error(p: np.ndarray) -> tuple[float, float]:
        return float_accuracy - 100.0 * float(np.mean(p.argmax(1) == y)), float(np.abs(p - reference).sum(1).mean())

    p0 = outputs(baseline)
    drop0, error0 = drop_and_error(p0)
    report = SelectiveReport(max_drop, len(x), float_accuracy, drop0, drop0, drop0 <= max_drop, bytes_int8=len(baseline),
                             bytes=len(baseline))
    if report.met:
        report.seconds = time.perf_counter() - start
        return baseline, report

    # Ranked on NNCF's ranking subset: the images the full int8 artifact moves most (each unit is one more
    # conversion and one more run: the subset keeps a ranking of a dozen units to seconds).
    per_image = np.abs(p0 - reference).sum(1)
    rows = np.sort(np.argsort(-per_image, kind="stable")[:RANKING_IMAGES])
    ranked_error0 = float(per_image[rows].mean())
    units = find_units()
    scores = []
    for unit in units:  # sensitivity: how much keeping this unit alone in float lowers the output error
        p = outputs(quantize(unit.nodes), rows)
        scores.append(ranked_error0 - float(np.abs(p - reference[rows]).sum(1).mean()))
    order = sorted(range(len(units)), key=lambda i: -scores[i])
    report.ranking = [{"unit": units[i].name, "layers": list(units[i].layers), "score": scores[i]} for i in order]

    kept: list[Unit] = []
    best, best_drop, best_error = baseline, drop0, error0
    for i in order:
        trial = [*kept, units[i]]
        flat = quantize(_nodes(trial))
        drop, error = drop_and_error(outputs(flat))
        accepted = error <= best_error
        report.steps.append(Step(units[i].name, _layers(trial), drop, error, accepted))
        if accepted:
            kept, best, best_drop, best_error = trial, flat, drop, error
            if drop <= max_drop:
                break
    report.drop, report.met = best_drop, best_drop <= max_drop
    report.float_layers, report.float_nodes, report.bytes = _layers(kept), list(_nodes(kept)), len(best)
    if not report.met:
        raise ExportError(f"int8 cannot get within --max-drop {max_drop:g}: {best_drop:.2f} point(s) lost on {len(x)} "
                          f"held-out images with {len(report.float_layers)} layer(s) kept float (full int8: "
                          f"{drop0:.2f}); raise --max-drop or export float16; nothing was written")
    report.latency_ms_int8 = _latency(baseline, probe, x)
    report.latency_ms = _latency(best, probe, x)
    report.seconds = time.perf_counter() - start
    return best, report


def _nodes(units: list[Unit]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for u in units for n in u.nodes))


def _layers(units: list[Unit]) -> list[str]:
    return list(dict.fromkeys(layer for u in units for layer in u.layers))


def _probabilities(flat: bytes, probe: Path, x: np.ndarray) -> np.ndarray:
    from edgekit.runtime.backends import open_runner

    probe.write_bytes(flat)
    return open_runner(probe).run(x)


def _latency(flat: bytes, probe: Path, x: np.ndarray) -> float:
    from edgekit.export.measure import single_latency
    from edgekit.runtime.backends import open_runner

    probe.write_bytes(flat)
    runner = open_runner(probe)
    p50, _ = single_latency(runner.run, x, LATENCY_RUNS)
    return p50


def units_of(ops: list[tuple[str, str, list[str], list[str]]], layer_of: Callable[[str, str], str]) -> list[Unit]:
    """The units of a graph given as ``(op type, node name, input tensors, output tensors)`` in execution order:
    each compute op with every op reading its output, through the scale-sharing ops (module docstring)."""
    readers: dict[str, list[int]] = {}
    for k, (_, _, inputs, _) in enumerate(ops):
        for t in inputs:
            readers.setdefault(t, []).append(k)
    units = []
    for k, (kind, node, _, outputs) in enumerate(ops):
        if kind in BOOKKEEPING or kind in SCALE_SHARING:
            continue
        members, frontier = [k], list(outputs)
        while frontier:
            for r in readers.get(frontier.pop(), []):
                if ops[r][0] in BOOKKEEPING or r in members:
                    continue
                members.append(r)
                if ops[r][0] in SCALE_SHARING:
                    frontier += ops[r][3]
        members.sort()
        units.append(Unit(layer_of(kind, node), tuple(ops[m][1] for m in members),
                          tuple(dict.fromkeys(layer_of(ops[m][0], ops[m][1]) for m in members))))
    return units


# --- held-out images ------------------------------------------------------------------------------------

def holdout_images(x_train: np.ndarray, y_train: np.ndarray, calibration: np.ndarray | None,
                   n: int = HOLDOUT_IMAGES, to_input=None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` class-balanced training images (model input) and labels, none of them a calibration image.
    ``to_input`` turns uint8 images into model input (default: the digit model's ``contract.to_model_input``)."""
    from edgekit.runtime.contract import to_model_input

    to_model_input = to_input or to_model_input

    taken = {img.tobytes() for img in calibration} if calibration is not None else set()
    rng = np.random.default_rng(HOLDOUT_SEED)
    classes = np.unique(y_train)
    picks: list[int] = []
    for k, c in enumerate(classes):
        want = n // len(classes) + (1 if k < n % len(classes) else 0)
        chosen = []
        for i in rng.permutation(np.flatnonzero(y_train == c)):
            if len(chosen) == want:
                break
            if to_model_input(x_train[i : i + 1])[0].tobytes() not in taken:
                chosen.append(int(i))
        picks += chosen
    index = np.sort(np.array(picks, dtype=np.int64))
    return to_model_input(x_train[index]), np.asarray(y_train[index])


def load_holdout(data, calibration: np.ndarray | None, n: int = HOLDOUT_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's held-out images for ``--max-drop`` (``--data`` / ``$EDGEKIT_DATA`` / Keras' cache)."""
    from edgekit.export.data import load_mnist

    mnist = load_mnist(data)
    return holdout_images(mnist.x_train, mnist.y_train, calibration, n)


# --- TFLite -------------------------------------------------------------------------------------------------

def tflite_within(model, baseline: bytes, context, x: np.ndarray, y: np.ndarray, max_drop: float) -> tuple[bytes, SelectiveReport]:
    """The int8 TFLite flatbuffer of ``model`` within ``max_drop`` points of the float model on (``x``, ``y``):
    ``baseline`` (today's full int8 conversion) if it already is, else the selective one. No edgekit metadata."""
    quantizer = _TFLiteQuantizer(model, context)
    return search(baseline, quantizer.quantize, quantizer.units, ".tflite", _keras_probabilities(model, x), x, y,
                  max_drop, Path(context.workdir))


class _TFLiteQuantizer:
    """The converter's selective quantization: one ``QuantizationDebugger`` (calibrated once, on the calibration
    images, with today's int8 converter settings), asked for one int8 model per denylist."""

    def __init__(self, model, context):
        self.model, self.context, self._debugger = model, context, None

    @property
    def debugger(self):
        if self._debugger is None:
            import tensorflow as tf

            from edgekit.export.calibration import calibration_batches
            from edgekit.export.tflite import saved_model

            images = self.context.calibration

            def representative():
                for batch in calibration_batches(images):
                    yield [batch]

            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model(self.model, self.context))
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            # Float kernels for the layers kept float; int8 input and output as today's (fully_quantize=True).
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            self._debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative)
        return self._debugger

    def quantize(self, nodes: Sequence[str]) -> bytes:
        import tensorflow as tf

        debugger = self.debugger
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(nodes), fully_quantize=True)
        return bytes(debugger.get_nondebug_quantized_model())

    def units(self) -> list[Unit]:
        return tflite_units(bytes(self.debugger.calibrated_model))


def tflite_units(calibrated: bytes) -> list[Unit]:
    """The units of a calibrated (still float) TFLite graph; nodes are the ops' output tensor names."""
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.export.layer_error import layer_name

    interp = Interpreter(model_content=calibrated)
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    ops = []
    for op in interp._get_ops_details():  # the public API has no op list; QuantizationDebugger reads it too
        outs = [names[int(i)] for i in op["outputs"]]
        ops.append((op["op_name"], outs[0] if outs else "", [names[int(i)] for i in op["inputs"] if i >= 0], outs))
    producer_layer = {o: layer_name(node) for kind, node, _, outs in ops for o in outs if kind != "SOFTMAX"}
    softmax_input = {node: inputs[0] for kind, node, inputs, _ in ops if kind == "SOFTMAX" and inputs}

    def layer_of(kind: str, node: str) -> str:
        if kind == "SOFTMAX":
            return f"{producer_layer.get(softmax_input.get(node, ''), 'output')} (softmax)"
        return layer_name(node)

    return units_of(ops, layer_of)


def _keras_probabilities(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)


# --- ONNX ---------------------------------------------------------------------------------------------------

def onnx_within(model, float_proto, baseline, context, x: np.ndarray, y: np.ndarray, max_drop: float):
    """The int8 ONNX model (``onnx.ModelProto``) of ``float_proto`` within ``max_drop`` points of the float model
    on (``x``, ``y``): ``baseline`` (today's full int8) if it already is, else one with ``nodes_to_exclude``."""
    import tempfile

    import onnx

    from edgekit.export.onnx import preprocess, quantize_int8

    workdir = Path(tempfile.mkdtemp(prefix="selective-", dir=context.workdir))  # goes with the staging folder
    pre = None

    def find_units() -> list[Unit]:
        nonlocal pre
        pre = preprocess(float_proto, workdir)  # once: every candidate is quantized from it
        return onnx_units(onnx.load(str(pre)))

    def quantize(nodes: Sequence[str]) -> bytes:
        return quantize_int8(float_proto, context.calibration, workdir, exclude=nodes, preprocessed=pre).SerializeToString()

    flat, report = search(baseline.SerializeToString(), quantize, find_units, ".onnx", _keras_probabilities(model, x),
                          x, y, max_drop, Path(context.workdir))
    return onnx.load_model_from_string(flat), report


def onnx_units(proto) -> list[Unit]:
    """The units of a (pre-processed, float) ONNX graph; nodes are node names (``nodes_to_exclude``)."""
    from edgekit.export.layer_error import layer_name

    ops = [(n.op_type, n.name, [i for i in n.input if i], list(n.output)) for n in proto.graph.node]
    producer = {o: name for _, name, _, outs in ops for o in outs}
    named: dict[str, str] = {}
    for kind, name, inputs, _ in ops:  # tf2onnx's own nodes (Conv__81) are named after the layer they follow
        if "/" in name:
            named[name] = layer_name(name) + (" (softmax)" if kind == "Softmax" else "")
        else:
            before = next((named[producer[i]] for i in inputs if producer.get(i) in named), "input")
            named[name] = f"{name} (after {before})"
    return units_of(ops, lambda kind, name: named[name])
