"""Inference backends: one small runner per model format, each importing its library only when used.

- ``.tflite``: LiteRT (``ai_edge_litert.interpreter``), or the older ``tflite_runtime`` when that is what the
  device has. Never TensorFlow: a Pi without LiteRT gets a BackendMissingError naming the package.
- ``.onnx``: ONNX Runtime on the CPU.

A runner takes the model's input as float32 (N, 28, 28, 1) in [0, 1] and returns float32 (N, 10); an int8
model is quantized and dequantized with its own tensors' scale and zero point. Everything that does not
change between calls (tensor indices, scales, buffers) is looked up once, so the hot path is a few numpy
ops around the interpreter's invoke.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgekit.runtime.errors import BackendMissingError, ModelLoadError, OptionsError, first_line


def _tflite_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise BackendMissingError(
                "running .tflite models needs LiteRT: pip install ai-edge-litert (or tflite-runtime on older systems)"
            ) from None
    return Interpreter


class TFLiteRunner:
    """A LiteRT interpreter with its input/output tensors and int8 (de)quantization resolved once."""

    format = "tflite"

    def __init__(self, path: Path, threads: int | None = None):
        Interpreter = _tflite_interpreter_class()
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelLoadError(f"{path}: LiteRT cannot load it ({first_line(e, 200)}); re-run `edgekit export`") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(f"{path}: expected one input and one output tensor, found {len(inputs)} and {len(outputs)}")
        i, o = inputs[0], outputs[0]
        self.input_name, self.output_name = i["name"], o["name"]
        self.input_dtype, self.output_dtype = np.dtype(i["dtype"]), np.dtype(o["dtype"])
        self.input_shape = tuple(int(v) for v in i["shape"])
        signature = i.get("shape_signature")
        self.dynamic_batch = signature is not None and len(signature) > 0 and int(signature[0]) == -1
        self._in, self._out = i["index"], o["index"]
        self._batch = self.input_shape[0]
        self.input_quantization = self._qparams(i)
        self.output_quantization = self._qparams(o)
        # Quantized input: round(x / scale + zero_point), saturated, in one OpenCV call (convertScaleAbs
        # saturates to uint8; an int8 tensor is that shifted by 128, i.e. its top bit flipped).
        if self.input_quantization:
            s, z = self.input_quantization
            self._in_alpha = 1.0 / s
            self._in_signed = self.input_dtype == np.int8
            self._in_beta = float(z + (128 if self._in_signed else 0))
            if self.input_dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
                raise ModelLoadError(f"{path}: {self.input_dtype} input tensors are not supported; export int8 or float32")
        # Quantized output: a 256-entry table from the raw byte to (q - zero_point) * scale.
        if self.output_quantization:
            s, z = self.output_quantization
            if self.output_dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
                raise ModelLoadError(f"{path}: {self.output_dtype} output tensors are not supported; export int8 or float32")
            raw = np.arange(256, dtype=np.uint8).view(self.output_dtype).astype(np.float32)
            self._out_table = (raw - np.float32(z)) * np.float32(s)

    @staticmethod
    def _qparams(detail: dict) -> tuple[float, int] | None:
        if np.dtype(detail["dtype"]) not in (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)):
            return None
        scale, zero = detail.get("quantization", (0.0, 0))
        if not scale:
            return None
        return float(scale), int(zero)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        u = cv2.convertScaleAbs(x.reshape(x.shape[0], -1), alpha=self._in_alpha, beta=self._in_beta)
        if self._in_signed:
            np.bitwise_xor(u, 128, out=u)
            return u.view(np.int8).reshape(x.shape)
        return u.reshape(x.shape)

    def _resize(self, n: int) -> None:
        self.interpreter.resize_tensor_input(self._in, [n, *self.input_shape[1:]], strict=False)
        self.interpreter.allocate_tensors()
        self._batch = n

    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, 28, 28, 1) -> float32 (N, 10)."""
        n = x.shape[0]
        if n != self._batch:
            if not self.dynamic_batch and self._batch == 1:
                return np.concatenate([self.run(x[k : k + 1]) for k in range(n)])
            self._resize(n)
        interp = self.interpreter
        interp.set_tensor(self._in, self._quantize(x) if self.input_quantization else x)
        interp.invoke()
        y = interp.get_tensor(self._out)
        if self.output_quantization:
            return np.take(self._out_table, y.view(np.uint8))
        return y if y.dtype == np.float32 else y.astype(np.float32)


class OnnxRunner:
    """An ONNX Runtime CPU session; QDQ-quantized models keep float32 inputs and outputs."""

    format = "onnx"

    def __init__(self, path: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendMissingError("running .onnx models needs ONNX Runtime: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load it ({first_line(e, 200)}); re-run `edgekit export`") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(f"{path}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
        if inputs[0].type not in types:
            raise ModelLoadError(f"{path}: input type {inputs[0].type} is not supported; export a float-input ONNX model")
        self.input_dtype = np.dtype(types[inputs[0].type])
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in inputs[0].shape)
        self.dynamic_batch = self.input_shape[0] == -1
        self.input_quantization = self.output_quantization = None
        self._outputs = [self.output_name]

    def run(self, x: np.ndarray) -> np.ndarray:
        if not self.dynamic_batch and x.shape[0] != self.input_shape[0]:
            return np.concatenate([self.run(x[k : k + 1]) for k in range(x.shape[0])])
        if self.input_dtype != np.float32:
            x = x.astype(self.input_dtype)
        y = self.session.run(self._outputs, {self.input_name: x})[0]
        return y if y.dtype == np.float32 else y.astype(np.float32)


RUNNERS = {".tflite": TFLiteRunner, ".onnx": OnnxRunner}


def open_runner(path: str | os.PathLike, threads: int | None = None) -> TFLiteRunner | OnnxRunner:
    """The runner for a model file, chosen by its suffix; ModelLoadError for a missing or unknown file."""
    path = Path(path)
    runner = RUNNERS.get(path.suffix.lower())
    if runner is None:
        raise ModelLoadError(f"{path}: unknown model format '{path.suffix}'; edgekit runs .tflite and .onnx files")
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file; export one with `edgekit export`")
    if threads is not None and threads < 1:
        raise OptionsError(f"--threads must be at least 1, got {threads}")
    return runner(path, threads)
