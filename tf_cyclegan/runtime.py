"""Process-wide TensorFlow state a run sets (seeds, op determinism, precision), put back afterwards."""

import contextlib
import random

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # op determinism has no public switch-off


@contextlib.contextmanager
def run_settings(seed, deterministic, precision):
    """Seeds Python, NumPy and TensorFlow, enables op determinism and sets the precision policy.

    On exit the previous policy, determinism setting, TensorFlow global seed and Python and
    NumPy random states are restored, so a second run in the same process starts clean.
    """
    previous = (
        keras.mixed_precision.dtype_policy(),
        tf_config.is_op_determinism_enabled(),
        tf.compat.v1.random.get_seed(None)[0],
        random.getstate(),
        np.random.get_state(),
    )
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        policy, determinism, global_seed, python_state, numpy_state = previous
        keras.mixed_precision.set_global_policy(policy)
        if not determinism:
            tf_config.disable_op_determinism()
        tf.random.set_seed(global_seed)
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def dtype_policy(precision):
    """Layers built inside compute in ``precision``; the previous global policy is put back after."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
