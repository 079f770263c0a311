import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from trainrun import ENV, cli, latest, run_train, saved_values

from tf_cyclegan import config as config_lib

TINY = [
    "--image_size=32",
    "--load_size=36",
    "--ngf=4",
    "--ndf=4",
    "--n_blocks=1",
    "--log_every_steps=2",
    "--sample_every_steps=3",
    "--save_every_steps=2",
    "--num_samples=2",
]
# For tests of the loop itself (signals, a diverging loss): a one-block ResNet traces in 11 s where the
# quickstart's U-Net takes 17 (both with the preset's pool and identity loss).
SMALL_NETWORK = ["--generator=resnet", "--n_blocks=1"]


def read_events(logdir):
    tags = {}
    for path in Path(logdir).rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


def test_cli_trains_and_writes_a_complete_run_directory(tiny_run):
    run, result = tiny_run.path, tiny_run
    config = config_lib.load_yaml(run / "config.yaml")
    assert config.data.dataset == "fluent" and config.data.image_size == 32 and config.model.ngf == 4
    assert config.run_dir == "run" and config.name == "tiny"
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-8")
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == [f"step_{s:07d}_{d}.png" for s in (3, 6, 8) for d in ("a2b", "b2a")]
    tags = read_events(run / "logs")
    for tag in (
        "loss/generator_total",
        "loss/cycle_a",
        "loss/disc_b",
        "loss/identity_a",
        "learning_rate",
        "images_per_second",
        "samples/real_a|fake_b|cycled_a",
        "samples/real_b|fake_a|cycled_b",
        "health/a2b/away",
        "health/b2a/diversity",
        "health/a2b/discriminator",
        "health/b2a/cycle",
    ):
        assert tag in tags, (tag, sorted(tags))
    assert tags["loss/generator_total"] == [2, 4, 6, 8]
    assert tags["health/a2b/saturation"] == [3, 6, 8]  # at every sample step
    health = json.loads((run / "health.json").read_text())
    assert health["step"] == 8 and [check["step"] for check in health["history"]] == [3, 6, 8]
    assert "Done: step 8/8" in result.stdout and "run" in result.stdout
    assert "trainA" in result.stdout  # pre-flight report


