import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tf_cyclegan import metrics
from tf_cyclegan.evaluate import FeatureNetwork, evaluate_direction, format_table

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_paired_metrics_on_known_pairs():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (3, 32, 32, 3)).astype("float32")
    same = metrics.paired(x, x)
    assert same["l1"] == 0.0 and same["ssim"] == pytest.approx(1.0) and same["psnr"] >= 99
    shifted = metrics.paired(x, np.clip(x + 0.1, 0, 1))
    assert shifted["l1"] < 0.1 and shifted["psnr"] == pytest.approx(20.0, abs=1.5) and shifted["ssim"] < 1


def test_frechet_distance_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    assert metrics.frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(expected)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    rotated = metrics.frechet_distance(mu1, rotation @ np.diag(d1) @ rotation.T, mu2, rotation @ np.diag(d2) @ rotation.T)
    assert rotated == pytest.approx(expected, rel=1e-6)


def test_fid_of_sampled_gaussians_and_identical_sets():
    rng = np.random.default_rng(2)
    x = rng.normal([0, 0], [1, 2], (20000, 2))
    y = rng.normal([3, 0], [1, 1], (20000, 2))
    assert metrics.fid(x, y) == pytest.approx(9 + (2 - 1) ** 2, rel=0.03)
    assert abs(metrics.fid(x, x)) < 1e-6


def test_kid_is_unbiased_where_the_biased_estimate_is_not():
    rng = np.random.default_rng(3)
    unbiased, biased = [], []
    for _ in range(300):
        x, y = rng.normal(size=(16, 8)), rng.normal(size=(16, 8))
        unbiased.append(metrics.mmd2_unbiased(x, y))
        k = lambda a, b: (a @ b.T / 8 + 1) ** 3  # noqa: E731
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    unbiased, biased = np.array(unbiased), np.array(biased)
    assert abs(unbiased.mean()) < 3 * unbiased.std() / np.sqrt(len(unbiased))
    assert biased.mean() > 10 * biased.std() / np.sqrt(len(biased))
    far = metrics.kid(rng.normal(size=(40, 8)), rng.normal(2, 1, size=(40, 8)))
    assert far["kid"] > 0.5
    sub = metrics.kid(rng.normal(size=(60, 8)), rng.normal(size=(50, 8)), subsets=5, subset_size=20)
    assert sub["kid_std"] > 0


def _tiny_features():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    return FeatureNetwork("tiny test network", keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)), None)


def test_evaluate_direction_with_a_tiny_feature_network():
    rng = np.random.default_rng(4)
    source = rng.uniform(-1, 1, (12, 16, 16, 3)).astype("float32")
    target = np.clip(source + 0.2, -1, 1)
    identity = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Identity()])
    result = evaluate_direction(identity, identity, source, target, [f"{i}.png" for i in range(12)],
                                [f"{i}.png" for i in range(12)], features=_tiny_features())
    assert result["pairs"] == 12
    assert result["translation"] == result["identity_baseline"] | {"cycle_l1": 0.0}
    assert result["translation"]["l1"] == pytest.approx(0.1, abs=0.01)
    assert {"kid", "fid", "psnr", "ssim", "cycle_l1"} <= set(result["translation"])
    self_scores = evaluate_direction(identity, None, target, target, ["x"] * 0 + [str(i) for i in range(12)],
                                     [str(i) for i in range(12)], features=_tiny_features())
    assert abs(self_scores["translation"]["fid"]) < 1e-4 and self_scores["translation"]["l1"] == 0.0
    assert "identity_baseline" in format_table({"a2b": result})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrun")
    # --max_dataset_size=8 only makes an epoch 8 steps long, so that --eval_every=1 evaluates within the run.
    result = subprocess.run(
        [sys.executable, "-m", "tf_cyclegan.train", "--steps=8", "--run_dir=run", "--image_size=32",
         "--load_size=36", "--ngf=4", "--ndf=4", "--n_blocks=1", "--max_dataset_size=8", "--eval_every=1",
         "--max_eval_images=6", "--sample_every_steps=100"],
        cwd=root, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return root / "run", result.stdout


def test_training_keeps_a_best_checkpoint(tiny_run):
    run, stdout = tiny_run
    record = json.loads((run / "best" / "best.json").read_text())
    assert record["metric"] == "a2b/psnr" and record["step"] in (8,) or record["step"] % 8 == 0
    assert (run / "best" / "checkpoint").is_file()
    assert "eval at step 8" in stdout and "best" in stdout


def test_evaluate_cli_offline_reports_paired_metrics_and_says_why_kid_is_missing(tiny_run):
    run, _ = tiny_run
    result = subprocess.run([sys.executable, "-m", "tf_cyclegan.evaluate", f"--run_dir={run}"], env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((run / "eval.json").read_text())
    assert report["feature_network"] is None and "inception_weights" in report["notes"][0]
    for direction in ("a2b", "b2a"):
        assert {"l1", "psnr", "ssim", "cycle_l1"} <= set(report[direction]["translation"])
        assert report[direction]["identity_baseline"]["cycle_l1"] == 0.0
    assert "identity_baseline" in result.stdout
    assert any(p.name.startswith("events") for p in (run / "logs" / "eval").iterdir())
    paired_only = subprocess.run([sys.executable, "-m", "tf_cyclegan.evaluate", f"--run_dir={run}",
                                  "--metrics=paired,cycle", "--direction=a2b"], env=ENV, capture_output=True,
                                 text=True, timeout=300)
    assert paired_only.returncode == 0, paired_only.stderr[-2000:]
    assert "b2a" not in json.loads((run / "eval.json").read_text())
    bad = subprocess.run([sys.executable, "-m", "tf_cyclegan.evaluate", f"--run_dir={run}", "--metrics=foo"],
                         env=ENV, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--metrics: 'foo'" in bad.stderr
