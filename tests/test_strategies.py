"""What users run, under every strategy: the paper preset's losses and networks (pool 50, LSGAN, ResNet
generator, PatchGAN; identity loss on with monet2photo, off with horse2zebra) through the CLI, at 32 px.

One device, MirroredStrategy on two logical CPU devices (standing in for two GPUs) and
MultiWorkerMirroredStrategy with two worker processes on loopback. Slow: about a dozen training
processes; CI runs them after the default suite.
"""

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from trainrun import (
    ENV,
    assert_same_values,
    checked,
    checkpoint_step,
    finish,
    kill,
    latest,
    paper,
    pool_state,
    run_train,
    run_workers,
    saved_values,
    scalars,
    start_workers,
    train_command,
    wait_for_checkpoint,
)

pytestmark = pytest.mark.slow

MIRRORED = ["--strategy=mirrored", "--cpu_replicas=2"]
# The small-dataset levers on top of a paper preset: averaged generators and every DiffAugment transform.
EXTRAS = ["--ema_decay=0.99", "--diffaugment=color,translation,cutout"]
STEPS = 24
COMMON = [
    f"--steps={STEPS}",
    "--save_every_steps=2",
    "--sample_every_steps=8",
    "--log_every_steps=4",
    "--deterministic=true",
    "--seed=3",
]


