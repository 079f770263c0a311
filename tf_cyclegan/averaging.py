"""Exponential moving averages of generator weights (``--ema_decay``), kept on every device.

As StyleGAN2-ADA's ``G_ema``: after every generator update each averaged weight moves towards the
trained one, a ← a + (1 − d)(w − a); running statistics (batch norm) are copied. The averaged
generators translate (samples, health checks, evaluation, translate, export); they are smoother than
the trained ones, whose last updates chase the discriminators.
"""

import tensorflow as tf


def checked_decay(decay):
    if not 0.0 <= float(decay) < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {decay}")
    return float(decay)


def pair_weights(averaged_generators, generators):
    """[(average, weight, averaged?)] of same-architecture networks; the averages start as the weights."""
    pairs = []
    for averaged, generator in zip(averaged_generators, generators):
        averaged.trainable = False
        if [w.shape for w in averaged.weights] != [w.shape for w in generator.weights]:
            raise ValueError(f"averaged_generators: {averaged.name} is not the architecture of {generator.name}")
        for average, weight in zip(averaged.weights, generator.weights):
            average.assign(weight)
            pairs.append((average, weight, weight.trainable))
    return pairs


def warmed_up_decay(decay, updates):
    """``decay``, lowered early as TensorFlow's ExponentialMovingAverage does with ``num_updates``:
    min(decay, (1 + t) / (10 + t)) after t updates, so the average does not keep the random initial
    weights for thousands of steps."""
    steps = tf.cast(updates, tf.float32)
    return tf.minimum(decay, (1.0 + steps) / (10.0 + steps))


def update(pairs, decay, updates):
    """One averaging step after ``updates`` generator updates, from a replica context (or none).

    The trained weights are the same on every replica after their (all-reduced) update, so each
    device moves its own copy of the averages: no traffic between devices.
    """

    def on_devices(strategy, decay):
        for average, weight, averaged in pairs:
            strategy.extended.update(average.value, _move_towards, args=(weight.value, decay if averaged else 0.0))

    tf.distribute.get_replica_context().merge_call(on_devices, args=(warmed_up_decay(decay, updates),))


def _move_towards(average, weight, decay):
    return average.assign_add((1.0 - decay) * (weight - average))
