"""The training loop: one loop for every strategy, exact resume, TensorBoard, samples.

``strategy.run(model.train_step, ...)`` is driven by our own loop (not ``fit``), so
single-device, Mirrored and MultiWorkerMirrored training share one code path. A run is
four phases: prepare (strategy, data, model), restore, the loop (a Trainer driving
hooks.py's periodic jobs), finish.
"""

import contextlib
import dataclasses
import time

import tensorflow as tf

from tf_cyclegan import data as data_lib
from tf_cyclegan import distribute, factory, footprint, run
from tf_cyclegan import hooks as hooks_lib
from tf_cyclegan import precision as precision_lib
from tf_cyclegan.checkpoints import CheckpointKeeper
from tf_cyclegan.errors import Stopped
from tf_cyclegan.evaluator import PeriodicEvaluation
from tf_cyclegan.health import TrainingHealth
from tf_cyclegan.hooks import TrainingError
from tf_cyclegan.optimizers import FusedAdam
from tf_cyclegan.runtime import run_settings
from tf_cyclegan.schedule import LinearDecay, schedule_steps
from tf_cyclegan.stopping import StopSignals

__all__ = ["Session", "Trainer", "TrainingError", "TrainingStopped", "Unhealthy", "train"]


class Unhealthy(TrainingError):
    """A health check failed under --on_unhealthy=stop (the run saved a checkpoint first)."""

    exit_code = 3


class TrainingStopped(Stopped, TrainingError):
    """Ctrl-C or SIGTERM (here or on another worker) stopped the run; it saved a checkpoint first if it could."""


@dataclasses.dataclass
class Session:
    """What one run trains with, built once in order (``prepare``) and handed to the hooks and the Trainer."""

    config: object  # config.Config, with ``auto`` precision resolved for this machine
    precision: precision_lib.Choice
    strategy: tf.distribute.Strategy
    paths: run.RunPaths
    pipeline: object = None  # data.UnpairedPipeline
    model: object = None  # model.CycleGAN, compiled under the strategy
    checkpoint: object = None  # tf.train.Checkpoint of the model, optimizers, pools and data position
    keeper: CheckpointKeeper = None
    total: int = 0

    @property
    def chief(self):
        return distribute.is_chief(self.strategy)

    @property
    def multi_worker(self):
        return distribute.is_multi_worker(self.strategy)

    @property
    def step(self):
        return int(self.model.generator_optimizer.iterations.numpy())


def train(config, log=print, progress=True):
    """Trains (or resumes) the run ``config`` describes, in ``config.run_dir``; returns a summary dict.

    Four phases: prepare (strategy, data, model, checkpoints), restore, the loop (Trainer and its
    hooks), finish. To keep the trained model at hand (benchmarks do), call ``start_session`` and
    ``run_session`` instead and read ``session.model``.
    """
    return run_session(start_session(config), log, progress)


def start_session(config):
    """The Session before preparation: ``auto`` precision resolved, paths (no TensorFlow state yet)."""
    choice = precision_lib.choose_here(config.train.precision)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, precision=choice.precision))
    return Session(config, choice, strategy=None, paths=run.RunPaths(config.run_dir))


def run_session(session, log=print, progress=True):
    """Runs a session from start_session to the end of its training (see ``train``)."""
    train_settings = session.config.train
    with run_settings(train_settings.seed, train_settings.deterministic, train_settings.precision):
        session.strategy = distribute.make_strategy(train_settings.strategy, train_settings.cpu_replicas, log)
        with _lock(session, log):
            prepare(session, log)
            resumed_from = restore(session, log)
            start, total = session.step, session.total
            summary = {"run_dir": str(session.paths.root), "start_step": start, "total_steps": total}
            if start >= total:
                log(f"nothing to do: the run is already at step {start}/{total}")
                return {**summary, "final_step": start, "checkpoint": resumed_from}
            started = time.perf_counter()
            trainer, hooks = make_trainer(session, resumed_from, log, progress)
            step = trainer.run(start)
            return {
                **summary,
                "final_step": step,
                "checkpoint": trainer.checkpoints.last,
                "samples": str(session.paths.samples),
                "logs": str(session.paths.logs),
                "seconds": time.perf_counter() - started,
                **({"best": best} if (best := hooks["evaluation"].evaluation.summary()) else {}),
            }


