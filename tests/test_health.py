"""The health signals on real images of the bundled emoji set, the episode logic, and --on_unhealthy through the CLI."""

import json
from pathlib import Path

import numpy as np
from PIL import Image
from trainrun import run_train

from tf_cyclegan.health import RULES, HealthMonitor, direction_signals

EMOJI = Path(__file__).resolve().parent.parent / "tf_cyclegan" / "datasets" / "emoji"


def emoji(split, count=24):
    """Real emoji of one split as NHWC in [-1, 1], composited on white."""
    images = []
    for path in sorted((EMOJI / split).glob("*.png"))[:count]:
        rgba = np.asarray(Image.open(path).convert("RGBA"), np.float32) / 255
        images.append(rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:]))
    return np.stack(images) * 2 - 1


def signals(fake, real=None, target=None, cycled=None):
    real = emoji("testA") if real is None else real
    target = emoji("testB") if target is None else target
    logits = np.zeros((len(real), 4, 4, 1))
    return direction_signals(real, fake, real if cycled is None else cycled, target, logits + 1, logits, "lsgan")


def test_the_true_translation_is_healthy_and_designed_failures_are_not():
    real_b = emoji("testB")
    away = next(rule.threshold for rule in RULES if rule.signal == "away")
    truth = signals(real_b)  # testB holds the true translations of testA (paired by name)
    assert truth["away"] < 1 and truth["diversity"] > 0.5 and abs(truth["saturation"]) < 0.05 and truth["cycle"] == 0
    assert signals(emoji("testA"))["away"] < away  # doing nothing is 1
    assert signals(-real_b)["away"] > away + 1  # inverted: white backgrounds go black
    rotated = real_b[..., [1, 2, 0]]  # the colour channels rotated: a hue rotation by 120°
    assert signals(rotated)["away"] > away
    collapsed = np.repeat(real_b[:1], len(real_b), axis=0)
    assert signals(collapsed)["diversity"] < 0.05
    assert signals(np.sign(real_b + 1e-3))["saturation"] > 0.2
    assert signals(real_b, cycled=emoji("testA")[::-1])["cycle"] > 0.5  # reconstructions of other inputs


def test_the_discriminator_signal_is_its_accuracy():
    real, target = emoji("testA", 4), emoji("testB", 4)
    won = direction_signals(real, target, real, target, np.ones((4, 2, 2, 1)), np.zeros((4, 2, 2, 1)), "lsgan")
    fooled = direction_signals(real, target, real, target, np.zeros((4, 2, 2, 1)), np.ones((4, 2, 2, 1)), "lsgan")
    logits = direction_signals(
        real, target, real, target, np.full((4, 2, 2, 1), 3.0), np.full((4, 2, 2, 1), -2.0), "vanilla"
    )
    assert won["discriminator"] == 1 and fooled["discriminator"] == 0 and logits["discriminator"] == 1


def test_a_warning_is_given_once_per_episode_after_the_warmup_and_patience():
    away = next(rule for rule in RULES if rule.signal == "away")
    monitor = HealthMonitor(warmup=100)
    bad, good = {"a2b/away": away.threshold + 1}, {"a2b/away": away.threshold - 0.5}
    said = [
        monitor.check(step, values)
        for step, values in [(50, bad), (150, bad), (200, bad), (250, bad), (300, good), (350, bad), (400, bad)]
    ]
    counts = [len(lines) for lines in said]
    assert counts == [0, 0, 1, 0, 0, 0, 1]  # warm-up, patience 2, once per episode, a new episode after recovery
    assert "a2b away" in said[2][0] and "step 200" in said[2][0]
    assert monitor.summary()["unhealthy"] == ["a2b/away"]
    resumed = HealthMonitor(warmup=100)
    resumed.restore(monitor.summary(), up_to=250)
    assert resumed.check(300, bad) == [] and resumed.summary()["warnings"] == said[2]  # the episode is still open


def test_on_unhealthy_stop_saves_and_exits_with_code_3(tmp_path):
    # A tiny, barely trained run fails the checks at once; --steps long enough that the warm-up (a fifth) ends early.
    result = run_train(
        [
            "--image_size=32",
            "--load_size=36",
            "--ngf=4",
            "--ndf=4",
            "--steps=40",
            "--run_dir=run",
            "--sample_every_steps=4",
            "--save_every_steps=100",
            "--on_unhealthy=stop",
        ],
        tmp_path,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "(--on_unhealthy=stop): health warning at step 16" in lines[0]
    assert "Traceback" not in result.stderr
    health = json.loads((tmp_path / "run" / "health.json").read_text())
    assert health["unhealthy"] and health["warnings"]
    assert list((tmp_path / "run" / "checkpoints").glob("ckpt-17.index"))  # saved after the step that stopped it
