"""What kind of image classifier a Keras model is, and the input contract its exports will carry.

``inspect(model, path)`` reads the model's one image input (H x W x C, C = 1 or 3), its one output of N class
scores, whether those scores are probabilities or logits, and whether it rescales its own pixels. Anything else
(two inputs, a non-image input, an output that is not a class vector) is refused in one line.

``contract_for(spec, options)`` settles the contract: the seed CNN's digit contract for a 28x28x1 model of 10
classes (unless told otherwise), otherwise an ``image`` contract from what the model says and the options. What
cannot be inferred is required, never guessed: pixel scale/offset (or mean/std) unless a ``Rescaling`` or
``Normalization`` layer inside the model shows it takes raw 0-255 pixels, and the labels (class folder names or
``--labels FILE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.export.input_options import InputOptions
from edgekit.runtime import contract as digit
from edgekit.runtime.contract import InputContract
from edgekit.runtime.errors import ModelLoadError, OptionsError

PREPROCESSING_LAYERS = ("Rescaling", "Normalization")  # a model with one of these takes raw 0-255 pixels
SOFTMAX = "softmax"


@dataclass(frozen=True)
class ModelSpec:
    """The facts read from a Keras classifier."""

    height: int
    width: int
    channels: int
    classes: int
    scores: str  # "probabilities" or "logits"
    scores_because: str  # how that was decided, for the user
    rescales: str | None  # the preprocessing layer's name when the model rescales its own pixels

    @property
    def is_digit_shape(self) -> bool:
        return (self.height, self.width, self.channels) == digit.INPUT_SHAPE and self.classes == digit.NUM_CLASSES


def inspect(model, path: str | Path = "model") -> ModelSpec:
    """The classifier's facts; ModelLoadError (exit 2) for a model edgekit cannot treat as an image classifier."""
    inputs, outputs = list(getattr(model, "inputs", None) or []), list(getattr(model, "outputs", None) or [])
    if len(inputs) != 1:
        raise ModelLoadError(f"{path}: the model has {len(inputs)} inputs; edgekit exports image classifiers with one image input")
    if len(outputs) != 1:
        raise ModelLoadError(f"{path}: the model has {len(outputs)} outputs; edgekit exports classifiers with one output of class scores")
    in_shape, out_shape = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(in_shape) != 4 or in_shape[3] not in (1, 3) or not all(isinstance(d, int) and d > 0 for d in in_shape[1:]):
        raise ModelLoadError(f"{path}: input shape {in_shape} is not an image; edgekit exports models of one "
                             "(None, H, W, C) input with a fixed size and C = 1 or 3")
    if len(out_shape) != 2 or not isinstance(out_shape[1], int) or out_shape[1] < 2:
        raise ModelLoadError(f"{path}: output shape {out_shape} is not a vector of class scores; edgekit exports "
                             "classifiers whose output is (None, N) with N >= 2 classes")
    scores, because = _scores(model)
    return ModelSpec(int(in_shape[1]), int(in_shape[2]), int(in_shape[3]), int(out_shape[1]), scores, because,
                     _rescaling_layer(model))