def start_single(args, cwd):
    return [
        subprocess.Popen(
            train_command(args), cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    ]


LAUNCH = {
    # strategy: (preset, global batch, replicas, start processes)
    "one_device": ("monet2photo", 2, 1, lambda args, cwd: start_single(args, cwd)),
    "mirrored": ("horse2zebra", 4, 2, lambda args, cwd: start_single([*MIRRORED, *args], cwd)),
    "multi_worker": ("monet2photo", 2, 2, lambda args, cwd: start_workers(args, cwd)),
}


def expected_pool_count(steps, global_batch, replicas):
    return min(50, steps * global_batch // replicas)


@pytest.mark.parametrize("extras", [[], EXTRAS], ids=["paper", "ema_diffaugment"])
@pytest.mark.parametrize("strategy", list(LAUNCH))
def test_killed_and_resumed_runs_end_equal_to_uninterrupted_ones_with_their_pools(tmp_path, strategy, extras):
    preset, batch, replicas, launch = LAUNCH[strategy]
    args = [*paper(preset), *COMMON, f"--batch_size={batch}", *extras]
    for code, _, err in finish(launch([*args, "--run_dir=straight"], tmp_path)):
        assert code == 0, err[-3000:]

    processes = launch([*args, "--run_dir=resumed"], tmp_path)
    killed_at = checkpoint_step(wait_for_checkpoint(tmp_path / "resumed" / "checkpoints", 4, processes))
    kill(processes)
    resumed = finish(launch([*args, "--run_dir=resumed"], tmp_path))
    for code, _, err in resumed:
        assert code == 0 and "Traceback" not in err, err[-3000:]
    assert all(f"ckpt-{killed_at} at step {killed_at}/{STEPS}" in out for _, out, _ in resumed)

    straight, again = latest(tmp_path / "straight" / "checkpoints"), latest(tmp_path / "resumed" / "checkpoints")
    assert checkpoint_step(straight) == checkpoint_step(again) == STEPS and 4 <= killed_at < STEPS
    values = saved_values(again)
    assert_same_values(saved_values(straight), values, atol=1e-5)  # weights, averages, Adam moments, pools
    averages = [name for name in values if name.startswith("model/ema_generator_")]
    assert bool(averages) == bool(extras)
    if extras:  # the averages moved away from their start and lag the trained weights
        ab, ba = _restored(again, averaged=True), _restored(again, averaged=False)
        assert 0 < max(np.abs(a - b).max() for a, b in zip(ab, ba)) < 0.05
    for domain in "ab":
        images, count, draws = pool_state(again, domain)
        assert images.shape == (replicas, 50, 32, 32, 3)
        assert count.tolist() == [expected_pool_count(STEPS, batch, replicas)] * replicas
        assert draws.tolist() == [STEPS] * replicas
        filled = count[0]
        assert np.abs(images[:, :filled]).max() > 0 and np.abs(images[:, filled:]).max() == 0
        if replicas > 1:  # each replica keeps its own history of its own fakes
            assert np.abs(images[0, :filled] - images[1, :filled]).mean() > 1e-3


def _restored(checkpoint, averaged):
    """The A→B generator's weights in a run's checkpoint: the averaged ones or the trained ones."""
    from tf_cyclegan import factory, run

    run_dir = Path(checkpoint).parent.parent
    config = run.read_config(run_dir)
    if not averaged:
        config.train.ema_decay = 0.0
    return factory.restore_generators(config, checkpoint)[0].get_weights()


def test_a_mirrored_run_resumes_on_one_device_and_back(tmp_path):
    """Changing the replica count between runs: replica r takes saved pool r mod (saved replicas)."""
    args = [*paper("horse2zebra"), "--save_every_steps=2", "--sample_every_steps=100", "--run_dir=run"]
    checked(run_train([*MIRRORED, *args, "--steps=4", "--batch_size=4"], tmp_path))
    two = latest(tmp_path / "run" / "checkpoints")
    single = checked(
        run_train(["--strategy=default", "--cpu_replicas=0", *args, "--steps=6", "--batch_size=2"], tmp_path)
    )
    assert "at step 4/6" in single.stdout and "1 replica(s)" in single.stdout
    one = latest(tmp_path / "run" / "checkpoints")
    images_two, count_two, _ = pool_state(two)
    images_one, count_one, draws_one = pool_state(one)
    assert count_two.tolist() == [8, 8] and count_one.tolist() == [12] and draws_one.tolist() == [6]
    # The single device continued replica 0's history: its first 8 images are still there.
    np.testing.assert_array_equal(images_one[0, :8], images_two[0, :8])
    back = checked(run_train([*MIRRORED, *args, "--steps=8", "--batch_size=4"], tmp_path))
    assert "at step 6/8" in back.stdout and "2 replica(s)" in back.stdout
    images_back, count_back, _ = pool_state(latest(tmp_path / "run" / "checkpoints"))
    assert count_back.tolist() == [16, 16]
    np.testing.assert_array_equal(images_back[0, :12], images_one[0, :12])
    np.testing.assert_array_equal(images_back[1, :12], images_one[0, :12])  # the extra replica starts from a copy


@pytest.mark.parametrize(
    "precision, extras",
    [("mixed_bfloat16", []), ("mixed_float16", []), ("mixed_float16", EXTRAS)],
    ids=["mixed_bfloat16", "mixed_float16", "mixed_float16_ema_diffaugment"],
)
def test_mixed_precision_under_mirrored_with_the_pool(tmp_path, precision, extras):
    result = checked(
        run_train(
            [
                *MIRRORED,
                *paper("monet2photo"),
                *extras,
                f"--precision={precision}",
                "--steps=4",
                "--batch_size=4",
                "--run_dir=run",
                "--log_every_steps=2",
            ],
            tmp_path,
        )
    )
    assert f"precision {precision} (as set" in result.stdout
    _, count, _ = pool_state(latest(tmp_path / "run" / "checkpoints"))
    assert count.tolist() == [8, 8]
    losses = [
        float(line.split("generator_total ")[1].split()[0])
        for line in result.stdout.splitlines()
        if line.startswith("step ")
    ]  # the log's progress lines, at steps 2 and 4
    assert len(losses) == 2 and all(math.isfinite(value) for value in losses)


@pytest.mark.parametrize(
    "strategy, extras",
    [([], []), (MIRRORED, []), (MIRRORED, EXTRAS)],
    ids=["one_device", "mirrored", "mirrored_ema_diffaugment"],
)
def test_jit_compile_trains_with_the_pool(tmp_path, strategy, extras):
    args = [*strategy, *paper("monet2photo"), *extras, "--jit_compile=true", "--steps=4", "--batch_size=4"]
    result = checked(run_train([*args, "--run_dir=run"], tmp_path))
    assert "--jit_compile=true on a CPU" in result.stdout  # the start line says XLA is no faster on a CPU
    _, count, _ = pool_state(latest(tmp_path / "run" / "checkpoints"))
    assert count.tolist() == ([8, 8] if strategy else [16])
    if extras:  # XLA's random draws (DiffAugment) are deterministic too: a second run ends bit-equal
        checked(run_train([*args, "--deterministic=true", "--run_dir=again"], tmp_path))
        checked(run_train([*args, "--deterministic=true", "--run_dir=again2"], tmp_path))
        first, second = (saved_values(latest(tmp_path / name / "checkpoints")) for name in ("again", "again2"))
        assert_same_values(first, second)


def test_eval_every_under_mirrored_keeps_the_best_checkpoint(tmp_path):
    # --max_dataset_size=8 only makes an epoch two steps long, so that --eval_every=1 evaluates twice.
    result = checked(
        run_train(
            [
                *MIRRORED,
                *paper("monet2photo"),
                "--max_dataset_size=8",
                "--eval_every=1",
                "--max_eval_images=4",
                "--steps=4",
                "--batch_size=4",
                "--run_dir=run",
            ],
            tmp_path,
        )
    )
    evals = [line for line in result.stdout.splitlines() if line.startswith("eval at step")]
    assert [line.split(":")[0] for line in evals] == ["eval at step 2", "eval at step 4"], result.stdout[-2000:]
    best = json.loads((tmp_path / "run" / "best" / "best.json").read_text())
    assert best["metric"] == "a2b/psnr" and best["step"] in (2, 4)
    assert latest(tmp_path / "run" / "best").endswith(f"ckpt-{best['step']}")


def test_mirrored_equals_one_device_for_the_same_global_batch(tmp_path):
    # The pool is off for this comparison only: with it, each replica draws from its own pool, so the
    # discriminators see other fakes than one device would (by design). float32 for this comparison only: on a CPU
    # with native bfloat16, --precision=auto picks mixed_bfloat16, whose rounding after one Adam step (0.5% in
    # loss/gan_ab, seen in CI) is far above float32's. Everything else is the preset's.
    args = [
        *paper("monet2photo"),
        "--pool_size=0",
        "--precision=float32",
        "--steps=3",
        "--batch_size=4",
        "--deterministic=true",
        "--log_every_steps=1",
    ]
    checked(run_train([*args, "--run_dir=single"], tmp_path))
    checked(run_train([*MIRRORED, *args, "--run_dir=mirrored"], tmp_path))
    single, mirrored = (scalars(tmp_path / name / "logs") for name in ("single", "mirrored"))
    losses = [tag for tag in single if tag.startswith("loss/")]
    assert len(losses) == 9 and all(sorted(single[tag]) == [1, 2, 3] for tag in losses)
    # Step 1 scores the initial weights: equal to float rounding. Steps 2 and 3 score the weights after one and
    # two updates; Adam's step is ±lr wherever |gradient| >> epsilon, so rounding in the few weights whose gradient
    # is near epsilon grows (measured: 0.14% of the weights differ by > 1e-6 after one step, 27% after three).
    for tag in losses:
        for step, value in single[tag].items():
            assert mirrored[tag][step] == pytest.approx(value, rel=1e-5 if step == 1 else 1e-3, abs=1e-6), (tag, step)
    assert latest(tmp_path / "mirrored" / "checkpoints").endswith("ckpt-3")


def test_multi_worker_writes_samples_logs_and_config_once_from_the_chief(tmp_path):
    results = run_workers(
        [
            *paper("monet2photo"),
            "--steps=4",
            "--batch_size=2",
            "--sample_every_steps=2",
            "--save_every_steps=2",
            "--run_dir=run",
        ],
        tmp_path,
    )
    run = tmp_path / "run"
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == [f"step_{s:07d}_{d}.png" for s in (2, 4) for d in ("a2b", "b2a")]
    worker = run / "checkpoints" / ".worker_worker_1"
    # The chief alone holds the run lock (.lock, released, i.e. emptied, when it exits).
    assert sorted(p.name for p in run.iterdir()) == [
        ".lock",
        "checkpoints",
        "config.yaml",
        "health.json",
        "logs",
        "samples",
    ]
    assert (run / ".lock").read_text() == ""
    assert not list(worker.glob("*.png")) and not (worker / "samples").exists()
    assert [len(list((run / "logs").rglob("events.out.tfevents.*")))] == [1]
    assert all("Done: step 4/4" in out for _, out, _ in results)
