"""Translating images with a trained generator (or an exported SavedModel): any size, tiled when memory asks.

``Translator.translate`` and ``translate_tiled`` take HxWxC images in [0, 1] (or a decoded ``Picture``,
kept as RGBA integers); an image whose estimated memory (``footprint``) is above the budget is translated
in tiles, each converted to floats only while it is translated, with the whole image's instance-norm
statistics (``moments_of``; ``translate_fixed`` takes another's, e.g. a clip's). Files and folders:
``translate_files.py``.
"""

import json

import keras
import numpy as np
import tensorflow as tf

from tf_cyclegan import config as config_lib
from tf_cyclegan import factory, footprint, fs
from tf_cyclegan.data.images import parse_background
from tf_cyclegan.errors import UserError
from tf_cyclegan.layers import InstanceNormalization, PadToMultiple
from tf_cyclegan.pictures import Picture, to_uint8
from tf_cyclegan.runtime import dtype_policy

DEFAULT_MEMORY_GB = 2  # one image untiled: resnet_9blocks (ngf 64) up to ~1.6 MP, larger ones in tiles


class TranslateError(UserError):
    pass


class Translator:
    """One direction's generator with image-level helpers (inputs/outputs in [0, 1], HxWxC)."""

    def __init__(self, generator=None, serving_fn=None, in_channels=3, out_channels=3, background=(1.0, 1.0, 1.0)):
        self.generator = generator  # a Keras model (enables tiling with whole-image statistics)
        self.serving_fn = serving_fn  # a SavedModel signature
        self.in_channels, self.out_channels = in_channels, out_channels
        self.background = background
        self.bytes_per_pixel = None  # estimated peak memory per pixel of one call (footprint), when known
        self.kind = ""  # the generator's builder name (resnet_9blocks, unet_64, ...) when known
        if generator is not None:
            self._call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
            self.bytes_per_pixel = footprint.bytes_per_pixel(generator)

    @classmethod
    def from_run(cls, run_dir, direction="a2b", checkpoint=None, precision="float32"):
        """The run's generator for ``direction``, computing in ``precision`` (a Keras policy name)."""
        with dtype_policy(precision):
            config, _, (generator_ab, generator_ba) = factory.restore_run(run_dir, checkpoint, "translate with")
        data = config.data
        background = parse_background(data.background)
        generator = generator_ab if direction == "a2b" else generator_ba
        translator = cls(generator, None, *data.channels(direction), background)
        translator.kind = config_lib.generator_kind(config.model)
        return translator

    @classmethod
    def from_saved_model(cls, path, background=(1.0, 1.0, 1.0)):
        try:
            loaded = tf.saved_model.load(str(path))
        except (OSError, tf.errors.OpError):
            raise TranslateError(f"--saved_model: {path} is not a SavedModel") from None
        fn = loaded.signatures["serving_default"]
        spec = next(iter(fn.structured_input_signature[1].values()))
        out_channels = next(iter(fn.structured_outputs.values())).shape[-1]
        translator = cls(None, fn, spec.shape[-1], out_channels, background)
        translator._loaded = loaded  # keep the variables alive
        translator.bytes_per_pixel = _exported_bytes_per_pixel(path)
        return translator

    @classmethod
    def from_onnx(cls, path, background=(1.0, 1.0, 1.0)):
        """An exported ``.onnx`` generator (``export --onnx``), run by ONNX Runtime on the CPU."""
        from tf_cyclegan import onnx_export  # here: the ONNX extra is optional (a missing one is one line, below)

        if not fs.path(path).is_file():
            raise TranslateError(f"--onnx_model: no such file {str(path)!r}")
        runner = onnx_export.session(path, f"--onnx_model: {path}", flag="--onnx_model")
        inputs, outputs = runner.get_inputs(), runner.get_outputs()
        if [i.name for i in inputs] != ["images"] or len(inputs[0].shape) != 4:
            raise TranslateError(f"--onnx_model: {path} is not a tf_cyclegan export (no NHWC input named 'images')")

        def run(images):
            return {"translated": tf.constant(runner.run(None, {"images": np.asarray(images, np.float32)})[0])}

        translator = cls(None, run, inputs[0].shape[-1], outputs[0].shape[-1], background)
        translator._loaded = runner
        return translator

    def memory_for(self, height, width):
        """Estimated bytes to translate one ``height`` x ``width`` image untiled (None when unknown)."""
        return None if self.bytes_per_pixel is None else self.bytes_per_pixel * height * width

    def plan(self, height, width, tile, overlap, budget):
        """How to translate an image: 0 = whole, N = in N px tiles, or a string saying why it cannot be."""
        if tile:
            return tile
        need = self.memory_for(height, width)
        if need is None or need <= budget:
            return 0
        if self.generator is None:
            return (
                f"{width} x {height} needs about {footprint.gib(need)} untiled, above the "
                f"{footprint.gib(budget)} allowed (--max_memory_gb); an exported model cannot tile: translate it "
                "with --run_dir (tiles) or a smaller image"
            )
        return tile_for(self.bytes_per_pixel, budget, overlap)

    def _run(self, batch):
        """[-1, 1] NHWC → [-1, 1] NHWC."""
        if self.serving_fn is not None:
            return next(iter(self.serving_fn(images=batch).values()))
        return self._call(batch)

    def translate(self, image):
        """One HxWxC image in [0, 1] (or a Picture) → the translation in [0, 1], same height and width."""
        image = image.region() if isinstance(image, Picture) else image
        x = tf.convert_to_tensor(image, tf.float32)[None] * 2.0 - 1.0
        return ((tf.clip_by_value(self._run(x), -1.0, 1.0) + 1.0) / 2.0)[0]

    def translate_planned(self, picture, plan, overlap=64):
        """uint8 translation of a Picture: whole (``plan`` 0) or in ``plan`` px tiles."""
        if plan:
            return self.translate_tiled(picture, plan, overlap, as_uint8=True)
        return to_uint8(self.translate(picture))

    def moments_of(self, picture, stats_size=1024):
        """[(mean, variance)] at the input of every instance-norm layer for ``picture`` (downscaled to at most
        ``stats_size`` px), as numpy arrays: what tiles of one image, or frames of one clip, can share."""
        copy = self._tiling_copy()
        norms = _norms(copy)
        if not norms:
            return []
        for layer in norms:  # the statistics of this picture, measured with every layer on its own
            layer.fixed_moments = None
        if getattr(self, "_moments", None) is None:
            self._moments = _moments_function(copy, norms)
        moments = self._moments(_downscaled(picture.preview(stats_size), stats_size))
        return [(mean.numpy(), variance.numpy()) for mean, variance in moments]

    def translate_fixed(self, picture, moments, plan=0, overlap=64):
        """uint8 translation of a Picture whose instance-norm layers use the given ``moments`` (``moments_of``)."""
        if plan:
            return self.translate_tiled(picture, plan, overlap, as_uint8=True, moments=moments)
        copy = self._tiling_copy()
        if getattr(self, "_fixed", None) is None:  # variables, so one graph function serves every frame's moments
            self._fixed = [tuple(tf.Variable(m, trainable=False) for m in layer) for layer in moments]
            self._fixed_call = tf.function(lambda x: copy(x, training=False), reduce_retracing=True)
        for layer, variables, values in zip(_norms(copy), self._fixed, moments):
            for variable, value in zip(variables, values):
                variable.assign(value)
            layer.fixed_moments = variables
        out = self._fixed_call(tf.constant(picture.region())[None] * 2.0 - 1.0)[0]
        return to_uint8((tf.clip_by_value(out, -1.0, 1.0) + 1.0) / 2.0)

    def translate_tiled(self, image, tile=512, overlap=64, stats_size=1024, as_uint8=False, moments=None):
        """Translates in tiles of ``tile`` px with ``overlap`` px of context on each side.

        Instance-norm layers use the statistics of the whole image (computed once, on a
        copy downscaled to at most ``stats_size`` px; or ``moments``, e.g. a clip's), so tiles match in brightness.
        Tile borders are aligned to the network's stride, and only each tile's centre is
        kept, so there are no seams. The statistics are fixed inside a private copy of the
        generator: the generator itself (and any untiled translation) is never affected.
        ``image`` is an HxWxC array in [0, 1] or a Picture; only one tile at a time is in floats.
        Returns a float tensor in [0, 1], or (``as_uint8``) a uint8 array.
        """
        if self.generator is None:
            raise TranslateError("--tile needs --run_dir (tiling fixes instance-norm statistics inside the network)")
        picture = image if isinstance(image, Picture) else Picture.from_unit(image, self.background)
        copy = self._tiling_copy()
        stride = next((l.multiple for l in copy.layers if isinstance(l, PadToMultiple)), 1)
        tile, overlap = -(-tile // stride) * stride, -(-overlap // stride) * stride
        norms = _norms(copy)
        height, width = picture.height, picture.width
        full_h, full_w = -(-height // stride) * stride, -(-width // stride) * stride
        rows, cols = _mirror_indices(height, full_h), _mirror_indices(width, full_w)  # the padding PadToMultiple adds
        top, left = (full_h - height) // 2, (full_w - width) // 2
        if moments is None:
            moments = self.moments_of(picture, stats_size)
        for layer, layer_moments in zip(norms, moments):
            layer.fixed_moments = tuple(tf.constant(m) for m in layer_moments)
        # A graph function frees each layer's buffers as soon as they are consumed (eager Keras keeps more);
        # it is made here so it captures this image's moments.
        run_tile = tf.function(lambda tile_input: copy(tile_input, training=False), reduce_retracing=True)
        result = np.empty((height, width, self.out_channels), np.uint8 if as_uint8 else np.float32)
        for y0 in range(0, full_h, tile):
            for x0 in range(0, full_w, tile):
                y1, x1 = min(y0 + tile, full_h), min(x0 + tile, full_w)
                cy0, cx0 = max(0, y0 - overlap), max(0, x0 - overlap)
                cy1, cx1 = min(full_h, y1 + overlap), min(full_w, x1 + overlap)
                out = run_tile(picture.region(rows[cy0:cy1], cols[cx0:cx1])[None] * 2.0 - 1.0)[0]
                # The tile's centre, less the padding, goes to its place in the result.
                oy0, oy1, ox0, ox1 = max(y0, top), min(y1, top + height), max(x0, left), min(x1, left + width)
                if oy0 < oy1 and ox0 < ox1:
                    centre = (tf.clip_by_value(out[oy0 - cy0 : oy1 - cy0, ox0 - cx0 : ox1 - cx0], -1.0, 1.0) + 1.0) / 2
                    result[oy0 - top : oy1 - top, ox0 - left : ox1 - left] = to_uint8(centre) if as_uint8 else centre
        return result if as_uint8 else tf.constant(result)

    def _tiling_copy(self):
        if getattr(self, "_copy", None) is None:
            self._copy = keras.models.clone_model(self.generator)
            self._copy.set_weights(self.generator.get_weights())
        return self._copy


def _norms(network):
    return [layer for layer in network.layers if isinstance(layer, InstanceNormalization)]


def _mirror_indices(size, padded):
    """Source indices of a dimension of ``size`` reflect-padded to ``padded`` (split as PadToMultiple does)."""
    before = (padded - size) // 2
    index = np.arange(-before, padded - before)
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    folded = np.mod(index, period)
    return np.where(folded >= size, period - folded, folded)


def _exported_bytes_per_pixel(saved_model):
    """The memory estimate an export recorded in assets.extra/tf_cyclegan.json (None for older exports)."""
    try:
        record = json.loads((fs.path(saved_model) / "assets.extra" / "tf_cyclegan.json").read_text())
        return float(record["bytes_per_pixel"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _moments_function(generator, norms):
    """A graph function: [-1, 1] NHWC images -> (mean, variance) at every instance-norm layer's input."""
    probe = keras.Model(generator.inputs, [layer.input for layer in norms])

    @tf.function(reduce_retracing=True)
    def collect(images):
        # Only the moments leave the graph, so the large feature maps are freed as it runs.
        features = probe(images, training=False)
        features = features if isinstance(features, (list, tuple)) else [features]
        return [tf.nn.moments(tf.cast(f, tf.float32), axes=[1, 2], keepdims=True) for f in features]

    return collect


def _downscaled(image, stats_size):
    """``image`` ([0, 1] HxWxC) as a [-1, 1] batch of one, downscaled to at most ``stats_size`` px."""
    x = tf.convert_to_tensor(image, tf.float32)[None] * 2.0 - 1.0
    height, width = int(x.shape[1]), int(x.shape[2])
    scale = min(1.0, stats_size / max(height, width))
    if scale < 1.0:
        x = tf.image.resize(x, (max(1, round(height * scale)), max(1, round(width * scale))), antialias=True)
    return x


def tile_for(bytes_per_px, budget, overlap, largest=512):
    """The largest tile (512, 256, ... px) whose call with ``overlap`` px of context fits in ``budget`` bytes."""
    tile = largest
    while tile > 16 and footprint.estimate(bytes_per_px, tile + 2 * overlap, tile + 2 * overlap) > budget:
        tile //= 2
    return tile
