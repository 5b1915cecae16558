"""The shared small model really learned something: the fixtures the other tests stand on are sound."""

import numpy as np
import pytest

from measured import check


@pytest.mark.numeric
def test_small_model_beats_chance_by_far(small_model_path, mnist):
    import keras

    from edgekit.runtime.contract import to_model_input

    model = keras.saving.load_model(small_model_path, safe_mode=True)
    x, y = to_model_input(mnist.x_test[:1000]), mnist.y_test[:1000]
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))
    check("small model: Keras accuracy, 1,000 test images", accuracy, ">", 0.90)
