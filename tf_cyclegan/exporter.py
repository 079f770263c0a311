"""Exporting a run's generators: SavedModel in the TF Serving layout, and TFLite.

The library behind ``python -m tf_cyclegan.export``. Every export reloads itself and is
compared with the Keras generator before it is reported; a failing one is deleted,
never left behind.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tf_cyclegan.metrics import psnr

TFLITE_VARIANTS = ("fp32", "fp16", "int8", "int8_full")
MAX_REQUEST_PIXELS = 16_000_000  # translate_bytes refuses larger images (a 4000 x 4000 photo is the largest accepted)
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


class ExportError(Exception):
    pass


def make_serving_archive(generator, channels, background, max_pixels=MAX_REQUEST_PIXELS):
    """A ``keras.export.ExportArchive`` with the two serving signatures of one generator.

    ``serving_default``: ``images`` float32 [-1, 1] NHWC (any batch/height/width) → ``translated``.
    ``translate_bytes``: ``image_bytes`` (encoded PNG/JPEG/GIF/BMP/WebP, sizes may differ) →
    ``png_bytes``. Names ending in ``_bytes`` are base64 in TF Serving's REST API. An image
    whose header declares more than ``max_pixels`` fails the request with InvalidArgument
    before anything is decoded.
    The archive (rather than a bare ``tf.Module``) records the Keras 3 variables so that
    session-based loaders (TF Serving, ``saved_model_cli run``) restore them, and TFLite
    folds them into constants.
    """
    import tensorflow as tf
    import keras

    from tf_cyclegan.data.images import composite, decode_rgba, is_known_image

    def serve(images):
        return {"translated": generator(images, training=False)}

    def one_png(contents):
        check = tf.debugging.Assert(
            is_known_image(contents), ["image_bytes: an element is not a PNG, JPEG, GIF, BMP or WebP image"]
        )
        with tf.control_dependencies([check]):
            image = composite(decode_rgba(contents, max_pixels), channels, background)
        out = generator(image[None] * 2.0 - 1.0, training=False)[0]
        pixels = tf.cast(tf.round((tf.clip_by_value(out, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)
        return tf.io.encode_png(pixels)

    def translate_bytes(image_bytes):
        return {"png_bytes": tf.map_fn(one_png, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string))}

    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32, name="images")])
    archive.add_endpoint("translate_bytes", translate_bytes,
                         input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    return archive


def next_version(base):
    versions = [int(p.name) for p in Path(base).iterdir() if p.name.isdigit()] if Path(base).is_dir() else []
    return max(versions, default=0) + 1


def _fixed_inputs(channels):
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, (1, 64, 64, channels)).astype("float32"),
            rng.uniform(-1, 1, (2, 37, 53, channels)).astype("float32")]


def verify_saved_model(path, generator, channels):
    """Reloads the SavedModel and compares it with the Keras generator; returns the max abs diff."""
    import tensorflow as tf
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    worst = 0.0
    for x in _fixed_inputs(channels):
        expected = generator(x, training=False).numpy()
        got = serve(images=tf.constant(x))["translated"].numpy()
        if got.shape != expected.shape:
            raise ExportError(f"SavedModel check failed: output shape {got.shape} != {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    png = tf.io.encode_png(tf.zeros((13, 17, 3), tf.uint8)) if channels == 3 else tf.io.encode_png(
        tf.zeros((13, 17, 1), tf.uint8))
    out = loaded.signatures["translate_bytes"](image_bytes=tf.stack([png]))["png_bytes"]
    if tuple(tf.io.decode_png(out[0]).shape[:2]) != (13, 17):
        raise ExportError("SavedModel check failed: translate_bytes did not return a PNG of the input's size")
    if worst > TOLERANCE["fp32"]:
        raise ExportError(f"SavedModel check failed: max abs diff {worst:.2e} > {TOLERANCE['fp32']}")
    return worst


def convert_tflite(saved_model, variant, representative=None):
    """Converts the SavedModel's ``serving_default`` to TFLite (builtin ops only)."""
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8_full":
        if representative is None:
            raise ExportError("int8_full needs calibration images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def run_tflite(model_bytes, x):
    """Runs a TFLite model (ai_edge_litert) on one NHWC float batch of any height/width."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    runner = interpreter.get_signature_runner("serving_default")
    return runner(images=x)["translated"]


def verify_tflite(model_bytes, generator, channels, variant, x=None):
    """Compares with the Keras generator on ``x`` (default: fixed noise); fp32/fp16 must meet
    their tolerance, int8 variants report PSNR."""
    x = _fixed_inputs(channels)[0] if x is None else x
    expected = generator(x, training=False).numpy()
    got = run_tflite(model_bytes, x)
    if got.shape != expected.shape:
        raise ExportError(f"TFLite {variant} check failed: output shape {got.shape} != {expected.shape}")
    diff = float(np.abs(got - expected).max())
    if variant in TOLERANCE and diff > TOLERANCE[variant]:
        raise ExportError(f"TFLite {variant} check failed: max abs diff {diff:.2e} > {TOLERANCE[variant]}")
    return {"max_abs_diff": diff, "psnr_db": psnr((got + 1) / 2, (expected + 1) / 2)}


def export_run(run_dir, output="export", directions=("a2b", "b2a"), version=None, tflite=(), log=print,
               checkpoint=None, max_request_pixels=MAX_REQUEST_PIXELS):
    """Exports a run's generators; returns a report dict per direction. Everything is written under ``output``."""
    from tf_cyclegan import factory, run

    config = run.read_config(run_dir)
    checkpoint = run.run_checkpoint(run_dir, checkpoint)
    if not checkpoint:
        raise ExportError(f"--run_dir: {run_dir} has no checkpoint to export (train first)")
    unknown = [v for v in tflite if v not in TFLITE_VARIANTS]
    if unknown:
        raise ExportError(f"--tflite: {unknown[0]!r} is not one of {', '.join(TFLITE_VARIANTS)}")
    generators = dict(zip(("a2b", "b2a"), factory.restore_generators(config, checkpoint)))
    reports = {}
    for direction in directions:
        base = contained(Path(output), f"{config.name}_{direction}")
        final, diff = _export_saved_model(generators[direction], config, direction, checkpoint, base, version,
                                          max_request_pixels)
        log(f"{direction}: SavedModel {final} (max abs diff vs Keras {diff:.1e})")
        reports[direction] = {"saved_model": str(final), "max_abs_diff": diff,
                              "tflite": _export_tflite(generators[direction], config, direction, final, output,
                                                       tflite, log)}
    return reports


def contained(output, name):
    """``output / name``, refusing a name that would lead outside ``output``."""
    target = output / name
    if target.resolve().parent != output.resolve():
        raise ExportError(f"run name {name!r} would write outside --output={output}")
    return target


def _export_saved_model(generator, config, direction, checkpoint, base, version, max_pixels):
    """Writes and verifies one direction in a private staging folder, then publishes it as the next version."""
    from tf_cyclegan.data.images import parse_background

    data = config.data
    channels = data.channels_a if direction == "a2b" else data.channels_b
    staging = make_staging(base)
    try:
        archive = make_serving_archive(generator, channels, parse_background(data.background), max_pixels)
        archive.write_out(str(staging), verbose=False)
        (staging / "assets.extra").mkdir(exist_ok=True)
        (staging / "assets.extra" / "tf_cyclegan.json").write_text(json.dumps({
            "run": config.name, "direction": direction, "checkpoint": str(checkpoint), "input_channels": channels,
            "background": data.background, "image_size": data.image_size, "max_request_pixels": max_pixels,
        }, indent=2))
        diff = verify_saved_model(staging, generator, channels)
        return _publish(staging, base, version), diff
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def make_staging(parent):
    """A private new folder in ``parent`` to write an export into, readable like any folder once published
    (``mkdtemp`` makes it 0700: a server running as another user could not read the export)."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    return staging


def _publish(staging, base, version):
    """Renames ``staging`` to ``base/<version>`` (the next free number when None); a taken number is never reused."""
    number = version or next_version(base)
    while True:
        final = base / str(number)
        try:
            if final.exists():
                raise FileExistsError(final)
            os.rename(staging, final)  # atomic; fails when another export took the number meanwhile
            return final
        except OSError:
            if version:
                raise ExportError(f"--version: {final} already exists") from None
            number += 1


def _export_tflite(generator, config, direction, saved_model, output, variants, log):
    """Converts and verifies each TFLite variant; returns {variant: report}."""
    channels = config.data.channels_a if direction == "a2b" else config.data.channels_b
    representative = _calibration_images(config, direction) if any("int8" in v for v in variants) else None
    reports = {}
    for variant in variants:
        target = contained(Path(output) / "tflite", f"{config.name}_{direction}_{variant}.tflite")
        model_bytes = convert_tflite(saved_model, variant, representative)
        # Quantized variants are judged on a real image of the source domain (x in [-1, 1]).
        sample = representative[0][None] if representative and "int8" in variant else None
        check = verify_tflite(model_bytes, generator, channels, variant, sample)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        temporary.write_bytes(model_bytes)
        os.replace(temporary, target)
        reports[variant] = {"path": str(target), "bytes": len(model_bytes), **check}
        log(f"{direction}: TFLite {variant} {target} ({len(model_bytes) / 1e6:.1f} MB, "
            f"max abs diff {check['max_abs_diff']:.1e}, PSNR {check['psnr_db']:.1f} dB)")
    return reports


def _calibration_images(config, direction, count=32):
    from tf_cyclegan import data as data_lib

    pipeline = data_lib.prepare(config.data, 1, report=lambda line: None)
    domains = pipeline.domains
    domain = domains.train_a if direction == "a2b" else domains.train_b
    channels = config.data.channels_a if direction == "a2b" else config.data.channels_b
    subset = domain.subset(range(min(count, len(domain))))
    return [image.numpy() for image in pipeline.test_dataset(subset, channels)]
