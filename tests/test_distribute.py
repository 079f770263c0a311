import re
import signal
import subprocess
import sys
import textwrap

import pytest
from trainrun import (
    ENV,
    assert_same_values,
    checked,
    finish,
    latest,
    paper,
    pool_state,
    run_train,
    run_workers,
    saved_values,
    slurm_envs,
    start_workers,
    wait_for_checkpoint,
)

MIRRORED_VS_SINGLE = textwrap.dedent("""
    import numpy as np, tensorflow as tf, keras
    from tf_cyclegan.distribute import make_strategy
    mirrored = make_strategy("mirrored", cpu_replicas=2)
    from tf_cyclegan import CycleGAN, build_discriminator, build_generator

    def make(scope_strategy):
        with scope_strategy.scope():
            keras.utils.set_random_seed(7)
            model = CycleGAN(
                build_generator("resnet_1blocks", ngf=4, name="generator_ab"),
                build_generator("resnet_1blocks", ngf=4, name="generator_ba"),
                build_discriminator("n_layers", n_layers=2, ndf=4, name="discriminator_a"),
                build_discriminator("n_layers", n_layers=2, ndf=4, name="discriminator_b"),
                # No pool, to isolate the loss scaling: each replica's pool would show the discriminators other
                # fakes than one device's pool (the pools under a strategy: the next test and test_strategies.py).
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
""")


def test_mirrored_two_cpu_replicas_match_one_device():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_VS_SINGLE], env=ENV, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("WORST")][0].split()
    relative, single_loss, mirrored_loss = float(line[1]), float(line[3]), float(line[4])
    # Updates agree to float rounding; a loss scaled twice (or not at all) would be off by a factor of 2.
    assert relative < 1e-3, relative
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)


POOLS_UNDER_MIRRORED = textwrap.dedent("""
    import sys
    import numpy as np, tensorflow as tf
    from tf_cyclegan.distribute import make_strategy
    from tf_cyclegan.pool import HistoryPool

    strategy = make_strategy("mirrored", cpu_replicas=2)
    with strategy.scope():
        pool = HistoryPool(3, (1, 1, 1), seed=5)
    query = tf.function(lambda images: strategy.run(pool, args=(images,)))
    for i in range(5):  # two images per replica and query: replica r's images are 10 * i + r
        batch = tf.constant([10.0 * i, 10.0 * i, 10.0 * i + 1, 10.0 * i + 1])[:, None, None, None]
        for images in strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch)):
            query(images)
    stored = [np.sort(v.numpy().ravel()) for v in pool.images.values]
    print("COUNTS", [int(v.numpy()) for v in pool.count.values], "DRAWS", [int(v.numpy()) for v in pool.draws.values])
    print("OWN", all(s % 10 == r for r, values in enumerate(stored) for s in values))
    path = tf.train.Checkpoint(pool=pool).save(sys.argv[1])
    print("SAVED", tf.train.load_checkpoint(path).get_tensor("pool/images/.ATTRIBUTES/VARIABLE_VALUE").shape)
""")


