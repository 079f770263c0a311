import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_cyclegan import CycleGAN, build_discriminator, build_generator, metrics


def tiny_cyclegan(
    size=16, pool_size=50, gan_loss="lsgan", lambda_identity=0.5, ngf=4, kind="resnet_1blocks", **options
):
    model = CycleGAN(
        build_generator(kind, ngf=ngf, name="generator_ab"),
        build_generator(kind, ngf=ngf, name="generator_ba"),
        build_discriminator("n_layers", n_layers=2, ndf=ngf, name="discriminator_a"),
        build_discriminator("n_layers", n_layers=2, ndf=ngf, name="discriminator_b"),
        gan_loss=gan_loss,
        lambda_identity=lambda_identity,
        pool_size=pool_size,
        image_shape=(size, size, 3),
        **options,
    )
    model.compile()
    return model


def _images(n, size=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("gan_loss", ["lsgan", "wgangp"])
def test_one_step_updates_all_four_networks_with_finite_losses(gan_loss):
    model = tiny_cyclegan(gan_loss=gan_loss)
    networks = [model.generator_ab, model.generator_ba, model.discriminator_a, model.discriminator_b]
    before = [[w.numpy().copy() for w in net.trainable_weights] for net in networks]
    # Eager: the same train_step the trainer compiles (the CLI tests run it compiled), without ~20 s of tracing.
    logs = model.train_step((_images(2), _images(2, seed=1)))
    for net, weights in zip(networks, before):
        changed = [
            not np.array_equal(w.numpy(), old)
            for w, old in zip(net.trainable_weights, weights)
            # WGAN's critic loss is shift-invariant, so the last bias gets exactly zero gradient.
            if not (gan_loss == "wgangp" and w.path.endswith("logits/bias"))
        ]
        assert all(changed), f"{net.name}: {changed.count(False)} weights unchanged"
    expected = {"gan_ab", "gan_ba", "cycle_a", "cycle_b", "identity_a", "identity_b", "disc_a", "disc_b"}
    assert expected <= set(logs)
    if gan_loss == "wgangp":
        assert float(logs["gradient_penalty_a"]) > 0
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert int(model.generator_optimizer.iterations.numpy()) == 1
    assert int(model.pool_a.count.numpy()) == 2


def test_plain_keras_fit_and_evaluate_and_call():
    model = tiny_cyclegan()
    data = tf.data.Dataset.from_tensor_slices((_images(4), _images(4, seed=1))).batch(2, drop_remainder=True)
    history = model.fit(data, epochs=2, verbose=0)
    assert len(history.history["cycle_a"]) == 2
    assert all(value > 0 for value in history.history["identity_a"])
    assert int(model.pool_a.count.numpy()) == 8 and int(model.generator_optimizer.iterations.numpy()) == 4
    results = model.evaluate(data, return_dict=True, verbose=0)
    assert set(results) == {"cycle_l1_a", "cycle_l1_b", "identity_l1_a", "identity_l1_b"}
    x = _images(1, size=19)
    np.testing.assert_allclose(model(x).numpy(), model.generator_ab(x).numpy())


def test_identity_loss_with_different_channel_counts_is_refused():
    with pytest.raises(ValueError, match="identity loss"):
        CycleGAN(
            build_generator("resnet_6blocks", input_channels=1, output_channels=3, ngf=4),
            build_generator("resnet_6blocks", input_channels=3, output_channels=1, ngf=4),
            build_discriminator(input_channels=1, ndf=4),
            build_discriminator(input_channels=3, ndf=4),
            pool_size=0,
        )


def test_pool_needs_a_crop_shape():
    with pytest.raises(ValueError, match="image_shape"):
        CycleGAN(build_generator(ngf=4), build_generator(ngf=4), build_discriminator(ndf=4), build_discriminator(ndf=4))


def test_model_serializes_with_its_networks(tmp_path):
    model = tiny_cyclegan()
    path = tmp_path / "cyclegan.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    x = _images(1)
    np.testing.assert_allclose(reloaded(x).numpy(), model(x).numpy(), atol=1e-6)
    assert reloaded.lambda_identity == 0.5


def _permutation_task(n, size, seed):
    """Smooth random colour fields whose three channels live in different ranges.

    B is A with its channels rotated (R,G,B) -> (G,B,R): the true A→B map is known,
    and the distinct channel ranges make it the only map that fools D.
    """
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 1, (n, 4, 4, 3)).astype("float32")
    fields = tf.image.resize(low, (size, size), method="bicubic").numpy().clip(0, 1)
    lo, hi = np.array([0.3, -0.3, -1.0]), np.array([1.0, 0.3, -0.4])
    return (lo + fields * (hi - lo)).astype("float32")


