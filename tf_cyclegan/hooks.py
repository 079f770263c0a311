"""The training loop's periodic jobs, all behind one protocol, and the loop that drives them.

A hook has ``due(step)`` (does it run after this step?) and ``__call__(step, logs)``. After every
step the loop calls the due hooks in their list order; ``logs`` holds the losses since the last
log line, read off the device only when a due hook has ``needs_losses`` (and then checked: a
non-finite loss stops the run before anything is saved). A hook may add to ``logs`` for the
hooks after it (LossLog adds the throughput the progress display shows). A hook whose
``stop_reason`` is set asks the run to stop after the current step (the health check under
``--on_unhealthy=stop``). A new periodic job is a new hook in ``standard_hooks``' list.
"""

import math
import sys
import time

import keras
import tensorflow as tf

from tf_cyclegan import samples
from tf_cyclegan.checkpoints import CheckpointError, step_of
from tf_cyclegan.errors import UserError

SHOWN = ("generator_total", "cycle_a", "cycle_b", "disc_a", "disc_b")
THROUGHPUT = "img/s"  # what LossLog adds to logs


class TrainingError(UserError, RuntimeError):
    """Training stopped for a reason the user must act on (message is one line)."""


class Hook:
    """A periodic job of the training loop (see the module's docstring for the protocol)."""

    needs_losses = False
    stop_reason = None

    def due(self, step):
        raise NotImplementedError

    def __call__(self, step, logs):
        raise NotImplementedError


class Periodic(Hook):
    """Due every ``every`` steps and at the last step."""

    def __init__(self, every, total):
        self.every, self.total = every, total

    def due(self, step):
        return step % self.every == 0 or step == self.total


class Loop:
    """Runs ``step_function(stop_requested) -> stop`` up to ``total`` and the due hooks after each step.

    ``step`` is the number of steps done so far (readable after an exception, e.g. a second Ctrl-C).
    """

    def __init__(self, step_function, hooks, read_losses, total):
        self.step_function, self.hooks, self.read_losses, self.total = step_function, hooks, read_losses, total
        self.step = None

    def stop_reason(self):
        return next((hook.stop_reason for hook in self.hooks if hook.stop_reason is not None), None)

    def run(self, start, signalled):
        """True when it reached ``total``; False when asked to stop (``signalled()`` or a hook) before it."""
        self.step = start
        while self.step < self.total:
            stop = self.step_function(lambda: signalled() or self.stop_reason() is not None)
            self.step += 1
            self.after_step(self.step)
            if stop and self.step < self.total:
                return False
        return True

    def after_step(self, step):
        due = [hook for hook in self.hooks if hook.due(step)]
        logs = self.read_losses(step) if any(hook.needs_losses for hook in due) else {}
        for hook in due:
            hook(step, logs)


def read_losses(trackers, step, last_checkpoint):
    """The tracked losses as floats; a non-finite one raises TrainingError (nothing is saved after it)."""
    values = {name: float(tracker.result()) for name, tracker in trackers.items()}
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        where = f"last good checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint was saved"
        raise TrainingError(
            f"loss {bad[0]} became {values[bad[0]]} by step {step}; stopped without saving ({where}). "
            "Try a lower --lr or --precision=float32"
        )
    return values


class LossLog(Periodic):
    """Every ``--log_every_steps``: the losses, learning rate and images/s to TensorBoard; the trackers reset."""

    needs_losses = True

    def __init__(self, trackers, optimizer, batch_size, writer, every, total, start):
        super().__init__(every, total)
        self.trackers, self.optimizer, self.batch_size, self.writer = trackers, optimizer, batch_size, writer
        self.window = (time.perf_counter(), start)

    def __call__(self, step, logs):
        started, first = self.window
        logs[THROUGHPUT] = (step - first) * self.batch_size / max(time.perf_counter() - started, 1e-9)
        with self.writer.as_default(step=step):
            for name, tracker in self.trackers.items():
                tf.summary.scalar(f"loss/{name}", logs[name])
                tracker.reset_state()
            tf.summary.scalar("learning_rate", float(self.optimizer.learning_rate))
            tf.summary.scalar("images_per_second", logs[THROUGHPUT])
        self.window = (time.perf_counter(), step)


