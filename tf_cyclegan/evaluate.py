"""Evaluate a run: paired metrics, KID/FID, cycle error, each next to the identity baseline.

``python -m tf_cyclegan.evaluate --run_dir=runs/NAME [--dataset=...] [--direction=a2b|b2a|both]
[--metrics=paired,cycle,kid,fid] [--inception_weights=PATH]``
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

PROG = "python -m tf_cyclegan.evaluate"
ALL_METRICS = ("paired", "cycle", "kid", "fid")
INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_NAME = "InceptionV3 (ImageNet weights, 2048-d average-pool features, 299x299 bilinear input)"


class FeaturesUnavailable(Exception):
    """The feature network cannot be had (offline, no local weights); the message says what to do."""


class FeatureNetwork:
    """Maps images in [0, 1] (NHWC) to feature rows, with a ``name`` saying which network."""

    def __init__(self, name, model, input_size):
        import tensorflow as tf

        self.name, self.model, self.input_size = name, model, input_size
        self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, images, batch=32):
        import tensorflow as tf

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
    import keras

    from tf_cyclegan.data.sources import host_reachable

    if weights:
        if not Path(weights).is_file():
            raise FeaturesUnavailable(f"--inception_weights: no such file {weights}")
        source = weights
    else:
        cached = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / INCEPTION_FILE
        if not cached.is_file() and not host_reachable("storage.googleapis.com", timeout=5):
            raise FeaturesUnavailable(
                "KID/FID skipped: InceptionV3 weights are not cached and cannot be downloaded offline; "
                f"pass --inception_weights=PATH to a copy of {INCEPTION_FILE}"
            )
        source = "imagenet"
    try:
        model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=source,
                                               input_shape=(299, 299, 3))
    except (OSError, ValueError) as error:
        raise FeaturesUnavailable(f"KID/FID skipped: InceptionV3 weights could not be loaded ({error})") from None
    return FeatureNetwork(INCEPTION_NAME, model, 299)


def _translate(generator, images, batch=16):
    import tensorflow as tf

    call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
    return np.concatenate([call(images[i : i + batch]).numpy() for i in range(0, len(images), batch)])


def _unit(images):
    return (np.clip(images, -1.0, 1.0) + 1.0) / 2.0


def evaluate_direction(generator, inverse, real_source, real_target, source_labels, target_labels,
                       metrics=ALL_METRICS, features=None):
    """Scores one direction; images in [-1, 1]. Returns translation and identity-baseline scores."""
    from tf_cyclegan import metrics as metric_lib

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
    import dataclasses

    if data.preprocess == "resize_and_crop":
        return dataclasses.replace(data, load_size=data.image_size, cache=False)
    return dataclasses.replace(data, cache=False)


def resolve_best_metric(name, pipeline):
    """'auto' → a2b/psnr when the test split is paired by file name, else a2b/cycle_l1."""
    if name != "auto":
        return name
    domains = pipeline.domains
    paired = domains.test_a is not None and domains.test_b is not None and bool(
        set(domains.test_a.labels) & set(domains.test_b.labels))
    return "a2b/psnr" if paired else "a2b/cycle_l1"


def evaluate_generators(generator_ab, generator_ba, pipeline, directions=("a2b", "b2a"), metrics=ALL_METRICS,
                        features=None, max_images=0):
    """Evaluates both directions on the pipeline's test split (training split if it has none)."""
    limit = max_images or None
    real_a, labels_a = pipeline.test_images("A", limit)
    real_b, labels_b = pipeline.test_images("B", limit)
    real_a, real_b = real_a.numpy(), real_b.numpy()
    results = {}
    if "a2b" in directions:
        results["a2b"] = evaluate_direction(generator_ab, generator_ba, real_a, real_b, labels_a, labels_b,
                                            metrics, features)
    if "b2a" in directions:
        results["b2a"] = evaluate_direction(generator_ba, generator_ab, real_b, real_a, labels_b, labels_a,
                                            metrics, features)
    return results


def flatten(results):
    """{'a2b/psnr': value, ...} of the translation scores (what best/ and TensorBoard use)."""
    return {f"{d}/{k}": v for d, r in results.items() if isinstance(r, dict) and "translation" in r
            for k, v in r["translation"].items() if not k.endswith("_std")}


