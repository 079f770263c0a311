"""Scoring translators: paired metrics, KID/FID, cycle error, each next to the identity baseline.

The library behind ``python -m tf_cyclegan.evaluate`` and ``--eval_every`` during training.
"""

import contextlib
import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from tf_cyclegan import checkpoints, factory, fs, run
from tf_cyclegan import config as config_lib
from tf_cyclegan import data as data_lib
from tf_cyclegan import metrics as metric_lib
from tf_cyclegan.data.sources import host_reachable
from tf_cyclegan.errors import UserError

ALL_METRICS = config_lib.EVAL_METRICS
INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_NAME = "InceptionV3 (ImageNet weights, 2048-d average-pool features, 299x299 bilinear input)"


class FeaturesUnavailable(Exception):
    """The feature network cannot be had (offline, no local weights); the message says what to do."""


class FeatureNetwork:
    """Maps images in [0, 1] (NHWC) to feature rows, with a ``name`` saying which network."""

    def __init__(self, name, model, input_size):

        self.name, self.model, self.input_size = name, model, input_size
        self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, images, batch=32):

        rows = []
        for start in range(0, len(images), batch):
            x = tf.convert_to_tensor(images[start : start + batch], tf.float32)
            if x.shape[-1] == 1:
                x = tf.image.grayscale_to_rgb(x)
            if self.input_size:
                x = tf.image.resize(x, (self.input_size, self.input_size), method="bilinear")
            rows.append(self._call(x * 2.0 - 1.0).numpy())
        return np.concatenate(rows).reshape(len(images), -1)


def inception_features(weights=""):
    """InceptionV3 pool features, from ``weights`` or the Keras cache, else downloaded when online.

    Never falls back to another network: FID/KID are only comparable under the same one.
    """

    if weights:
        if not fs.path(weights).is_file():
            raise FeaturesUnavailable(f"--inception_weights: no such file {weights}")
        source = weights
    else:
        cached = fs.path(os.environ.get("KERAS_HOME") or fs.path("~/.keras").expanduser()) / "models" / INCEPTION_FILE
        if not cached.is_file() and not host_reachable("storage.googleapis.com", timeout=5):
            raise FeaturesUnavailable(
                "KID/FID skipped: InceptionV3 weights are not cached and cannot be downloaded offline; "
                f"pass --inception_weights=PATH to a copy of {INCEPTION_FILE}"
            )
        source = "imagenet"
    try:
        # Keras reads weights from a local file: a URI's is copied to a temporary one first.
        with fs.local_file(source) if weights else contextlib.nullcontext(source) as local:
            model = keras.applications.InceptionV3(
                include_top=False, pooling="avg", weights=str(local), input_shape=(299, 299, 3)
            )
    except (OSError, ValueError) as error:
        raise FeaturesUnavailable(f"KID/FID skipped: InceptionV3 weights could not be loaded ({error})") from None
    return FeatureNetwork(INCEPTION_NAME, model, 299)


def _translate(generator, images, batch=16):

    call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
    return np.concatenate([call(images[i : i + batch]).numpy() for i in range(0, len(images), batch)])


def _unit(images):
    return (np.clip(images, -1.0, 1.0) + 1.0) / 2.0


