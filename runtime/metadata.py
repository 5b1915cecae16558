"""Read the edgekit metadata embedded in an exported model, without TensorFlow and without the onnx package.

- ``.tflite``: an entry named ``edgekit`` in the flatbuffer's ``Model.metadata`` points at a buffer holding
  UTF-8 JSON. The flatbuffer is walked by hand below (a few dozen lines of ``struct``), so this needs neither
  TensorFlow nor tflite-support nor generated schema code.
- ``.onnx``: the ``metadata_props`` key ``edgekit`` holds the same JSON. The ModelProto is walked with a tiny
  protobuf wire-format reader: ``metadata_props`` is field 14 of ModelProto, each a StringStringEntryProto
  (key = 1, value = 2), so the ``onnx`` package is not needed on the device.

``read_metadata(path)`` returns the JSON object, or None when the file is a valid model without edgekit
metadata. A file that is not a model of its suffix raises ``ModelLoadError``. ``model_info(path)`` is what
``edgekit info`` prints: the metadata plus the file's size and sha256.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from edgekit.runtime.errors import ModelLoadError

METADATA_KEY = "edgekit"
TFLITE_IDENTIFIER = b"TFL3"

# TFLite schema field indices (tensorflow/compiler/mlir/lite/schema/schema.fbs).
_MODEL_BUFFERS = 4  # Model.buffers: [Buffer]
_MODEL_METADATA = 6  # Model.metadata: [Metadata]
_METADATA_NAME = 0  # Metadata.name: string
_METADATA_BUFFER = 1  # Metadata.buffer: uint32
_BUFFER_DATA = 0  # Buffer.data: [ubyte]
_BUFFER_OFFSET = 1  # Buffer.offset: uint64 (models > 2 GB keep data after the flatbuffer)
_BUFFER_SIZE = 2  # Buffer.size: uint64

_ONNX_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The edgekit metadata of a ``.tflite`` or ``.onnx`` file, or None if it carries none."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read the model ({e.strerror or e})") from None
    return metadata_from_bytes(data, path.suffix.lower(), name=str(path))


def edgekit_version() -> str:
    """The installed edgekit's version, recorded in what edgekit writes ("0+unknown" from a plain checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgekit")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "0+unknown"


def model_info(path: str | os.PathLike) -> dict:
    """What a model file is, from its bytes and its embedded metadata alone (no backend, no TensorFlow):
    {"path", "bytes", "sha256", "format", "metadata" (the JSON object, or None)}."""
    path = Path(path)
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a folder; pass a model file (.tflite or .onnx)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read the model ({e.strerror or e})") from None
    if not data:
        raise ModelLoadError(f"{path}: the file is empty; export the model again with edgekit export")
    meta = metadata_from_bytes(data, path.suffix.lower(), name=str(path))
    import hashlib  # here, not at the top: it maps OpenSSL (about 4 MB resident), and only `info` hashes

    return {
        "path": str(path),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": (meta or {}).get("format") or path.suffix.lower().lstrip("."),
        "metadata": meta,
    }


def metadata_from_bytes(data: bytes, suffix: str, name: str = "model") -> dict | None:
    """Like ``read_metadata`` for bytes already in memory; ``suffix`` is ``.tflite`` or ``.onnx``."""
    if suffix == ".tflite":
        raw = _tflite_metadata(data, name)
    elif suffix == ".onnx":
        raw = _onnx_metadata(data, name)
    else:
        raise ModelLoadError(f"{name}: unknown model format '{suffix}'; edgekit reads .tflite and .onnx files")
    if raw is None:
        return None
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelLoadError(f"{name}: the '{METADATA_KEY}' metadata is not valid UTF-8 JSON; re-export the model") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{name}: the '{METADATA_KEY}' metadata is not a JSON object; re-export the model")
    return value


# --- TFLite: a minimal flatbuffer walk -----------------------------------------------------------------

