"""The training loop: one loop for every strategy, exact resume, TensorBoard, samples.

``strategy.run(model.train_step, ...)`` is driven by our own loop (not ``fit``), so
single-device, Mirrored and MultiWorkerMirrored training share one code path.
"""

import dataclasses
import json
import math
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tf_cyclegan import config as config_lib
from tf_cyclegan import data as data_lib
from tf_cyclegan import distribute
from tf_cyclegan.data.images import to_unit_range
from tf_cyclegan.model import CycleGAN
from tf_cyclegan.networks import build_discriminator, build_generator
from tf_cyclegan.schedule import LinearDecay


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must act on (message is one line)."""


class Interrupted(Exception):
    pass


@dataclasses.dataclass
class RunPaths:
    root: Path

    @property
    def config(self):
        return self.root / "config.yaml"

    @property
    def checkpoints(self):
        return self.root / "checkpoints"

    @property
    def logs(self):
        return self.root / "logs"

    @property
    def samples(self):
        return self.root / "samples"


def build_generators(config):
    """The two generators a config describes (what translate and export restore)."""
    model, data = config.model, config.data
    kind = config_lib.generator_kind(model)
    common = dict(
        ngf=model.ngf, norm=model.norm, affine=model.affine, use_dropout=model.use_dropout,
        upsample=model.upsample, init=model.init, init_gain=model.init_gain,
    )
    return (
        build_generator(kind, data.channels_a, data.channels_b, name="generator_ab", **common),
        build_generator(kind, data.channels_b, data.channels_a, name="generator_ba", **common),
    )


def build_model(config):
    """The uncompiled CycleGAN for a config."""
    model, data, loss = config.model, config.data, config.loss
    generator_ab, generator_ba = build_generators(config)
    common = dict(
        ndf=model.ndf, n_layers=model.n_layers_d, norm=model.norm, affine=model.affine, init=model.init,
        init_gain=model.init_gain,
    )
    fixed = data.preprocess not in ("scale_width", "none")
    return CycleGAN(
        generator_ab,
        generator_ba,
        build_discriminator(model.discriminator, data.channels_a, name="discriminator_a", **common),
        build_discriminator(model.discriminator, data.channels_b, name="discriminator_b", **common),
        lambda_cycle=loss.lambda_cycle,
        lambda_identity=loss.lambda_identity,
        gan_loss=loss.gan_loss,
        lambda_gp=loss.lambda_gp,
        pool_size=loss.pool_size if fixed else 0,
        image_shape=(data.image_size, data.image_size, data.channels_a) if fixed else None,
        seed=config.train.seed,
    )


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


def make_checkpoint(model):
    return tf.train.Checkpoint(
        model=model,
        generator_optimizer=model.generator_optimizer,
        discriminator_optimizer=model.discriminator_optimizer,
    )


def run_checkpoint(run_dir, checkpoint=None):
    """``checkpoint`` when given, else the run directory's latest checkpoint prefix (None if it has none)."""
    return checkpoint or tf.train.latest_checkpoint(str(RunPaths(Path(run_dir)).checkpoints))


def restore_generators(config, checkpoint_path):
    """Rebuilds the generators from a run's config and restores only their weights."""
    generator_ab, generator_ba = build_generators(config)
    holder = tf.train.Checkpoint(model=tf.train.Checkpoint(generator_ab=generator_ab, generator_ba=generator_ba))
    holder.restore(str(checkpoint_path)).expect_partial()
    return generator_ab, generator_ba


def sample_grid(real, fake, cycled):
    """Rows of real | translated | reconstructed as one uint8 image."""
    rows = [np.concatenate([r, f, c], axis=1) for r, f, c in zip(real, fake, cycled)]
    grid = np.concatenate(rows, axis=0)
    grid = np.round(to_unit_range(tf.constant(grid)).numpy() * 255).astype(np.uint8)
    return np.repeat(grid, 3, axis=-1) if grid.shape[-1] == 1 else grid[..., :3]


