"""The seed notebook's CNN, layer for layer: 1,022,858 parameters (1,021,706 trainable)."""

from __future__ import annotations

from edgekit.runtime.contract import INPUT_NAME, INPUT_SHAPE, NUM_CLASSES, OUTPUT_NAME

SEED_BN_MOMENTUM = 0.99  # Keras' default, what the seed notebook trains with


def build_model(bn_momentum: float = SEED_BN_MOMENTUM):
    """[[Conv2D->relu]*2 -> BN -> MaxPool -> Dropout]*2 ... as the seed prints it; input `image`, output `probabilities`.

    ``bn_momentum`` is BatchNormalization's moving-average momentum. It changes no weight and no parameter
    count; a lower value lets short runs settle the statistics used at inference.
    """
    import keras
    from keras import layers

    def bn():
        return layers.BatchNormalization(momentum=bn_momentum)

    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME),
            layers.Conv2D(64, 5, padding="same", activation="relu"),
            bn(),
            layers.Conv2D(64, 5, padding="same", activation="relu"),
            bn(),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            bn(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            bn(),
            layers.MaxPooling2D(2, strides=2),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            bn(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            bn(),
            layers.Dropout(0.25),
            layers.Dense(NUM_CLASSES, activation="softmax", name=OUTPUT_NAME),
        ],
        name="edgekit_mnist_cnn",
    )
