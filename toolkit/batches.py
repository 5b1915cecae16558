"""What training feeds the model: the seeded, resumable order of the images, the tf.data pipeline that turns it
into batches, and the augmentation (small random rotation, zoom, shift) that lives in that pipeline only, never in
the saved model.

    for epochs, steps in epoch_spans(initial_epoch, total_steps, steps_per_epoch):
        model.fit(pipeline(x, y, recipe, seed, epochs, steps, steps_per_epoch), ...)

Every batch is a function of (seed, epoch, step) alone, so a resumed run sees exactly the batches the
uninterrupted one would have. ``train`` uses all of it; ``finetune`` uses ``augment_batch`` on the user's crops.
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.runtime.contract import NUM_CLASSES, PIXEL_OFFSET, PIXEL_SCALE
from edgekit.toolkit.recipes import AUGMENT_ROTATION, AUGMENT_SHIFT, AUGMENT_ZOOM, Recipe


def epoch_spans(initial_epoch: int, total_steps: int, steps_per_epoch: int) -> list[tuple[range, int]]:
    """(epochs, steps in each) still to train: the whole epochs, then a shorter last one if the recipe's
    epochs end in a fraction. ``total_steps`` 1,460 of 859 a epoch -> [(range(0, 1), 859), (range(1, 2), 601)]."""
    whole, rest = divmod(total_steps, steps_per_epoch)
    spans = [(range(initial_epoch, whole), steps_per_epoch)] if initial_epoch < whole else []
    if rest:
        spans.append((range(whole, whole + 1), rest))
    return spans


def pipeline(x: np.ndarray, y: np.ndarray, recipe: Recipe, seed: int, epochs: range, steps: int,
             steps_per_epoch: int, pool=None):
    """``steps`` batches for each of ``epochs`` from a seeded per-epoch order, so a resumed run sees what the
    uninterrupted one would have. uint8 -> float per the contract; augmentation per batch, seeded by the
    step's number in the whole run (epoch * steps_per_epoch + step). With a camera ``pool``, the last
    ``recipe.camera`` share of every batch is pool crops, drawn by a generator seeded by (seed, epoch, 1)."""
    import tensorflow as tf

    order = np.concatenate([epoch_order(len(x), 0 if pool is None else len(pool.y), recipe, seed, epoch, steps)
                            for epoch in epochs])
    if pool is not None:
        x, y = np.concatenate([x, pool.x]), np.concatenate([y, pool.y])
    images = tf.constant(x)
    onehot = tf.constant(np.eye(NUM_CLASSES, dtype=np.float32)[y])
    first_step = epochs.start * steps_per_epoch

    @tf.autograph.experimental.do_not_convert  # plain graph code; no Python control flow on tensors
    def batch(step, idx):
        xb = tf.cast(tf.gather(images, idx), tf.float32)[..., None] * PIXEL_SCALE + PIXEL_OFFSET
        if recipe.augment:
            xb = augment_batch(xb, tf.stack([tf.constant(seed, tf.int64), first_step + step]))
        return xb, tf.gather(onehot, idx)

    ds = tf.data.Dataset.from_tensor_slices(order).batch(recipe.batch_size, drop_remainder=True).enumerate()
    return ds.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def epoch_order(n: int, n_pool: int, recipe: Recipe, seed: int, epoch: int, steps: int) -> np.ndarray:
    """One epoch's image indices, batch after batch: MNIST's (0..n-1) in a seeded shuffle, and with a camera
    pool the last ``camera`` share of each batch from the pool (indices from n on)."""
    b = recipe.batch_size
    k = int(round(recipe.camera * b)) if n_pool else 0
    order = np.random.default_rng([seed, epoch]).permutation(n)[: steps * (b - k)]
    if not k:
        return order
    crops = n + np.random.default_rng([seed, epoch, 1]).integers(n_pool, size=steps * k)
    return np.concatenate([order.reshape(steps, b - k), crops.reshape(steps, k)], axis=1).ravel()


def augment_batch(images, seed):
    """Random rotation (±AUGMENT_ROTATION°), zoom (±AUGMENT_ZOOM) and shift (±AUGMENT_SHIFT of the side)
    of a float batch (B, H, W, 1), one affine warp per image, black fill; stateless, keyed by ``seed``."""
    import tensorflow as tf

    b = tf.shape(images)[0]
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)
    u = tf.random.stateless_uniform([4, b], seed=seed, minval=-1.0, maxval=1.0)
    angle = u[0] * (AUGMENT_ROTATION * math.pi / 180)
    scale = 1.0 + u[1] * AUGMENT_ZOOM
    tx, ty = u[2] * AUGMENT_SHIFT * w, u[3] * AUGMENT_SHIFT * h
    # Output pixel (x, y) samples input at R(-angle)/scale * ((x, y) - centre - shift) + centre.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a0, a1 = cos, sin
    b0, b1 = -sin, cos
    a2 = cx - a0 * (cx + tx) - a1 * (cy + ty)
    b2 = cy - b0 * (cx + tx) - b1 * (cy + ty)
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )
