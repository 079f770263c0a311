"""The training loop: one loop for every strategy, exact resume, TensorBoard, samples.

``strategy.run(model.train_step, ...)`` is driven by our own loop (not ``fit``), so
single-device, Mirrored and MultiWorkerMirrored training share one code path. A run is
four phases: prepare (strategy, data, model), restore, loop, finish.
"""

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

from tf_cyclegan import data as data_lib
from tf_cyclegan import distribute, factory, footprint, run, samples
from tf_cyclegan import precision as precision_lib
from tf_cyclegan.checkpoints import CheckpointError, CheckpointKeeper, step_of
from tf_cyclegan.errors import Stopped, UserError
from tf_cyclegan.evaluator import PeriodicEvaluation
from tf_cyclegan.health import TrainingHealth
from tf_cyclegan.optimizers import FusedAdam
from tf_cyclegan.runtime import run_settings
from tf_cyclegan.schedule import LinearDecay, schedule_steps
from tf_cyclegan.stopping import StopSignals

SHOWN = ("generator_total", "cycle_a", "cycle_b", "disc_a", "disc_b")


class TrainingError(UserError, RuntimeError):
    """Training stopped for a reason the user must act on (message is one line)."""


class Unhealthy(TrainingError):
    """A health check failed under --on_unhealthy=stop (the run saved a checkpoint first)."""

    exit_code = 3


class TrainingStopped(Stopped, TrainingError):
    """Ctrl-C or SIGTERM (here or on another worker) stopped the run; it saved a checkpoint first if it could."""


class Interrupted(Exception):
    pass


