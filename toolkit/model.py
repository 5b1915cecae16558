"""The seed notebook's CNN, layer for layer: 1,022,858 parameters (1,021,706 trainable)."""

from __future__ import annotations

import functools

from edgekit.runtime.contract import INPUT_NAME, INPUT_SHAPE, NUM_CLASSES, OUTPUT_NAME

SEED_BN_MOMENTUM = 0.99  # Keras' default, what the seed notebook trains with


def build_model(bn_momentum: float = SEED_BN_MOMENTUM, dtype: str = "float32", fused_bn: bool = False):
    """[[Conv2D->relu]*2 -> BN -> MaxPool -> Dropout]*2 ... as the seed prints it; input `image`, output `probabilities`.

    ``bn_momentum`` is BatchNormalization's moving-average momentum. It changes no weight and no parameter
    count; a lower value lets short runs settle the statistics used at inference. ``dtype``: the layers'
    dtype policy, ``float32`` or ``mixed_bfloat16`` (training only; the softmax stays float32 either way).
    ``fused_bn``: the BatchNormalizations train with TensorFlow's fused kernel (``training_batch_norm``; same
    weights and arithmetic, faster steps); ``precision.float32_copy`` turns them back into Keras' own.
    """
    import keras
    from keras import layers

    batch_norm = training_batch_norm() if fused_bn else layers.BatchNormalization

    def bn():
        return batch_norm(momentum=bn_momentum, dtype=dtype)

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


@functools.cache
def training_batch_norm():
    """BatchNormalization whose training step on images is TensorFlow's fused kernel.

    Keras 3 trains BatchNormalization as some twenty separate ops (moments, broadcasts, casts to float32 and
    back): about half the op time of a mixed-bfloat16 step of this CNN on a 2-core Xeon with AMX. ``FusedBatchNormV3``
    is one op, which oneDNN runs natively in bfloat16 (statistics in float32): the same normalisation with the
    same weights and the same moving averages (Keras keeps the batch variance uncorrected, so the kernel's
    Bessel correction is undone). Everything else (inference, the Dense layer's 2-D BatchNormalization,
    masks) is Keras' own code. Training only: what is saved is a plain BatchNormalization (``float32_copy``);
    checkpoints keep this class, registered as ``edgekit>TrainingBatchNormalization``.
    """
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="edgekit")
    class TrainingBatchNormalization(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            fusable = (len(inputs.shape) == 4 and self.axis in (-1, 3) and self.center and self.scale
                       and not self.renorm and mask is None)
            if not (training and self.trainable and fusable):
                return super().call(inputs, training=training, mask=mask)
            outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=self.gamma, offset=self.beta,
                mean=tf.zeros_like(self.moving_mean), variance=tf.ones_like(self.moving_variance),  # unread
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
            )
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), variance.dtype)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * ((n - 1) / n) * (1.0 - self.momentum)
            )
            return outputs

    return TrainingBatchNormalization
