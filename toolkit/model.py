"""The seed notebook's CNN, layer for layer: 1,022,858 parameters (1,021,706 trainable)."""

from __future__ import annotations

from edgekit.runtime.contract import INPUT_NAME, INPUT_SHAPE, NUM_CLASSES, OUTPUT_NAME

SEED_BN_MOMENTUM = 0.99  # Keras' default, what the seed notebook trains with


def build_model(bn_momentum: float = SEED_BN_MOMENTUM, dtype: str = "float32"):
    """[[Conv2D->relu]*2 -> BN -> MaxPool -> Dropout]*2 ... as the seed prints it; input `image`, output `probabilities`.

    ``bn_momentum`` is BatchNormalization's moving-average momentum. It changes no weight and no parameter
    count; a lower value lets short runs settle the statistics used at inference. ``dtype``: the layers'
    dtype policy, ``float32`` or ``mixed_bfloat16`` (training only; the softmax stays float32 either way).
    """
    import keras
    from keras import layers

    def bn():
        return layers.BatchNormalization(momentum=bn_momentum, dtype=dtype)

    def conv(kernel):
        return layers.Conv2D(64, kernel, padding="same", activation="relu", dtype=dtype)

    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME),
            conv(5),
            bn(),
            conv(5),
            bn(),
            layers.MaxPooling2D(2, dtype=dtype),
            layers.Dropout(0.25, dtype=dtype),
            conv(3),
            bn(),
            conv(3),
            bn(),
            layers.MaxPooling2D(2, strides=2, dtype=dtype),
            layers.Dropout(0.25, dtype=dtype),
            conv(3),
            bn(),
            layers.Dropout(0.25, dtype=dtype),
            layers.Flatten(dtype=dtype),
            layers.Dense(256, activation="relu", dtype=dtype),
            bn(),
            layers.Dropout(0.25, dtype=dtype),
            layers.Dense(NUM_CLASSES, activation="softmax", name=OUTPUT_NAME, dtype="float32"),
        ],
        name="edgekit_mnist_cnn",
    )