class Trainer:
    """Runs (or resumes) the training a config describes, in ``config.run_dir``."""

    def __init__(self, config, log=print, progress=True):
        self.config = config
        self.precision = None  # the precision.Choice made at start (``auto`` resolved for this machine)
        self.log = log
        self.progress = progress
        self.paths = run.RunPaths(Path(config.run_dir))

    def run(self):
        """Trains to the configured number of steps; returns a summary dict."""
        self._choose_precision()
        train = self.config.train
        with run_settings(train.seed, train.deterministic, train.precision):
            self._start_strategy()
            with self._lock():
                self._prepare()
                resumed_from = self._restore()
                start = self.step
                summary = {"run_dir": str(self.paths.root), "start_step": start, "total_steps": self.total}
                if start >= self.total:
                    self.log(f"nothing to do: the run is already at step {start}/{self.total}")
                    return {**summary, "final_step": start, "checkpoint": resumed_from}
                return {**summary, **self._loop(start, resumed_from)}

    @contextlib.contextmanager
    def _lock(self):
        """Holds the run directory's lock (the chief alone under multi-worker training)."""
        if not self.chief:
            yield
            return
        with run.RunLock(self.paths.root, self.log):
            yield

    # Phase 1: prepare.

    def _choose_precision(self):
        """Resolves ``auto`` for this machine; config.yaml then records the precision actually used."""
        self.precision = precision_lib.choose_here(self.config.train.precision)
        train = dataclasses.replace(self.config.train, precision=self.precision.precision)
        self.config = dataclasses.replace(self.config, train=train)

    def _start_strategy(self):
        train = self.config.train
        self.strategy = distribute.make_strategy(train.strategy, train.cpu_replicas)
        self.chief = distribute.is_chief(self.strategy)
        self.multi_worker = distribute.is_multi_worker(self.strategy)

    def _prepare(self):
        config, train = self.config, self.config.train
        if note := distribute.jit_note(train.jit_compile):
            self.log(note)
        replicas = self.strategy.num_replicas_in_sync
        if train.batch_size % replicas:
            raise TrainingError(f"--batch_size={train.batch_size} must be divisible by the {replicas} replicas")
        self.pipeline = data_lib.prepare(config.data, train.batch_size, train.seed, report=self.log)
        footprint.check_training_fits(config, self.pipeline.domains)  # before the pools are allocated
        self.total, constant, decay = schedule_steps(train, self.pipeline.steps_per_epoch)
        self._build(constant, decay)

    def _build(self, constant, decay):
        optim, train = self.config.optimizer, self.config.train
        with self.strategy.scope():
            self.model = factory.build_model(self.config)
            optimizers = [
                FusedAdam(LinearDecay(optim.lr, constant, decay), beta_1=optim.beta1, beta_2=optim.beta2)
                for _ in range(2)
            ]
            self.model.compile(*optimizers, jit_compile=train.jit_compile)
            self.checkpoint = factory.make_checkpoint(self.model)
        directory = Path(distribute.worker_dir(str(self.paths.checkpoints), self.strategy))
        directory.mkdir(parents=True, exist_ok=True)
        self.keeper = CheckpointKeeper(self.checkpoint, directory, train.keep_checkpoints, self.log)

    # Phase 2: restore.

    def _restore(self):
        latest = self.keeper.restore(self.paths.checkpoints)  # every worker resumes from the chief's
        if self.chief:
            run.write_config(self.config, self.paths.root)
        train = self.config.train
        if latest:
            self.log(f"resuming from {latest} at step {self.step}/{self.total}")
        self.log(
            f"training {self.total} steps ({self.pipeline.steps_per_epoch} steps/epoch, global batch "
            f"{train.batch_size}, {self.strategy.num_replicas_in_sync} replica(s)) in {self.paths.root}"
        )
        self.log(self.precision.line())
        return latest

    @property
    def step(self):
        return int(self.model.generator_optimizer.iterations.numpy())

    # Phase 3: the loop.

    def _loop(self, start, resumed_from):
        config = self.config
        self.evaluation = PeriodicEvaluation(config, self.pipeline, self.checkpoint, self.chief, self._say)
        self.health = None
        if config.train.health_images and self.chief:
            self.health = TrainingHealth(
                self.model, self.pipeline, config, self.paths.health, start, self.total, self._say
            )
        self.fixed_images = None
        if config.train.num_samples:
            self.fixed_images = (
                self.pipeline.test_images("A", config.train.num_samples)[0],
                self.pipeline.test_images("B", config.train.num_samples)[0],
            )
        self.writer = (
            tf.summary.create_file_writer(str(self.paths.logs / "train"))
            if self.chief
            else tf.summary.create_noop_writer()
        )
        iterator = iter(self.strategy.experimental_distribute_dataset(self.pipeline.train_dataset(start, self.total)))
        step_function = self._make_step_function()
        self.last_checkpoint = resumed_from
        self.progbar = keras.utils.Progbar(
            self.total, stateful_metrics=["epoch", "img/s", *SHOWN], unit_name="step", verbose=1 if self.progress else 0
        )
        self.bar_open = False  # the terminal's cursor is at the end of the progress bar
        self.window = (time.perf_counter(), start)
        started, step = time.perf_counter(), start
        with StopSignals() as stop_requested:
            try:
                while step < self.total:
                    stop = step_function(iterator, lambda: bool(stop_requested) or self._unhealthy())
                    step += 1
                    self._after_step(step)
                    if stop and step < self.total:
                        raise Interrupted()
            except KeyboardInterrupt:
                self._second_interrupt(step, start)
            except Interrupted:
                self._interrupted(step, bool(stop_requested))
        self.writer.flush()
        return self._summary(step, time.perf_counter() - started)

    def _make_step_function(self):
        """One training step ``(iterator, stop_requested) -> whether to stop after it``.

        ``stop_requested`` is a callable reading this process's signal flag. A signal may reach
        only one worker of a multi-worker run: there the flag is summed over all replicas with
        the step, so every worker stops after the same step and all of them join the
        (collective) checkpoint save instead of one waiting for the others forever. A single
        process reads its flag after the step, and its step stays the plain ``strategy.run``.
        """
        model, strategy = self.model, self.strategy

        def step_fn(iterator):
            strategy.run(model.train_step, args=(next(iterator),))

        if self.multi_worker:

            @tf.function
            def voting(iterator, stop):
                step_fn(iterator)
                votes = strategy.run(lambda: tf.identity(stop))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

            return lambda iterator, stop_requested: float(voting(iterator, tf.constant(float(stop_requested())))) > 0
        plain = tf.function(step_fn)

        def run_plain(iterator, stop_requested):
            plain(iterator)
            return stop_requested()

        return run_plain

    def _after_step(self, step):
        """Logging, samples, checkpoints and evaluation that fall on ``step``; losses leave the device only here."""
        train, total = self.config.train, self.total
        due = lambda every: step % every == 0 or step == total  # noqa: E731
        log_now = due(train.log_every_steps)
        save_now = due(train.save_every_steps)
        sample_now = self.fixed_images is not None and self.chief and due(train.sample_every_steps)
        if self.health is not None and due(train.sample_every_steps):
            self.health(step, self.writer)
        evaluate_now = self.evaluation.due(step, total)
        values = self._read_losses(step) if log_now or save_now or sample_now or evaluate_now else None
        if log_now:
            self._log_interval(step, values)
        if sample_now:
            samples.write_grids(
                samples.translation_grids(self.model, *self.fixed_images), step, self.paths.samples, self.writer
            )
        if save_now:
            self.last_checkpoint = self._save(step)
        if evaluate_now:
            self.evaluation(self.model, step, self.writer)
        if self.progress and (log_now or sys.stdout.isatty()):  # a log file gets one line per log interval
            self._show_progress(step, values if log_now else None)

    def _read_losses(self, step):
        """The losses since the last log line; a non-finite one stops the run before anything is saved."""
        values = {name: float(tracker.result()) for name, tracker in self.model.train_trackers.items()}
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if bad:
            where = (
                f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was saved"
            )
            raise TrainingError(
                f"loss {bad[0]} became {values[bad[0]]} by step {step}; stopped without saving ({where}). "
                "Try a lower --lr or --precision=float32"
            )
        return values

    def _log_interval(self, step, values):
        started, first = self.window
        self.images_per_second = (
            (step - first) * self.config.train.batch_size / max(time.perf_counter() - started, 1e-9)
        )
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(f"loss/{name}", value)
            tf.summary.scalar("learning_rate", float(self.model.generator_optimizer.learning_rate))
            tf.summary.scalar("images_per_second", self.images_per_second)
        for tracker in self.model.train_trackers.values():
            tracker.reset_state()
        self.window = (time.perf_counter(), step)

    def _show_progress(self, step, values):
        steps_per_epoch = self.pipeline.steps_per_epoch
        shown = [("epoch", -(-step // steps_per_epoch))]
        if values is not None:
            shown += [("img/s", self.images_per_second)] + [(name, values[name]) for name in SHOWN]
        if not sys.stdout.isatty():  # a log file: a plain line (Keras' bar would write \r and \b into it)
            self.log(f"step {step}/{self.total}  " + "  ".join(f"{name} {value:.4g}" for name, value in shown))
            return
        self.progbar.update(step, values=shown, finalize=step == self.total)
        sys.stdout.flush()
        self.bar_open = step != self.total

    def _say(self, line):
        """A message during the loop, on a line of its own (not glued to the end of the progress bar)."""
        if self.bar_open:
            sys.stdout.write("\n")
            self.bar_open = False
        self.log(line)

    def _save(self, step):
        try:
            return self.keeper.save(step)
        except CheckpointError as error:
            raise TrainingError(f"stopped at step {step}: {error}") from None

    def _last_saved_step(self):
        return step_of(self.keeper.latest) if self.keeper.latest else -1

    # Phase 4: finish (or stop early).

    def _unhealthy(self):
        return self.health is not None and self.health.reason is not None

    def _interrupted(self, step, signalled_here):
        self._read_losses(step)
        if step != self._last_saved_step():
            self.last_checkpoint = self._save(step)
        self.writer.flush()
        if self._unhealthy() and not signalled_here:
            raise Unhealthy(
                f"stopped at step {step}/{self.total} (--on_unhealthy=stop): {self.health.reason}; "
                f"saved {self.last_checkpoint}. Rerun to go on, or start again with another --seed"
            )
        who = "" if signalled_here else " (another worker was interrupted)"
        raise TrainingStopped(
            f"interrupted at step {step}/{self.total}{who}; saved {self.last_checkpoint}. "
            "Rerun the same command to resume"
        ) from None

    def _second_interrupt(self, step, start):
        self.writer.flush()
        if self.multi_worker:
            # Mid-step, the other workers cannot join a collective save: exit with the last one.
            raise TrainingStopped(
                f"interrupted twice at step {step}/{self.total}; last checkpoint: "
                f"{self.last_checkpoint}. Rerun the same command on every worker to resume"
            ) from None
        if step > start and step != self._last_saved_step():
            self._read_losses(step)
            self.last_checkpoint = self._save(step)
        raise TrainingStopped(
            f"interrupted at step {step}/{self.total}; saved {self.last_checkpoint}. Rerun the same command to resume"
        ) from None

    def _summary(self, step, seconds):
        summary = {
            "final_step": step,
            "checkpoint": self.last_checkpoint,
            "samples": str(self.paths.samples),
            "logs": str(self.paths.logs),
            "seconds": seconds,
        }
        best = self.evaluation.summary()
        if best:
            summary["best"] = best
        return summary
