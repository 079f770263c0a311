"""Exporting a run's generators: SavedModel in the TF Serving layout, and TFLite.

The library behind ``python -m tf_cyclegan.export``. Every export reloads itself and is
compared with the Keras generator before it is reported; a failing one is deleted,
never left behind.
"""

import errno
import json

import keras
import numpy as np
import tensorflow as tf

from tf_cyclegan import data as data_lib
from tf_cyclegan import factory, footprint, fs, onnx_export
from tf_cyclegan.config import MAX_REQUEST_GB, MAX_REQUEST_PIXELS, TFLITE_VARIANTS
from tf_cyclegan.data.formats import is_known_image
from tf_cyclegan.data.images import composite, decode_rgba, parse_background
from tf_cyclegan.errors import UserError
from tf_cyclegan.metrics import psnr

TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


class ExportError(UserError):
    pass


def request_pixel_limit(generator, max_pixels=MAX_REQUEST_PIXELS, max_gb=MAX_REQUEST_GB):
    """(pixels one request may hold, estimated bytes per pixel): ``max_pixels``, or fewer where the generator's
    estimated memory for them would pass ``max_gb``."""

    bytes_per_px = footprint.bytes_per_pixel(generator)
    return int(min(max_pixels, max_gb * footprint.GIB / bytes_per_px)), bytes_per_px


def make_serving_archive(generator, channels, background, max_pixels=MAX_REQUEST_PIXELS, max_gb=MAX_REQUEST_GB):
    """A ``keras.export.ExportArchive`` with the two serving signatures of one generator.

    ``serving_default``: ``images`` float32 [-1, 1] NHWC (any batch/height/width) → ``translated``.
    ``translate_bytes``: ``image_bytes`` (encoded PNG/JPEG/GIF/BMP/WebP, sizes may differ) →
    ``png_bytes``, one image at a time. Names ending in ``_bytes`` are base64 in TF Serving's REST API.
    A request of more pixels than ``request_pixel_limit`` allows (for ``translate_bytes``: an image
    whose header declares more, checked before anything is decoded; for ``serving_default``: batch x
    height x width) fails with InvalidArgument, so one request cannot exhaust the server's memory.
    The archive (rather than a bare ``tf.Module``) records the Keras 3 variables so that
    session-based loaders (TF Serving, ``saved_model_cli run``) restore them, and TFLite
    folds them into constants.
    """

    limit, _ = request_pixel_limit(generator, max_pixels, max_gb)
    note = f" (this model's limit per request: about {max_gb:g} GB of memory, at most {max_pixels} pixels)"

    def serve(images):
        shape = tf.shape(images, out_type=tf.int64)
        check = tf.debugging.Assert(
            shape[0] * shape[1] * shape[2] <= limit,
            [f"a request of more than {limit} pixels (batch x height x width) is refused{note}: shape =", shape],
        )
        with tf.control_dependencies([check]):
            return {"translated": generator(tf.identity(images), training=False)}

    def one_png(contents):
        check = tf.debugging.Assert(
            is_known_image(contents), ["image_bytes: an element is not a PNG, JPEG, GIF, BMP or WebP image"]
        )
        with tf.control_dependencies([check]):
            image = composite(decode_rgba(contents, limit, note), channels, background)
        out = generator(image[None] * 2.0 - 1.0, training=False)[0]
        pixels = tf.cast(tf.round((tf.clip_by_value(out, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)
        return tf.io.encode_png(pixels)

    def translate_bytes(image_bytes):
        # One image at a time (map_fn would otherwise run up to 10 at once): the limit is per image.
        return {
            "png_bytes": tf.map_fn(
                one_png, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string), parallel_iterations=1
            )
        }

    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32, name="images")],
    )
    archive.add_endpoint(
        "translate_bytes", translate_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    return archive


def next_version(base):
    base = fs.path(base)
    versions = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def _fixed_inputs(channels):
    rng = np.random.default_rng(0)
    return [
        rng.uniform(-1, 1, (1, 64, 64, channels)).astype("float32"),
        rng.uniform(-1, 1, (2, 37, 53, channels)).astype("float32"),
    ]


def verify_saved_model(path, generator, channels):
    """Reloads the SavedModel and compares it with the Keras generator; returns the max abs diff."""

    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    worst = 0.0
    for x in _fixed_inputs(channels):
        expected = generator(x, training=False).numpy()
        got = serve(images=tf.constant(x))["translated"].numpy()
        if got.shape != expected.shape:
            raise ExportError(f"SavedModel check failed: output shape {got.shape} != {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    png = (
        tf.io.encode_png(tf.zeros((13, 17, 3), tf.uint8))
        if channels == 3
        else tf.io.encode_png(tf.zeros((13, 17, 1), tf.uint8))
    )
    out = loaded.signatures["translate_bytes"](image_bytes=tf.stack([png]))["png_bytes"]
    if tuple(tf.io.decode_png(out[0]).shape[:2]) != (13, 17):
        raise ExportError("SavedModel check failed: translate_bytes did not return a PNG of the input's size")
    if worst > TOLERANCE["fp32"]:
        raise ExportError(f"SavedModel check failed: max abs diff {worst:.2e} > {TOLERANCE['fp32']}")
    return worst


def convert_tflite(saved_model, variant, representative=None):
    """Converts the SavedModel's ``serving_default`` to TFLite (builtin ops only)."""

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
    # The LiteRT interpreter only where a TFLite file is checked (it loads its own runtime).
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


def export_run(
    run_dir,
    output="export",
    directions=("a2b", "b2a"),
    version=None,
    tflite=(),
    log=print,
    checkpoint=None,
    max_request_pixels=MAX_REQUEST_PIXELS,
    max_request_gb=MAX_REQUEST_GB,
    onnx=False,
):
    """Exports a run's generators; returns a report dict per direction. Everything is written under ``output``.

    With ``onnx``, also ``<output>/onnx/<name>_<direction>.onnx``, checked with ONNX Runtime before it is written.
    """

    unknown = [v for v in tflite if v not in TFLITE_VARIANTS]
    if unknown:
        raise ExportError(f"--tflite: {unknown[0]!r} is not one of {', '.join(TFLITE_VARIANTS)}")
    if onnx:
        onnx_export.modules()  # a missing extra is one line before any work
    config, checkpoint, restored = factory.restore_run(run_dir, checkpoint, "export")
    generators = dict(zip(("a2b", "b2a"), restored))
    reports = {}
    for direction in directions:
        base = contained(output, f"{config.name}_{direction}")
        final, diff = _export_saved_model(
            generators[direction], config, direction, checkpoint, base, version, max_request_pixels, max_request_gb, log
        )
        log(f"{direction}: SavedModel {final} (max abs diff vs Keras {diff:.1e})")
        reports[direction] = {
            "saved_model": str(final),
            "max_abs_diff": diff,
            "tflite": _export_tflite(generators[direction], config, direction, final, output, tflite, log),
        }
        if onnx:
            target = contained(fs.path(output) / "onnx", f"{config.name}_{direction}.onnx")
            channels = config.data.channels(direction)[0]
            reports[direction]["onnx"] = onnx_export.write_onnx(generators[direction], channels, target, direction, log)
    return reports


def contained(output, name):
    """``output / name``, refusing a name that would lead outside ``output``."""
    output = fs.path(output)
    target = output / name
    if target.resolve().parent != output.resolve():
        raise ExportError(f"run name {name!r} would write outside --output={output}")
    return target


def _export_saved_model(generator, config, direction, checkpoint, base, version, max_pixels, max_gb, log):
    """Writes and verifies one direction in a private staging folder, then publishes it as the next version."""

    data = config.data
    channels = data.channels(direction)[0]
    staging = fs.staging_folder(base, log)
    try:
        archive = make_serving_archive(generator, channels, parse_background(data.background), max_pixels, max_gb)
        archive.write_out(str(staging), verbose=False)
        limit, bytes_per_px = request_pixel_limit(generator, max_pixels, max_gb)
        (staging / "assets.extra").mkdir(exist_ok=True)
        (staging / "assets.extra" / "tf_cyclegan.json").write_text(
            json.dumps(
                {
                    "run": config.name,
                    "direction": direction,
                    "checkpoint": str(checkpoint),
                    "input_channels": channels,
                    "background": data.background,
                    "image_size": data.image_size,
                    "max_request_pixels": limit,
                    "max_request_gb": max_gb,
                    "bytes_per_pixel": round(bytes_per_px, 1),
                },
                indent=2,
            )
        )
        diff = verify_saved_model(staging, generator, channels)
        final = _publish(staging, base, version)
    except BaseException:
        fs.remove_tree(staging)
        raise
    if fs.is_remote(final):  # copied file by file, not renamed: read back from where it is served
        try:
            diff = verify_saved_model(final, generator, channels)
        except BaseException:
            fs.remove_tree(final)
            raise
    return final, diff


def _publish(staging, base, version):
    """Publishes ``staging`` as ``base/<version>`` (the next free number when None); a taken number is never reused.
    On a URI the files are copied with saved_model.pb last (a server polling the folder loads a version once it has
    one)."""
    number = version or next_version(base)
    while True:
        final = base / str(number)
        try:
            return fs.publish_folder(staging, final, last=("saved_model.pb",))
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):  # not a taken number: a real failure
                raise
            if version:
                raise ExportError(f"--version: {final} already exists") from None
            number += 1


