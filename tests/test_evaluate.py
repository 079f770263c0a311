import json
import re
import shutil
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from trainrun import cli

from tf_cyclegan import metrics
from tf_cyclegan.evaluator import FeatureNetwork, evaluate_direction, format_table


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
    rotated = metrics.frechet_distance(
        mu1, rotation @ np.diag(d1) @ rotation.T, mu2, rotation @ np.diag(d2) @ rotation.T
    )
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
    result = evaluate_direction(
        identity,
        identity,
        source,
        target,
        [f"{i}.png" for i in range(12)],
        [f"{i}.png" for i in range(12)],
        features=_tiny_features(),
    )
    assert result["pairs"] == 12
    assert result["translation"] == result["identity_baseline"] | {"cycle_l1": 0.0}
    assert result["translation"]["l1"] == pytest.approx(0.1, abs=0.01)
    assert {"kid", "fid", "psnr", "ssim", "cycle_l1"} <= set(result["translation"])
    labels = [str(i) for i in range(12)]
    self_scores = evaluate_direction(identity, None, target, target, labels, labels, features=_tiny_features())
    assert abs(self_scores["translation"]["fid"]) < 1e-4 and self_scores["translation"]["l1"] == 0.0
    assert "identity_baseline" in format_table({"a2b": result})


def test_training_keeps_a_best_checkpoint(tiny_run):
    run = tiny_run.path
    # The first evaluation always makes a best; the second replaces it only if it scores higher.
    assert "eval at step 4" in tiny_run.stdout and "eval at step 8" in tiny_run.stdout
    assert "; new best a2b/psnr" in [line for line in tiny_run.stdout.splitlines() if "eval at step 4" in line][0]
    record = json.loads((run / "best" / "best.json").read_text())
    assert record["metric"] == "a2b/psnr" and record["step"] in (4, 8)
    assert tf.train.latest_checkpoint(str(run / "best")).endswith(f"ckpt-{record['step']}")


@pytest.mark.parametrize("recorded, replaced", [(1e9, False), (-1e9, True)])
def test_a_resumed_run_reads_best_json_and_replaces_it_only_when_beaten(tiny_run, tmp_path, recorded, replaced):
    from tf_cyclegan import data as data_lib
    from tf_cyclegan import run as run_lib
    from tf_cyclegan.evaluator import PeriodicEvaluation

    shutil.copytree(tiny_run.path, tmp_path / "run")
    config = run_lib.read_config(tmp_path / "run")
    run_lib.write_best(config.run_dir, {"metric": "a2b/psnr", "value": recorded, "step": 8})
    identity = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Identity()])
    model = types.SimpleNamespace(translator_ab=identity, translator_ba=identity)  # what evaluation translates with
    pipeline = data_lib.prepare(config.data, 1, report=lambda line: None)
    lines = []
    evaluation = PeriodicEvaluation(config, pipeline, tf.train.Checkpoint(step=tf.Variable(12)), True, lines.append)
    evaluation(model, 12, tf.summary.create_noop_writer())  # had best.json not been read, this would be a new best
    assert lines[0].startswith("eval at step 12") and ("new best" in lines[0]) == replaced
    record = run_lib.read_best(config.run_dir)
    assert (record["step"], record["value"] == recorded) == ((12, False) if replaced else (8, True))
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "best")).endswith("ckpt-12" if replaced else "ckpt-8")


def test_evaluate_cli_reports_paired_metrics_and_says_why_kid_is_missing(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)  # evaluate writes eval.json and logs/eval into the run: a copy of it
    missing = tmp_path / "no_such_inception.h5"  # no KID/FID features, whatever the network or the Keras cache hold
    result = cli("tf_cyclegan.evaluate", f"--run_dir={run}", "--direction=a2b", f"--inception_weights={missing}")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((run / "eval.json").read_text())
    assert report["feature_network"] is None and str(missing) in report["notes"][0] and "b2a" not in report
    assert {"l1", "psnr", "ssim", "cycle_l1"} <= set(report["a2b"]["translation"])
    assert 0 < report["a2b"]["translation"]["cycle_l1"] < 2
    assert "identity_baseline" in result.stdout and "note: --inception_weights: no such file" in result.stderr
    assert "health at step 8 (training's last check; health.json):" in result.stdout  # the run's latest health
    assert re.search(r"a2b: away [\d.]+, diversity [\d.]+, discriminator", result.stdout)
    assert any(p.name.startswith("events") for p in (run / "logs" / "eval").iterdir())
    bad = cli("tf_cyclegan.evaluate", f"--run_dir={run}", "--metrics=foo", timeout=60)
    assert bad.returncode == 2 and "--metrics: 'foo'" in bad.stderr


def test_inception_features_offline_without_a_cached_copy_say_how_to_get_them(tmp_path, monkeypatch):
    import tf_cyclegan.data.sources as sources
    from tf_cyclegan import evaluator

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache
    monkeypatch.setattr(sources, "host_reachable", lambda *args, **kwargs: False)  # offline, whatever the machine
    with pytest.raises(evaluator.FeaturesUnavailable, match="--inception_weights=PATH"):
        evaluator.inception_features("")
