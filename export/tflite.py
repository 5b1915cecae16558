"""TFLite through the TensorFlow Lite converter: float32, float16, dynamic-range and full-integer int8.

``export(model, out, quantization, context)`` converts, embeds the metadata in the flatbuffer, writes ``out``
and returns the manifest's tensor descriptions, read back from the finished file by LiteRT (so an artifact
LiteRT cannot load never gets written as a success).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.export import metadata
from edgekit.export.calibration import calibration_batches
from edgekit.export.formats import Quantization
from edgekit.export.options import ExportContext
from edgekit.runtime import contract
from edgekit.runtime.files import write_atomic

FORMAT = "tflite"


def saved_model(model, context: ExportContext) -> str:
    """The model as a SavedModel, written once per run and shared by every TFLite export.

    Its one endpoint takes ``image`` [N, H, W, C] (the model's input shape) and returns ``{"probabilities": ...}``, so the .tflite's
    signature reads ``serving_default: image -> probabilities`` (LiteRT's signature runner uses these names).
    """
    key = f"tflite.saved_model:{model.name}"  # the trained model and its BN-folded rewrite each get one
    if key not in context.cache:
        import tempfile

        import keras
        import tensorflow as tf

        folder = tempfile.mkdtemp(prefix="saved_model-", dir=context.workdir)
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serve",
            lambda image: {contract.OUTPUT_NAME: model(image, training=False)},
            input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=contract.INPUT_NAME)],
        )
        # Keras 3 prints the exported signature to stdout; route it to logging for this call only.
        interactive = keras.config.is_interactive_logging_enabled()
        keras.config.disable_interactive_logging()
        try:
            archive.write_out(folder, verbose=False)
        finally:
            if interactive:
                keras.config.enable_interactive_logging()
        context.cache[key] = folder
    return context.cache[key]


def convert(model, quantization: Quantization, context: ExportContext) -> bytes:
    """The bare flatbuffer for ``quantization`` (no edgekit metadata yet)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model(model, context))
    if quantization is Quantization.FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization is Quantization.DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization is Quantization.INT8:
        images = context.calibration

        def representative():  # batches: the ranges are global min/max, the same as one image at a time
            for batch in calibration_batches(images):
                yield [batch]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def describe(model: bytes | Path) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) as the manifest lists them, read by LiteRT from the model."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model)) if isinstance(model, Path) else Interpreter(model_content=model)

    def one(d: dict) -> dict:
        scale, zero = d["quantization"]
        shape = [int(s) if s >= 0 else None for s in d.get("shape_signature", d["shape"])]
        return {
            "name": d["name"],
            "shape": shape,
            "dtype": np.dtype(d["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None,
        }

    return [one(d) for d in interp.get_input_details()], [one(d) for d in interp.get_output_details()]


def export(model, out: Path, quantization: Quantization, context: ExportContext) -> tuple[list[dict], list[dict]]:
    flat = convert(model, quantization, context)
    selective = None
    if quantization is Quantization.INT8 and context.options.max_drop is not None:
        from edgekit.export.selective import tflite_within

        flat, selective = tflite_within(model, flat, context, *context.holdout, context.options.max_drop)
    inputs, outputs = describe(flat)
    meta = metadata.build(FORMAT, quantization, inputs, outputs, context.source_sha256, context.rewrites,
                          training=context.training, input_contract=context.contract)
    if selective is not None:
        meta["selective"] = selective.to_dict()
    write_atomic(out, metadata.embed_tflite(flat, meta))
    return describe(out)