class Progress(Periodic):
    """The terminal's progress bar (every step on a terminal), or a plain line per log interval in a log file.

    ``say`` prints another hook's message on a line of its own, not glued to the end of the bar.
    """

    def __init__(self, total, steps_per_epoch, log_every, log=print, enabled=True, stream=sys.stdout):
        super().__init__(log_every, total)
        self.steps_per_epoch, self.log, self.enabled, self.stream = steps_per_epoch, log, enabled, stream
        self.bar = keras.utils.Progbar(
            total, stateful_metrics=["epoch", THROUGHPUT, *SHOWN], unit_name="step", verbose=1 if enabled else 0
        )
        self.bar_open = False  # the terminal's cursor is at the end of the progress bar

    def _terminal(self):
        return self.stream.isatty()

    def due(self, step):
        return self.enabled and (super().due(step) or self._terminal())

    def __call__(self, step, logs):
        shown = [("epoch", -(-step // self.steps_per_epoch))]
        if THROUGHPUT in logs:  # a log step
            shown += [(THROUGHPUT, logs[THROUGHPUT])] + [(name, logs[name]) for name in SHOWN]
        if not self._terminal():  # a log file: a plain line (Keras' bar would write \r and \b into it)
            self.log(f"step {step}/{self.total}  " + "  ".join(f"{name} {value:.4g}" for name, value in shown))
            return
        self.bar.update(step, values=shown, finalize=step == self.total)
        self.stream.flush()
        self.bar_open = step != self.total

    def say(self, line):
        if self.bar_open:
            self.stream.write("\n")
            self.bar_open = False
        self.log(line)


class SampleGrids(Periodic):
    """Every ``--sample_every_steps``: real | translated | reconstructed grids of fixed test images."""

    needs_losses = True  # no grids of a diverged model: the non-finite loss stops the run first

    def __init__(self, model, real_a, real_b, folder, writer, every, total):
        super().__init__(every, total)
        self.model, self.real_a, self.real_b, self.folder, self.writer = model, real_a, real_b, folder, writer

    def __call__(self, step, logs):
        grids = samples.translation_grids(self.model, self.real_a, self.real_b)
        samples.write_grids(grids, step, self.folder, self.writer)


class HealthChecks(Periodic):
    """Every ``--sample_every_steps``: health.TrainingHealth's probe; its warning under ``stop`` ends the run."""

    def __init__(self, health, writer, every, total):
        super().__init__(every, total)
        self.health, self.writer = health, writer

    @property
    def stop_reason(self):
        return self.health.reason

    def __call__(self, step, logs):
        self.health(step, self.writer)


class Checkpoints(Periodic):
    """Every ``--save_every_steps`` (and at the end): a verified checkpoint; ``last`` is the newest one saved."""

    needs_losses = True  # a non-finite loss stops the run before it is saved

    def __init__(self, keeper, every, total, last=None):
        super().__init__(every, total)
        self.keeper, self.last = keeper, last

    def __call__(self, step, logs):
        self.save(step)

    def save(self, step):
        try:
            self.last = self.keeper.save(step)
        except CheckpointError as error:
            raise TrainingError(f"stopped at step {step}: {error}") from None
        return self.last

    def saved_step(self):
        return step_of(self.keeper.latest) if self.keeper.latest else -1


class Evaluation(Hook):
    """Every ``--eval_every`` epochs: evaluator.PeriodicEvaluation scores the test split and keeps best/."""

    needs_losses = True  # as before a save: a diverged run is not scored

    def __init__(self, evaluation, model, writer, total):
        self.evaluation, self.model, self.writer, self.total = evaluation, model, writer, total

    def due(self, step):
        return self.evaluation.due(step, self.total)

    def __call__(self, step, logs):
        self.evaluation(self.model, step, self.writer)