def format_duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Trainer:
    """Runs (or resumes) the training a config describes, in ``config.run_dir``."""

    def __init__(self, config, log=print, progress=True):
        self.config = config
        self.log = log
        self.progress = progress
        self.paths = RunPaths(Path(config.run_dir))

    def _setup_runtime(self):
        train = self.config.train
        keras.utils.set_random_seed(train.seed)
        if train.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.mixed_precision.set_global_policy(train.precision)
        try:
            self.strategy = distribute.make_strategy(train.strategy, train.cpu_replicas)
        except distribute.StrategyError as error:
            raise TrainingError(str(error)) from None
        self.chief = distribute.is_chief(self.strategy)
        if train.jit_compile and not distribute.has_accelerator():
            self.log("note: --jit_compile=true on a CPU compiles the step with XLA, which measured no faster here "
                     "than without it; it is meant for GPUs and TPUs")

    def _build(self, total, constant, decay):
        optim = self.config.optimizer
        with self.strategy.scope():
            self.model = build_model(self.config)
            make = lambda: keras.optimizers.Adam(  # noqa: E731
                LinearDecay(optim.lr, constant, decay), beta_1=optim.beta1, beta_2=optim.beta2
            )
            self.model.compile(generator_optimizer=make(), discriminator_optimizer=make(),
                               jit_compile=self.config.train.jit_compile)
            self.checkpoint = make_checkpoint(self.model)
        directory = distribute.worker_dir(str(self.paths.checkpoints), self.strategy)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=self.config.train.keep_checkpoints, checkpoint_name="ckpt"
        )

    def _restore(self):
        latest = tf.train.latest_checkpoint(str(self.paths.checkpoints))
        if latest:
            try:
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            except (AssertionError, ValueError, tf.errors.OpError) as error:
                raise TrainingError(
                    f"cannot resume from {latest}: it does not match this config "
                    f"({str(error).splitlines()[0][:120]}); use a new --run_dir"
                ) from None
        return latest

    @property
    def step(self):
        return int(self.model.generator_optimizer.iterations.numpy())

    def _make_step_function(self, multi_worker):
        """One training step ``(iterator, stop_requested) -> whether to stop after it``.

        ``stop_requested`` is a callable reading this process's signal flag. A signal may reach
        only one worker of a multi-worker run: there the flag is summed over all replicas with
        the step, so every worker stops after the same step and all of them join the
        (collective) checkpoint save instead of one waiting for the others forever. A single
        process reads its flag after the step, and its step stays the plain ``strategy.run``
        (whose graph, and so its float results, are those of earlier versions).
        """
        model, strategy = self.model, self.strategy

        def step_fn(iterator):
            strategy.run(model.train_step, args=(next(iterator),))

        def voting_step_fn(iterator, stop):
            step_fn(iterator)
            votes = strategy.run(lambda: tf.identity(stop))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

        if multi_worker:
            voting = tf.function(voting_step_fn)
            return lambda iterator, stop_requested: float(voting(iterator, tf.constant(float(stop_requested())))) > 0
        plain = tf.function(step_fn)

        def run_plain(iterator, stop_requested):
            plain(iterator)
            return stop_requested()

        return run_plain

    def _write_samples(self, step, writer, real_a, real_b):
        model = self.model
        fake_b = model.generator_ab(real_a, training=False)
        cycled_a = model.generator_ba(fake_b, training=False)
        fake_a = model.generator_ba(real_b, training=False)
        cycled_b = model.generator_ab(fake_a, training=False)
        self.paths.samples.mkdir(parents=True, exist_ok=True)
        grids = {
            "a2b": sample_grid(real_a.numpy(), fake_b.numpy(), cycled_a.numpy()),
            "b2a": sample_grid(real_b.numpy(), fake_a.numpy(), cycled_b.numpy()),
        }
        for direction, grid in grids.items():
            Image.fromarray(grid).save(self.paths.samples / f"step_{step:07d}_{direction}.png")
        with writer.as_default(step=step):
            tf.summary.image("samples/real_a|fake_b|cycled_a", grids["a2b"][None], max_outputs=1)
            tf.summary.image("samples/real_b|fake_a|cycled_b", grids["b2a"][None], max_outputs=1)

    def _setup_eval(self, pipeline):
        """Prepares in-training evaluation (``--eval_every`` epochs) and the best/ checkpoint."""
        from tf_cyclegan import evaluate

        settings = self.config.eval
        self.eval_period = settings.eval_every * pipeline.steps_per_epoch
        if not self.eval_period:
            return
        self.eval_pipeline = data_lib.UnpairedPipeline(
            pipeline.domains, evaluate.eval_data_config(self.config.data), 1, self.config.train.seed)
        self.best_metric = evaluate.resolve_best_metric(settings.best_metric, pipeline)
        self.eval_metrics = ("paired", "cycle", "kid")
        self.features = None
        if "kid" in self.best_metric or settings.inception_weights:
            try:
                self.features = evaluate.inception_features(settings.inception_weights)
            except evaluate.FeaturesUnavailable as error:
                self.log(f"note: {error}")
        self.best_dir = self.paths.root / "best"
        self.best_manager = tf.train.CheckpointManager(self.checkpoint, str(self.best_dir), max_to_keep=1,
                                                       checkpoint_name="ckpt")
        record = self.best_dir / "best.json"
        self.best = json.loads(record.read_text()) if record.is_file() else None

    def _evaluate(self, step, writer):
        """Scores the test split, logs it, and refreshes best/ when the chosen metric improved."""
        from tf_cyclegan import evaluate

        results = evaluate.evaluate_generators(
            self.model.generator_ab, self.model.generator_ba, self.eval_pipeline, metrics=self.eval_metrics,
            features=self.features, max_images=self.config.eval.max_eval_images)
        scores = evaluate.flatten(results)
        with writer.as_default(step=step):
            for name, value in scores.items():
                tf.summary.scalar(f"eval/{name}", value)
        value = scores.get(self.best_metric)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        if value is None:
            self.log(f"eval at step {step}: {shown} ({self.best_metric} unavailable, best/ not updated)")
            return
        higher = config_lib.BEST_METRICS[self.best_metric.split("/")[1]]
        improved = self.best is None or (value > self.best["value"] if higher else value < self.best["value"])
        if improved and self.chief:
            self.best_manager.save(checkpoint_number=step)
            self.best = {"metric": self.best_metric, "value": value, "step": step}
            (self.best_dir / "best.json").write_text(json.dumps(self.best, indent=2))
        self.log(f"eval at step {step}: {shown}" + (f"; new best {self.best_metric}" if improved else ""))

    def _save(self, step):
        return self.manager.save(checkpoint_number=step)

    def run(self):
        """Trains to the configured number of steps; returns a summary dict."""
        config, paths = self.config, self.paths
        self._setup_runtime()
        global_batch = config.train.batch_size
        replicas = self.strategy.num_replicas_in_sync
        if global_batch % replicas:
            raise TrainingError(f"--batch_size={global_batch} must be divisible by the {replicas} replicas")
        pipeline = data_lib.prepare(config.data, global_batch, config.train.seed, report=self.log)
        total, constant, decay = schedule_steps(config.train, pipeline.steps_per_epoch)
        self._build(total, constant, decay)
        resumed_from = self._restore()
        if self.chief:
            paths.root.mkdir(parents=True, exist_ok=True)
            config_lib.save_yaml(config, paths.config)
        start = self.step
        if resumed_from:
            self.log(f"resuming from {resumed_from} at step {start}/{total}")
        self.log(
            f"training {total} steps ({pipeline.steps_per_epoch} steps/epoch, global batch {global_batch}, "
            f"{replicas} replica(s), {config.train.precision}) in {paths.root}"
        )
        summary = {"run_dir": str(paths.root), "start_step": start, "total_steps": total}
        if start >= total:
            self.log(f"nothing to do: the run is already at step {start}/{total}")
            return {**summary, "final_step": start, "checkpoint": resumed_from}

        self._setup_eval(pipeline)
        samples = (pipeline.test_images("A", config.train.num_samples)[0],
                   pipeline.test_images("B", config.train.num_samples)[0]) if config.train.num_samples else None
        writer = tf.summary.create_file_writer(str(paths.logs / "train")) if self.chief else tf.summary.create_noop_writer()
        dataset = self.strategy.experimental_distribute_dataset(pipeline.train_dataset(start, total))
        iterator = iter(dataset)
        multi_worker = distribute.is_multi_worker(self.strategy)
        step_function = self._make_step_function(multi_worker)
        names = list(self.model.train_trackers)
        progbar = keras.utils.Progbar(total, stateful_metrics=["epoch", "img/s", *names], unit_name="step",
                                      verbose=1 if self.progress else 0)
        interactive = sys.stdout.isatty()  # a log file gets one progress line per log interval
        last_checkpoint = resumed_from
        window_start, window_steps, started = time.perf_counter(), 0, time.perf_counter()
        images_per_sec = float("nan")

        # SIGINT/SIGTERM only set a flag, checked between steps: an exception raised at an arbitrary point can
        # be swallowed (e.g. inside a finalizer) and the run would go on. A second SIGINT stops at once.
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        stop_requested = []

        def on_signal(signum, frame):
            if stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            stop_requested.append(signum)

        for sig in previous:
            signal.signal(sig, on_signal)
        step = start
        try:
            while step < total:
                stop = step_function(iterator, lambda: bool(stop_requested))
                step += 1
                window_steps += 1
                values = {name: float(self.model.train_trackers[name].result()) for name in names}
                bad = [name for name, value in values.items() if not math.isfinite(value)]
                if bad:
                    where = f"last good checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint was saved"
                    raise TrainingError(
                        f"loss {bad[0]} became {values[bad[0]]} at step {step}; stopped without saving ({where}). "
                        "Try a lower --lr or --precision=float32"
                    )
                log_now = step % config.train.log_every_steps == 0 or step == total
                if log_now:
                    elapsed = time.perf_counter() - window_start
                    images_per_sec = window_steps * global_batch / max(elapsed, 1e-9)
                    with writer.as_default(step=step):
                        for name, value in values.items():
                            tf.summary.scalar(f"loss/{name}", value)
                        tf.summary.scalar("learning_rate", float(self.model.generator_optimizer.learning_rate))
                        tf.summary.scalar("images_per_second", images_per_sec)
                    for tracker in self.model.train_trackers.values():
                        tracker.reset_state()
                    window_start, window_steps = time.perf_counter(), 0
                if samples is not None and (step % config.train.sample_every_steps == 0 or step == total) and self.chief:
                    self._write_samples(step, writer, *samples)
                if step % config.train.save_every_steps == 0 or step == total:
                    last_checkpoint = self._save(step)
                if self.eval_period and (step % self.eval_period == 0 or step == total):
                    self._evaluate(step, writer)
                epoch = step // pipeline.steps_per_epoch + (0 if step % pipeline.steps_per_epoch == 0 else 1)
                shown = [("epoch", epoch), ("img/s", images_per_sec)]
                shown += [(n, values[n]) for n in ("generator_total", "cycle_a", "cycle_b", "disc_a", "disc_b")]
                if interactive or log_now:
                    progbar.update(step, values=shown, finalize=step == total)
                    sys.stdout.flush()
                if stop and step < total:
                    raise Interrupted()
        except KeyboardInterrupt:
            writer.flush()
            if multi_worker:
                # Mid-step, the other workers cannot join a collective save: exit with the last one.
                raise TrainingError(
                    f"interrupted twice at step {step}/{total}; last checkpoint: {last_checkpoint}. "
                    "Rerun the same command on every worker to resume"
                ) from None
            if step > start and step != self._last_saved_step():
                last_checkpoint = self._save(step)
            raise TrainingError(
                f"interrupted at step {step}/{total}; saved {last_checkpoint}. Rerun the same command to resume"
            ) from None
        except Interrupted:
            if step != self._last_saved_step():
                last_checkpoint = self._save(step)
            writer.flush()
            who = "" if stop_requested else " (another worker was interrupted)"
            raise TrainingError(
                f"interrupted at step {step}/{total}{who}; saved {last_checkpoint}. Rerun the same command to resume"
            ) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        writer.flush()
        elapsed = time.perf_counter() - started
        if self.eval_period and self.best:
            summary["best"] = f"{self.best_dir} ({self.best['metric']} {self.best['value']:.4f} at step {self.best['step']})"
        return {
            **summary,
            "final_step": step,
            "checkpoint": last_checkpoint,
            "samples": str(paths.samples),
            "logs": str(paths.logs),
            "seconds": elapsed,
        }

    def _last_saved_step(self):
        latest = self.manager.latest_checkpoint
        return int(latest.rsplit("-", 1)[1]) if latest else -1
