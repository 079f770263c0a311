"""Generator weight averaging (--ema_decay) and DiffAugment (--diffaugment), in the model's own step.

Through the CLI, under every strategy and in exact resume: test_strategies.py (slow) and test_train_cli.py.
"""

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_model import _images, tiny_cyclegan
from trainrun import checked, cli, run_train

from tf_cyclegan import CycleGAN, build_discriminator, build_generator, factory, run
from tf_cyclegan import config as config_lib
from tf_cyclegan.augment import diff_augment
from tf_cyclegan.errors import ConfigError

SEED = tf.constant([5, 8], tf.int64)


def _weights(network):
    return [w.numpy().copy() for w in network.weights]


def test_the_average_follows_the_generator_with_the_warm_up_decay():
    """a ← a + (1 − d)(w − a) after each generator step, d = min(ema_decay, (1 + t) / (10 + t))."""
    model = tiny_cyclegan(ema_decay=0.9)
    assert model.translator_ab is model.ema_generator_ab and model.translator_ba is model.ema_generator_ba
    average = _weights(model.generator_ab)  # the average starts as the generator's own weights
    for a, b in zip(average, _weights(model.ema_generator_ab)):
        np.testing.assert_array_equal(a, b)
    for step in (1, 2, 3):
        model.train_step((_images(2, seed=step), _images(2, seed=10 + step)))
        decay = min(0.9, (1 + step) / (10 + step))
        average = [a + (1 - decay) * (w - a) for a, w in zip(average, _weights(model.generator_ab))]
    for expected, actual in zip(average, _weights(model.ema_generator_ab)):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-7)
    raw = _weights(model.generator_ab)
    assert max(np.abs(a - w).max() for a, w in zip(average, raw)) > 1e-5  # it lags the raw weights
    x = _images(1, seed=99)
    np.testing.assert_array_equal(model(x).numpy(), model.ema_generator_ab(x).numpy())  # calling translates with it


def test_the_averaged_generators_are_not_trained():
    model = tiny_cyclegan(ema_decay=0.99)
    averaged = {id(w) for net in (model.ema_generator_ab, model.ema_generator_ba) for w in net.weights}
    assert averaged and not averaged & {id(w) for w in model.generator_variables + model.discriminator_variables}
    assert not model.ema_generator_ab.trainable_weights


def test_without_ema_the_generators_translate_and_nothing_is_averaged():
    model = tiny_cyclegan()
    assert model.translator_ab is model.generator_ab and not hasattr(model, "ema_generator_ab")


def test_averaged_generators_of_another_architecture_are_refused():
    with pytest.raises(ValueError, match="architecture"):
        CycleGAN(
            build_generator("resnet_1blocks", ngf=4),
            build_generator("resnet_1blocks", ngf=4),
            build_discriminator(ndf=4),
            build_discriminator(ndf=4),
            pool_size=0,
            ema_decay=0.9,
            averaged_generators=(build_generator("resnet_1blocks", ngf=8), build_generator("resnet_1blocks", ngf=4)),
        )


@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")])
def test_diffaugment_is_random_per_image_deterministic_per_seed_and_differentiable(policy):
    x = tf.constant(np.repeat(_images(1, size=32), 4, axis=0))  # four copies of one image
    y = diff_augment(x, policy, SEED)
    assert y.shape == x.shape
    np.testing.assert_array_equal(y.numpy(), diff_augment(x, policy, SEED).numpy())
    assert not np.array_equal(y.numpy(), diff_augment(x, policy, SEED + [0, 1]).numpy())
    copies = y.numpy().reshape(4, -1)
    assert all(not np.array_equal(copies[0], other) for other in copies[1:])  # each image its own draw
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(diff_augment(x, policy, SEED) ** 2)
    assert float(tf.reduce_sum(tf.abs(tape.gradient(total, x)))) > 0
    # XLA (--jit_compile) compiles it, deterministically (its Philox draws other numbers than TensorFlow's kernels).
    compiled = tf.function(lambda images: diff_augment(images, policy, SEED), jit_compile=True)
    np.testing.assert_array_equal(compiled(x).numpy(), compiled(x).numpy())
    assert np.isfinite(compiled(x).numpy()).all()


def test_translation_shifts_whole_images_and_cutout_zeroes_a_quarter():
    x = tf.constant(np.ones((64, 16, 16, 3), np.float32))
    cut = diff_augment(x, ("cutout",), SEED).numpy()
    zeroed = (cut == 0).all(axis=-1).mean(axis=(1, 2))
    assert zeroed.max() == pytest.approx(0.25) and zeroed.min() >= 0.0625 - 1e-6  # a corner square: 4x4 of 16x16
    ramp = tf.constant(np.tile(np.arange(16, dtype=np.float32)[None, None, :, None], (64, 16, 1, 3)))
    moved = diff_augment(ramp, ("translation",), SEED).numpy()
    shifts = set()
    for image in moved:
        inside = image[image[..., 0] > 0]
        shift = image[8, 8, 0] - 8  # the source column of the centre pixel, relative to the centre
        shifts.add(int(shift))
        assert inside.size and abs(shift) <= 2  # at most 1/8 of 16 px
    assert len(shifts) > 1