def _psnr(x, y):
    return metrics.psnr((x + 1) / 2, (y + 1) / 2)  # images in [-1, 1]


@pytest.mark.slow
def test_it_learns_a_known_unpaired_mapping():
    size = 32
    rotate = lambda x: x[..., [1, 2, 0]]  # noqa: E731
    train_a = _permutation_task(256, size, seed=1)
    train_b = rotate(_permutation_task(256, size, seed=2))  # unpaired: different source images
    test_a = _permutation_task(32, size, seed=3)
    model = tiny_cyclegan(size=size, ngf=16, lambda_identity=0.0, kind="resnet_6blocks")
    data = (
        tf.data.Dataset.from_tensor_slices((train_a, train_b))
        .shuffle(256, seed=0)
        .repeat()
        .batch(4, drop_remainder=True)
    )
    model.fit(data, steps_per_epoch=100, epochs=4, verbose=0)
    translated = model.generator_ab.predict(test_a, verbose=0)
    learned, identity = _psnr(translated, rotate(test_a)), _psnr(test_a, rotate(test_a))
    print(f"PSNR of G_ab(x) vs the true mapping: {learned:.2f} dB; identity: {identity:.2f} dB")
    assert learned > identity + 10.0, (learned, identity)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_step(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = tiny_cyclegan(size=16)
        if policy == "mixed_float16":
            assert isinstance(model.generator_optimizer, keras.optimizers.LossScaleOptimizer)
            assert isinstance(model.discriminator_optimizer, keras.optimizers.LossScaleOptimizer)
        assert model.generator_ab.get_layer("r0_conv1").compute_dtype == policy.split("_")[1]
        x = _images(2, size=16)
        assert model.generator_ab(x).dtype == "float32"  # tanh output and losses stay float32
        before = model.generator_ab.get_layer("r0_conv1").kernel.numpy().copy()
        step = model.train_step  # eager, as in the one-step test above; the CLI matrix runs it compiled
        # float16 loss scaling starts high and skips overflowing steps while it backs off.
        for _ in range(30):
            logs = step((x, _images(2, size=16, seed=1)))
            if not np.array_equal(model.generator_ab.get_layer("r0_conv1").kernel.numpy(), before):
                break
        assert all(np.isfinite(float(v)) for v in logs.values())
        assert not np.array_equal(model.generator_ab.get_layer("r0_conv1").kernel.numpy(), before)
        assert model.generator_ab.get_layer("r0_conv1").kernel.dtype == "float32"  # float32 master weights
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _twin(model, **kwargs):
    """A second tiny CycleGAN holding ``model``'s weights."""
    twin = tiny_cyclegan(**kwargs)
    for mine, theirs in zip(twin.weights, model.weights):
        mine.assign(theirs)
    return twin


@pytest.mark.parametrize("batch", [1, 3])
def test_shared_network_calls_keep_the_maths(batch):
    """One generator call for fake_b and same_b (and one discriminator call for real and pooled fake) gives the
    losses and gradients of separate calls: instance norm treats every image on its own."""
    shared = tiny_cyclegan(kind="unet_64")
    separate = _twin(shared, kind="unet_64")
    separate.share_calls = False
    assert shared.share_calls
    real_a, real_b = tf.constant(_images(batch, seed=3)), tf.constant(_images(batch, seed=4))
    results = []
    for model in (shared, separate):
        grads, fake_a, fake_b, values = model.generator_gradients(real_a, real_b, 1)
        disc_grads, disc_values = model.discriminator_gradients(
            real_a, real_b, fake_a, fake_b, tf.constant(0, tf.int64), 1
        )
        results.append((grads + disc_grads, {**values, **disc_values}))
    (grads, values), (expected_grads, expected_values) = results
    for name, value in expected_values.items():
        assert float(values[name]) == pytest.approx(float(value), rel=1e-5, abs=1e-7), name
    # Rounding only (a batch of two sums its reductions in another order): the tolerance is relative to the largest
    # gradient, because the biases before instance norm have a true gradient of 0 and carry rounding noise alone.
    scale = max(float(np.abs(g.numpy()).max()) for g in expected_grads)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad.numpy(), expected.numpy(), rtol=1e-3, atol=1e-5 * scale)