def evaluate_direction(
    generator, inverse, real_source, real_target, source_labels, target_labels, metrics=ALL_METRICS, features=None
):
    """Scores one direction; images in [-1, 1]. Returns translation and identity-baseline scores."""

    fake = _translate(generator, real_source)
    result = {"images": len(real_source), "translation": {}, "identity_baseline": {}}
    by_name = {label: i for i, label in enumerate(target_labels)}
    pairs = [(i, by_name[label]) for i, label in enumerate(source_labels) if label in by_name]
    if "paired" in metrics and pairs:
        source_index, target_index = (list(index) for index in zip(*pairs))
        target = _unit(real_target[target_index])
        result["pairs"] = len(pairs)
        result["translation"].update(metric_lib.paired(_unit(fake[source_index]), target))
        result["identity_baseline"].update(metric_lib.paired(_unit(real_source[source_index]), target))
    if "cycle" in metrics and inverse is not None:
        cycled = _translate(inverse, fake)
        result["translation"]["cycle_l1"] = float(np.mean(np.abs(_unit(cycled) - _unit(real_source))))
        result["identity_baseline"]["cycle_l1"] = 0.0
    if features is not None and ({"kid", "fid"} & set(metrics)):
        target_features = features(_unit(real_target))
        for name, images in (("translation", fake), ("identity_baseline", real_source)):
            feats = features(_unit(images))
            if "kid" in metrics:
                result[name].update(metric_lib.kid(feats, target_features))
            if "fid" in metrics:
                result[name]["fid"] = metric_lib.fid(feats, target_features)
    return result


def eval_data_config(data):
    """Test-time data settings: whole images resized to the training size (no crop margin lost)."""

    if data.preprocess == "resize_and_crop":
        return dataclasses.replace(data, load_size=data.image_size, cache=False)
    return dataclasses.replace(data, cache=False)


def resolve_best_metric(name, pipeline):
    """'auto' → a2b/psnr when the test split is paired by file name, else a2b/cycle_l1."""
    if name != "auto":
        return name
    domains = pipeline.domains
    paired = (
        domains.test_a is not None
        and domains.test_b is not None
        and bool(set(domains.test_a.labels) & set(domains.test_b.labels))
    )
    return "a2b/psnr" if paired else "a2b/cycle_l1"


def evaluate_generators(
    generator_ab, generator_ba, pipeline, directions=("a2b", "b2a"), metrics=ALL_METRICS, features=None, max_images=0
):
    """Evaluates both directions on the pipeline's test split (training split if it has none)."""
    limit = max_images or None
    real_a, labels_a = pipeline.test_images("A", limit)
    real_b, labels_b = pipeline.test_images("B", limit)
    real_a, real_b = real_a.numpy(), real_b.numpy()
    results = {}
    if "a2b" in directions:
        results["a2b"] = evaluate_direction(
            generator_ab, generator_ba, real_a, real_b, labels_a, labels_b, metrics, features
        )
    if "b2a" in directions:
        results["b2a"] = evaluate_direction(
            generator_ba, generator_ab, real_b, real_a, labels_b, labels_a, metrics, features
        )
    return results


def flatten(results):
    """{'a2b/psnr': value, ...} of the translation scores (what best/ and TensorBoard use)."""
    return {
        f"{d}/{k}": v
        for d, r in results.items()
        if isinstance(r, dict) and "translation" in r
        for k, v in r["translation"].items()
        if not k.endswith("_std")
    }


def format_table(results):
    lines = []
    for direction in ("a2b", "b2a"):
        if direction not in results:
            continue
        result = results[direction]
        names = [k for k in result["translation"] if not k.endswith("_std")]
        header = (
            f"{direction} ({result['images']} images"
            + (f", {result['pairs']} pairs" if "pairs" in result else "")
            + ")"
        )
        lines.append(header)
        lines.append(f"  {'':<18}" + "".join(f"{n:>10}" for n in names))
        for row in ("translation", "identity_baseline"):
            values = result[row]
            lines.append(
                f"  {row:<18}" + "".join(f"{values[n]:>10.4f}" if n in values else f"{'-':>10}" for n in names)
            )
    return "\n".join(lines)


class EvaluationError(UserError):
    """A run that cannot be evaluated (no checkpoint, bad data); the message is one line."""


