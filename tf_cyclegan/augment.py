"""Differentiable augmentation (DiffAugment; Zhao, Liu, Lin, Zhu, Han, NeurIPS 2020) for the discriminators.

The same kind of random transform is applied to every image a discriminator sees, real or generated, in
its own loss and in the generators' adversarial loss, and the generators' gradients flow through it. On a
small dataset the discriminator then cannot memorise the few real images, and since fakes are transformed
the same way, the transform does not leak into the translations. Each image gets its own random draw from
a stateless stream of (seed, step, call, replica): deterministic under a seed, the same after a resume,
and free of state to checkpoint. Images are in [-1, 1]; transforms, as the paper defines them:

- ``color``: brightness + U(-0.5, 0.5); saturation (distance from the pixel's channel mean) × U(0, 2);
  contrast (distance from the image's mean) × U(0.5, 1.5).
- ``translation``: shift by up to 1/8 of the height and width, the border filled with zeros.
- ``cutout``: a zeroed square of half the height and width, centred anywhere in the image.
"""

import tensorflow as tf


def diff_augment(images, policy, seed):
    """``images`` (NHWC, [-1, 1]) through each transform of ``policy`` in turn; ``seed`` is an int64 [2] tensor."""
    if not policy:
        return images
    dtype = images.dtype
    x = tf.cast(images, tf.float32)
    for index, name in enumerate(policy):
        x = TRANSFORMS[name](x, seed + tf.constant([0, index * 7919], tf.int64))
    return tf.cast(x, dtype)


# Named, not "auto_select" (which may differ by device). XLA's Philox still draws other numbers than TensorFlow's
# kernels for the same seed, so --jit_compile=true and false augment differently, each deterministically.
ALGORITHM = "philox"


def _uniform(shape, seed, low=0.0, high=1.0, salt=0):
    return tf.random.stateless_uniform(
        shape, seed=seed + tf.constant([salt, 0], tf.int64), minval=low, maxval=high, alg=ALGORITHM
    )


def _color(x, seed):
    batch = tf.shape(x)[0]
    x = x + _uniform([batch, 1, 1, 1], seed, -0.5, 0.5, salt=1)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * _uniform([batch, 1, 1, 1], seed, 0.0, 2.0, salt=2) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * _uniform([batch, 1, 1, 1], seed, 0.5, 1.5, salt=3) + mean


def _translation(x, seed, ratio=0.125):
    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    pad_y = tf.cast(tf.cast(height, tf.float32) * ratio + 0.5, tf.int32)
    pad_x = tf.cast(tf.cast(width, tf.float32) * ratio + 0.5, tf.int32)
    shift_y = _shifts(batch, pad_y, seed, salt=1)
    shift_x = _shifts(batch, pad_x, seed, salt=2)
    padded = tf.pad(x, [[0, 0], [pad_y, pad_y], [pad_x, pad_x], [0, 0]])
    rows = tf.range(height)[None, :] + pad_y + shift_y[:, None]  # [batch, height]: source row of each output row
    columns = tf.range(width)[None, :] + pad_x + shift_x[:, None]
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, columns, axis=2, batch_dims=1)


def _shifts(batch, limit, seed, salt):
    """Integer shifts in [-limit, limit], one per image."""
    return tf.random.stateless_uniform(
        [batch],
        seed=seed + tf.constant([salt, 0], tf.int64),
        minval=-limit,
        maxval=limit + 1,
        dtype=tf.int32,
        alg=ALGORITHM,
    )


def _cutout(x, seed, ratio=0.5):
    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    size_y = tf.cast(tf.cast(height, tf.float32) * ratio + 0.5, tf.int32)
    size_x = tf.cast(tf.cast(width, tf.float32) * ratio + 0.5, tf.int32)
    # The square's top-left corner, from a centre anywhere in the image.
    top = _positions(batch, height, seed, salt=1) - size_y // 2
    left = _positions(batch, width, seed, salt=2) - size_x // 2
    rows = tf.range(height)[None, :] - top[:, None]  # [batch, height]: position inside the square
    columns = tf.range(width)[None, :] - left[:, None]
    inside_rows = tf.logical_and(rows >= 0, rows < size_y)
    inside_columns = tf.logical_and(columns >= 0, columns < size_x)
    inside = tf.logical_and(inside_rows[:, :, None], inside_columns[:, None, :])
    return x * tf.cast(tf.logical_not(inside), x.dtype)[..., None]


def _positions(batch, size, seed, salt):
    """Integer positions in [0, size), one per image."""
    return tf.random.stateless_uniform(
        [batch], seed=seed + tf.constant([salt, 0], tf.int64), maxval=size, dtype=tf.int32, alg=ALGORITHM
    )


TRANSFORMS = {"color": _color, "translation": _translation, "cutout": _cutout}
