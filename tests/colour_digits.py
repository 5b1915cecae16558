"""Real images for the "your own model" tests: MNIST digits 0-4 rendered 32x32 in colour (a seeded ink colour on a
seeded dark ground), five classes named zero..four (class k is the k-th name in sorted order, Keras' folder convention), and two small real models trained on them for a few seconds:
one with a ``Rescaling`` layer (raw 0-255 pixels, softmax) and one without (pixels / 255 given as options, logits,
BatchNormalization after a ReLU so the BN fold applies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIGITS = ("zero", "one", "two", "three", "four")  # the name of digit d is DIGITS[d]
NAMES = tuple(sorted(DIGITS))  # the class order: image_dataset_from_directory's, sorted folder names
SIZE = 32
TRAIN_PER_CLASS, TEST_PER_CLASS = 120, 40
EPOCHS = 4
RECIPE = f"{DIGITS}/{SIZE}/{TRAIN_PER_CLASS}/{TEST_PER_CLASS}/{EPOCHS}/v1"


def render(mnist_x: np.ndarray, seed: int, size: int = SIZE) -> np.ndarray:
    """uint8 (N, 28, 28) digits -> uint8 (N, size, size, 3) RGB: a bright ink colour over a dark ground, per image."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((len(mnist_x), size, size, 3), np.uint8)
    for i, digit in enumerate(mnist_x):
        a = cv2.resize(digit, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)[..., None] / 255.0
        ink = rng.integers(140, 256, 3).astype(np.float32)
        ground = rng.integers(0, 70, 3).astype(np.float32)
        out[i] = np.clip(ground * (1 - a) + ink * a, 0, 255).astype(np.uint8)
    return out


def split(mnist, per_class: int, train: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB images, class indices into NAMES): the first ``per_class`` images of each digit 0-4 of the train or
    test split."""
    x, y = (mnist.x_train, mnist.y_train) if train else (mnist.x_test, mnist.y_test)
    index = np.concatenate([np.flatnonzero(y == d)[:per_class] for d in range(len(DIGITS))])
    classes = np.asarray([NAMES.index(DIGITS[d]) for d in y[index]], np.int64)
    return render(x[index], seed), classes


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, suffix: str = ".png") -> Path:
    """The images as ``root/<name>/<i>.png`` (image_dataset_from_directory's layout)."""
    import cv2

    for k, name in enumerate(NAMES):
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(x, y)):
        cv2.imwrite(str(root / NAMES[label] / f"{i:04d}{suffix}"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return root


def train(x: np.ndarray, y: np.ndarray, rescaling: bool, seed: int = 0):
    """A small CNN on the RGB images: with a Rescaling layer it takes raw pixels and ends in softmax; without, it
    takes pixels / 255 and ends in logits, with BatchNormalization (momentum 0.9) after each ReLU."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    if rescaling:
        body = [layers.Rescaling(1 / 255), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(),
                layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(), layers.Flatten(),
                layers.Dense(len(NAMES), activation="softmax")]
        loss, inputs = "sparse_categorical_crossentropy", x.astype(np.float32)
    else:
        body = [layers.Conv2D(8, 3, activation="relu"), layers.BatchNormalization(momentum=0.9), layers.MaxPooling2D(),
                layers.Conv2D(16, 3, activation="relu"), layers.BatchNormalization(momentum=0.9), layers.MaxPooling2D(),
                layers.Flatten(), layers.Dense(len(NAMES))]
        loss, inputs = keras.losses.SparseCategoricalCrossentropy(from_logits=True), x.astype(np.float32) / 255.0
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3), name="image"), *body])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss, metrics=["accuracy"])
    model.fit(inputs, y, batch_size=32, epochs=EPOCHS, verbose=0, shuffle=True)
    return model
