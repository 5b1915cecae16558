"""The camera recipe (issue 21): its crops are made the device's way and seeded, its batches too."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgekit.runtime.errors import OptionsError
from edgekit.toolkit.camera_data import make_pool
from edgekit.toolkit.batches import epoch_order, pipeline
from edgekit.toolkit.train import RECIPES, TrainOptions


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.x_train[:2000], mnist.y_train[:2000].astype(np.int32)


def test_the_pool_is_seeded_whatever_the_workers(digits):
    x, y = digits
    a = make_pool(x, y, 40, seed=3, workers=1)
    b = make_pool(x, y, 40, seed=3, workers=2)
    c = make_pool(x, y, 40, seed=4, workers=1)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.source, b.source)
    assert not np.array_equal(a.x, c.x)


def test_pool_crops_look_like_the_devices(digits):
    """28x28 crops, ink bright on black as find_digits makes them; labels 0-9; from MNIST and from fonts."""
    x, y = digits
    pool = make_pool(x, y, 60, seed=0, workers=1)
    assert pool.x.shape == (60, 28, 28) and pool.x.dtype == np.uint8
    assert set(np.unique(pool.y)) <= set(range(10)) and set(np.unique(pool.source)) == {0, 1}
    assert (pool.x.reshape(60, -1).max(1) >= 200).all()  # strokes saturated at 255 before the 28x28 resize
    assert pool.x[:, 0, :].max() == 0 and pool.x[:, :, 0].max() == 0  # a black border, like MNIST's


def test_each_batch_ends_with_its_camera_share_and_the_order_is_seeded():
    recipe = RECIPES["camera"]
    k = round(recipe.camera * recipe.batch_size)
    order = epoch_order(1000, 300, recipe, seed=5, epoch=2, steps=10).reshape(10, recipe.batch_size)
    assert (order[:, : recipe.batch_size - k] < 1000).all() and (order[:, recipe.batch_size - k :] >= 1000).all()
    assert np.array_equal(order.ravel(), epoch_order(1000, 300, recipe, seed=5, epoch=2, steps=10))
    assert not np.array_equal(order.ravel(), epoch_order(1000, 300, recipe, seed=6, epoch=2, steps=10))
    assert len(np.unique(order[:, : recipe.batch_size - k])) == 10 * (recipe.batch_size - k)  # no MNIST image twice
    plain = epoch_order(1000, 0, RECIPES["full"], seed=5, epoch=2, steps=10)
    assert plain.shape == (10 * recipe.batch_size,) and (plain < 1000).all()


def test_the_same_seed_gives_the_same_batches(digits):
    """The whole input pipeline (order, camera crops, augmentation): the same seed, the same batches."""
    x, y = digits
    pool = make_pool(x, y, 40, seed=1, workers=1)
    recipe = RECIPES["camera"]

    def first_batches(seed):
        ds = pipeline(x, y, recipe, seed, range(0, 1), 3, len(x) // recipe.batch_size, pool)
        return [(xb.numpy(), yb.numpy()) for xb, yb in ds]

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    assert len(a) == 3 and all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a, b))
    assert not np.array_equal(a[0][0], c[0][0])


def test_the_recipe_and_its_checks():
    options = TrainOptions.preset("camera", precision="float32")
    assert options.recipe.camera == 0.25 and options.recipe.augment and options.recipe.epochs == 9
    with pytest.raises(OptionsError, match="camera share"):
        dataclasses.replace(RECIPES["camera"], camera=1.0).check()
    with pytest.raises(OptionsError, match="camera pool"):
        dataclasses.replace(RECIPES["camera"], camera_pool=0).check()
