"""CycleGAN objectives as pure functions of discriminator outputs and images.

Every function returns the mean over its inputs' elements (a per-replica mean);
the caller scales for distribution. Discriminator losses are already halved, as
in the paper ("we divide the objective by 2 while optimizing D").
"""

import tensorflow as tf

GAN_LOSSES = ("lsgan", "vanilla", "hinge", "wgangp")


def _mean(x):
    return tf.reduce_mean(tf.cast(x, tf.float32))


def generator_loss(kind, disc_fake):
    """Adversarial loss of the generator given D's output on its fakes."""
    if kind == "lsgan":
        return _mean(tf.square(disc_fake - 1.0))
    if kind == "vanilla":
        return _mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(disc_fake), disc_fake))
    if kind in ("hinge", "wgangp"):
        return -_mean(disc_fake)
    raise ValueError(f"unknown gan_loss {kind!r}; choose one of {', '.join(GAN_LOSSES)}")


def discriminator_loss(kind, disc_real, disc_fake):
    """Halved discriminator loss (without WGAN-GP's penalty, see :func:`gradient_penalty`)."""
    if kind == "lsgan":
        loss = _mean(tf.square(disc_real - 1.0)) + _mean(tf.square(disc_fake))
    elif kind == "vanilla":
        loss = _mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(disc_real), disc_real)) + _mean(
            tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(disc_fake), disc_fake)
        )
    elif kind == "hinge":
        loss = _mean(tf.nn.relu(1.0 - disc_real)) + _mean(tf.nn.relu(1.0 + disc_fake))
    elif kind == "wgangp":
        loss = _mean(disc_fake) - _mean(disc_real)
    else:
        raise ValueError(f"unknown gan_loss {kind!r}; choose one of {', '.join(GAN_LOSSES)}")
    return 0.5 * loss


def gradient_penalty(discriminator, real, fake, seed):
    """WGAN-GP penalty E[(‖∇D(x̂)‖₂ − 1)²] on random interpolates x̂ of real and fake.

    ``seed`` is a stateless-RNG seed (shape [2]) so the step stays reproducible.
    """
    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    alpha = tf.random.stateless_uniform([tf.shape(real)[0], 1, 1, 1], seed=seed)
    mixed = real + alpha * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        scores = tf.cast(discriminator(mixed, training=True), tf.float32)
    grads = tape.gradient(scores, mixed)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))


def l1(a, b):
    """Mean absolute difference, used for both cycle and identity losses."""
    return _mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))
