"""Fold the post-ReLU BatchNormalization scale into the layer before it: an export-time rewrite for quantization.

The seed's network puts BatchNormalization AFTER the ReLU (``Conv2D(..., activation="relu")`` then ``BN``), so
the converters cannot fold BN into the convolution. TFLite then emits each BN as a MUL and an ADD whose
per-channel constants share ONE int8 scale, and folds the last BN (after ``Dense(256)``, multipliers from ~0.2
to ~30) into the final Dense along its INPUT axis, where per-output-channel scales cannot help. Small
multipliers are quantized to almost nothing: int8 and dynamic-range exports lose a few tenths of a point.

ReLU is positively homogeneous: for a BN multiplier ``a = gamma / sqrt(var + eps) > 0`` and shift
``s = beta - a * mean``, ``a * relu(z) + s == relu(a * z) + s``. So ``a`` goes into the preceding layer's
OUTPUT channels (kernel and bias), which every int8 scheme quantizes per channel, and only the shift is left:

- after a Conv2D: a 1x1 ``DepthwiseConv2D`` with kernel ``m`` (1 for folded channels) and bias ``s``. Its
  weights are per-channel int8 (one weight per channel: exact), its bias int32; dynamic-range quantization
  leaves it float (64 weights are below the converter's 1,024-element minimum). The converter cannot fuse it
  into the convolution (the ReLU sits between).
- after a Dense followed (through Dropout only) by another Dense: folded exactly into that Dense,
  ``W' = diag(m) W`` and ``b' = b + s W``; no extra op at all.

A channel with ``a <= 0`` cannot go through the ReLU; it keeps its multiplier (``m = a``) in the shift op, so
the rewrite stays exact, and ``FoldReport.kept`` says how many channels of which layer were kept that way.

``fold_batchnorm(model)`` returns the rewritten model and a report; ``prove(original, folded, images)`` raises
``ExportError`` unless the two agree within ``TOLERANCE`` on the check batch. The trained ``model.keras`` is
never changed: the rewrite only exists in memory during an export.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekit.runtime import contract
from edgekit.runtime.errors import ExportError, first_line

NAME = "bn_fold"  # how metadata and manifest name the rewrite
TOLERANCE = 1e-5  # max |Δ probability| allowed between the rewritten and the original float model
CHECK_IMAGES = 256  # images in the check batch


@dataclass
class FoldReport:
    """What the rewrite did: BN layers folded, channels kept (a <= 0), layers refused, and its proof."""

    folded: list[str] = field(default_factory=list)  # BN layers whose scale went into the layer before
    kept: dict[str, int] = field(default_factory=dict)  # BN layer -> channels with a <= 0 left in the shift op
    refused: dict[str, str] = field(default_factory=dict)  # BN layer -> why it was left as it was
    max_abs_diff: float | None = None  # measured by prove()
    check_images: int = 0

    @property
    def applied(self) -> bool:
        return bool(self.folded)

    def to_dict(self) -> dict:
        return {"name": NAME, "folded": list(self.folded), "kept_channels": dict(self.kept),
                "refused": dict(self.refused), "max_abs_diff": self.max_abs_diff, "check_images": self.check_images}


def _is_relu(layer) -> bool:
    import keras

    activation = getattr(layer, "activation", None)
    return activation is not None and keras.activations.serialize(activation) == "relu"


def _bn_terms(bn) -> tuple[np.ndarray, np.ndarray]:
    """(a, s): the inference-time BN as ``a * x + s``, in float64."""
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.gamma is not None else np.ones_like(mean)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.beta is not None else np.zeros_like(mean)
    a = gamma / np.sqrt(var + bn.epsilon)
    return a, beta - a * mean


def _copy(layer):
    """A fresh layer of the same class and config (same name), to be built and given weights later."""
    return layer.__class__.from_config(layer.get_config())


def fold_batchnorm(model):
    """The model with every post-ReLU BatchNormalization's scale folded forward; (new model, FoldReport).

    Only a plain ``keras.Sequential`` is rewritten (edgekit's CNN is one); any other model comes back
    unchanged with the reason in ``FoldReport.refused``.
    """
    import keras
    from keras import layers as L

    report = FoldReport()
    if not isinstance(model, keras.Sequential):
        report.refused["model"] = "not a keras.Sequential model"
        return model, report

    old = list(model.layers)
    plans: dict[int, tuple] = {}  # index of a BN -> (kind, a, s) ; kind: "shift" or "into_next"
    for i, layer in enumerate(old):
        if not isinstance(layer, L.BatchNormalization):
            continue
        prev = old[i - 1] if i > 0 else None
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        if prev is None or not isinstance(prev, (L.Conv2D, L.Dense)) or type(prev) not in (L.Conv2D, L.Dense):
            report.refused[layer.name] = "does not follow a Conv2D or Dense layer"
            continue
        if not _is_relu(prev):
            report.refused[layer.name] = f"{prev.name} has no ReLU activation"
            continue
        rank = len(prev.output.shape)
        if axis not in (-1, rank - 1):
            report.refused[layer.name] = f"normalizes axis {layer.axis}, not the channels"
            continue
        a, s = _bn_terms(layer)
        nxt = i + 1
        while nxt < len(old) and isinstance(old[nxt], L.Dropout):  # Dropout is the identity at inference
            nxt += 1
        if isinstance(prev, L.Conv2D) and rank == 4:
            plans[i] = ("shift", a, s)
        elif isinstance(prev, L.Dense) and rank == 2 and nxt < len(old) and type(old[nxt]) is L.Dense:
            plans[i] = ("into_next", a, s, nxt)
        else:
            report.refused[layer.name] = "no place for the shift (not after a Conv2D, not followed by a Dense)"

    if not plans:
        return model, report

    # Rebuild layer by layer, then set the (rewritten) weights.
    new_layers, weights, skip = [], [], set()
    pending_next: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # index of a Dense -> (m, s) to fold into it
    for i, layer in enumerate(old):
        if i in skip:
            continue
        w = [np.asarray(v, np.float64) for v in layer.get_weights()]
        if i + 1 in plans:  # this layer's output channels take the BN's positive multipliers
            a = plans[i + 1][1]
            scale = np.where(a > 0, a, 1.0)
            w[0] = w[0] * scale  # kernel: last axis is the output channel
            if layer.use_bias:
                w[1] = w[1] * scale
        if i in pending_next:  # a Dense after a folded Dense + BN: absorb the shift and the kept multipliers
            m, s = pending_next[i]
            kernel = w[0]
            bias = w[1] if layer.use_bias else None
            if bias is None:
                raise ExportError(f"BN fold: {layer.name} has no bias to absorb the shift; pass --no-fold")
            w[1] = bias + s @ kernel
            w[0] = m[:, None] * kernel
        if i in plans:
            kind, a, s = plans[i][:3]
            m = np.where(a > 0, 1.0, a)
            report.folded.append(layer.name)
            if (a <= 0).any():
                report.kept[layer.name] = int((a <= 0).sum())
            if kind == "shift":
                shift = L.DepthwiseConv2D(1, use_bias=True, name=f"{layer.name}_shift")
                new_layers.append(shift)
                weights.append([m.reshape(1, 1, -1, 1), s])
            else:
                pending_next[plans[i][3]] = (m, s)
            continue
        new_layers.append(_copy(layer))
        weights.append(w)

    rewritten = keras.Sequential(
        [keras.Input(shape=tuple(model.input_shape[1:]), name=contract.INPUT_NAME), *new_layers], name=f"{model.name}_bnfold"
    )
    for layer, w in zip(new_layers, weights):
        if w:
            layer.set_weights([x.astype(np.float32) for x in w])
    return rewritten, report


def check_batch(calibration: np.ndarray | None, n: int = CHECK_IMAGES,
                shape: tuple[int, ...] = contract.INPUT_SHAPE) -> np.ndarray:
    """The images the rewrite is proven on: calibration images when the export has them, else a fixed
    pseudo-random batch in the model's input range (the rewrite is algebra, any input exercises it)."""
    if calibration is not None and len(calibration):
        return np.asarray(calibration[:n], np.float32)
    rng = np.random.default_rng(0)
    x = rng.random((n, *shape), dtype=np.float32)
    return np.where(rng.random(x.shape) < 0.8, 0.0, x).astype(np.float32)  # sparse strokes on black, like digits


def prove(original, rewritten, images: np.ndarray, report: FoldReport, tolerance: float = TOLERANCE,
          logits: bool = False) -> float:
    """Raise ExportError unless both models give the same probabilities (max |Δp| <= tolerance) on ``images``;
    a model whose output is ``logits`` is compared through a softmax, as the runtime reads it."""
    p0 = np.asarray(original.predict_on_batch(images), np.float64)
    p1 = np.asarray(rewritten.predict_on_batch(images), np.float64)
    if logits:
        p0, p1 = contract.softmax(p0), contract.softmax(p1)
    diff = float(np.abs(p0 - p1).max()) if np.isfinite(p1).all() and p0.shape == p1.shape else float("inf")
    report.max_abs_diff, report.check_images = diff, int(len(images))
    if not diff <= tolerance:
        raise ExportError(f"BN fold: the rewritten model differs from the trained one by max |Δp| {diff:.2g} > "
                          f"{tolerance:g} on {len(images)} check images; nothing was written (pass --no-fold to export without it)")
    return diff


def fold_and_prove(model, calibration: np.ndarray | None, logits: bool = False):
    """``fold_batchnorm`` then ``prove``; (rewritten model, report). The original is returned when nothing folds.
    ``logits``: the model's output is logits (``model_spec``), proven through a softmax."""
    try:
        rewritten, report = fold_batchnorm(model)
    except ExportError:
        raise
    except Exception as e:  # a model shape the rewrite did not foresee: say so, never half-export
        raise ExportError(f"BN fold failed ({type(e).__name__}: {first_line(e, 200)}); pass --no-fold to export without it") from None
    if report.applied:
        prove(model, rewritten, check_batch(calibration, shape=tuple(model.input_shape[1:])), report, logits=logits)
    return rewritten, report
