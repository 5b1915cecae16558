"""ONNX through tf2onnx (float32), and int8 through ONNX Runtime's static quantization (QDQ, per-channel).

Under Keras 3 ``tf2onnx.convert.from_keras`` fails, so the model is wrapped in a ``tf.function`` with an
explicit input signature ``image: float32 [N, 28, 28, 1]`` (dynamic batch) whose output is named
``probabilities``. The int8 model is calibrated with the same training images as the TFLite int8 export; its
input and output stay float32 (QuantizeLinear/DequantizeLinear pairs inside). Every artifact passes
``onnx.checker.check_model`` and is loaded by ONNX Runtime before it counts as written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgekit.export import metadata
from edgekit.export.formats import Quantization
from edgekit.export.manifest import write_atomic
from edgekit.export.options import ExportContext
from edgekit.runtime import contract

FORMAT = "onnx"
CALIB_BATCH = 50  # calibration images per ONNX Runtime run (MinMax: global min/max)


def convert_float(model, opset: int):
    """The float32 ``onnx.ModelProto`` with input ``image`` [N,28,28,1] and output ``probabilities`` [N,10]."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *contract.INPUT_SHAPE), tf.float32, name=contract.INPUT_NAME),)

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


def quantize_int8(proto, images: np.ndarray, workdir: Path):
    """Static QDQ int8 (per-channel weights, int8 activations) calibrated on ``images``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(images[i:i + CALIB_BATCH] for i in range(0, len(images), CALIB_BATCH))

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {contract.INPUT_NAME: batch}

    src, pre, dst = workdir / "float.onnx", workdir / "pre.onnx", workdir / "int8.onnx"
    onnx.save(proto, str(src))
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
    quantize_static(
        str(pre), str(dst), Reader(),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
    )
    return onnx.load(str(dst))


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
    with tempfile.TemporaryDirectory(prefix="onnx-", dir=context.workdir or out.parent) as tmp:
        if quantization is Quantization.INT8:
            proto = quantize_int8(proto, context.calibration, Path(tmp))
        probe = Path(tmp) / "probe.onnx"
        onnx.save(proto, str(probe))
        inputs, outputs = describe(probe)
    metadata.embed_onnx(proto, metadata.build(FORMAT, quantization, inputs, outputs, context.source_sha256,
                                                  context.rewrites, training=context.training))
    onnx.checker.check_model(proto, full_check=True)
    write_atomic(out, proto.SerializeToString())
    return describe(out)