def _layers(model):
    """Every layer, nested models' layers included, in order."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def _scores(model) -> tuple[str, str]:
    """("probabilities" | "logits", how it was decided) from the layer that makes the output."""
    last = model.layers[-1]
    while hasattr(last, "layers") and last.layers:  # a nested model as the last layer
        last = last.layers[-1]
    kind = type(last).__name__
    if kind == "Softmax":
        return "probabilities", f"its last layer '{last.name}' is a Softmax layer"
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", None) or (str(activation) if activation is not None else None)
    if name == SOFTMAX:
        return "probabilities", f"its last layer '{last.name}' ({kind}) has a softmax activation"
    if name in (None, "linear"):
        return "logits", f"its last layer '{last.name}' ({kind}) has no activation: its scores are logits"
    raise ModelLoadError(f"the model's last layer '{last.name}' ends in a {name} activation, not class scores; "
                         "edgekit exports classifiers ending in softmax (probabilities) or no activation (logits)")


def _rescaling_layer(model) -> str | None:
    for layer in _layers(model):
        if type(layer).__name__ in PREPROCESSING_LAYERS:
            return f"{layer.name} ({type(layer).__name__})"
    return None


def contract_for(spec: ModelSpec, options: InputOptions, labels: tuple[str, ...] | None) -> InputContract:
    """The contract the exports carry. ``labels``: from ``--labels`` or the data's class folders (None: neither)."""
    o = options
    crop = o.crop or ("digit" if spec.is_digit_shape else "image")
    if crop == "digit":
        if not spec.is_digit_shape:
            raise OptionsError(f"--crop digit needs a 28x28x1 model of 10 classes (digit crops like MNIST's); this one takes "
                               f"{spec.height}x{spec.width}x{spec.channels} and gives {spec.classes} classes; use --crop image")
        given = [name for name, v in (("--scale", o.scale), ("--offset", o.offset), ("--mean", o.mean), ("--std", o.std),
                                      ("--resize", o.resize)) if v is not None]
        if o.color not in (None, "gray") or given:
            raise OptionsError(f"{', '.join(given) or '--color'}: a digit model's input is fixed (MNIST-style crops, "
                               "pixels / 255); leave it out, or export with --crop image")
        if labels is not None and tuple(labels) != digit.LABELS:
            raise OptionsError(f"a digit model's labels are 0 to 9, got {', '.join(labels)}; export with --crop image")
        return digit.DIGIT
    if labels is None:
        raise OptionsError("the model's class names are unknown: pass --data DIR (its class folder names) or --labels FILE "
                           "(one name per line, in the model's output order)")
    if len(labels) != spec.classes:
        raise OptionsError(f"{len(labels)} labels for a model of {spec.classes} classes; give one label per output class")
    color = o.color or ("gray" if spec.channels == 1 else None)
    if color is None:
        raise OptionsError("the model takes 3 channels: pass --color rgb (Keras' image loaders) or --color bgr (OpenCV)")
    if (spec.channels == 1) != (color == "gray"):
        raise OptionsError(f"--color {color} does not fit a model of {spec.channels} channel(s); use "
                           f"{'gray' if spec.channels == 1 else 'rgb or bgr'}")
    scale, offset = _pixels(spec, o)
    result = InputContract(spec.height, spec.width, spec.channels, color, scale, offset, o.resize or "stretch", "image",
                           tuple(labels), spec.scores)
    try:
        result.check()
    except ValueError as e:
        raise OptionsError(str(e)) from None
    return result


def _pixels(spec: ModelSpec, o: InputOptions):
    """(scale, offset): 1 and 0 when the model rescales itself; else from --scale/--offset or --mean/--std."""
    given = [n for n, v in (("--scale", o.scale), ("--offset", o.offset), ("--mean", o.mean), ("--std", o.std)) if v is not None]
    if spec.rescales:
        if given:
            raise OptionsError(f"{', '.join(given)}: the model rescales its pixels itself ({spec.rescales}), so it takes "
                               "raw 0-255 pixels; leave the option out")
        return 1.0, 0.0
    if (o.mean is None) != (o.std is None):
        raise OptionsError("--mean and --std go together")
    if o.mean is not None and (o.scale is not None or o.offset is not None):
        raise OptionsError("give either --scale/--offset or --mean/--std, not both")
    if o.mean is not None:
        mean, std = _per_channel(o.mean, spec, "--mean"), _per_channel(o.std, spec, "--std")
        if any(s <= 0 for s in std):
            raise OptionsError("--std must be positive")
        scale = tuple(1.0 / s for s in std)
        offset = tuple(-m / s for m, s in zip(mean, std))
        return _one(scale), _one(offset)
    if o.scale is None:
        raise OptionsError("the model has no Rescaling or Normalization layer, so the pixel values it was trained on are "
                           "unknown: pass --scale (e.g. 0.00392156862745098 for 0-1) and --offset, or --mean and --std")
    return _one(_per_channel(o.scale, spec, "--scale")), _one(_per_channel(o.offset if o.offset is not None else (0.0,), spec, "--offset"))


def _per_channel(values, spec: ModelSpec, option: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if len(values) == 1:
        return values * spec.channels
    if len(values) != spec.channels:
        raise OptionsError(f"{option} takes 1 or {spec.channels} values, got {len(values)}")
    return values


def _one(values: tuple[float, ...]):
    return values[0] if len(set(values)) == 1 else values
