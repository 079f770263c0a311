"""The training loop in-process: trainer.Trainer driving hooks with a fake step, fake hooks and a fake keeper.

The real loop runs through the CLI everywhere else (test_train_cli, test_strategies, test_faults); here its
order, its lazy loss reads and its stop paths are pinned down without TensorFlow training anything.
"""

import os
import signal

import pytest

from tf_cyclegan import hooks
from tf_cyclegan.trainer import Trainer, TrainingError, TrainingStopped, Unhealthy


class Tracker:
    def __init__(self, values):
        self.values, self.resets = values, 0

    def result(self):
        return self.values[0]

    def reset_state(self):
        self.resets += 1


class Keeper:
    """CheckpointKeeper's two members the Checkpoints hook uses."""

    def __init__(self):
        self.latest, self.saved = None, []

    def save(self, step):
        self.saved.append(step)
        self.latest = f"ckpt-{step}"
        return self.latest


class Recorder(hooks.Periodic):
    def __init__(self, name, every, total, calls, needs_losses=False):
        super().__init__(every, total)
        self.name, self.calls, self.needs_losses = name, calls, needs_losses

    def __call__(self, step, logs):
        self.calls.append((self.name, step, dict(logs)))


class Steps:
    """A fake step function: counts calls; ``on_step`` may act at a given step (1-based)."""

    def __init__(self, on_step=None):
        self.done, self.on_step = 0, on_step or {}

    def __call__(self, stop_requested):
        self.done += 1
        if self.done in self.on_step:
            self.on_step[self.done]()
        return stop_requested()


def make(step_function, extra_hooks, total=6, save_every=3, loss=1.0):
    keeper = Keeper()
    checkpoints = hooks.Checkpoints(keeper, save_every, total)
    trackers = {"generator_total": Tracker([loss])}
    trainer = Trainer(
        step_function, [*extra_hooks, checkpoints], trackers=trackers, checkpoints=checkpoints, total=total
    )
    return trainer, keeper, trackers


def test_due_hooks_run_in_order_and_losses_are_read_only_when_one_needs_them():
    calls = []
    every_two = Recorder("every_two", 2, 6, calls)
    losses = Recorder("losses", 3, 6, calls, needs_losses=True)
    trainer, keeper, _ = make(Steps(), [every_two, losses])
    assert trainer.run(start=0) == 6
    assert [(name, step) for name, step, _ in calls] == [
        ("every_two", 2),
        ("losses", 3),
        ("every_two", 4),
        ("every_two", 6),
        ("losses", 6),
    ]
    # Step 2 has no due hook that needs the losses: nothing was read off the device for it.
    assert calls[0][2] == {} and calls[1][2] == {"generator_total": 1.0}
    assert keeper.saved == [3, 6]


def test_a_resumed_run_starts_at_its_step():
    steps = Steps()
    trainer, keeper, _ = make(steps, [])
    assert trainer.run(start=4) == 6 and steps.done == 2 and keeper.saved == [6]


def test_a_non_finite_loss_stops_before_anything_is_saved():
    trainer, keeper, _ = make(Steps(), [], loss=float("nan"))
    with pytest.raises(TrainingError, match=r"loss generator_total became nan by step 3; stopped without saving"):
        trainer.run(start=0)
    assert keeper.saved == []


def test_sigterm_stops_after_the_current_step_with_a_checkpoint():
    steps = Steps(on_step={2: lambda: os.kill(os.getpid(), signal.SIGTERM)})
    trainer, keeper, _ = make(steps, [])
    with pytest.raises(TrainingStopped, match=r"interrupted at step 2/6; saved ckpt-2") as stopped:
        trainer.run(start=0)
    assert stopped.value.exit_code == 130 and steps.done == 2 and keeper.saved == [2]


def test_a_stop_at_a_saved_step_does_not_save_twice():
    steps = Steps(on_step={3: lambda: os.kill(os.getpid(), signal.SIGTERM)})
    trainer, keeper, _ = make(steps, [])
    with pytest.raises(TrainingStopped, match="saved ckpt-3"):
        trainer.run(start=0)
    assert keeper.saved == [3]


class Unwell(hooks.Periodic):
    """Like the health check under --on_unhealthy=stop: a warning at a step asks the run to stop."""

    def __call__(self, step, logs):
        self.stop_reason = f"warned at step {step}"


def test_a_hook_that_asks_to_stop_ends_the_run_unhealthy_after_the_next_step():
    steps = Steps()
    trainer, keeper, _ = make(steps, [Unwell(2, 10)], total=10, save_every=5)
    with pytest.raises(Unhealthy, match=r"stopped at step 3/10 \(--on_unhealthy=stop\): warned at step 2") as stopped:
        trainer.run(start=0)
    # The warning came after step 2; step 3's request (read after the step) stops the run there.
    assert stopped.value.exit_code == 3 and steps.done == 3 and keeper.saved == [3]


def test_a_second_ctrl_c_mid_step_saves_the_last_finished_step():
    def second_interrupt():
        raise KeyboardInterrupt

    steps = Steps(on_step={5: second_interrupt})
    trainer, keeper, _ = make(steps, [], total=10, save_every=3)
    with pytest.raises(TrainingStopped, match="interrupted at step 4/10; saved ckpt-4"):
        trainer.run(start=0)
    assert keeper.saved == [3, 4]


def test_loss_log_hands_the_throughput_to_the_progress_line():
    lines = []
    trackers = {name: Tracker([0.5]) for name in hooks.SHOWN}

    class Optimizer:
        learning_rate = 2e-4

    class LogFile:  # not a terminal: a plain line per log interval
        def isatty(self):
            return False

    import tensorflow as tf

    log = hooks.LossLog(trackers, Optimizer(), 4, tf.summary.create_noop_writer(), 2, 4, start=0)
    progress = hooks.Progress(4, 2, 2, lines.append, stream=LogFile())
    keeper = Keeper()
    checkpoints = hooks.Checkpoints(keeper, 4, 4)
    Trainer(Steps(), [log, progress, checkpoints], trackers=trackers, checkpoints=checkpoints, total=4).run(0)
    assert [line.split("  img/s")[0] for line in lines] == ["step 2/4  epoch 1", "step 4/4  epoch 2"]
    assert all("generator_total 0.5  cycle_a 0.5" in line for line in lines)
    assert all(tracker.resets == 2 for tracker in trackers.values())