def evaluate_run(
    run_dir,
    dataset=None,
    directions=("a2b", "b2a"),
    metrics=ALL_METRICS,
    inception_weights=None,
    checkpoint=None,
    max_images=None,
    log=print,
):
    """Scores a run's generators on its test split; writes eval.json and ``eval/*`` TensorBoard scalars."""

    config, checkpoint, (generator_ab, generator_ba) = factory.restore_run(run_dir, checkpoint, "evaluate")
    if dataset:
        config.data.dataset, config.data.domain_a, config.data.domain_b = dataset, "", ""
    features, notes = _features_or_note(
        metrics, inception_weights if inception_weights is not None else config.eval.inception_weights, log
    )
    pipeline = data_lib.prepare(eval_data_config(config.data), 1, report=lambda line: None)
    limit = max_images if max_images is not None else config.eval.max_eval_images
    results = evaluate_generators(generator_ab, generator_ba, pipeline, directions, metrics, features, limit)
    step = checkpoints.step_of(checkpoint) or 0
    report = {
        "checkpoint": checkpoint,
        "step": step,
        "dataset": config.data.dataset,
        "feature_network": features.name if features else None,
        "notes": notes,
        **results,
    }
    paths = run.RunPaths(run_dir)
    run.write_json(paths.eval_report, report)
    writer = tf.summary.create_file_writer(str(paths.logs / "eval"))
    with writer.as_default(step=step):
        for name, value in flatten(results).items():
            tf.summary.scalar(f"eval/{name}", value)
    writer.flush()
    return report


def _features_or_note(metrics, weights, log):
    if not {"kid", "fid"} & set(metrics):
        return None, []
    try:
        return inception_features(weights), []
    except FeaturesUnavailable as error:
        log(f"note: {error}")
        return None, [str(error)]


class PeriodicEvaluation:
    """``--eval_every`` epochs: scores the test split during training and keeps ``best/`` by one metric."""

    METRICS = ("paired", "cycle", "kid")

    def __init__(self, config, pipeline, checkpoint, chief, log=print):

        settings = config.eval
        self.period = settings.eval_every * pipeline.steps_per_epoch
        self.log, self.chief, self.max_images = log, chief, settings.max_eval_images
        if not self.period:
            return
        self.pipeline = data_lib.UnpairedPipeline(pipeline.domains, eval_data_config(config.data), 1, config.train.seed)
        self.metric = resolve_best_metric(settings.best_metric, pipeline)
        self.features = None
        if "kid" in self.metric or settings.inception_weights:
            self.features, _ = _features_or_note(("kid",), settings.inception_weights, log)

        self.paths = run.RunPaths(config.run_dir)
        self.paths.best.mkdir(parents=True, exist_ok=True)
        self.keeper = checkpoints.CheckpointKeeper(checkpoint, self.paths.best, keep=1, log=log)
        self.best = run.read_best(config.run_dir)

    def due(self, step, total):
        return bool(self.period) and (step % self.period == 0 or step == total)

    def __call__(self, model, step, writer):
        """Scores the generators, logs the scores, and refreshes best/ when the chosen metric improved."""

        results = evaluate_generators(
            model.translator_ab,  # the averaged generators under EMA
            model.translator_ba,
            self.pipeline,
            metrics=self.METRICS,
            features=self.features,
            max_images=self.max_images,
        )
        scores = flatten(results)
        with writer.as_default(step=step):
            for name, value in scores.items():
                tf.summary.scalar(f"eval/{name}", value)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        value = scores.get(self.metric)
        if value is None:
            self.log(f"eval at step {step}: {shown} ({self.metric} unavailable, best/ not updated)")
            return
        higher = config_lib.BEST_METRICS[self.metric.split("/")[1]]
        improved = self.best is None or (value > self.best["value"] if higher else value < self.best["value"])
        if improved:
            self.best = {"metric": self.metric, "value": value, "step": step}
            if self.chief:
                self.keeper.save(step)
                run.write_best(self.paths.root, self.best)
        self.log(f"eval at step {step}: {shown}" + (f"; new best {self.metric}" if improved else ""))

    def summary(self):
        """'best/ (metric value at step N)' once a best checkpoint exists, else None."""
        if not self.period or not self.best:
            return None
        return f"{self.paths.best} ({self.best['metric']} {self.best['value']:.4f} at step {self.best['step']})"
