"""Write the edgekit metadata into an artifact (the reader, TF-free, is ``edgekit.runtime.metadata``).

The same JSON object goes into every artifact:

- TFLite: an entry named ``edgekit`` in the flatbuffer's ``Model.metadata``, pointing at a new buffer that
  holds the UTF-8 JSON. Written with TensorFlow's own flatbuffer object API (``tensorflow.lite.tools.
  flatbuffer_utils``), so no tflite-support is needed.
- ONNX: ``metadata_props`` key ``edgekit``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgekit.export.formats import Quantization
from edgekit.runtime import contract
from edgekit.runtime.metadata import METADATA_KEY, edgekit_version

SCHEMA = 1


def training_facts(model_path: str | os.PathLike) -> dict | None:
    """What the run folder's ``metrics.json`` (beside ``model.keras``) says about the model: recipe, seed,
    epochs and the Keras model's accuracy on the MNIST test set. None when there is no readable metrics.json
    (a model saved by hand): the metadata then simply has no ``training`` entry."""
    try:
        metrics = json.loads((Path(model_path).parent / "metrics.json").read_text(encoding="utf-8"))
        test = metrics["test"]
        facts = {
            "recipe": str(metrics["recipe"]["name"]),
            "seed": metrics.get("seed"),
            "epochs": metrics.get("epochs"),
            "test_accuracy": round(float(test["accuracy"]), 6),
            "test_images": int(test["images"]),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return facts


def build(fmt: str, quantization: Quantization, inputs: list[dict], outputs: list[dict], source_sha256: str,
          rewrites: dict | None = None, *, training: dict | None = None, int8_scheme: dict | None = None,
          input_contract: contract.InputContract = contract.DIGIT) -> dict:
    """The metadata object for one artifact. ``inputs``/``outputs`` are manifest tensor descriptions;
    ``rewrites`` the graph rewrites applied before conversion (``{"bn_fold": {...}}``; empty: the trained graph);
    ``training`` is ``training_facts`` of the source model (omitted when unknown); ``int8_scheme`` how the
    quantizer was set (the ONNX int8 export's 7-bit weights and why), omitted where there is no choice to record;
    ``input_contract`` what the model sees (``contract.InputContract``: the seed CNN's digit contract by default),
    read back by the runtime."""
    inp, out = inputs[0], outputs[0]
    meta = {
        "schema": SCHEMA,
        "edgekit_version": edgekit_version(),
        "format": fmt,
        "quantization": quantization.value,
        "labels": list(input_contract.labels),
        "input": {
            "name": contract.INPUT_NAME,
            "layout": contract.INPUT_LAYOUT,
            "dtype": inp["dtype"],
            **input_contract.to_metadata(),  # shape, scale, offset, channels, color, resize, crop (and polarity)
            "quantization": inp["quantization"],  # the tensor's own (scale, zero_point) when it is int8
        },
        "output": {
            "name": contract.OUTPUT_NAME,
            "shape": [None, input_contract.classes],
            "dtype": out["dtype"],
            "scores": input_contract.scores,  # probabilities, or logits the runtime turns into probabilities
            "quantization": out["quantization"],
        },
        "source_sha256": source_sha256,
        "rewrites": dict(rewrites or {}),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if int8_scheme:
        meta["int8_scheme"] = dict(int8_scheme)
    if training:
        meta["training"] = training  # the Keras model's recipe and test accuracy, from its run's metrics.json
    return meta


def to_json(meta: dict) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"))


def embed_tflite(model: bytes, meta: dict) -> bytes:
    """The flatbuffer with an ``edgekit`` metadata entry (replacing an existing one)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(to_json(meta).encode("utf-8"), dtype=np.uint8)
    obj.buffers = list(obj.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(obj.buffers) - 1
    kept = [m for m in (obj.metadata or []) if (m.name.decode() if isinstance(m.name, bytes) else m.name) != METADATA_KEY]
    obj.metadata = kept + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def embed_onnx(model, meta: dict) -> None:
    """Set ``metadata_props['edgekit']`` on an ``onnx.ModelProto`` in place."""
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    prop = model.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, to_json(meta)
