"""Running ``python -m tf_cyclegan.train`` as users do: subprocesses, real workers, real checkpoints."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
PRESETS = Path(__file__).resolve().parent.parent / "configs"

# A paper preset's own losses and networks (LSGAN, λ_cycle 10, pool 50, ResNet generator, 70×70 PatchGAN),
# shrunk only in image size, channels and residual blocks so that a step takes a fraction of a second.
TINY_PAPER = ["--dataset=emoji", "--image_size=32", "--load_size=36", "--ngf=8", "--ndf=8", "--n_blocks=2"]


def paper(preset):
    """Flags for a paper preset (monet2photo: identity loss on; horse2zebra: off) at the tiny size."""
    return [f"--config={PRESETS / preset}.yaml", *TINY_PAPER]


def train_command(args):
    return [sys.executable, "-m", "tf_cyclegan.train", *args]


def run_train(args, cwd, timeout=600, env=None):
    return subprocess.run(train_command(args), cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout)


def cli(module, *args, cwd=None, timeout=300, env=None):
    """``python -m <module> <args>`` as a user runs it, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout
    )


def checked(result):
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


def checkpoint_step(path):
    return int(str(path).rsplit("-", 1)[1])


def latest(directory):
    directory = Path(directory)
    return tf.train.latest_checkpoint(str(directory)) if directory.is_dir() else None


def wait_for_checkpoint(directory, min_step, processes, timeout=300):
    """Waits until ``directory`` holds a checkpoint of at least ``min_step`` while every process still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in processes), "a run ended before it could be interrupted"
        found = latest(directory)
        if found and checkpoint_step(found) >= min_step:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint >= {min_step} in {directory} after {timeout} s")


def kill(processes):
    for process in processes:
        process.send_signal(signal.SIGKILL)
    for process in processes:
        process.wait()


def saved_values(checkpoint, skip=("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter")):
    reader = tf.train.load_checkpoint(str(checkpoint))
    names = sorted(n for n, _ in tf.train.list_variables(str(checkpoint)) if not n.startswith(skip))
    return {n: reader.get_tensor(n) for n in names}


def pool_state(checkpoint, domain="a"):
    """(images, count, draws) of a domain's history pools, one row per replica."""
    values = saved_values(checkpoint)
    return tuple(
        values[f"model/pool_{domain}/{name}/.ATTRIBUTES/VARIABLE_VALUE"] for name in ("images", "count", "draws")
    )


def assert_same_values(first, second, atol=0.0):
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_allclose(second[name], first[name], atol=atol, rtol=0, err_msg=name)


def scalars(logdir):
    """{tag: {step: value}} of every scalar summary under ``logdir``."""
    values = {}
    for path in Path(logdir).rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    values.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config_envs(count):
    """The environment of each of ``count`` workers on loopback, told their cluster by TF_CONFIG."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    return [
        {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        for index in range(count)
    ]


def consecutive_free_ports(count):
    """A first port such that it and the ``count - 1`` after it are free on loopback now."""
    for _ in range(50):
        first = free_ports(1)[0]
        sockets = []
        try:
            for port in range(first, first + count):
                sockets.append(socket.socket())
                sockets[-1].bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no run of free ports")


def slurm_envs(count):
    """What ``srun --ntasks=<count>`` on one node sets for each task (no TF_CONFIG), ports from TF_CYCLEGAN_PORT."""
    base = {key: value for key, value in ENV.items() if key != "TF_CONFIG"}
    common = {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_NUM_TASKS": str(count),
        "SLURM_STEP_NODELIST": "localhost",
        "SLURM_STEP_TASKS_PER_NODE": str(count),
        "SLURM_NTASKS": str(count),
        "TF_CYCLEGAN_PORT": str(consecutive_free_ports(count)),
    }
    return [{**base, **common, "SLURM_PROCID": str(index), "SLURM_LOCALID": str(index)} for index in range(count)]


def start_workers(args, cwd, count=2, envs=None):
    """``count`` worker processes on loopback running the same command (worker 0 is the chief); ``envs``:
    each worker's environment (default: TF_CONFIG naming loopback ports)."""
    processes = []
    for env in envs or tf_config_envs(count):
        processes.append(
            subprocess.Popen(
                train_command(["--strategy=multi_worker", *args]),
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return processes


def finish(processes, timeout=600):
    """Waits for every process; returns [(returncode, stdout, stderr)]."""
    try:
        outputs = [p.communicate(timeout=timeout) for p in processes]
    finally:
        for process in processes:
            process.kill()
    return [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs)]


def run_workers(args, cwd, count=2, envs=None):
    results = finish(start_workers(args, cwd, count, envs))
    for code, _, err in results:
        assert code == 0, err[-3000:]
    return results
