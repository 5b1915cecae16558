"""Which arithmetic training uses: float32, or Keras' mixed bfloat16 where the hardware runs it natively.

    precision = choose("auto")          # Precision(requested='auto', used='bfloat16', why='CPU has avx512_bf16, amx_bf16')

Mixed bfloat16 keeps the variables in float32 and computes in bfloat16: on a CPU with ``avx512_bf16`` or
``amx_bf16`` (or a GPU of compute capability 8.0 or newer) a training step of the seed CNN takes about half
the float32 time. Elsewhere bfloat16 is emulated and slower than float32, so ``auto`` never picks it blind.
Whatever trained a model, what training saves is float32 (see ``float32_copy``).

On a CPU the flags are not the whole story: TensorFlow computes bfloat16 through oneDNN, and oneDNN can be
turned off (``TF_ENABLE_ONEDNN_OPTS=0``: Eigen emulates bfloat16, a step ~12x a float32 one here) or capped
below the flag's instruction set (``ONEDNN_MAX_CPU_ISA``): ``avx512_bf16`` needs the cap at ``AVX512_CORE_BF16``
or above, ``amx_bf16`` at ``AVX512_CORE_AMX`` or above. Capped at ``AVX512_CORE``/``AVX512_CORE_VNNI`` oneDNN
emulates bfloat16 (~3x a float32 step); capped below ``AVX512_CORE`` it has no bfloat16 convolution at all and
TensorFlow stops at the first one ("could not create a primitive descriptor"), so bfloat16 is refused there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from edgekit.runtime.errors import OptionsError


class PrecisionChoice(str, Enum):
    """What a recipe asks for (``Recipe.precision``, ``edgekit train --precision``); ``choose`` resolves it."""

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"


PRECISIONS = tuple(p.value for p in PrecisionChoice)  # the names, to check a plain string against
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
CPUINFO_ENV = "EDGEKIT_CPUINFO"  # read the CPU flags from this file instead (to see what another machine would pick)

# oneDNN's instruction sets from least to most (its dnnl_cpu_isa_t order), as ONEDNN_MAX_CPU_ISA names them; a name
# oneDNN does not know, ALL, DEFAULT or nothing leaves oneDNN uncapped.
ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
               "AVX512_CORE_BF16", "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16")
ONEDNN_ISA_ALIASES = {"AVX512_CORE_FP16": "AVX10_1_512", "AVX512_CORE_AMX": "AVX10_1_512_AMX",
                      "AVX512_CORE_AMX_FP16": "AVX10_1_512_AMX_FP16"}
FLAG_ISA = {"avx512_bf16": "AVX512_CORE_BF16", "amx_bf16": "AVX10_1_512_AMX"}  # the cap each flag's kernels need
ONEDNN_BF16_FLOOR = "AVX512_CORE"  # below it oneDNN has no bfloat16 convolution: TensorFlow stops at the first one


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


def onednn_cap(env: Mapping[str, str]) -> str | None:
    """oneDNN's instruction-set cap as ``ONEDNN_MAX_CPU_ISA`` (or its older name ``DNNL_MAX_CPU_ISA``) sets it, in
    ONEDNN_ISAS' spelling; None when oneDNN is not capped. oneDNN reads the value in any case."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = env.get(name, "").strip().upper()
        if value:
            value = ONEDNN_ISA_ALIASES.get(value, value)
            return value if value in ONEDNN_ISAS else None
    return None


def onednn_off(env: Mapping[str, str]) -> bool:
    """True when ``TF_ENABLE_ONEDNN_OPTS`` turns TensorFlow's oneDNN kernels off."""
    return env.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false")


def _below(isa: str, floor: str) -> bool:
    return ONEDNN_ISAS.index(isa) < ONEDNN_ISAS.index(floor)


def _cap_name(env: Mapping[str, str]) -> str:
    var = next(n for n in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA") if env.get(n, "").strip())
    return f"oneDNN capped at {env[var].strip().upper()} by {var}"


def onednn_flags(flags: list[str], env: Mapping[str, str]) -> tuple[list[str], str]:
    """The native-bfloat16 ``flags`` oneDNN can use under ``env``'s settings, and when it cannot use them all,
    why not (empty otherwise)."""
    if flags and onednn_off(env):
        return [], f"oneDNN off (TF_ENABLE_ONEDNN_OPTS={env['TF_ENABLE_ONEDNN_OPTS'].strip()})"
    cap = onednn_cap(env)
    usable = [f for f in flags if cap is None or not _below(cap, FLAG_ISA[f])]
    return usable, (_cap_name(env) if usable != flags else "")


def gpu_bf16() -> str | None:
    """The name of a visible GPU that computes bfloat16 natively (compute capability 8.0+), else None."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if tuple(details.get("compute_capability") or (0, 0)) >= (8, 0):
            return details.get("device_name") or gpu.name
    return None


def choose(requested: str, cpuinfo: str | None = None, gpu: str | None | bool = False,
           env: Mapping[str, str] | None = None) -> Precision:
    """Resolve ``requested`` (auto/float32/bfloat16) for this machine.

    ``cpuinfo``: /proc/cpuinfo text (default: read it). ``gpu``: the name of a bfloat16-capable GPU, None for
    none, or False (the default) to ask TensorFlow — only when the CPU does not settle it. ``env``: the
    environment oneDNN reads its settings from (default: this process's). Raises OptionsError for bfloat16
    asked for where oneDNN's cap leaves it no bfloat16 kernels.
    """
    if requested not in PRECISIONS:
        raise OptionsError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested == "float32":
        return Precision(requested, "float32", "asked for")
    env = os.environ if env is None else env
    flags = cpu_bf16_flags(read_cpuinfo() if cpuinfo is None else cpuinfo)
    usable, held = onednn_flags(flags, env)
    if usable:
        return Precision(requested, "bfloat16", f"CPU has {', '.join(usable)}" + (
            f" ({', '.join(f for f in flags if f not in usable)} unused: {held})" if held else ""))
    device = gpu_bf16() if gpu is False else gpu
    if device:
        return Precision(requested, "bfloat16", f"GPU {device} computes bfloat16")
    if held:
        none = f"CPU has {', '.join(flags)} but {held}"
    else:
        none = f"no {'/'.join(NATIVE_BF16_CPU_FLAGS)} CPU flag and no bfloat16 GPU"
    if requested == "auto":
        return Precision(requested, "float32", f"{none}: bfloat16 would be emulated, slower than float32")
    cap = onednn_cap(env)
    if cap and not onednn_off(env) and _below(cap, ONEDNN_BF16_FLOOR):
        raise OptionsError(f"bfloat16 cannot train with {_cap_name(env)}: oneDNN has no bfloat16 convolution "
                           f"below {ONEDNN_BF16_FLOOR}; train in float32, or raise or unset the cap")
    asked = f"asked for; {none}" if held else f"asked for, but {none}"
    return Precision(requested, "bfloat16", f"{asked}: emulated, slower than float32", native=False)


def check_runs(precision: Precision, env: Mapping[str, str] | None = None) -> None:
    """Raise OptionsError where ``precision`` (an earlier run's, being resumed) cannot train here at all."""
    if precision.used == "bfloat16":
        choose("bfloat16", env=env)


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