@contextlib.contextmanager
def _lock(session, log):
    """Holds the run directory's lock (the chief alone under multi-worker training)."""
    if not session.chief:
        yield
        return
    with run.RunLock(session.paths.root, log):
        yield


# Phase 1: prepare.


def prepare(session, log):
    """Data, model, optimizers and checkpoint keeper for ``session`` (its strategy is set)."""
    config, train_settings, strategy = session.config, session.config.train, session.strategy
    if note := distribute.jit_note(train_settings.jit_compile):
        log(note)
    replicas = strategy.num_replicas_in_sync
    if train_settings.batch_size % replicas:
        raise TrainingError(f"--batch_size={train_settings.batch_size} must be divisible by the {replicas} replicas")
    session.pipeline = data_lib.prepare(config.data, train_settings.batch_size, train_settings.seed, report=log)
    footprint.check_training_fits(config, session.pipeline.domains)  # before the pools are allocated
    session.total, constant, decay = schedule_steps(train_settings, session.pipeline.steps_per_epoch)
    optim = config.optimizer
    with strategy.scope():
        session.model = factory.build_model(config)
        optimizers = [
            FusedAdam(LinearDecay(optim.lr, constant, decay), beta_1=optim.beta1, beta_2=optim.beta2) for _ in range(2)
        ]
        session.model.compile(*optimizers, jit_compile=train_settings.jit_compile)
        session.checkpoint = factory.make_checkpoint(session.model)
    directory = distribute.worker_dir(session.paths.checkpoints, strategy)
    directory.mkdir(parents=True, exist_ok=True)
    session.keeper = CheckpointKeeper(session.checkpoint, directory, train_settings.keep_checkpoints, log)


# Phase 2: restore.


def restore(session, log):
    """Restores the chief's latest checkpoint (every worker), writes config.yaml; returns that checkpoint or None."""
    latest = session.keeper.restore(session.paths.checkpoints)
    if session.chief:
        run.write_config(session.config, session.paths.root)
    train_settings = session.config.train
    if latest:
        log(f"resuming from {latest} at step {session.step}/{session.total}")
    log(
        f"training {session.total} steps ({session.pipeline.steps_per_epoch} steps/epoch, global batch "
        f"{train_settings.batch_size}, {session.strategy.num_replicas_in_sync} replica(s)) in {session.paths.root}"
    )
    log(session.precision.line())
    return latest


# Phase 3: the loop.


def make_trainer(session, resumed_from, log=print, progress=True):
    """The Trainer for a restored session and its hooks by name (see ``standard_hooks``)."""
    writer = (
        tf.summary.create_file_writer(str(session.paths.logs / "train"))
        if session.chief
        else tf.summary.create_noop_writer()
    )
    hooks = standard_hooks(session, writer, resumed_from, log, progress)
    pipeline, start = session.pipeline, session.step
    iterator = iter(session.strategy.experimental_distribute_dataset(pipeline.train_dataset(start, session.total)))
    trainer = Trainer(
        make_step_function(session.strategy, session.model, iterator),
        list(hooks.values()),
        trackers=session.model.train_trackers,
        checkpoints=hooks["checkpoints"],
        total=session.total,
        multi_worker=session.multi_worker,
        writer=writer,
    )
    return trainer, hooks


def standard_hooks(session, writer, resumed_from, log=print, progress=True):
    """The periodic jobs of a run, by name, in the order they run after a step."""
    config, train_settings, model, total = session.config, session.config.train, session.model, session.total
    display = hooks_lib.Progress(
        total, session.pipeline.steps_per_epoch, train_settings.log_every_steps, log, enabled=progress
    )
    say = display.say
    hooks = {}
    if train_settings.health_images and session.chief:
        health = TrainingHealth(model, session.pipeline, config, session.paths.health, session.step, total, say)
        hooks["health"] = hooks_lib.HealthChecks(health, writer, train_settings.sample_every_steps, total)
    hooks["log"] = hooks_lib.LossLog(
        model.train_trackers,
        model.generator_optimizer,
        train_settings.batch_size,
        writer,
        train_settings.log_every_steps,
        total,
        session.step,
    )
    if train_settings.num_samples and session.chief:
        count = train_settings.num_samples
        real_a = session.pipeline.test_images("A", count)[0]
        real_b = session.pipeline.test_images("B", count)[0]
        hooks["samples"] = hooks_lib.SampleGrids(
            model, real_a, real_b, session.paths.samples, writer, train_settings.sample_every_steps, total
        )
    hooks["checkpoints"] = hooks_lib.Checkpoints(session.keeper, train_settings.save_every_steps, total, resumed_from)
    evaluation = PeriodicEvaluation(config, session.pipeline, session.checkpoint, session.chief, say)
    hooks["evaluation"] = hooks_lib.Evaluation(evaluation, model, writer, total)
    hooks["progress"] = display
    return hooks


