import keras
import numpy as np
import pytest
import tensorflow as tf
from trainrun import cli

from tf_cyclegan import build_discriminator, build_generator
from tf_cyclegan.layers import InstanceNormalization, NarrowConv2D, NearestUpsampling2D, PadToMultiple


@pytest.mark.parametrize("kind,params", [("resnet_9blocks", 11_378_179), ("resnet_6blocks", 7_837_699)])
def test_resnet_generator_matches_reference_parameter_count(kind, params):
    assert build_generator(kind).count_params() == params


def test_patchgan_parameter_count_and_patch_output():
    discriminator = build_discriminator("patchgan")
    assert discriminator.count_params() == 2_764_737
    assert discriminator(np.zeros((1, 256, 256, 3), "float32")).shape == (1, 30, 30, 1)
    assert discriminator(np.zeros((1, 128, 128, 3), "float32")).shape == (1, 14, 14, 1)


def test_discriminator_variants():
    deeper = build_discriminator("n_layers", n_layers=4, ndf=8)
    assert deeper(np.zeros((2, 64, 64, 3), "float32")).shape == (2, 2, 2, 1)
    pixel = build_discriminator("pixel", ndf=8)
    assert pixel(np.zeros((1, 13, 17, 3), "float32")).shape == (1, 13, 17, 1)


@pytest.mark.parametrize("kind", ["resnet_6blocks", "unet_64", "unet_128", "unet_256"])
@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_generators_keep_odd_input_sizes(kind, upsample):
    generator = build_generator(kind, ngf=4, upsample=upsample, use_dropout=True)
    x = np.random.uniform(-1, 1, (1, 37, 53, 3)).astype("float32")
    y = generator(x).numpy()
    assert y.shape == (1, 37, 53, 3)
    # Padded up to the stride, not cut down to it: the last row and column still reach the output.
    corner = x.copy()
    corner[0, -1, -1] = -corner[0, -1, -1]
    assert np.abs(generator(corner).numpy() - y).max() > 1e-4


@pytest.mark.parametrize("kind, downs", [("unet_64", 6), ("unet_128", 7), ("unet_256", 8)])
def test_unet_reduces_its_named_size_to_one_pixel(kind, downs):
    generator = build_generator(kind, ngf=4)
    size = int(kind.split("_")[1])
    probe = keras.Model(generator.input, generator.get_layer(f"down{downs - 1}").output)
    assert probe(np.zeros((1, size, size, 3), "float32")).shape == (1, 1, 1, 32)
    assert f"down{downs}" not in [layer.name for layer in generator.layers]


def test_channel_counts_are_configurable():
    generator = build_generator("resnet_6blocks", input_channels=1, output_channels=4, ngf=4)
    assert generator(np.zeros((2, 20, 24, 1), "float32")).shape == (2, 20, 24, 4)
    assert build_discriminator(input_channels=4, ndf=4)(np.zeros((1, 64, 64, 4), "float32")).shape == (1, 6, 6, 1)


def test_batch_norm_drops_conv_bias_like_the_reference():
    def biased_before_norm(generator):
        """[use_bias] of each convolution that a normalisation layer follows."""
        layers = generator.layers
        return [
            layer.use_bias
            for layer, after in zip(layers, layers[1:])
            if isinstance(layer, keras.layers.Conv2D) and "norm" in type(after).__name__.lower()
        ]

    with_instance = biased_before_norm(build_generator("resnet_6blocks", ngf=8))
    with_batch = biased_before_norm(build_generator("resnet_6blocks", ngf=8, norm="batch"))
    assert len(with_instance) == len(with_batch) > 10
    assert all(with_instance) and not any(with_batch)


def test_unknown_choices_are_rejected():
    with pytest.raises(ValueError, match="unknown generator"):
        build_generator("resnet_foo")
    with pytest.raises(ValueError, match="unknown norm"):
        build_generator(norm="layer")
    with pytest.raises(ValueError, match="unknown discriminator"):
        build_discriminator("global")
    with pytest.raises(ValueError, match="unknown init"):
        build_discriminator(init="uniform")


@pytest.mark.parametrize("init", ["normal", "xavier", "kaiming", "orthogonal"])
def test_inits_build(init):
    generator = build_generator("resnet_6blocks", ngf=4, init=init)
    kernel = generator.get_layer("r0_conv1").kernel.numpy()
    assert np.isfinite(kernel).all() and kernel.std() > 0


def test_default_init_is_normal_002():
    kernel = build_generator("resnet_9blocks").get_layer("r0_conv1").kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.001 and abs(kernel.mean()) < 0.001


