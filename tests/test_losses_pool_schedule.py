import numpy as np
import pytest
import tensorflow as tf

from tf_cyclegan import build_discriminator, losses
from tf_cyclegan.pool import HistoryPool
from tf_cyclegan.schedule import LinearDecay


def test_lsgan_targets():
    ones, zeros = tf.ones((1, 4, 4, 1)), tf.zeros((1, 4, 4, 1))
    assert float(losses.generator_loss("lsgan", ones)) == 0.0
    assert float(losses.generator_loss("lsgan", zeros)) == 1.0
    assert float(losses.discriminator_loss("lsgan", ones, zeros)) == 0.0
    # Halved: a fully wrong discriminator scores (1 + 1) / 2.
    assert float(losses.discriminator_loss("lsgan", zeros, ones)) == 1.0


def test_vanilla_hinge_wgan_values():
    real, fake = tf.fill((1, 2, 2, 1), 2.0), tf.fill((1, 2, 2, 1), -2.0)
    bce = np.log1p(np.exp(-2.0))
    np.testing.assert_allclose(float(losses.discriminator_loss("vanilla", real, fake)), bce, rtol=1e-5)
    np.testing.assert_allclose(float(losses.generator_loss("vanilla", fake)), np.log1p(np.exp(2.0)), rtol=1e-5)
    assert float(losses.discriminator_loss("hinge", real, fake)) == 0.0
    assert float(losses.generator_loss("hinge", fake)) == 2.0
    assert float(losses.discriminator_loss("wgangp", real, fake)) == -2.0
    with pytest.raises(ValueError, match="gan_loss"):
        losses.generator_loss("foo", real)


def test_wgan_gradient_penalty_is_nonzero_and_differentiable():
    discriminator = build_discriminator("n_layers", n_layers=2, ndf=4, norm="none")
    real = tf.random.uniform((2, 16, 16, 3), -1, 1)
    fake = tf.random.uniform((2, 16, 16, 3), -1, 1)
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(discriminator, real, fake, seed=tf.constant([1, 2]))
    kernels = [v for v in discriminator.trainable_variables if "kernel" in v.path]
    grads = tape.gradient(penalty, kernels)
    assert float(penalty) > 0
    # Every kernel shapes D's input gradient, so every kernel gets a nonzero penalty gradient.
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


def test_l1():
    assert float(losses.l1(tf.zeros((1, 2, 2, 3)), tf.fill((1, 2, 2, 3), 0.5))) == 0.5


def _batch(value, n=1):
    return tf.fill((n, 2, 2, 3), float(value))


def test_pool_fills_then_swaps_about_half_the_time():
    pool = HistoryPool(4, (2, 2, 3), seed=3)
    for i in range(4):
        np.testing.assert_array_equal(pool(_batch(i)).numpy(), _batch(i).numpy())
    assert int(pool.count.numpy()) == 4
    swapped = 0
    for i in range(4, 404):
        out = float(pool(_batch(i))[0, 0, 0, 0])
        if out != i:
            swapped += 1
            assert out < i
    assert 150 < swapped < 250
    # The pool now holds recent images, not only the first four.
    assert pool.images.numpy().max() > 300


def test_pool_handles_batches_and_is_deterministic_under_a_seed():
    results = []
    for _ in range(2):
        pool = HistoryPool(3, (2, 2, 3), seed=7)
        results.append([pool(tf.concat([_batch(i), _batch(i + 0.5)], 0)).numpy()[:, 0, 0, 0] for i in range(10)])
    np.testing.assert_array_equal(results[0], results[1])
    assert results[0][0].tolist() == [0.0, 0.5]


def reference_query(stored, count, images, coins, slots):
    """The PyTorch reference's ImagePool.query, image by image, with given coins and slots."""
    stored, outputs = stored.copy(), []
    for image, coin, slot in zip(images, coins, slots):
        if count < len(stored):
            stored[count] = image
            count += 1
            outputs.append(image)
        elif coin > 0.5:
            outputs.append(stored[slot].copy())
            stored[slot] = image
        else:
            outputs.append(image)
    return np.stack(outputs), stored, count