def test_each_replica_keeps_and_saves_its_own_pool(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", POOLS_UNDER_MIRRORED, str(tmp_path / "ckpt")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert lines["COUNTS"] == "COUNTS [3, 3] DRAWS [5, 5]"
    assert lines["OWN"] == "OWN True"  # a replica's pool holds only its own fakes
    assert lines["SAVED"] == "SAVED (2, 3, 1, 1, 1)"  # the checkpoint holds both replicas' pools


# The paper preset's losses and networks (pool 50, identity loss on) at 32 px: what users run, not a pool switched off.
WORKER_ARGS = [
    *paper("monet2photo"),
    "--run_dir=run",
    "--batch_size=2",
    "--save_every_steps=3",
    "--sample_every_steps=100",
    "--deterministic=true",
]


@pytest.mark.slow
def test_the_readme_mirrored_command_trains_with_the_paper_pool(tmp_path):
    result = run_train(
        [
            "--strategy=mirrored",
            "--cpu_replicas=2",
            *paper("monet2photo"),
            "--steps=3",
            "--batch_size=4",
            "--run_dir=run",
        ],
        tmp_path,
    )
    checked(result)
    assert "2 replica(s)" in result.stdout
    images, count, draws = pool_state(latest(tmp_path / "run" / "checkpoints"))
    assert images.shape == (2, 50, 32, 32, 3) and count.tolist() == [6, 6] and draws.tolist() == [3, 3]


@pytest.mark.slow
def test_two_workers_train_in_lockstep_resume_from_the_chief_and_stop_together_on_one_signal(tmp_path):
    run_workers([*WORKER_ARGS, "--steps=6"], tmp_path)
    checkpoints = tmp_path / "run" / "checkpoints"
    chief, worker = latest(checkpoints), latest(checkpoints / ".worker_worker_1")
    assert chief.endswith("ckpt-6") and worker.endswith("ckpt-6")
    # Every saved value (networks, Adam moments, step, both workers' pools) is the same in both checkpoints.
    chief_values = saved_values(chief, skip=("_CHECKPOINTABLE_OBJECT_GRAPH",))
    assert len(chief_values) > 100
    assert_same_values(chief_values, saved_values(worker, skip=("_CHECKPOINTABLE_OBJECT_GRAPH",)))
    _, count, draws = pool_state(chief)
    assert count.tolist() == [6, 6] and draws.tolist() == [6, 6]  # one pool per worker's replica, both used
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "logs").is_dir()

    processes = start_workers([*WORKER_ARGS, "--steps=100000"], tmp_path)
    wait_for_checkpoint(checkpoints, 9, processes)  # resumed and training
    processes[1].send_signal(signal.SIGINT)  # the non-chief only: the chief must still stop and save with it
    results = finish(processes, timeout=300)
    assert [code for code, _, _ in results] == [130, 130], [err[-2000:] for _, _, err in results]
    assert all("ckpt-6 at step 6/100000" in out for _, out, _ in results)
    last = [err.strip().splitlines()[-1] for _, _, err in results]
    assert "(another worker was interrupted)" in last[0] and "another worker" not in last[1], last
    steps = [int(line.split("interrupted at step ")[1].split("/")[0]) for line in last]
    assert steps[0] == steps[1] >= 9, last
    assert latest(checkpoints).endswith(f"ckpt-{steps[0]}")
    assert latest(checkpoints / ".worker_worker_1").endswith(f"ckpt-{steps[0]}")
    assert pool_state(latest(checkpoints))[1].tolist() == [min(50, steps[0])] * 2
    assert all("Traceback" not in err for _, _, err in results)


@pytest.mark.slow
def test_a_slurm_job_step_finds_its_cluster_without_tf_config_and_resumes(tmp_path):
    # Two tasks of one srun step on one node (localhost), as SLURM's variables describe them; no TF_CONFIG.
    results = run_workers([*WORKER_ARGS, "--steps=4"], tmp_path, envs=slurm_envs(2))
    for index, (_, out, _) in enumerate(results):
        line = next(line for line in out.splitlines() if line.startswith("cluster from SLURM: "))
        assert re.fullmatch(
            rf"cluster from SLURM: worker 0 localhost:\d+, worker 1 localhost:\d+; this task: worker {index}; "
            "chief: worker 0",
            line,
        ), line
    checkpoints = tmp_path / "run" / "checkpoints"
    assert latest(checkpoints).endswith("ckpt-4") and latest(checkpoints / ".worker_worker_1").endswith("ckpt-4")
    _, count, _ = pool_state(latest(checkpoints))
    assert count.tolist() == [4, 4]  # the paper's pool of 50, one per worker's replica
    resumed = run_workers([*WORKER_ARGS, "--steps=6"], tmp_path, envs=slurm_envs(2))
    assert all("ckpt-4 at step 4/6" in out for _, out, _ in resumed)
    assert latest(checkpoints).endswith("ckpt-6")


def test_multi_worker_without_a_cluster_is_one_line(tmp_path):
    env = {key: value for key, value in ENV.items() if key != "TF_CONFIG" and not key.startswith("SLURM_")}
    result = run_train(["--strategy=multi_worker", "--steps=1"], tmp_path, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "--strategy=multi_worker needs a cluster: run it with srun in a SLURM job, or set TF_CONFIG"
        in (result.stderr.strip().splitlines()[-1])
    )


def test_a_slurm_batch_script_without_srun_is_told_to_use_srun(monkeypatch):
    from tf_cyclegan import distribute

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_STEP_NODELIST", raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")
    with pytest.raises(distribute.StrategyError, match="start it with srun"):
        distribute.cluster_resolver()
    monkeypatch.setenv("SLURM_STEP_NODELIST", "node[1-2]")
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "1(x3)")
    with pytest.raises(distribute.StrategyError, match="2 host.s. in SLURM_STEP_NODELIST but 3"):
        distribute.cluster_resolver()


def test_slurm_host_and_task_lists_expand_as_slurm_writes_them():
    from tf_cyclegan.distribute import expand_hostlist, expand_tasks_per_node

    assert expand_hostlist("node[01-03,7],gpu") == ["node01", "node02", "node03", "node7", "gpu"]
    assert expand_hostlist("localhost") == ["localhost"]
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    with pytest.raises(ValueError, match="cannot read"):
        expand_hostlist("node[a-b]")
