"""The paper's learning-rate schedule: constant, then linear decay to zero."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``initial_lr`` for ``constant_steps``, then linearly down to 0 over ``decay_steps``.

    The paper uses 100 epochs constant and 100 epochs decay; the schedule is by
    optimizer step so resuming mid-epoch lands on exactly the same rate.
    """

    def __init__(self, initial_lr, constant_steps, decay_steps):
        self.initial_lr = float(initial_lr)
        self.constant_steps = int(constant_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        past = tf.maximum(step - float(self.constant_steps), 0.0)
        fraction = past / float(max(self.decay_steps, 1)) if self.decay_steps > 0 else tf.zeros_like(step)
        return self.initial_lr * tf.clip_by_value(1.0 - fraction, 0.0, 1.0)

    def get_config(self):
        return {"initial_lr": self.initial_lr, "constant_steps": self.constant_steps, "decay_steps": self.decay_steps}


def schedule_steps(train, steps_per_epoch):
    """(total, constant, decay) optimizer steps for a TrainConfig."""
    if train.steps:
        total = train.steps
        share = train.epochs / (train.epochs + train.decay_epochs) if train.epochs + train.decay_epochs else 0.5
        constant = int(round(total * share))
        return total, constant, total - constant
    constant = train.epochs * steps_per_epoch
    decay = train.decay_epochs * steps_per_epoch
    return constant + decay, constant, decay