def test_pool_batches_match_the_reference_loop_image_by_image():
    # Batches that straddle "full", repeat a slot within a batch and mix swaps with keeps: the cases where a
    # vectorised query could differ from the reference's sequential loop.
    rng = np.random.default_rng(0)
    pool = HistoryPool(3, (2, 2, 3))
    stored, count = np.zeros((3, 2, 2, 3), np.float32), 0
    for query in range(40):
        batch = int(rng.integers(1, 6))
        images = rng.uniform(-1, 1, (batch, 2, 2, 3)).astype(np.float32)
        coins = rng.uniform(size=batch).astype(np.float32)
        slots = rng.integers(0, 2 if query % 2 else 3, size=batch).astype(np.int32)
        got = pool._query(tf.constant(images), tf.constant(coins), tf.constant(slots)).numpy()
        expected, stored, count = reference_query(stored, count, images, coins, slots)
        np.testing.assert_array_equal(got, expected, err_msg=f"query {query}")
        np.testing.assert_array_equal(pool.images.numpy(), stored, err_msg=f"query {query}")
        assert int(pool.count.numpy()) == count


def test_pool_size_zero_is_a_pass_through():
    pool = HistoryPool(0, (2, 2, 3))
    x = _batch(3, n=2)
    assert pool(x) is x
    assert not pool.variables


def test_pool_contents_are_checkpointed(tmp_path):
    pool = HistoryPool(2, (2, 2, 3), seed=1)
    for i in range(5):
        pool(_batch(i))
    path = tf.train.Checkpoint(pool=pool).save(str(tmp_path / "ckpt"))
    restored = HistoryPool(2, (2, 2, 3), seed=1)
    tf.train.Checkpoint(pool=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored.images.numpy(), pool.images.numpy())
    assert int(restored.draws.numpy()) == 5
    np.testing.assert_array_equal(restored(_batch(9)).numpy(), pool(_batch(9)).numpy())
    # Saved with a leading replica axis (one replica here), so any replica count can restore it.
    assert dict(tf.train.list_variables(path))["pool/images/.ATTRIBUTES/VARIABLE_VALUE"] == [1, 2, 2, 2, 3]


def test_a_pool_saved_before_the_replica_axis_still_restores(tmp_path):
    pool = HistoryPool(2, (2, 2, 3), seed=1)
    for i in range(3):
        pool(_batch(i))
    old = tf.Module()  # how pools were saved until replicas got their own: plain variables
    old.images, old.count, old.draws = (tf.Variable(v.numpy()) for v in (pool.images, pool.count, pool.draws))
    path = tf.train.Checkpoint(pool=old).save(str(tmp_path / "ckpt"))
    restored = HistoryPool(2, (2, 2, 3), seed=1)
    tf.train.Checkpoint(pool=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored.images.numpy(), pool.images.numpy())
    assert int(restored.count.numpy()) == 2 and int(restored.draws.numpy()) == 3
    resized = HistoryPool(3, (2, 2, 3))
    with pytest.raises(ValueError, match="changed pool_size"):
        tf.train.Checkpoint(pool=resized).restore(path)


def test_linear_decay_boundaries_and_serialization():
    schedule = LinearDecay(2e-4, constant_steps=100, decay_steps=100)
    values = {s: float(schedule(s)) for s in (0, 99, 100, 150, 200, 250)}
    assert values[0] == values[99] == values[100] == pytest.approx(2e-4)
    assert values[150] == pytest.approx(1e-4)
    assert values[200] == 0.0 and values[250] == 0.0
    clone = LinearDecay.from_config(schedule.get_config())
    assert float(clone(175)) == pytest.approx(float(schedule(175)))
    assert float(LinearDecay(1e-3, 10, 0)(50)) == pytest.approx(1e-3)


def test_run_settings_put_the_process_state_back():
    import random

    import keras
    from tensorflow.python.framework import config as tf_config

    from tf_cyclegan.runtime import run_settings

    random.seed(11)
    expected_draw = random.random()
    random.seed(11)
    with run_settings(seed=3, deterministic=True, precision="mixed_bfloat16"):
        assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
        assert tf_config.is_op_determinism_enabled()
        random.random()
    assert keras.mixed_precision.dtype_policy().name == "float32"
    assert not tf_config.is_op_determinism_enabled()
    assert random.random() == expected_draw  # Python's random stream continues where it was
