"""Faults injected at the real boundary: damaged checkpoint files, a second trainer, a full disk, broken configs."""

import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from trainrun import ENV, latest, run_train

from tf_cyclegan import run
from tf_cyclegan.checkpoints import CheckpointError, CheckpointKeeper, DoesNotMatch


def keeper_for(directory, keep=3, value=0.0, log=None):
    """A CheckpointKeeper over a small checkpoint holding a variable and the step the keeper checks."""
    step = tf.Variable(0, dtype=tf.int64)
    optimizer = tf.train.Checkpoint(_iterations=step)
    weights = tf.Variable(tf.fill([64], value))
    checkpoint = tf.train.Checkpoint(generator_optimizer=optimizer, weights=weights)
    return CheckpointKeeper(checkpoint, directory, keep, log or (lambda line: None)), step, weights


def save_steps(directory, steps, keep=3):
    keeper, step, weights = keeper_for(directory, keep)
    for number in steps:
        step.assign(number)
        weights.assign(tf.fill([64], float(number)))
        keeper.save(number)
    return keeper


def truncate_data(prefix):
    data = next(prefix.parent.glob(f"{prefix.name}.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def garble_data(prefix):
    data = next(prefix.parent.glob(f"{prefix.name}.data-*"))
    with open(data, "r+b") as handle:
        handle.write(np.random.default_rng(0).integers(0, 256, data.stat().st_size, dtype=np.uint8).tobytes())


DAMAGE = {
    "data truncated": truncate_data,
    "data overwritten": garble_data,
    "index garbage": lambda prefix: prefix.with_name(prefix.name + ".index").write_bytes(b"garbage" * 20),
    "data missing": lambda prefix: next(prefix.parent.glob(f"{prefix.name}.data-*")).unlink(),
    "index missing": lambda prefix: prefix.with_name(prefix.name + ".index").unlink(),
    "all files missing": lambda prefix: [p.unlink() for p in prefix.parent.glob(f"{prefix.name}.*")],
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage):
    save_steps(tmp_path, [10, 20, 30])
    DAMAGE[damage](tmp_path / "ckpt-30")
    lines = []
    keeper, step, weights = keeper_for(tmp_path, log=lines.append)
    assert keeper.restore() == str(tmp_path / "ckpt-20")
    assert int(step.numpy()) == 20 and float(weights.numpy()[0]) == 20.0
    assert len(lines) == 1 and "skipped checkpoint" in lines[0] and "ckpt-30" in lines[0]
    assert "resuming from step 20" in lines[0]
    left = [p.name for p in tmp_path.glob("ckpt-30.*")]
    assert not left  # moved aside (never deleted): what was there is in damaged/
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-20")
    keeper.save(21)  # the run goes on from the good checkpoint; ckpt-20 stays until 21 has read back
    assert [p.name for p in sorted(tmp_path.glob("*.index"))] == ["ckpt-10.index", "ckpt-20.index", "ckpt-21.index"]


def test_damaged_files_are_kept_in_damaged(tmp_path):
    save_steps(tmp_path, [10, 20])
    garble_data(tmp_path / "ckpt-20")
    keeper_for(tmp_path)[0].restore()
    assert sorted(p.name for p in (tmp_path / "damaged").iterdir()) == ["ckpt-20.data-00000-of-00001", "ckpt-20.index"]


def test_a_checkpoint_the_index_file_does_not_list_is_still_found(tmp_path):
    # A crash between writing a checkpoint and updating the index file leaves the newest unlisted.
    save_steps(tmp_path, [10, 20])
    keeper, step, _ = keeper_for(tmp_path)
    step.assign(30)
    keeper.checkpoint.write(str(tmp_path / "ckpt-30"))
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-20")
    assert keeper_for(tmp_path)[0].restore().endswith("ckpt-30")


def test_a_folder_whose_checkpoints_all_fail_is_an_error_not_a_restart(tmp_path):
    save_steps(tmp_path, [10, 20])
    for prefix in ("ckpt-10", "ckpt-20"):
        garble_data(tmp_path / prefix)
    with pytest.raises(CheckpointError, match="none of the 2 checkpoint"):
        keeper_for(tmp_path)[0].restore()
    assert len(list(tmp_path.glob("ckpt-*.index"))) == 2  # nothing moved or deleted


def test_a_checkpoint_of_another_configuration_is_not_damage(tmp_path):
    save_steps(tmp_path, [10])
    step = tf.Variable(0, dtype=tf.int64)
    other = tf.train.Checkpoint(
        generator_optimizer=tf.train.Checkpoint(_iterations=step),
        weights=tf.Variable(tf.zeros([64])),
        extra=tf.Variable(1.0),
    )
    with pytest.raises(DoesNotMatch, match="does not match this config"):
        CheckpointKeeper(other, tmp_path, 3).restore()
    assert (tmp_path / "ckpt-10.index").is_file()


def test_rotation_keeps_the_newest_and_deletes_only_after_a_save_reads_back(tmp_path, monkeypatch):
    keeper = save_steps(tmp_path, [10, 20, 30, 40], keep=2)
    assert [p.name for p in sorted(tmp_path.glob("*.index"))] == ["ckpt-30.index", "ckpt-40.index"]
    import tf_cyclegan.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "damage", lambda prefix: "unreadable: injected")
    with pytest.raises(CheckpointError, match="does not read back"):
        keeper.save(50)
    assert (tmp_path / "ckpt-30.index").is_file() and (tmp_path / "ckpt-40.index").is_file()
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-40")


def fill_the_disk():
    """In the child: files may grow to 64 KB (a checkpoint write then fails with EFBIG, not a signal)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


FULL_DISK = """
import sys
sys.path.insert(0, sys.argv[2])
from test_faults import save_steps
from tf_cyclegan.checkpoints import CheckpointError
keeper = save_steps(sys.argv[1], [30])
try:
    keeper.checkpoint.weights.assign(keeper.checkpoint.weights * 0 + 1)
    import tensorflow as tf
    keeper.checkpoint.big = tf.Variable(tf.zeros([100000]))
    keeper.save(40)
except CheckpointError as error:
    print("ERROR", error)
"""


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    save_steps(tmp_path, [10, 20])
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path), os.path.dirname(__file__)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=fill_the_disk,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("ERROR")][0]
    assert "could not save" in line and "ckpt-40" in line and "is intact" in line
    assert keeper_for(tmp_path)[0].restore().endswith("ckpt-30")


def test_one_trainer_per_run_directory(tmp_path):
    with run.RunLock(tmp_path):
        with pytest.raises(run.RunLocked, match=f"PID {os.getpid()}"):
            run.RunLock(tmp_path).__enter__()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom tf_cyclegan import run\n"
            "with run.RunLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    result = run_train(["--run_dir=.", "--steps=2", "--image_size=32", "--load_size=36"], tmp_path, timeout=120)
    assert result.returncode == 1 and f"is in use by another trainer (PID {holder.pid}" in result.stderr
    holder.kill()
    holder.wait()
    lines = []
    with run.RunLock(tmp_path, log=lines.append):  # its process is gone: taken over, with a message
        pass
    assert len(lines) == 1 and f"PID {holder.pid}" in lines[0] and "no longer running" in lines[0]


@pytest.mark.parametrize("damage", ["data overwritten", pytest.param("all files missing", marks=pytest.mark.slow)])
def test_training_resumes_past_a_damaged_checkpoint_with_one_warning(tiny_run, tmp_path, damage):
    shutil.copytree(tiny_run.path, tmp_path / "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    assert latest(checkpoints).endswith("ckpt-8")
    DAMAGE[damage](checkpoints / "ckpt-8")
    # Evaluation off (the shared run scores every epoch): only the restore and its fallback are under test.
    result = run_train(["--run_dir=run", "--steps=10", "--eval_every=0"], tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    warnings = [l for l in result.stdout.splitlines() if l.startswith("warning: skipped checkpoint")]
    assert len(warnings) == 1 and "ckpt-8" in warnings[0], result.stdout[-2000:]
    assert "ckpt-6 at step 6/10" in result.stdout and latest(checkpoints).endswith("ckpt-10")


def test_readers_name_a_damaged_checkpoint_and_an_older_one_to_use(tiny_run, tmp_path):
    shutil.copytree(tiny_run.path, tmp_path / "run")
    garble_data(tmp_path / "run" / "checkpoints" / "ckpt-8")
    result = subprocess.run(
        [sys.executable, "-m", "tf_cyclegan.export", "--run_dir=run", "--output=out"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "ckpt-8 cannot be restored" in last and "--checkpoint=" in last and "ckpt-6" in last
    older = subprocess.run(
        [
            sys.executable,
            "-m",
            "tf_cyclegan.export",
            "--run_dir=run",
            "--output=out",
            f"--checkpoint={tmp_path / 'run' / 'checkpoints' / 'ckpt-6'}",
        ],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert older.returncode == 0, older.stderr[-2000:]


def test_a_truncated_or_broken_run_config_is_one_line_naming_file_and_line(tiny_run, tmp_path):
    shutil.copytree(tiny_run.path, tmp_path / "run")
    config = tmp_path / "run" / "config.yaml"
    text = config.read_text()
    config.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")
    result = run_train(["--run_dir=run"], tmp_path, timeout=60)
    assert result.returncode == 2 and "config.yaml: cut short after line" in result.stderr
    config.write_text(text.replace("data:", "data: [", 1))
    broken = run_train(["--run_dir=run"], tmp_path, timeout=60)
    assert broken.returncode == 2 and "config.yaml: not valid YAML at line" in broken.stderr
    assert "Traceback" not in result.stderr + broken.stderr
