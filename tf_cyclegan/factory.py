"""The networks and the CycleGAN a config describes, and their checkpoint."""

import tensorflow as tf

from tf_cyclegan import checkpoints, fs, run
from tf_cyclegan import config as config_lib
from tf_cyclegan.model import CycleGAN
from tf_cyclegan.networks import build_discriminator, build_generator
from tf_cyclegan.rules import split_parts


def build_generators(config, prefix=""):
    """The two generators a config describes (what translate and export restore), named ``<prefix>generator_ab``."""
    model, data = config.model, config.data
    kind = config_lib.generator_kind(model)
    common = dict(
        ngf=model.ngf,
        norm=model.norm,
        affine=model.affine,
        use_dropout=model.use_dropout,
        upsample=model.upsample,
        init=model.init,
        init_gain=model.init_gain,
        residual=model.residual,
    )
    return (
        build_generator(kind, data.channels_a, data.channels_b, name=f"{prefix}generator_ab", **common),
        build_generator(kind, data.channels_b, data.channels_a, name=f"{prefix}generator_ba", **common),
    )


def build_model(config):
    """The uncompiled CycleGAN for a config."""
    model, data, loss = config.model, config.data, config.loss
    generator_ab, generator_ba = build_generators(config)
    common = dict(
        ndf=model.ndf,
        n_layers=model.n_layers_d,
        norm=model.norm,
        affine=model.affine,
        init=model.init,
        init_gain=model.init_gain,
    )
    fixed = data.fixed_size
    return CycleGAN(
        generator_ab,
        generator_ba,
        build_discriminator(model.discriminator, data.channels_a, name="discriminator_a", **common),
        build_discriminator(model.discriminator, data.channels_b, name="discriminator_b", **common),
        lambda_cycle=loss.lambda_cycle,
        lambda_gan=loss.lambda_gan,
        lambda_cycle_a=config_lib.cycle_weights(loss)[0],
        lambda_cycle_b=config_lib.cycle_weights(loss)[1],
        lambda_identity=loss.lambda_identity,
        gan_loss=loss.gan_loss,
        lambda_gp=loss.lambda_gp,
        pool_size=loss.pool_size if fixed else 0,
        image_shape=(data.image_size, data.image_size, data.channels_a) if fixed else None,
        seed=config.train.seed,
        ema_decay=config.train.ema_decay,
        averaged_generators=build_generators(config, "ema_") if config.train.ema_decay > 0 else None,
        diffaugment=split_parts(loss.diffaugment),
    )


def make_checkpoint(model):
    """Everything a resume needs: the model (networks and pools) and both optimizers."""
    return tf.train.Checkpoint(
        model=model,
        generator_optimizer=model.generator_optimizer,
        discriminator_optimizer=model.discriminator_optimizer,
    )


def restore_run(run_dir, checkpoint=None, purpose="use", attempts=3):
    """(config, checkpoint prefix, (generator_ab, generator_ba)) of a run (``run.open_run``).

    A run still training may rotate its latest checkpoint away while it is being read: then the
    newer latest is read instead (up to ``attempts`` times). A given ``checkpoint`` is never swapped.
    """
    for attempt in range(attempts):
        config, path = run.open_run(run_dir, checkpoint, purpose)
        try:
            return config, path, restore_generators(config, path)
        except checkpoints.CheckpointError:
            if checkpoint or attempt == attempts - 1 or run.run_checkpoint(run_dir) == path:
                raise


def restore_generators(config, checkpoint_path):
    """Rebuilds the generators from a run's config and restores only their weights: the averaged ones
    (``ema_generator_ab``/``_ba``) when the run kept an average (``--ema_decay``), as training's samples did.

    A damaged or mismatched checkpoint is a CheckpointError naming it and the other checkpoints to try.
    """
    generator_ab, generator_ba = build_generators(config)
    prefix = "ema_" if config.train.ema_decay > 0 else ""
    saved = {f"{prefix}generator_ab": generator_ab, f"{prefix}generator_ba": generator_ba}
    holder = tf.train.Checkpoint(model=tf.train.Checkpoint(**saved))
    reason = checkpoints.damage(checkpoint_path)
    if not reason:
        try:
            holder.restore(str(checkpoint_path)).expect_partial().assert_nontrivial_match()
            return generator_ab, generator_ba
        except Exception as error:  # noqa: BLE001 - unreadable or of another configuration
            reason = checkpoints.first_line(error)
    others = [p for p in checkpoints.on_disk(fs.path(checkpoint_path).parent) if p != str(checkpoint_path)]
    hint = f"; try --checkpoint={others[0]}" if others else ""
    raise checkpoints.CheckpointError(f"--checkpoint: {checkpoint_path} cannot be restored ({reason}){hint}")
