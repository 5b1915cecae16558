"""The seed's network, layer for layer, as the notebook prints it."""

from __future__ import annotations

import pytest

from native_bf16 import ran_in_a_child

# The notebook's model.summary(): (layer type, output shape without the batch, parameters).
SEED_SUMMARY = [
    ("Conv2D", (28, 28, 64), 1664),
    ("BatchNormalization", (28, 28, 64), 256),
    ("Conv2D", (28, 28, 64), 102464),
    ("BatchNormalization", (28, 28, 64), 256),
    ("MaxPooling2D", (14, 14, 64), 0),
    ("Dropout", (14, 14, 64), 0),
    ("Conv2D", (14, 14, 64), 36928),
    ("BatchNormalization", (14, 14, 64), 256),
    ("Conv2D", (14, 14, 64), 36928),
    ("BatchNormalization", (14, 14, 64), 256),
    ("MaxPooling2D", (7, 7, 64), 0),
    ("Dropout", (7, 7, 64), 0),
    ("Conv2D", (7, 7, 64), 36928),
    ("BatchNormalization", (7, 7, 64), 256),
    ("Dropout", (7, 7, 64), 0),
    ("Flatten", (3136,), 0),
    ("Dense", (256,), 803072),
    ("BatchNormalization", (256,), 1024),
    ("Dropout", (256,), 0),
    ("Dense", (10,), 2570),
]


@pytest.fixture(scope="module")
def model():
    from edgekit.toolkit.model import build_model

    return build_model()


def test_layers_match_the_notebook(model):
    found = [(type(l).__name__, tuple(l.output.shape[1:]), l.count_params()) for l in model.layers]
    assert found == SEED_SUMMARY


def test_parameter_counts(model):
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    frozen = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    assert (model.count_params(), trainable, frozen) == (1_022_858, 1_021_706, 1_152)


def test_names_activations_and_softmax(model):
    import numpy as np

    assert model.inputs[0].name == "image" and model.layers[-1].name == "probabilities"
    assert [l.get_config()["activation"] for l in model.layers if type(l).__name__ in ("Conv2D", "Dense")] == ["relu"] * 6 + ["softmax"]
    assert [l.get_config()["padding"] for l in model.layers if type(l).__name__ == "Conv2D"] == ["same"] * 5
    assert [l.rate for l in model.layers if type(l).__name__ == "Dropout"] == [0.25] * 4
    p = model.predict(np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32), verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_bn_momentum_changes_no_weight():
    from edgekit.toolkit.model import build_model

    m = build_model(bn_momentum=0.9)
    assert m.count_params() == 1_022_858
    assert {l.momentum for l in m.layers if type(l).__name__ == "BatchNormalization"} == {0.9}


@pytest.mark.parametrize("policy, rtol", [("float32", 2e-4), ("mixed_bfloat16", 1e-2)])
def test_the_fused_training_batch_norm_is_keras_batch_norm(request, policy, rtol):
    """Training's fused BatchNormalization gives Keras' outputs, gradients and moving averages (float32
    accumulation order apart; bfloat16 outputs round at 2^-8), and falls back to Keras' code off the fused path."""
    if policy == "mixed_bfloat16" and ran_in_a_child(request):  # oneDNN capped below bfloat16 or off
        return
    import keras
    import numpy as np
    import tensorflow as tf

    from edgekit.toolkit.model import training_batch_norm

    rng = np.random.default_rng(0)
    for shape in [(64, 28, 28, 64), (8, 7, 7, 64), (64, 256)]:
        x = tf.constant(np.maximum(rng.normal(0.3, 1.2, shape), 0).astype(np.float32))  # ReLU outputs, as in the CNN
        r = tf.constant(rng.normal(size=shape).astype(np.float32))
        channels = shape[-1]
        weights = [rng.normal(1, 0.2, channels), rng.normal(0, 0.2, channels), rng.normal(0.2, 0.1, channels),
                   rng.uniform(0.5, 2, channels)]
        found = []
        for cls in (keras.layers.BatchNormalization, training_batch_norm()):
            layer = cls(momentum=0.9, dtype=policy)
            layer.build(shape)
            layer.set_weights([w.astype(np.float32) for w in weights])
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.cast(layer(x, training=True), tf.float32)
                loss = tf.reduce_sum(y * r)
            grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
            inference = tf.cast(layer(x, training=False), tf.float32)
            found.append([y, *grads, *layer.non_trainable_weights, inference])
        names = ["outputs", "d inputs", "d gamma", "d beta", "moving mean", "moving variance", "inference"]
        for name, keras_value, fused_value in zip(names, *found):
            keras_value, fused_value = np.asarray(keras_value, np.float64), np.asarray(fused_value, np.float64)
            error = np.max(np.abs(fused_value - keras_value)) / np.max(np.abs(keras_value))
            tolerance = rtol if name not in ("moving mean", "moving variance") else 2e-5
            assert error < tolerance, f"{shape} {name}: relative error {error:.1e}"
        # The moving variance moved by the batch variance (uncorrected, as Keras keeps it), not by something else.
        assert not np.allclose(found[1][5], weights[3], rtol=1e-3)


def test_a_fused_model_saves_as_keras_own_layers():
    import numpy as np

    from edgekit.toolkit.model import build_model
    from edgekit.toolkit.precision import float32_copy

    fused = build_model(bn_momentum=0.9, dtype="mixed_bfloat16", fused_bn=True)
    assert {type(l).__name__ for l in fused.layers if "BatchNorm" in type(l).__name__} == {"TrainingBatchNormalization"}
    copy = float32_copy(fused)
    found = [(type(l).__name__, tuple(l.output.shape[1:]), l.count_params()) for l in copy.layers]
    assert found == SEED_SUMMARY
    assert type(copy.layers[1]).__module__.startswith("keras.")
    for a, b in zip(fused.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