def test_a_log_file_gets_plain_progress_lines(tiny_run):
    # stdout is a pipe here, as in a scheduler's log file: one line per log interval, no \r or \b of a live bar.
    assert "\r" not in tiny_run.stdout and "\b" not in tiny_run.stdout
    progress = [line for line in tiny_run.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == ["2/8", "4/8", "6/8", "8/8"]
    assert "generator_total" in progress[0] and "img/s" in progress[0]


def test_training_is_quiet_by_default(tiny_run):
    # TensorFlow's C++ start-up lines (CUDA probe, CPU features, absl notices) stay off a user's terminal.
    noise = [line for line in tiny_run.stderr.splitlines() if re.match(r"^[IWE]\d{4} |WARNING: All log messages", line)]
    assert not noise, noise[:3]


@pytest.mark.slow
def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path):
    common = [
        "--steps=120",
        "--deterministic=true",
        "--seed=5",
        "--save_every_steps=10",
        "--sample_every_steps=1000",
        *TINY[:5],
    ]
    straight = run_train([*common, "--run_dir=straight"], cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]

    command = [sys.executable, "-m", "tf_cyclegan.train", *common, "--run_dir=resumed"]
    process = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "resumed" / "checkpoints"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        newest = latest(checkpoints)
        if newest and int(newest.rsplit("-", 1)[1]) >= 30:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = int(tf.train.latest_checkpoint(str(checkpoints)).rsplit("-", 1)[1])
    assert 30 <= killed_at < 120

    resumed = run_train(common + ["--run_dir=resumed"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout and f"at step {killed_at}/120" in resumed.stdout
    path_a, path_b = (latest(tmp_path / name / "checkpoints") for name in ("straight", "resumed"))
    weights_a, weights_b = saved_values(path_a), saved_values(path_b)
    assert path_a.endswith("ckpt-120") and path_b.endswith("ckpt-120")
    assert weights_a.keys() == weights_b.keys() and any("pool_a" in n for n in weights_a)
    for name in weights_a:
        np.testing.assert_allclose(weights_b[name], weights_a[name], atol=1e-5, err_msg=name)
    reader = tf.train.load_checkpoint(path_b)
    assert reader.get_tensor("generator_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 120


# SIGINT and SIGTERM share one handler; Ctrl-C (SIGINT) is also sent to a worker in test_distribute.py.
@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM])
def test_sigint_and_sigterm_save_a_checkpoint_before_exiting(tmp_path, sig):
    command = [
        sys.executable,
        "-m",
        "tf_cyclegan.train",
        "--steps=100000",
        "--save_every_steps=100000",
        "--run_dir=run",
        *TINY[:5],
        *SMALL_NETWORK,
        "--sample_every_steps=1",
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (tmp_path / "run" / "samples" / "step_0000002_b2a.png").exists():
        time.sleep(0.05)  # wait until training is two steps in
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    last = stderr.strip().splitlines()[-1]
    assert "interrupted at step" in last and "Traceback" not in stderr
    saved = latest(tmp_path / "run" / "checkpoints")
    assert saved is not None and int(saved.rsplit("-", 1)[1]) > 0


@pytest.mark.parametrize(
    "flag,needle",
    [
        ("--gan_loss=foo", "--gan_loss: 'foo' is not one of lsgan, vanilla, hinge, wgangp"),
        ("--image_size=-3", "--image_size: must be > 0, got -3"),
        ("--batch_size=two", "--batch_size: expected int, got 'two'"),
        ("--no_such_flag=1", "unrecognized arguments: --no_such_flag=1"),
        ("--set=model.depth=3", "unknown setting 'model.depth'"),
        ("--dataset=/no/such/folder", "--dataset: '/no/such/folder' is not a folder"),
        ("--lambda_cycle_b=-2", "--lambda_cycle_b: must be >= 0, got -2.0"),
        ("--lambda_cycle_a=many", "--lambda_cycle_a: expected float, got 'many'"),
        ("--lambda_gan=-1", "--lambda_gan: must be >= 0, got -1.0"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path, flag, needle):
    result = run_train([flag, "--steps=1"], cwd=tmp_path, timeout=120)
    assert result.returncode in (1, 2) and (result.returncode == 2 or "dataset" in flag)
    lines = [l for l in result.stderr.splitlines() if "tf_cyclegan.train: error:" in l]
    assert len(lines) == 1 and needle in lines[0], result.stderr[-1500:]
    assert "Traceback" not in result.stderr


def test_help_lists_the_documented_flags(tmp_path):
    result = run_train(["--help"], cwd=tmp_path, timeout=60)
    assert result.returncode == 0
    for flag in (
        "--dataset",
        "--config",
        "--run_dir",
        "--set",
        "--steps",
        "--epochs",
        "--decay_epochs",
        "--image_size",
        "--load_size",
        "--batch_size",
        "--seed",
        "--deterministic",
        "--save_every_steps",
        "--sample_every_steps",
        "--log_every_steps",
        "--strategy",
        "--precision",
        "--gan_loss",
        "--lambda_cycle",
        "--lambda_cycle_a",
        "--lambda_cycle_b",
        "--lambda_gan",
        "--lambda_identity",
        "--pool_size",
        "--lr",
        "--beta1",
        "--ngf",
        "--ndf",
    ):
        assert flag in result.stdout, flag
    assert "default: 'lsgan'" in result.stdout
    assert "loss.lambda_cycle_a (float or none, default: None)" in result.stdout


def test_cycle_weights_default_to_lambda_cycle_and_an_older_runs_minus_one_still_means_that(tmp_path):
    from tf_cyclegan import run

    given = run.resolve_config({"run_dir": str(tmp_path / "new"), "lambda_cycle": "4", "lambda_cycle_b": "none"})
    assert (given.loss.lambda_cycle_a, given.loss.lambda_cycle_b) == (None, None)
    assert config_lib.cycle_weights(given.loss) == (4.0, 4.0)
    # config.yaml as versions before 2026-12-06 wrote it: -1.0 stood for "as lambda_cycle".
    old = tmp_path / "old"
    old.mkdir()
    text = config_lib.to_yaml(given).replace("lambda_cycle_a: null", "lambda_cycle_a: -1.0")
    (old / "config.yaml").write_text(text.replace("lambda_cycle_b: null", "lambda_cycle_b: 0.0"))
    resumed = run.resolve_config({"run_dir": str(old)})
    assert config_lib.cycle_weights(resumed.loss) == (4.0, 0.0)


@pytest.mark.parametrize("preset", sorted(p.stem for p in config_lib.PRESET_DIR.glob("*.yaml")))
def test_presets_round_trip_and_validate(tmp_path, preset):
    config = config_lib.validate(config_lib.load_yaml(config_lib.preset_path(preset)))
    (tmp_path / "c.yaml").write_text(config_lib.to_yaml(config))
    assert config_lib.load_yaml(tmp_path / "c.yaml") == config


def test_presets_reproduce_the_paper():
    monet = config_lib.load_yaml(config_lib.preset_path("monet2photo"))
    horse = config_lib.load_yaml(config_lib.preset_path("horse2zebra"))
    city = config_lib.load_yaml(config_lib.preset_path("cityscapes"))
    assert monet.loss.lambda_identity == 0.5 and horse.loss.lambda_identity == 0.0
    for preset in (monet, horse):
        assert (preset.data.image_size, preset.data.load_size, preset.model.n_blocks) == (256, 286, 9)
        assert (preset.loss.gan_loss, preset.loss.lambda_cycle, preset.loss.pool_size) == ("lsgan", 10.0, 50)
        assert (preset.optimizer.lr, preset.optimizer.beta1, preset.train.batch_size) == (2e-4, 0.5, 1)
        assert (preset.train.epochs, preset.train.decay_epochs) == (100, 100)
    assert (city.data.image_size, city.model.n_blocks) == (128, 6)


def test_settings_are_assembled_in_the_documented_order(tmp_path, monkeypatch):
    from tf_cyclegan.train import parse_config

    monkeypatch.chdir(tmp_path)
    fresh = parse_config(["--dataset=cycle_gan/monet2photo", "--run_dir=old", "--lr=0.001"])
    assert (fresh.loss.lambda_identity, fresh.optimizer.lr, fresh.run_dir) == (0.5, 0.001, "old")  # preset, flag
    saved = config_lib.Config()
    saved.name, saved.run_dir, saved.loss.lambda_identity, saved.model.ngf = "mine", "old", 0.25, 16
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "config.yaml").write_text(config_lib.to_yaml(saved))
    # Resuming a run that was moved: its config.yaml beats the preset, flags beat it, --set beats flags, and the
    # folder it was found in is its run directory (not the "old" path saved inside it).
    resumed = parse_config(
        ["--dataset=cycle_gan/monet2photo", "--run_dir=moved", "--ngf=8", "--set=model.ngf=12", "--lr=0.003"]
    )
    assert (resumed.loss.lambda_identity, resumed.model.ngf, resumed.optimizer.lr) == (0.25, 12, 0.003)
    assert (resumed.run_dir, resumed.name) == ("moved", "mine")


def test_dataset_name_picks_its_preset_and_flags_override_it():
    from tf_cyclegan.train import parse_config

    config = parse_config(["--dataset=cycle_gan/monet2photo", "--set=model.n_blocks=6", "--lr=0.001"])
    assert config.loss.lambda_identity == 0.5 and config.model.n_blocks == 6 and config.optimizer.lr == 0.001
    assert config.name == "monet2photo" and config.run_dir == str(Path("runs") / "monet2photo")
    quickstart = parse_config([])
    assert quickstart.data.dataset == "fluent" and quickstart.data.image_size == 64
    assert quickstart.name == "fluent" and quickstart.model.generator == "unet_64"
    noto = parse_config(["--dataset=emoji"])  # the other bundled sample keeps its own preset
    assert noto.name == "emoji" and noto.loss.lambda_identity == 0.5 and noto.data.image_size == 64


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
    # An absurd learning rate blows the weights up after the first update, so step 2's losses are not finite.
    result = run_train(
        [
            "--steps=20",
            "--run_dir=run",
            "--lr=1e12",
            "--save_every_steps=1",
            "--sample_every_steps=100",
            *TINY[:5],
            *SMALL_NETWORK,
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 1
    lines = [l for l in result.stderr.splitlines() if "tf_cyclegan.train: error:" in l]
    assert len(lines) == 1 and "became" in lines[0] and "stopped without saving" in lines[0], result.stderr[-1500:]
    failed_at = int(lines[0].split(" by step ")[1].split(";")[0])
    saved = latest(tmp_path / "run" / "checkpoints")
    assert saved.endswith(f"ckpt-{failed_at - 1}") and f"ckpt-{failed_at - 1}" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(2400)  # the quickstart itself takes ~7 minutes on 2 cores, longer on a busy machine
def test_the_quickstart_translates_flat_emoji_towards_3d(tmp_path):
    """The README's first command, unchanged: on the 152 paired test emoji its Flat -> 3D translations must be
    closer to the real 3D renders than the Flat inputs are (L1, PSNR and SSIM; FID/KID need InceptionV3 weights,
    which evaluate cannot download offline: benchmarks/quickstart_recipe.py measures them), its samples must be
    written, and the health monitor must not warn."""
    started = time.monotonic()
    result = run_train(["--run_dir=run"], cwd=tmp_path, timeout=1500)
    minutes = (time.monotonic() - started) / 60
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted((tmp_path / "run" / "samples").glob("*_a2b.png"))
    evaluated = cli(
        "tf_cyclegan.evaluate", "--run_dir=run", "--direction=a2b", "--metrics=paired,cycle", cwd=tmp_path, timeout=600
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    scores = json.loads((tmp_path / "run" / "eval.json").read_text())["a2b"]
    translation, identity = scores["translation"], scores["identity_baseline"]
    print(f"quickstart: {minutes:.1f} min; a2b {translation} vs identity {identity}")
    assert scores["pairs"] == 152
    assert translation["l1"] < identity["l1"] and translation["ssim"] > identity["ssim"]
    assert translation["psnr"] > identity["psnr"] and translation["cycle_l1"] < 0.08
    health = json.loads((tmp_path / "run" / "health.json").read_text())
    steps = config_lib.load_yaml(tmp_path / "run" / "config.yaml").train.steps
    assert health["warnings"] == [] and health["step"] == steps  # no false alarm on a healthy run


def quickstart_scores(tmp_path, *flags):
    result = run_train(["--run_dir=run", *flags], cwd=tmp_path, timeout=1500)
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = cli(
        "tf_cyclegan.evaluate", "--run_dir=run", "--direction=a2b", "--metrics=paired,cycle", cwd=tmp_path, timeout=600
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    return json.loads((tmp_path / "run" / "eval.json").read_text())["a2b"]["translation"]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_the_quickstart_in_bfloat16_scores_as_in_float32(tmp_path):
    """Where the CPU has native bf16 (what --precision=auto then picks), the quickstart in mixed_bfloat16 must score
    as its float32 runs do, within their spread plus noise: on the 152 test pairs (AMD EPYC, 2026-12-07, seeds 0-4)
    float32 gave L1 0.0572-0.0585, PSNR 20.04-20.21 dB, SSIM 0.7251-0.7274, cycle L1 0.028-0.030 (identity
    baseline 0.0636 / 19.17 dB / 0.7212)."""
    from tf_cyclegan.precision import cpu_flags, native_bf16_flags

    if not native_bf16_flags(cpu_flags()):
        print("skipping: this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag); bf16 would be emulated")
        pytest.skip("this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag)")
    translation = quickstart_scores(tmp_path, "--precision=mixed_bfloat16")
    print(f"quickstart in mixed_bfloat16: a2b {translation}")
    assert translation["l1"] <= 0.060 and translation["psnr"] >= 19.9 and translation["cycle_l1"] < 0.04
    assert translation["ssim"] > 0.7212  # the identity baseline's