def _export_tflite(generator, config, direction, saved_model, output, variants, log):
    """Converts and verifies each TFLite variant; returns {variant: report}."""
    channels = config.data.channels(direction)[0]
    representative = _calibration_images(config, direction) if any("int8" in v for v in variants) else None
    reports = {}
    for variant in variants:
        target = contained(fs.path(output) / "tflite", f"{config.name}_{direction}_{variant}.tflite")
        model_bytes = convert_tflite(saved_model, variant, representative)
        # Quantized variants are judged on a real image of the source domain (x in [-1, 1]).
        sample = representative[0][None] if representative and "int8" in variant else None
        check = verify_tflite(model_bytes, generator, channels, variant, sample)
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.write_atomic(target, model_bytes)
        reports[variant] = {"path": str(target), "bytes": len(model_bytes), **check}
        log(
            f"{direction}: TFLite {variant} {target} ({len(model_bytes) / 1e6:.1f} MB, "
            f"max abs diff {check['max_abs_diff']:.1e}, PSNR {check['psnr_db']:.1f} dB)"
        )
    return reports


def _calibration_images(config, direction, count=32):

    pipeline = data_lib.prepare(config.data, 1, report=lambda line: None)
    domains = pipeline.domains
    domain = domains.train_a if direction == "a2b" else domains.train_b
    channels = config.data.channels(direction)[0]
    subset = domain.subset(range(min(count, len(domain))))
    return [image.numpy() for image in pipeline.test_dataset(subset, channels)]