def test_batch_norm_networks_never_share_calls():
    # pool_size=0: the pool needs an image shape these shape-free networks lack, and plays no part in share_calls
    # (the pool under every strategy is covered by tests/test_strategies.py).
    model = CycleGAN(
        *(build_generator("resnet_1blocks", ngf=4, norm="batch", name=f"g{i}") for i in range(2)),
        *(build_discriminator("n_layers", n_layers=2, ndf=4, name=f"d{i}") for i in range(2)),
        pool_size=0,
    )
    assert not model.share_calls


def _adam_run(optimizer_class, steps=4):
    from tf_cyclegan.schedule import LinearDecay

    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=shape).astype("float32")) for shape in ((3, 3, 8, 4), (4,))]
    optimizer = optimizer_class(LinearDecay(2e-4, 2, 2), beta_1=0.5)
    apply = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)))
    for _ in range(steps):
        apply([tf.constant(rng.normal(size=v.shape).astype("float32")) for v in variables])
    return variables, optimizer


def test_fused_adam_is_keras_adam_and_reads_its_checkpoints(tmp_path):
    from tf_cyclegan.optimizers import FusedAdam

    (expected, keras_adam), (fused, fused_adam) = _adam_run(keras.optimizers.Adam), _adam_run(FusedAdam)
    for mine, theirs in zip(fused + fused_adam.variables, expected + keras_adam.variables):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-7)
    saved = tf.train.Checkpoint(optimizer=keras_adam).write(str(tmp_path / "keras_adam"))
    tf.train.Checkpoint(optimizer=fused_adam).read(saved).assert_existing_objects_matched()
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(fused_adam.variables, keras_adam.variables))


@pytest.mark.parametrize(
    "weights",
    [
        dict(lambda_gan=0.0),
        dict(lambda_cycle_a=0.0),
        dict(lambda_cycle_b=0.0),
        dict(lambda_gan=2.0, lambda_cycle_a=3.0, lambda_cycle_b=7.0),
    ],
)
def test_the_papers_ablations_weight_each_term(weights):
    """ "Cycle alone", "GAN + backward", "GAN + forward" and any mix: each term carries its own weight (§5.1.4)."""
    model = tiny_cyclegan()
    ablated = _twin(model)
    for name, value in weights.items():
        setattr(ablated, name, value)
    real_a, real_b = tf.constant(_images(2, seed=5)), tf.constant(_images(2, seed=6))
    _, _, _, full = model.generator_gradients(real_a, real_b, 1)
    grads, _, _, values = ablated.generator_gradients(real_a, real_b, 1)
    gan, cycle_a, cycle_b = (float(full[name]) for name in ("gan_ab", "cycle_a", "cycle_b"))
    expected = (
        weights.get("lambda_gan", 1.0) * (float(full["gan_ab"]) + float(full["gan_ba"]))
        + weights.get("lambda_cycle_a", 10.0) / 10.0 * cycle_a
        + weights.get("lambda_cycle_b", 10.0) / 10.0 * cycle_b
        + float(full["identity_a"])
        + float(full["identity_b"])
    )
    assert float(values["generator_total"]) == pytest.approx(expected, rel=1e-5)
    assert float(values["gan_ab"]) == pytest.approx(gan, rel=1e-5)  # logged unweighted, so a monitor still sees it
    if weights == dict(lambda_gan=0.0):  # cycle alone: the discriminators cannot move the generators
        ablated.discriminator_b.weights[0].assign_add(tf.ones_like(ablated.discriminator_b.weights[0]))
        regrads = ablated.generator_gradients(real_a, real_b, 1)[0]
        for grad, again in zip(grads, regrads):
            np.testing.assert_allclose(grad.numpy(), again.numpy(), atol=1e-6)
