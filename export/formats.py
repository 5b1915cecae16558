"""The one declarative format table, and the option checking done against it before any work starts.

Every (format, quantization) pair edgekit can produce is listed here once: the file suffix, which
quantizations the format accepts, and which of them ``--format NAME`` gives without ``--quantize``.
A typo gets the nearest valid name (``difflib``); an unsupported combination is refused with the list of
valid ones. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Sequence

from edgekit.runtime.errors import OptionsError

ALL = "all"


class Quantization(str, Enum):
    """How the weights (and, for int8, the activations and the model's input/output) are stored."""

    NONE = "none"  # float32 throughout
    FLOAT16 = "float16"  # float16 weights, float32 compute and input/output
    DYNAMIC = "dynamic"  # int8 weights, float activations quantized on the fly; float32 input/output
    INT8 = "int8"  # full integer: int8 weights and activations, calibrated on training images

    @property
    def file_tag(self) -> str:
        """The part of the artifact's file name: ``model_<tag><suffix>``."""
        return "float32" if self is Quantization.NONE else self.value


@dataclass(frozen=True)
class Format:
    """One row of the format table."""

    name: str  # what --format takes
    suffix: str  # the artifact's file suffix
    quantizations: tuple[Quantization, ...]  # every quantization this format accepts
    defaults: tuple[Quantization, ...]  # what --format NAME gives without --quantize
    description: str
    fold_bn: tuple[Quantization, ...] = ()  # exported from the BN-folded rewrite (export/fold.py) unless --no-fold

    def artifact_name(self, quantization: Quantization) -> str:
        return f"model_{quantization.file_tag}{self.suffix}"


Q = Quantization
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("tflite", ".tflite", (Q.NONE, Q.FLOAT16, Q.DYNAMIC, Q.INT8), (Q.NONE, Q.INT8),
               "TensorFlow Lite flatbuffer, run by LiteRT", fold_bn=(Q.DYNAMIC, Q.INT8)),
        Format("onnx", ".onnx", (Q.NONE, Q.INT8), (Q.NONE,),
               "ONNX via tf2onnx (int8: ONNX Runtime static QDQ, per-channel), run by ONNX Runtime", fold_bn=(Q.INT8,)),
    )
}


@dataclass(frozen=True)
class Target:
    """One artifact to produce."""

    format: Format
    quantization: Quantization

    @property
    def file(self) -> str:
        return self.format.artifact_name(self.quantization)

    @property
    def fold_bn(self) -> bool:
        """Whether this artifact is exported from the BN-folded rewrite (when the option is on)."""
        return self.quantization in self.format.fold_bn

    def __str__(self) -> str:
        return f"{self.format.name}/{self.quantization.value}"


def valid_pairs() -> list[str]:
    return [str(Target(f, q)) for f in FORMATS.values() for q in f.quantizations]


DEFAULT_FORMATS = ("tflite",)  # what `edgekit export` and export_model produce when no format is named

# Other spellings people type for a quantization (the file names say float32, so --quantize float32 works).
ALIASES = {"float32": "none", "fp32": "none", "fp16": "float16", "dynamic-range": "dynamic", "full-int8": "int8"}


def _pick(value: str, choices: Sequence[str], option: str) -> str:
    v = str(value).strip().lower()
    if option == "quantization":
        v = ALIASES.get(v, v)
    if v in choices:
        return v
    close = difflib.get_close_matches(v, choices, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise OptionsError(f"unknown {option} '{value}'; {hint}valid: {', '.join(choices)}")


def plan(formats: Iterable[str] | str = DEFAULT_FORMATS, quantizations: Iterable[str] | str | None = None) -> list[Target]:
    """Check the options against the table and return the artifacts to produce: formats in the order given
    (table order for ``all``), each format's quantizations in table order.

    - ``formats``: names from the table, or ``all``.
    - ``quantizations``: None means each named format's defaults (``all`` means every quantization of every
      format). Given explicitly, every named format must accept every given quantization, otherwise the
      combination is refused with the list of valid ones; with ``all``, each quantization goes to the formats
      that accept it (and must be accepted by at least one).
    """
    # Read each argument once: a generator would be empty on a second pass (and the plan with it).
    formats = [formats] if isinstance(formats, str) else list(formats)
    if quantizations is not None:
        quantizations = [quantizations] if isinstance(quantizations, str) else list(quantizations)
    names = [_pick(f, [*FORMATS, ALL], "format") for f in formats] or list(DEFAULT_FORMATS)
    everything = ALL in names
    chosen = list(FORMATS.values()) if everything else [FORMATS[n] for n in dict.fromkeys(names)]
    qs = None
    if quantizations:
        qs = [Quantization(_pick(q, [m.value for m in Quantization], "quantization")) for q in quantizations]
        qs = list(dict.fromkeys(qs))

    targets: list[Target] = []
    if qs is None:
        for f in chosen:
            targets += [Target(f, q) for q in (f.quantizations if everything else f.defaults)]
        return targets

    refused = [str(Target(f, q)) for f in chosen for q in qs if q not in f.quantizations]
    if everything:
        refused = [q.value for q in qs if not any(q in f.quantizations for f in chosen)]
    if refused:
        raise OptionsError(
            f"unsupported combination {', '.join(refused)}; valid format/quantization pairs: {', '.join(valid_pairs())}"
        )
    for f in chosen:
        targets += [Target(f, q) for q in f.quantizations if q in qs]
    return targets
