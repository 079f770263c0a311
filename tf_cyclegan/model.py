"""``CycleGAN``: two generators, two discriminators and the paper's training step."""

import keras
import tensorflow as tf

from tf_cyclegan import averaging, losses
from tf_cyclegan.augment import diff_augment
from tf_cyclegan.optimizers import FusedAdam, apply_gradients
from tf_cyclegan.pool import make_pools, replica_id

TRAIN_METRICS = (
    "gan_ab",
    "gan_ba",
    "cycle_a",
    "cycle_b",
    "identity_a",
    "identity_b",
    "generator_total",
    "disc_a",
    "disc_b",
)
TEST_METRICS = ("cycle_l1_a", "cycle_l1_b", "identity_l1_a", "identity_l1_b")


def _same_image_shape(x, y):
    """True when two batches hold images of one static height, width and channel count."""
    shape = tf.TensorShape(x.shape)[1:]
    return shape.is_fully_defined() and shape == tf.TensorShape(y.shape)[1:]


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class CycleGAN(keras.Model):
    """CycleGAN (Zhu et al. 2017) as a Keras model with its own ``train_step``.

    ``generator_ab`` maps domain A to B, ``generator_ba`` B to A; ``discriminator_a``
    judges A images, ``discriminator_b`` B images. Calling the model translates A→B.
    ``image_shape`` (H, W, C) of the training crops sizes the history pools; it is
    only needed when ``pool_size > 0`` and the generators take dynamic sizes.

    ``ema_decay`` > 0 averages each generator's weights (``averaging.py``) into
    ``ema_generator_ab``/``_ba`` (handed in as ``averaged_generators``, else cloned), which
    ``translator_ab``/``_ba`` return. ``diffaugment``: DiffAugment transforms (``augment.py``)
    for every image a discriminator sees.
    """

    def __init__(
        self,
        generator_ab,
        generator_ba,
        discriminator_a,
        discriminator_b,
        lambda_cycle=10.0,
        lambda_identity=0.5,
        gan_loss="lsgan",
        lambda_gp=10.0,
        pool_size=50,
        image_shape=None,
        seed=0,
        lambda_gan=1.0,
        lambda_cycle_a=None,
        lambda_cycle_b=None,
        ema_decay=0.0,
        averaged_generators=None,
        diffaugment=(),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gan_loss not in losses.GAN_LOSSES:
            raise ValueError(f"unknown gan_loss {gan_loss!r}; choose one of {', '.join(losses.GAN_LOSSES)}")
        self.generator_ab, self.generator_ba = generator_ab, generator_ba
        self.discriminator_a, self.discriminator_b = discriminator_a, discriminator_b
        self.lambda_cycle = float(lambda_cycle)
        self.lambda_identity = float(lambda_identity)
        # The paper's ablations (§5.1.4): the adversarial term and each cycle weighted on its own.
        self.lambda_gan = float(lambda_gan)
        self.lambda_cycle_a = self.lambda_cycle if lambda_cycle_a is None else float(lambda_cycle_a)
        self.lambda_cycle_b = self.lambda_cycle if lambda_cycle_b is None else float(lambda_cycle_b)
        self.gan_loss, self.lambda_gp = gan_loss, float(lambda_gp)
        self.pool_size, self.seed = int(pool_size), int(seed)
        channels_a = generator_ab.input_shape[-1]
        channels_b = generator_ab.output_shape[-1]
        if self.lambda_identity > 0 and channels_a != channels_b:
            raise ValueError(
                f"identity loss needs equal channel counts in A and B (got {channels_a} and {channels_b}); "
                "set lambda_identity=0"
            )
        if image_shape is None and self.pool_size > 0:  # the pools' size: the training crops, or a fixed input
            image_shape = generator_ab.input_shape[1:]
        self.image_shape, self.pool_a, self.pool_b = make_pools(
            self.pool_size, image_shape, channels_a, channels_b, self.seed
        )
        self.diffaugment = tuple(diffaugment)
        self.ema_decay = averaging.checked_decay(ema_decay)
        if self.ema_decay > 0:
            self._make_averages(averaged_generators)
        extra = ("gradient_penalty_a", "gradient_penalty_b") if gan_loss == "wgangp" else ()
        self.train_trackers = {name: keras.metrics.Mean(name=name) for name in TRAIN_METRICS + extra}
        self.test_trackers = {name: keras.metrics.Mean(name=name) for name in TEST_METRICS}
        # One generator call for two batches where that cannot change the maths (see _generate).
        networks = (generator_ab, generator_ba, discriminator_a, discriminator_b)
        self.share_calls = not any(
            isinstance(layer, keras.layers.BatchNormalization) for network in networks for layer in network.layers
        )
        self.built = True  # the four networks are built functional models

    def _make_averages(self, averaged_generators):
        """The averaged generators, starting from the generators' own weights (cloned unless handed in)."""
        if averaged_generators is None:
            averaged_generators = [keras.models.clone_model(g) for g in (self.generator_ab, self.generator_ba)]
        self.ema_generator_ab, self.ema_generator_ba = averaged_generators
        self._averages = averaging.pair_weights(averaged_generators, (self.generator_ab, self.generator_ba))

    @property
    def translator_ab(self):
        """The A→B generator to translate with: the averaged one when ``ema_decay`` > 0."""
        return self.ema_generator_ab if self.ema_decay > 0 else self.generator_ab

    @property
    def translator_ba(self):
        """The B→A generator to translate with: the averaged one when ``ema_decay`` > 0."""
        return self.ema_generator_ba if self.ema_decay > 0 else self.generator_ba

    def compile(self, generator_optimizer=None, discriminator_optimizer=None, jit_compile=False, **kwargs):
        """Takes one optimizer for both generators and one for both discriminators.

        Defaults are the paper's Adam(2e-4, beta_1=0.5). Under a ``mixed_float16``
        policy each optimizer is wrapped in a ``LossScaleOptimizer``. ``jit_compile``
        XLA-compiles the step's two gradient computations (the optimizer updates, whose
        all-reduce XLA cannot hold on every device kind, the pools and averages stay outside).
        """
        compiled = (lambda fn: tf.function(fn, jit_compile=True)) if jit_compile else (lambda fn: fn)
        self._generator_pass = compiled(self.generator_gradients)
        self._discriminator_pass = compiled(self.discriminator_gradients)
        self.generator_optimizer = self._maybe_loss_scale(
            generator_optimizer or FusedAdam(2e-4, beta_1=0.5), "generator_optimizer"
        )
        self.discriminator_optimizer = self._maybe_loss_scale(
            discriminator_optimizer or FusedAdam(2e-4, beta_1=0.5), "discriminator_optimizer"
        )
        # Keras's own ``optimizer`` (whose iterations fit() and callbacks count) is the generators' one.
        super().compile(optimizer=self.generator_optimizer, jit_compile=False, **kwargs)
        # Creating the optimizer slots now, not inside the first traced step, saves a full retrace.
        self.generator_optimizer.build(self.generator_variables)
        self.discriminator_optimizer.build(self.discriminator_variables)

    def get_compile_config(self):
        return {}

    def compile_from_config(self, config):
        """A reloaded model is compiled with the paper's optimizers (re-``compile`` to change them)."""
        self.compile()

    def _maybe_loss_scale(self, optimizer, name):
        if keras.mixed_precision.dtype_policy().name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            return keras.optimizers.LossScaleOptimizer(optimizer, name=name)
        return optimizer

    @property
    def metrics(self):
        return list(self.train_trackers.values()) + list(self.test_trackers.values())

    @property
    def generator_variables(self):
        return self.generator_ab.trainable_variables + self.generator_ba.trainable_variables

    @property
    def discriminator_variables(self):
        return self.discriminator_a.trainable_variables + self.discriminator_b.trainable_variables

    def call(self, inputs, training=False):
        return self.translator_ab(inputs, training=training)

    def build(self, input_shape=None):
        for network in (self.generator_ab, self.generator_ba, self.discriminator_a, self.discriminator_b):
            if not network.built:
                network.build(network.input_shape)
        self.built = True

    @staticmethod
    def _unpack(data):
        if isinstance(data, dict):
            return data["a"], data["b"]
        return data[0], data[1]

    def train_step(self, data):
        """One generator update then one discriminator update, as the reference.

        Losses are per-replica means divided once by the replica count, because
        the optimizers sum gradients across replicas. With ``jit_compile`` the two
        gradient computations are XLA-compiled; the updates (which all-reduce
        across replicas) and the history pools run outside them.
        """
        real_a, real_b = self._unpack(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        step = tf.cast(self.generator_optimizer.iterations, tf.int64)
        # DiffAugment's draws: a stream per replica (as the pools'), one position per step.
        augment_seed = tf.stack([tf.constant(self.seed, tf.int64) * 1009 + replica_id(), step * 8])
        grads, fake_a, fake_b, values = self._generator_pass(real_a, real_b, replicas, augment_seed)
        apply_gradients(self.generator_optimizer, grads, self.generator_variables)
        if self.ema_decay > 0:
            averaging.update(self._averages, self.ema_decay, self.generator_optimizer.iterations)
        pooled_fake_a = self.pool_a(fake_a)
        pooled_fake_b = self.pool_b(fake_b)
        step = tf.cast(self.discriminator_optimizer.iterations, tf.int64)
        grads, disc_values = self._discriminator_pass(
            real_a, real_b, pooled_fake_a, pooled_fake_b, step, replicas, augment_seed
        )
        apply_gradients(self.discriminator_optimizer, grads, self.discriminator_variables)
        values.update(disc_values)
        for name, value in values.items():
            self.train_trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.train_trackers.items()}

    def _augment(self, images, seed, call):
        """DiffAugment of ``images`` with draw number ``call`` of this step's ``seed`` (identity when off)."""
        if not self.diffaugment:
            return images
        if seed is None:
            seed = tf.constant([self.seed, 0], tf.int64)
        return diff_augment(images, self.diffaugment, seed + tf.constant([0, 1], tf.int64) * call)

    def generator_gradients(self, real_a, real_b, replicas, augment_seed=None):
        """The generators' losses and gradients: (grads, fake_a, fake_b, losses)."""
        kind = self.gan_loss
        with tf.GradientTape() as tape:
            fake_b, same_b = self._generate(self.generator_ab, real_a, real_b)
            fake_a, same_a = self._generate(self.generator_ba, real_b, real_a)
            cycled_a = self.generator_ba(fake_b, training=True)
            cycled_b = self.generator_ab(fake_a, training=True)
            gan_ab = losses.generator_loss(
                kind, self.discriminator_b(self._augment(fake_b, augment_seed, 0), training=True)
            )
            gan_ba = losses.generator_loss(
                kind, self.discriminator_a(self._augment(fake_a, augment_seed, 1), training=True)
            )
            cycle_a = self.lambda_cycle_a * losses.l1(real_a, cycled_a)
            cycle_b = self.lambda_cycle_b * losses.l1(real_b, cycled_b)
            if self.lambda_identity > 0:
                identity_weight = self.lambda_cycle * self.lambda_identity
                identity_a = identity_weight * losses.l1(real_a, same_a)
                identity_b = identity_weight * losses.l1(real_b, same_b)
            else:
                identity_a = identity_b = tf.constant(0.0)
            generator_total = self.lambda_gan * (gan_ab + gan_ba) + cycle_a + cycle_b + identity_a + identity_b
            scaled = self.generator_optimizer.scale_loss(generator_total / replicas)
        grads = tape.gradient(scaled, self.generator_variables)
        values = dict(
            gan_ab=gan_ab,
            gan_ba=gan_ba,
            cycle_a=cycle_a,
            cycle_b=cycle_b,
            identity_a=identity_a,
            identity_b=identity_b,
            generator_total=generator_total,
        )
        return grads, fake_a, fake_b, values

    def _generate(self, generator, real, other):
        """``generator(real)`` and, with the identity loss, ``generator(other)`` (else None).

        When the network treats every image on its own (no batch norm) and both batches have
        one static image shape, the two go through it as one batch: the same maths, with half the
        per-call cost, which dominates small images on a CPU.
        """
        if self.lambda_identity <= 0:
            return generator(real, training=True), None
        return self._call_twice(generator, real, other)

    def _call_twice(self, network, first, second):
        """``network(first), network(second)``: one call on both batches where that keeps the maths (see _generate)."""
        if not (self.share_calls and _same_image_shape(first, second)):
            return network(first, training=True), network(second, training=True)
        both = network(tf.concat([first, tf.cast(second, first.dtype)], axis=0), training=True)
        count = tf.shape(first)[0]
        return both[:count], both[count:]

    def discriminator_gradients(self, real_a, real_b, pooled_fake_a, pooled_fake_b, step, replicas, augment_seed=None):
        """The discriminators' losses and gradients against (pooled) fakes: (grads, losses).

        With DiffAugment the discriminators judge augmented images; the gradient penalty (wgangp)
        is taken on the images themselves.
        """
        kind = self.gan_loss
        seen_a = [self._augment(x, augment_seed, call) for x, call in ((real_a, 2), (pooled_fake_a, 3))]
        seen_b = [self._augment(x, augment_seed, call) for x, call in ((real_b, 4), (pooled_fake_b, 5))]
        with tf.GradientTape() as tape:
            disc_a = losses.discriminator_loss(kind, *self._call_twice(self.discriminator_a, *seen_a))
            disc_b = losses.discriminator_loss(kind, *self._call_twice(self.discriminator_b, *seen_b))
            disc_total = disc_a + disc_b
            values = dict(disc_a=disc_a, disc_b=disc_b)
            if kind == "wgangp":
                penalty_a = losses.gradient_penalty(
                    self.discriminator_a, real_a, pooled_fake_a, tf.stack([self.seed, step * 2])
                )
                penalty_b = losses.gradient_penalty(
                    self.discriminator_b, real_b, pooled_fake_b, tf.stack([self.seed, step * 2 + 1])
                )
                disc_total += self.lambda_gp * (penalty_a + penalty_b)
                values.update(gradient_penalty_a=penalty_a, gradient_penalty_b=penalty_b)
            scaled = self.discriminator_optimizer.scale_loss(disc_total / replicas)
        return tape.gradient(scaled, self.discriminator_variables), values

    def test_step(self, data):
        """Unweighted cycle and identity L1 on held-out pairs of unpaired batches."""
        real_a, real_b = self._unpack(data)
        generator_ab, generator_ba = self.translator_ab, self.translator_ba
        fake_b = generator_ab(real_a, training=False)
        fake_a = generator_ba(real_b, training=False)
        values = dict(
            cycle_l1_a=losses.l1(real_a, generator_ba(fake_b, training=False)),
            cycle_l1_b=losses.l1(real_b, generator_ab(fake_a, training=False)),
        )
        if generator_ab.input_shape[-1] == generator_ab.output_shape[-1]:
            values["identity_l1_a"] = losses.l1(real_a, generator_ba(real_a, training=False))
            values["identity_l1_b"] = losses.l1(real_b, generator_ab(real_b, training=False))
        for name, value in values.items():
            self.test_trackers[name].update_state(value)
        return {name: self.test_trackers[name].result() for name in values}

    def get_config(self):
        config = {
            "lambda_cycle": self.lambda_cycle,
            "lambda_identity": self.lambda_identity,
            "lambda_gan": self.lambda_gan,
            "lambda_cycle_a": self.lambda_cycle_a,
            "lambda_cycle_b": self.lambda_cycle_b,
            "gan_loss": self.gan_loss,
            "lambda_gp": self.lambda_gp,
            "pool_size": self.pool_size,
            "image_shape": self.image_shape,
            "seed": self.seed,
            "ema_decay": self.ema_decay,
            "diffaugment": list(self.diffaugment),
        }
        for name in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
            config[name] = keras.saving.serialize_keras_object(getattr(self, name))
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)