def format_table(results):
    lines = []
    for direction in ("a2b", "b2a"):
        if direction not in results:
            continue
        result = results[direction]
        names = [k for k in result["translation"] if not k.endswith("_std")]
        header = f"{direction} ({result['images']} images" + (f", {result['pairs']} pairs" if "pairs" in result else "") + ")"
        lines.append(header)
        lines.append(f"  {'':<18}" + "".join(f"{n:>10}" for n in names))
        for row in ("translation", "identity_baseline"):
            values = result[row]
            lines.append(f"  {row:<18}" + "".join(
                f"{values[n]:>10.4f}" if n in values else f"{'-':>10}" for n in names))
    return "\n".join(lines)


def main(argv=None):
    from tf_cyclegan import cli

    parser = cli.OneLineParser(prog=PROG, description="Evaluate a tf_cyclegan run on its test split.")
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--dataset", help="evaluate on another dataset (default: the run's)")
    parser.add_argument("--direction", choices=("a2b", "b2a", "both"), default="both")
    parser.add_argument("--metrics", default=",".join(ALL_METRICS), help=f"comma-separated: {', '.join(ALL_METRICS)}")
    parser.add_argument("--inception_weights", default=None, help=f"local {INCEPTION_FILE} for KID/FID")
    parser.add_argument("--checkpoint", help="a specific checkpoint prefix (default: the latest)")
    parser.add_argument("--max_eval_images", type=int, default=None)
    args = parser.parse_args(argv)
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        cli.fail(PROG, f"--metrics: {unknown[0]!r} is not one of {', '.join(ALL_METRICS)}")

    import tensorflow as tf

    from tf_cyclegan import data as data_lib
    from tf_cyclegan.config import ConfigError
    from tf_cyclegan.trainer import restore_generators, run_checkpoint

    try:
        config = cli.read_run_config(args.run_dir)
    except ConfigError as error:
        cli.fail(PROG, str(error))
    if args.dataset:
        config.data.dataset = args.dataset
        config.data.domain_a = config.data.domain_b = ""
    checkpoint = run_checkpoint(args.run_dir, args.checkpoint)
    if not checkpoint:
        cli.fail(PROG, f"--run_dir: {args.run_dir} has no checkpoint to evaluate (train first)", code=1)
    weights = args.inception_weights if args.inception_weights is not None else config.eval.inception_weights
    features, notes = None, []
    if {"kid", "fid"} & set(metrics):
        try:
            features = inception_features(weights)
        except FeaturesUnavailable as error:
            notes.append(str(error))
            print(f"note: {error}", file=sys.stderr)
    try:
        pipeline = data_lib.prepare(eval_data_config(config.data), 1, report=lambda line: None)
    except data_lib.DataError as error:
        cli.fail(PROG, str(error), code=1)
    generator_ab, generator_ba = restore_generators(config, checkpoint)
    directions = ("a2b", "b2a") if args.direction == "both" else (args.direction,)
    limit = args.max_eval_images if args.max_eval_images is not None else config.eval.max_eval_images
    results = evaluate_generators(generator_ab, generator_ba, pipeline, directions, metrics, features, limit)
    step = int(checkpoint.rsplit("-", 1)[1]) if checkpoint.rsplit("-", 1)[-1].isdigit() else 0
    report = {"checkpoint": checkpoint, "step": step, "dataset": config.data.dataset,
              "feature_network": features.name if features else None, "notes": notes, **results}
    (Path(args.run_dir) / "eval.json").write_text(json.dumps(report, indent=2))
    writer = tf.summary.create_file_writer(str(Path(args.run_dir) / "logs" / "eval"))
    with writer.as_default(step=step):
        for name, value in flatten(results).items():
            tf.summary.scalar(f"eval/{name}", value)
    writer.flush()
    print(f"checkpoint {checkpoint} on {config.data.dataset}")
    print(format_table(results))
    if features:
        print(f"features for KID/FID: {features.name}")
    elif notes:
        print(f"features for KID/FID: none ({notes[0]})")
    print(f"wrote {Path(args.run_dir) / 'eval.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
