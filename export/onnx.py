"""ONNX through tf2onnx (float32), and int8 through ONNX Runtime's static quantization (QDQ, per-channel, 7-bit weights).

Under Keras 3 ``tf2onnx.convert.from_keras`` fails, so the model is wrapped in a ``tf.function`` with an
explicit input signature ``image: float32 [N, 28, 28, 1]`` (dynamic batch) whose output is named
``probabilities``. The int8 model is calibrated with the same training images as the TFLite int8 export; its
input and output stay float32 (QuantizeLinear/DequantizeLinear pairs inside). Every artifact passes
``onnx.checker.check_model`` and is loaded by ONNX Runtime before it counts as written.

Why 7-bit weights (``reduce_range=True``: every weight in [-64, 64]): on an x86-64 without VNNI (AVX2, AVX-512
before Cascade Lake), ONNX Runtime's int8 kernels multiply uint8 activations by int8 weights with ``VPMADDUBSW``,
which adds two products into a saturating int16. With full-range weights a pair reaches 2 x 255 x 127 = 64,770
and clips at 32,767; the same file then answers differently on such a CPU than on one with VNNI or on a Raspberry
Pi (measured under ``qemu-x86_64-static -cpu Haswell``: outputs 18 steps of 1/255 off on 15 of 30 images). With
weights within 64 a pair is at most 2 x 255 x 64 = 32,640: no saturation by construction (ONNX Runtime's
"x86/64 U8S8 Gemm precision" change, #12088, draws the same [-64, 63] line). Measured on the small test model:
the same outputs, to the bit, on the VNNI host and the emulated Haswell (30 images), at 96.14 % on the 10,000
test images against 96.15 % with 8-bit weights (Keras 96.20 %); uint8 weights (U8U8) also agreed, at 96.11 %.
The choice is recorded in the artifact's metadata (``int8_scheme``); docs/export.md has the table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekit.export import metadata
from edgekit.export.calibration import calibration_batches
from edgekit.export.formats import Quantization
from edgekit.export.options import ExportContext
from edgekit.runtime import contract
from edgekit.runtime.files import write_atomic

FORMAT = "onnx"
# The int8 scheme (module docstring: why 7-bit weights), as the metadata records it.
INT8_SCHEME = {"format": "QDQ", "activations": "int8", "weights": "int8", "per_channel": True, "reduce_range": True,
               "weight_range": [-64, 64], "why": "no int16 saturation in x86-64 u8s8 kernels without VNNI"}


def convert_float(model, opset: int):
    """The float32 ``onnx.ModelProto`` with input ``image`` [N, H, W, C] (the model's input shape) and output
    ``probabilities`` [N, classes]."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=contract.INPUT_NAME),)

    @tf.function(input_signature=spec)
    def serve(image):
        return {contract.OUTPUT_NAME: model(image, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    graph = proto.graph
    _rename(graph, graph.input[0].name, contract.INPUT_NAME)
    _rename(graph, graph.output[0].name, contract.OUTPUT_NAME)
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].ClearField("dim_value")
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    proto.producer_name = "edgekit"
    return proto


def _rename(graph, old: str, new: str) -> None:
    if old == new:
        return
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def quantize_int8(proto, images: np.ndarray, workdir: Path, exclude: Sequence[str] = (), preprocessed: Path | None = None):
    """Static QDQ int8 (``INT8_SCHEME``: per-channel 7-bit weights, int8 activations) calibrated on ``images``;
    the nodes named in ``exclude`` (of ``preprocess``'s graph, passed as ``preprocessed`` when already made) stay
    float (``--max-drop``, export/selective.py)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = calibration_batches(images)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {contract.INPUT_NAME: batch}

    pre, dst = preprocessed or preprocess(proto, workdir), workdir / "int8.onnx"
    quantize_static(
        str(pre), str(dst), Reader(),
        quant_format=QuantFormat.QDQ, per_channel=INT8_SCHEME["per_channel"], reduce_range=INT8_SCHEME["reduce_range"],
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude),
    )
    return onnx.load(str(dst))


def preprocess(proto, workdir: Path) -> Path:
    """ONNX Runtime's ``quant_pre_process`` of the float graph (shape inference, fusions): what is quantized."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, pre = workdir / "float.onnx", workdir / "pre.onnx"
    onnx.save(proto, str(src))
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
    return pre


def describe(path: Path) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) as the manifest lists them, read by ONNX Runtime from the file."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    types = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(float16)": "float16"}

    def one(arg) -> dict:
        shape = [d if isinstance(d, int) else None for d in arg.shape]
        return {"name": arg.name, "shape": shape, "dtype": types.get(arg.type, arg.type), "quantization": None}

    return [one(a) for a in session.get_inputs()], [one(a) for a in session.get_outputs()]


def export(model, out: Path, quantization: Quantization, context: ExportContext) -> tuple[list[dict], list[dict]]:
    import onnx

    key = f"onnx.float:{model.name}"  # converted once per model (trained, BN-folded), shared by float32 and int8
    if key not in context.cache:
        context.cache[key] = convert_float(model, context.options.opset).SerializeToString()
    proto = onnx.load_model_from_string(context.cache[key])
    selective = None
    with tempfile.TemporaryDirectory(prefix="onnx-", dir=context.workdir or out.parent) as tmp:
        if quantization is Quantization.INT8:
            float_proto, proto = proto, quantize_int8(proto, context.calibration, Path(tmp))
            if context.options.max_drop is not None:
                from edgekit.export.selective import onnx_within

                proto, selective = onnx_within(model, float_proto, proto, context, *context.holdout,
                                               context.options.max_drop)
        probe = Path(tmp) / "probe.onnx"
        onnx.save(proto, str(probe))
        inputs, outputs = describe(probe)
    scheme = INT8_SCHEME if quantization is Quantization.INT8 else None
    meta = metadata.build(FORMAT, quantization, inputs, outputs, context.source_sha256, context.rewrites,
                          training=context.training, int8_scheme=scheme, input_contract=context.contract)
    if selective is not None:
        meta["selective"] = selective.to_dict()
    metadata.embed_onnx(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    write_atomic(out, proto.SerializeToString())
    return describe(out)
