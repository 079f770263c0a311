"""ONNX export of a generator: any batch, height and width, checked with ONNX Runtime against Keras.

Converted with tf2onnx from the same graph the SavedModel serves (float NHWC images in [-1, 1]
in, ``translated`` out). Two of the network's shape computations were written so that the
converted graph computes them as TensorFlow does (see layers.PadToMultiple and _mirror_indices);
the check here at odd sizes and batch 2 is what would catch a regression. tf2onnx, onnx and
onnxruntime are an optional extra: ``pip install -e ".[onnx]"``.
"""

import numpy as np
import tensorflow as tf

from tf_cyclegan import fs
from tf_cyclegan.errors import UserError

OPSET = 17
TOLERANCE = 1e-4  # max abs difference from the Keras generator, on outputs in [-1, 1]
# Checked sizes (batch, height, width): a multiple of every generator's stride, odd ones, a batch of 2, a tiny one.
CHECK_SIZES = ((1, 64, 64), (2, 37, 53), (1, 96, 80), (1, 8, 8))
INSTALL = 'pip install -e ".[onnx]" (tf2onnx, onnx, onnxruntime)'


class OnnxError(UserError):
    """The ONNX extra is missing, or a converted model does not match the generator."""


def modules(flag="--onnx"):
    """(tf2onnx, onnx, onnxruntime), or OnnxError naming ``flag`` and saying how to install them."""
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise OnnxError(f"{flag} needs the ONNX extra ({error.name} is not installed): {INSTALL}") from None
    return tf2onnx, onnx, onnxruntime


def convert_onnx(generator, channels):
    """The generator as a serialized ONNX model (dynamic batch, height and width; input ``images``)."""
    tf2onnx, onnx, _ = modules()
    spec = (tf.TensorSpec([None, None, None, channels], tf.float32, name="images"),)

    @tf.function(input_signature=spec, autograph=False)
    def translate(images):
        return {"translated": generator(images, training=False)}

    model, _ = tf2onnx.convert.from_function(translate, input_signature=spec, opset=OPSET)
    _modernize(model, onnx)
    for value in (model.graph.input[0], model.graph.output[0]):
        for dim, name in zip(value.type.tensor_type.shape.dim, ("batch", "height", "width")):
            dim.dim_param = name
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _modernize(model, onnx):
    """Nearest-neighbour Resize as opset 13+ spells it: tf2onnx writes ``tf_half_pixel_for_nn``, which ONNX Runtime
    warns about on every load. For the integer up-sampling factors of these networks, floor((i + 0.5) / s) and
    floor(i / s) pick the same pixel, so ``asymmetric`` with ``floor`` is the same resize (the check confirms it)."""
    for node in model.graph.node:
        if node.op_type != "Resize":
            continue
        for attribute in node.attribute:
            if attribute.name == "coordinate_transformation_mode" and attribute.s == b"tf_half_pixel_for_nn":
                attribute.CopyFrom(onnx.helper.make_attribute("coordinate_transformation_mode", "asymmetric"))
            if attribute.name == "nearest_mode":
                attribute.CopyFrom(onnx.helper.make_attribute("nearest_mode", "floor"))


def session(model, name="the converted model", flag="--onnx"):
    """An ONNX Runtime session on the CPU for a model's bytes or path; ``name`` heads the error when it cannot load."""
    _, _, onnxruntime = modules(flag)
    source = model if isinstance(model, bytes) else str(model)
    if fs.is_remote(source):  # ONNX Runtime opens local files only
        source = fs.path(source).read_bytes()
    try:
        return onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...) for a bad file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OnnxError(f"{name}: not an ONNX model ONNX Runtime can load ({reason})") from None


def verify_onnx(model_bytes, generator, channels, sizes=CHECK_SIZES):
    """Runs the model at each (batch, height, width) against the Keras generator; raises OnnxError above TOLERANCE."""
    runner = session(model_bytes)
    worst = 0.0
    rng = np.random.default_rng(0)
    for batch, height, width in sizes:
        x = rng.uniform(-1, 1, (batch, height, width, channels)).astype("float32")
        want = generator(x, training=False).numpy()
        got = runner.run(None, {"images": x})[0]
        if got.shape != want.shape:
            raise OnnxError(f"ONNX check failed: {x.shape} came back as {got.shape}, expected {want.shape}")
        worst = max(worst, float(np.abs(got - want).max()))
        if worst > TOLERANCE:
            raise OnnxError(f"ONNX check failed at {x.shape}: max abs diff {worst:.2e} > {TOLERANCE:.0e}")
    return {"max_abs_diff": worst, "sizes": [list(size) for size in sizes]}


def write_onnx(generator, channels, target, direction, log=print):
    """Converts, checks at CHECK_SIZES against the generator, then writes ``target`` (atomically); returns a report."""
    model_bytes = convert_onnx(generator, channels)
    check = verify_onnx(model_bytes, generator, channels)
    target = fs.path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fs.write_atomic(target, model_bytes)
    sizes = ", ".join("x".join(map(str, size)) for size in check["sizes"])
    log(
        f"{direction}: ONNX {target} ({len(model_bytes) / 1e6:.1f} MB, max abs diff vs Keras "
        f"{check['max_abs_diff']:.1e} at {sizes})"
    )
    return {"path": str(target), "bytes": len(model_bytes), **check}
