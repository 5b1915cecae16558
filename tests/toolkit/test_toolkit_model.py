"""The seed's network, layer for layer, as the notebook prints it."""

from __future__ import annotations

import pytest

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
