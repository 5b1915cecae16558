"""Judging an artifact: the thresholds by quantization, and the rules that turn measured figures into a verdict
and its text (the reasons, what each artifact was held to, the table's legend), all from one table.

``export/measure.py`` measures, this module judges, ``export/validation_report.py`` reports;
``export/validate.py`` runs the three in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from edgekit.runtime.errors import OptionsError


@dataclass(frozen=True)
class Thresholds:
    """What an artifact must achieve against the Keras reference, by quantization.

    float32 exports (quantization ``none``) compute what Keras computes, only in another order: they must
    give the same top-1 answer on every image, with probabilities within ``float_max_abs_diff``.
    float16 weights change probabilities by ~1e-3, so an answer may flip on a near-tie: top-1 agreement.
    Dynamic-range and int8 quantization change answers on hard digits in both directions, so what matters
    is the accuracy they lose. 0.15 point is 15 of the 10,000 test images. Since the export folds the
    post-ReLU BatchNormalization (``fold.py``), the dynamic and int8 exports of four trained models (default
    recipe seeds 0-2, full recipe) lose at most 0.01 point (``benchmarks/quantization.py``; docs/quantization.md),
    so 0.15 leaves room for other machines and calibration noise, while the losses the fold removed (0.13-0.39
    point measured) and a broken calibration or a wrong input scale (whole points) fail.
    """

    float_max_abs_diff: float = 1e-4
    """float32 (TFLite, ONNX): the largest |probability difference| to Keras allowed on any image and class."""
    float_min_agreement: float = 100.0
    """float32 (TFLite, ONNX): top-1 agreement with Keras, percent of images."""
    float16_min_agreement: float = 99.95
    """float16: top-1 agreement with Keras, percent of images."""
    quantized_max_drop: float = 0.15
    """dynamic-range and int8: accuracy lost against Keras, percentage points."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise OptionsError(f"threshold {f.name} must be a finite number >= 0, got {value!r}")
        for name in ("float_min_agreement", "float16_min_agreement"):
            if getattr(self, name) > 100:
                raise OptionsError(f"threshold {name} is a percentage, at most 100, got {getattr(self, name)!r}")
        if self.quantized_max_drop > 100:
            raise OptionsError(f"threshold quantized_max_drop is in points, at most 100, got {self.quantized_max_drop!r}")


@dataclass(frozen=True)
class Rule:
    """One check: the measured figure ``metric`` must be ``op`` (">=" or "<=") the Thresholds field ``limit``."""

    metric: str
    op: str
    limit: str

    @property
    def label(self) -> str:
        return METRICS[self.metric][0]

    def passes(self, value: float, limit: float) -> bool:
        return math.isfinite(value) and (value >= limit if self.op == ">=" else value <= limit)

    def text(self, limit: float) -> str:
        """What is required, e.g. ``top-1 agreement ≥ 99.95 %``."""
        return f"{self.label} {'≥' if self.op == '>=' else '≤'} {limit:g}{METRICS[self.metric][1]}"

    def reason(self, value: float, limit: float) -> str:
        """Why it failed, e.g. ``accuracy drop 0.31 points > 0.15``."""
        label, unit, shown = METRICS[self.metric]
        return f"{label} {value:{shown}}{unit} {'<' if self.op == '>=' else '>'} {limit:g}{unit if self.op == '>=' else ''}"


# How each measured figure reads: (label, unit, number format).
METRICS = {
    "agreement": ("top-1 agreement", " %", ".2f"),
    "max_abs_diff": ("max |Δp|", "", ".2g"),
    "accuracy_drop": ("accuracy drop", " points", ".2f"),
}

# One small table: which measured figures each quantization is judged by, against which threshold.
RULES: dict[str, tuple[Rule, ...]] = {
    "none": (Rule("agreement", ">=", "float_min_agreement"), Rule("max_abs_diff", "<=", "float_max_abs_diff")),
    "float16": (Rule("agreement", ">=", "float16_min_agreement"),),
    "dynamic": (Rule("accuracy_drop", "<=", "quantized_max_drop"),),
    "int8": (Rule("accuracy_drop", "<=", "quantized_max_drop"),),
}
QUANTIZATIONS = tuple(RULES)


def rule_text(quantization: str, thresholds: Thresholds) -> str:
    """What an artifact of this quantization is checked against, as one short phrase."""
    return ", ".join(rule.text(getattr(thresholds, rule.limit)) for rule in RULES[quantization])


def check(quantization: str, metrics: dict[str, float], thresholds: Thresholds) -> list[str]:
    """The reasons an artifact fails its quantization's thresholds (empty when it passes)."""
    reasons = []
    for rule in RULES[quantization]:
        value, limit = metrics[rule.metric], getattr(thresholds, rule.limit)
        if not rule.passes(value, limit):
            reasons.append(rule.reason(value, limit))
    return reasons


def legend(thresholds: Thresholds) -> str:
    """Every quantization's checks in one line, quantizations held to the same rules named together:
    ``checks: float32 top-1 agreement ≥ 100 %, max |Δp| ≤ 0.0001; ...; dynamic/int8 accuracy drop ≤ 0.15 points``."""
    groups: dict[str, list[str]] = {}
    for quantization in RULES:
        name = "float32" if quantization == "none" else quantization
        groups.setdefault(rule_text(quantization, thresholds), []).append(name)
    return "checks: " + "; ".join(f"{'/'.join(names)} {text}" for text, names in groups.items())
