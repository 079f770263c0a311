import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

MIRRORED_VS_SINGLE = textwrap.dedent('''
    import numpy as np, tensorflow as tf, keras
    from tf_cyclegan.distribute import make_strategy
    mirrored = make_strategy("mirrored", cpu_replicas=2)
    from tf_cyclegan import CycleGAN, build_discriminator, build_generator

    def make(scope_strategy):
        with scope_strategy.scope():
            keras.utils.set_random_seed(7)
            model = CycleGAN(
                build_generator("resnet_6blocks", ngf=4, name="generator_ab"),
                build_generator("resnet_6blocks", ngf=4, name="generator_ba"),
                build_discriminator("n_layers", n_layers=2, ndf=4, name="discriminator_a"),
                build_discriminator("n_layers", n_layers=2, ndf=4, name="discriminator_b"),
                pool_size=0, lambda_identity=0.5)
            # Plain SGD with a large rate: a gradient summed instead of averaged would show at once.
            model.compile(keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5))
        return model

    rng = np.random.default_rng(0)
    batch = (rng.uniform(-1, 1, (4, 16, 16, 3)).astype("float32"), rng.uniform(-1, 1, (4, 16, 16, 3)).astype("float32"))
    results = {}
    for name, strategy in (("single", tf.distribute.get_strategy()), ("mirrored", mirrored)):
        model = make(strategy)
        before = [w.numpy() for w in model.trainable_weights]
        data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch))
        step = tf.function(lambda b: strategy.run(model.train_step, args=(b,)))
        for element in data:
            step(element)
        results[name] = [w.numpy() - b for w, b in zip(model.trainable_weights, before)]  # the update
        results[name + "_loss"] = float(model.train_trackers["generator_total"].result())
    assert mirrored.num_replicas_in_sync == 2
    worst = max(float(np.abs(a - b).max()) for a, b in zip(results["single"], results["mirrored"]))
    moved = max(float(np.abs(a).max()) for a in results["single"])
    print("WORST", worst / moved, "LOSS", results["single_loss"], results["mirrored_loss"])
''')


def test_mirrored_two_cpu_replicas_match_one_device():
    result = subprocess.run([sys.executable, "-c", MIRRORED_VS_SINGLE], env=ENV, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("WORST")][0].split()
    relative, single_loss, mirrored_loss = float(line[1]), float(line[3]), float(line[4])
    # Updates agree to float rounding; a loss scaled twice (or not at all) would be off by a factor of 2.
    assert relative < 1e-3, relative
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(tmp_path, steps):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    args = [sys.executable, "-m", "tf_cyclegan.train", f"--steps={steps}", "--run_dir=run", "--strategy=multi_worker",
            "--batch_size=2", "--image_size=32", "--load_size=36", "--ngf=4", "--ndf=4", "--n_blocks=1",
            "--pool_size=0", "--max_dataset_size=16", "--save_every_steps=3", "--sample_every_steps=100",
            "--deterministic=true"]
    processes = []
    for index in range(2):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    return processes


def _launch_workers(tmp_path, steps):
    processes = _start_workers(tmp_path, steps)
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    return outputs


def _weights(checkpoint):
    reader = tf.train.load_checkpoint(checkpoint)
    # Every saved value: the four networks (saved under the optimizers' paths), Adam moments, step.
    return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(checkpoint) if n != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_two_workers_train_in_lockstep_and_resume_from_the_chief(tmp_path):
    _launch_workers(tmp_path, steps=6)
    chief = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    worker = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints" / ".worker_worker_1"))
    assert chief.endswith("ckpt-6") and worker.endswith("ckpt-6")
    chief_weights, worker_weights = _weights(chief), _weights(worker)
    assert chief_weights.keys() == worker_weights.keys() and len(chief_weights) > 100
    for name in chief_weights:
        np.testing.assert_array_equal(chief_weights[name], worker_weights[name], err_msg=name)
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "logs").is_dir()

    outputs = _launch_workers(tmp_path, steps=8)
    assert all("at step 6/8" in out for out, _ in outputs)
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-8")


def test_a_signal_to_one_worker_stops_every_worker_at_the_same_step_with_a_checkpoint(tmp_path):
    chief, worker = _start_workers(tmp_path, steps=100000)
    checkpoints = tmp_path / "run" / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and tf.train.latest_checkpoint(str(checkpoints)) is None:
        time.sleep(0.1)  # training is under way once the chief has saved step 3
    worker.send_signal(signal.SIGINT)  # the non-chief only: the chief must still stop and save with it
    try:
        outputs = [p.communicate(timeout=300) for p in (chief, worker)]
    finally:
        for process in (chief, worker):
            process.kill()
    assert [p.returncode for p in (chief, worker)] == [130, 130], [err[-2000:] for _, err in outputs]
    last = [err.strip().splitlines()[-1] for _, err in outputs]
    assert "(another worker was interrupted)" in last[0] and "another worker" not in last[1], last
    steps = [int(line.split("interrupted at step ")[1].split("/")[0]) for line in last]
    assert steps[0] == steps[1] >= 3, last
    saved_chief = tf.train.latest_checkpoint(str(checkpoints))
    saved_worker = tf.train.latest_checkpoint(str(checkpoints / ".worker_worker_1"))
    assert saved_chief.endswith(f"ckpt-{steps[0]}") and saved_worker.endswith(f"ckpt-{steps[0]}")
    assert all("Traceback" not in err for _, err in outputs)