class _Flat:
    def __init__(self, buf: bytes, name: str):
        self.buf, self.name = buf, name

    def _bad(self) -> ModelLoadError:
        return ModelLoadError(f"{self.name}: not a valid TFLite flatbuffer (truncated or corrupt)")

    def u32(self, pos: int) -> int:
        if pos < 0 or pos + 4 > len(self.buf):
            raise self._bad()
        return struct.unpack_from("<I", self.buf, pos)[0]

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``, or None if absent."""
        vtable = table - struct.unpack_from("<i", self.buf, table)[0] if 0 <= table <= len(self.buf) - 4 else -1
        if vtable < 0 or vtable + 4 > len(self.buf):
            raise self._bad()
        vt_size = struct.unpack_from("<H", self.buf, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        if vtable + slot + 2 > len(self.buf):
            raise self._bad()
        off = struct.unpack_from("<H", self.buf, vtable + slot)[0]
        if off and table + off >= len(self.buf):
            raise self._bad()
        return table + off if off else None

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, pos: int) -> tuple[int, int]:
        """(start, length) of the vector referenced at ``pos``."""
        start = self.deref(pos)
        length = self.u32(start)
        return start + 4, length

    def string(self, pos: int) -> bytes:
        start, length = self.vector(pos)
        if start + length > len(self.buf):
            raise self._bad()
        return self.buf[start:start + length]

    def u64(self, pos: int) -> int:
        if pos + 8 > len(self.buf):
            raise self._bad()
        return struct.unpack_from("<Q", self.buf, pos)[0]


def _tflite_metadata(buf: bytes, name: str) -> bytes | None:
    if len(buf) < 8 or buf[4:8] != TFLITE_IDENTIFIER:
        raise ModelLoadError(f"{name}: not a TFLite model (no 'TFL3' identifier); export it again with edgekit export")
    fb = _Flat(buf, name)
    model = fb.deref(0)
    meta = fb.field(model, _MODEL_METADATA)
    if meta is None:
        return None
    start, count = fb.vector(meta)
    for i in range(count):
        entry = fb.deref(start + 4 * i)
        name_pos = fb.field(entry, _METADATA_NAME)
        if name_pos is None or fb.string(name_pos) != METADATA_KEY.encode():
            continue
        buf_pos = fb.field(entry, _METADATA_BUFFER)
        index = fb.u32(buf_pos) if buf_pos is not None else 0
        buffers = fb.field(model, _MODEL_BUFFERS)
        if buffers is None:
            raise fb._bad()
        bstart, bcount = fb.vector(buffers)
        if index >= bcount:
            raise fb._bad()
        buffer = fb.deref(bstart + 4 * index)
        data = fb.field(buffer, _BUFFER_DATA)
        if data is not None:
            return fb.string(data)
        off, size = fb.field(buffer, _BUFFER_OFFSET), fb.field(buffer, _BUFFER_SIZE)
        if off is None or size is None:
            return b""
        o, n = fb.u64(off), fb.u64(size)
        if o + n > len(buf):
            raise fb._bad()
        return buf[o:o + n]
    return None


# --- ONNX: a minimal protobuf wire-format walk ---------------------------------------------------------

def _varint(buf: bytes, pos: int, name: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ModelLoadError(f"{name}: not a valid ONNX model (truncated or corrupt protobuf)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, name: str, start: int = 0, end: int | None = None):
    """Yield (field_number, wire_type, value) where value is an int or, for length-delimited, (start, end)."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos, name)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, name)
        elif wire == 1:
            value, pos = pos, pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos, name)
            value, pos = (pos, pos + length), pos + length
        elif wire == 5:
            value, pos = pos, pos + 4
        else:
            raise ModelLoadError(f"{name}: not a valid ONNX model (unexpected protobuf wire type {wire})")
        if pos > end or number == 0:
            raise ModelLoadError(f"{name}: not a valid ONNX model (truncated or corrupt protobuf)")
        yield number, wire, value


def _onnx_metadata(buf: bytes, name: str) -> bytes | None:
    found = None
    seen_graph = False
    for number, wire, value in _fields(buf, name):
        if number == 7 and wire == 2:  # ModelProto.graph
            seen_graph = True
        if number == _ONNX_METADATA_PROPS and wire == 2:
            key = val = None
            for n, w, v in _fields(buf, name, *value):
                if w == 2 and n == 1:
                    key = buf[v[0]:v[1]]
                elif w == 2 and n == 2:
                    val = buf[v[0]:v[1]]
            if key == METADATA_KEY.encode():
                found = val if val is not None else b""
    if not seen_graph:
        raise ModelLoadError(f"{name}: not a valid ONNX model (no graph); export it again with edgekit export")
    return found