def make_step_function(strategy, model, iterator):
    """One training step ``(stop_requested) -> whether to stop after it``.

    ``stop_requested`` is a callable reading this process's stop request. A signal may reach
    only one worker of a multi-worker run: there the request is summed over all replicas with
    the step, so every worker stops after the same step and all of them join the
    (collective) checkpoint save instead of one waiting for the others forever. A single
    process reads its request after the step, and its step stays the plain ``strategy.run``.
    """

    def step_fn(iterator):
        strategy.run(model.train_step, args=(next(iterator),))

    if distribute.is_multi_worker(strategy):

        @tf.function
        def voting(iterator, stop):
            step_fn(iterator)
            votes = strategy.run(lambda: tf.identity(stop))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

        return lambda stop_requested: float(voting(iterator, tf.constant(float(stop_requested())))) > 0
    plain = tf.function(step_fn)

    def run_plain(stop_requested):
        plain(iterator)
        return stop_requested()

    return run_plain


class Trainer:
    """Drives the loop: a step function and hooks handed in; Ctrl-C/SIGTERM and health stops end in a checkpoint.

    Builds nothing: ``make_trainer`` assembles one for a session; a test can hand it a fake step
    and fake hooks. ``trackers`` are the model's loss trackers (read for the NaN check before a
    stop's save), ``checkpoints`` the hooks.Checkpoints among ``hooks``.
    """

    def __init__(self, step_function, hooks, *, trackers, checkpoints, total, multi_worker=False, writer=None):
        self.trackers, self.checkpoints, self.total = trackers, checkpoints, total
        self.multi_worker, self.writer = multi_worker, writer or tf.summary.create_noop_writer()
        self.loop = hooks_lib.Loop(step_function, hooks, self._read_losses, total)

    def _read_losses(self, step):
        return hooks_lib.read_losses(self.trackers, step, self.checkpoints.last)

    def run(self, start):
        """Steps from ``start`` to ``total``; returns the step reached, or raises TrainingStopped / Unhealthy."""
        with StopSignals() as signalled:
            try:
                finished = self.loop.run(start, lambda: bool(signalled))
            except KeyboardInterrupt:
                self._second_interrupt(self.loop.step, start)
            if not finished:
                self._stopped(self.loop.step, bool(signalled))
        self.writer.flush()
        return self.loop.step

    # Phase 4: stop early.

    def _stopped(self, step, signalled_here):
        self._read_losses(step)
        if step != self.checkpoints.saved_step():
            self.checkpoints.save(step)
        self.writer.flush()
        reason = self.loop.stop_reason()
        if reason is not None and not signalled_here:
            raise Unhealthy(
                f"stopped at step {step}/{self.total} (--on_unhealthy=stop): {reason}; "
                f"saved {self.checkpoints.last}. Rerun to go on, or start again with another --seed"
            )
        who = "" if signalled_here else " (another worker was interrupted)"
        raise TrainingStopped(
            f"interrupted at step {step}/{self.total}{who}; saved {self.checkpoints.last}. "
            "Rerun the same command to resume"
        ) from None

    def _second_interrupt(self, step, start):
        self.writer.flush()
        if self.multi_worker:
            # Mid-step, the other workers cannot join a collective save: exit with the last one.
            raise TrainingStopped(
                f"interrupted twice at step {step}/{self.total}; last checkpoint: "
                f"{self.checkpoints.last}. Rerun the same command on every worker to resume"
            ) from None
        if step > start and step != self.checkpoints.saved_step():
            self._read_losses(step)
            self.checkpoints.save(step)
        raise TrainingStopped(
            f"interrupted at step {step}/{self.total}; saved {self.checkpoints.last}. Rerun the same command to resume"
        ) from None