def test_diffaugment_changes_what_the_discriminators_see_and_nothing_else():
    plain, augmented = tiny_cyclegan(seed=3), tiny_cyclegan(seed=3, diffaugment=("color", "translation"))
    augmented.set_weights(plain.get_weights())
    real_a, real_b = tf.constant(_images(2, seed=1)), tf.constant(_images(2, seed=2))
    _, fake_a, fake_b, plain_values = plain.generator_gradients(real_a, real_b, 1, SEED)
    _, fake_a2, fake_b2, values = augmented.generator_gradients(real_a, real_b, 1, SEED)
    np.testing.assert_array_equal(fake_b.numpy(), fake_b2.numpy())  # the generators' outputs are not augmented
    for name in ("cycle_a", "cycle_b", "identity_a", "identity_b"):
        assert float(values[name]) == pytest.approx(float(plain_values[name]), rel=1e-6)
    assert float(values["gan_ab"]) != pytest.approx(float(plain_values["gan_ab"]), rel=1e-4)
    step = tf.constant(0, tf.int64)
    _, plain_disc = plain.discriminator_gradients(real_a, real_b, fake_a, fake_b, step, 1, SEED)
    _, disc = augmented.discriminator_gradients(real_a, real_b, fake_a, fake_b, step, 1, SEED)
    assert float(disc["disc_a"]) != pytest.approx(float(plain_disc["disc_a"]), rel=1e-4)


@pytest.mark.parametrize(
    "text, needle", [("color,zoom", "unknown part 'zoom'"), ("color,color", "names 'color' twice")]
)
def test_a_bad_diffaugment_policy_names_the_flag(text, needle):
    config = config_lib.Config()
    config.loss.diffaugment = text
    with pytest.raises(ConfigError, match=f"--diffaugment: .*{needle}"):
        config_lib.validate(config)


def test_the_model_serializes_its_averaging_and_augmentation(tmp_path):
    model = tiny_cyclegan(ema_decay=0.5, diffaugment=("cutout",))
    model.train_step((_images(2), _images(2, seed=1)))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.ema_decay == 0.5 and loaded.diffaugment == ("cutout",)
    x = _images(1, seed=4)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


FLUENT = Path(__file__).resolve().parent.parent / "tf_cyclegan" / "datasets" / "fluent"


def test_translate_and_export_use_the_averaged_generators_of_a_cli_run(tmp_path):
    """The quickstart preset at 32 px with --ema_decay and DiffAugment, through the CLIs: the checkpoint keeps the
    averages, and translate and export (both through factory.restore_run) translate with them, not the raw ones."""
    # A learning rate 10x the preset's: in 6 steps the raw weights then move far enough from their average
    # for the two translations to differ by more than 8-bit rounding (the averaging is what is under test).
    flags = ["--ema_decay=0.9", "--diffaugment=color,translation,cutout", "--lr=0.002", "--deterministic=true"]
    tiny = ["--image_size=32", "--load_size=36", "--ngf=4", "--ndf=4", "--max_dataset_size=8", "--num_samples=2"]
    checked(run_train([*tiny, *flags, "--steps=6", "--sample_every_steps=6", "--run_dir=run"], tmp_path))
    source = sorted((FLUENT / "testA").glob("*.png"))[3]
    image = tmp_path / "in" / source.name
    image.parent.mkdir()
    image.write_bytes(source.read_bytes())
    checked(cli("tf_cyclegan.translate", "--run_dir=run", "--input=in", "--output=out", cwd=tmp_path))
    translated = np.asarray(Image.open(tmp_path / "out" / source.name).convert("RGB"), np.float32) / 127.5 - 1

    config = run.read_config(tmp_path / "run")
    checkpoint = run.run_checkpoint(tmp_path / "run")
    averaged_ab, _ = factory.restore_generators(config, checkpoint)
    raw_ab, _ = factory.restore_generators(
        dataclasses.replace(config, train=dataclasses.replace(config.train, ema_decay=0.0)), checkpoint
    )
    pixels = np.asarray(Image.open(source).convert("RGBA"), np.float32) / 255
    rgb = pixels[..., :3] * pixels[..., 3:] + (1 - pixels[..., 3:])  # on white, as translate composites it
    x = tf.constant(rgb[None] * 2 - 1)
    averaged, raw = averaged_ab(x).numpy()[0], raw_ab(x).numpy()[0]
    assert np.abs(averaged - raw).mean() > 4 / 255  # the two are told apart
    assert np.abs(translated - averaged).max() <= 2 / 255 + 1e-6
    assert config.train.ema_decay == 0.9 and config.loss.diffaugment == "color,translation,cutout"

    checked(cli("tf_cyclegan.export", "--run_dir=run", "--output=export", "--direction=a2b", cwd=tmp_path, timeout=600))
    exported = tf.saved_model.load(str(tmp_path / "export" / "fluent_a2b" / "1"))
    served = exported.signatures["serving_default"](tf.constant(x))
    np.testing.assert_allclose(next(iter(served.values())).numpy()[0], averaged, atol=1e-4)
