"""Which arithmetic training uses: float32, or Keras' mixed bfloat16 where the hardware runs it natively.

    precision = choose("auto")          # Precision(requested='auto', used='bfloat16', why='CPU has avx512_bf16, amx_bf16')

Mixed bfloat16 keeps the variables in float32 and computes in bfloat16: on a CPU with ``avx512_bf16`` or
``amx_bf16`` (or a GPU of compute capability 8.0 or newer) a training step of the seed CNN takes about half
the float32 time. Elsewhere bfloat16 is emulated and slower than float32, so ``auto`` never picks it blind.
Whatever trained a model, what training saves is float32 (see ``float32_copy``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgekit.runtime.errors import OptionsError

PRECISIONS = ("auto", "float32", "bfloat16")
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
CPUINFO_ENV = "EDGEKIT_CPUINFO"  # read the CPU flags from this file instead (to see what another machine would pick)


@dataclass(frozen=True)
class Precision:
    requested: str
    """What was asked for: ``auto``, ``float32`` or ``bfloat16``."""
    used: str
    """What trains: ``float32`` or ``bfloat16``."""
    why: str
    """One line: the hardware facts behind ``used``."""
    native: bool = True
    """False when bfloat16 was forced on hardware that only emulates it (slower than float32)."""

    @property
    def keras_policy(self) -> str:
        return "mixed_bfloat16" if self.used == "bfloat16" else "float32"

    def to_json(self) -> dict:
        return {"requested": self.requested, "used": self.used, "why": self.why, "native": self.native}

    @classmethod
    def from_json(cls, d: dict | None) -> "Precision":
        if not d:  # a run from before precision was recorded trained in float32
            return cls("float32", "float32", "recorded before edgekit chose a precision")
        return cls(**d)


def cpu_bf16_flags(cpuinfo: str) -> list[str]:
    """The native-bfloat16 flags (``avx512_bf16``, ``amx_bf16``) on the ``flags`` lines of /proc/cpuinfo text."""
    found: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            found.update(f for f in value.split() if f in NATIVE_BF16_CPU_FLAGS)
    return [f for f in NATIVE_BF16_CPU_FLAGS if f in found]


def read_cpuinfo() -> str:
    path = Path(os.environ.get(CPUINFO_ENV) or CPUINFO)
    try:
        return path.read_text(errors="replace")
    except OSError:  # not Linux, or no /proc: no flags known
        return ""


def gpu_bf16() -> str | None:
    """The name of a visible GPU that computes bfloat16 natively (compute capability 8.0+), else None."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if tuple(details.get("compute_capability") or (0, 0)) >= (8, 0):
            return details.get("device_name") or gpu.name
    return None


def choose(requested: str, cpuinfo: str | None = None, gpu: str | None | bool = False) -> Precision:
    """Resolve ``requested`` (auto/float32/bfloat16) for this machine.

    ``cpuinfo``: /proc/cpuinfo text (default: read it). ``gpu``: the name of a bfloat16-capable GPU, None for
    none, or False (the default) to ask TensorFlow — only when the CPU flags do not settle it.
    """
    if requested not in PRECISIONS:
        raise OptionsError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested == "float32":
        return Precision(requested, "float32", "asked for")
    flags = cpu_bf16_flags(read_cpuinfo() if cpuinfo is None else cpuinfo)
    if flags:
        return Precision(requested, "bfloat16", f"CPU has {', '.join(flags)}")
    device = gpu_bf16() if gpu is False else gpu
    if device:
        return Precision(requested, "bfloat16", f"GPU {device} computes bfloat16")
    none = f"no {'/'.join(NATIVE_BF16_CPU_FLAGS)} CPU flag and no bfloat16 GPU"
    if requested == "auto":
        return Precision(requested, "float32", f"{none}: bfloat16 would be emulated, slower than float32")
    return Precision(requested, "bfloat16", f"asked for, but {none}: emulated, slower than float32", native=False)


def float32_copy(model):
    """The same model with every layer's dtype policy float32, Keras' own layers and the same weights: what gets
    saved and exported (a model built under mixed_bfloat16 keeps that policy in its config, and an export would
    inherit its casts; training's fused BatchNormalization becomes Keras' BatchNormalization)."""
    import keras

    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] != "InputLayer":
            layer["config"]["dtype"] = "float32"
        if layer["class_name"] == "TrainingBatchNormalization":  # training's fused kernel: Keras' own layer
            layer.update(module="keras.layers", class_name="BatchNormalization", registered_name=None)
    copy = keras.Sequential.from_config(config)
    copy.set_weights(model.get_weights())
    return copy