def test_instance_norm_normalises_each_image_and_channel():
    x = np.random.normal(5.0, 3.0, (2, 9, 11, 4)).astype("float32")
    y = InstanceNormalization()(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-3)


def test_pad_to_multiple_reflects_beyond_the_image_size():
    x = np.arange(3, dtype="float32").reshape(1, 1, 3, 1)
    y = PadToMultiple(8)(x).numpy()[0, 0, :, 0]
    assert y.shape == (8,)
    # Mirrored without repeating the edge pixel, further than the image is wide.
    np.testing.assert_array_equal(y, [2, 1, 0, 1, 2, 1, 0, 1])


def test_networks_serialize_and_reload(tmp_path):
    generator = build_generator("resnet_6blocks", ngf=4, affine=True)
    path = tmp_path / "g.keras"
    generator.save(path)
    reloaded = keras.models.load_model(path)
    x = np.random.uniform(-1, 1, (1, 21, 19, 3)).astype("float32")
    np.testing.assert_allclose(reloaded(x).numpy(), generator(x).numpy(), atol=1e-6)


@pytest.mark.parametrize("kernel,channels,filters", [(7, 8, 3), (3, 5, 1), (4, 6, 2)])
@pytest.mark.parametrize("graph", [False, True])
def test_narrow_conv_matches_conv2d_values_and_gradients(kernel, channels, filters, graph):
    narrow, plain = NarrowConv2D(filters, kernel), keras.layers.Conv2D(filters, kernel)
    x = tf.random.stateless_normal((2, 19, 23, channels), seed=(1, 2))
    weight = tf.random.stateless_normal((2, 19 - kernel + 1, 23 - kernel + 1, filters), seed=(3, 4))
    narrow.build(x.shape), plain.build(x.shape)
    plain.set_weights(narrow.get_weights())

    def value_and_grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * weight)
        return [y] + tape.gradient(loss, [x] + layer.trainable_weights)

    run = (lambda layer: tf.function(value_and_grads)(layer)) if graph else value_and_grads
    for got, want in zip(run(narrow), run(plain)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


def test_narrow_conv_is_a_plain_conv2d_in_config_and_rejects_what_it_cannot_do():
    layer = NarrowConv2D(3, 7, use_bias=False, name="out_conv")
    assert NarrowConv2D.from_config(layer.get_config()).get_config() == layer.get_config()
    for kwargs in (dict(strides=2), dict(padding="same"), dict(dilation_rate=2)):
        with pytest.raises(ValueError, match="NarrowConv2D supports"):
            NarrowConv2D(3, 3, **kwargs)
    generator = build_generator("resnet_6blocks", ngf=4)
    assert isinstance(generator.get_layer("out_conv"), NarrowConv2D)


def test_nearest_upsampling_repeats_pixels_like_keras_and_round_trips():
    x = np.random.default_rng(4).normal(size=(2, 3, 5, 4)).astype("float32")
    layer = NearestUpsampling2D(2)
    np.testing.assert_array_equal(layer(x).numpy(), keras.layers.UpSampling2D(2)(x).numpy())
    assert layer.compute_output_shape((None, 3, None, 4)) == (None, 6, None, 4)
    assert NearestUpsampling2D.from_config(NearestUpsampling2D(3).get_config()).factor == 3


@pytest.mark.parametrize("kind", ["unet_64", "resnet_6blocks"])
def test_a_residual_generator_adds_its_change_to_the_input(kind, tmp_path):
    plain = build_generator(kind, ngf=4, upsample="resize")
    residual = build_generator(kind, ngf=4, upsample="resize", residual=True)
    residual.set_weights(plain.get_weights())  # the same network: only the output differs
    x = np.random.default_rng(0).uniform(-1, 1, (2, 37, 53, 3)).astype("float32")
    expected = np.clip(x + 2 * plain(x).numpy(), -1, 1)
    np.testing.assert_allclose(residual(x).numpy(), expected, atol=1e-6)
    residual.save(tmp_path / "g.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "g.keras")(x).numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="equal channels"):
        build_generator(kind, input_channels=1, output_channels=3, ngf=4, residual=True)


def test_residual_with_unequal_channels_is_one_line_before_training(tmp_path):
    # Identity loss off: it too needs equal channels, and its own error must not stand in for --residual's.
    result = cli("tf_cyclegan.train", "--residual=true", "--channels_a=1", "--lambda_identity=0", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("--residual: a residual generator needs channels_a == channels_b")
    )
    assert not list(tmp_path.iterdir())  # no run directory was made
