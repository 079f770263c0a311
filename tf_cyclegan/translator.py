"""Translating images with a trained generator (or an exported SavedModel): any size, optionally tiled.

The library behind ``python -m tf_cyclegan.translate``. Images are HxWxC in [0, 1].
"""

import os
from pathlib import Path


class TranslateError(Exception):
    pass


class Translator:
    """One direction's generator with image-level helpers (inputs/outputs in [0, 1], HxWxC)."""

    def __init__(self, generator=None, serving_fn=None, in_channels=3, out_channels=3, background=(1.0, 1.0, 1.0)):
        self.generator = generator  # a Keras model (enables tiling with whole-image statistics)
        self.serving_fn = serving_fn  # a SavedModel signature
        self.in_channels, self.out_channels = in_channels, out_channels
        self.background = background
        import tensorflow as tf
        if generator is not None:
            self._call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)

    @classmethod
    def from_run(cls, run_dir, direction="a2b", checkpoint=None, precision="float32"):
        """The run's generator for ``direction``, computing in ``precision`` (a Keras policy name)."""
        from tf_cyclegan import factory, run
        from tf_cyclegan.data.images import parse_background
        from tf_cyclegan.runtime import dtype_policy

        config = run.read_config(run_dir)
        path = run.run_checkpoint(run_dir, checkpoint)
        if not path:
            raise TranslateError(f"--run_dir: {run_dir} has no checkpoint yet (train first)")
        with dtype_policy(precision):
            generator_ab, generator_ba = factory.restore_generators(config, path)
        data = config.data
        background = parse_background(data.background)
        if direction == "a2b":
            return cls(generator_ab, None, data.channels_a, data.channels_b, background)
        return cls(generator_ba, None, data.channels_b, data.channels_a, background)

    @classmethod
    def from_saved_model(cls, path, background=(1.0, 1.0, 1.0)):
        import tensorflow as tf
        try:
            loaded = tf.saved_model.load(str(path))
        except (OSError, tf.errors.OpError):
            raise TranslateError(f"--saved_model: {path} is not a SavedModel") from None
        fn = loaded.signatures["serving_default"]
        spec = next(iter(fn.structured_input_signature[1].values()))
        out_channels = next(iter(fn.structured_outputs.values())).shape[-1]
        translator = cls(None, fn, spec.shape[-1], out_channels, background)
        translator._loaded = loaded  # keep the variables alive
        return translator

    def _run(self, batch):
        """[-1, 1] NHWC → [-1, 1] NHWC."""
        if self.serving_fn is not None:
            return next(iter(self.serving_fn(images=batch).values()))
        return self._call(batch)

    def translate(self, image):
        """One HxWxC image in [0, 1] → the translation in [0, 1], same height and width."""
        import tensorflow as tf
        x = tf.convert_to_tensor(image, tf.float32)[None] * 2.0 - 1.0
        return ((tf.clip_by_value(self._run(x), -1.0, 1.0) + 1.0) / 2.0)[0]

    def translate_tiled(self, image, tile=512, overlap=64, stats_size=1024):
        """Translates in tiles of ``tile`` px with ``overlap`` px of context on each side.

        Instance-norm layers use the statistics of the whole image (computed once, on a
        copy downscaled to at most ``stats_size`` px), so tiles match in brightness.
        Tile borders are aligned to the network's stride, and only each tile's centre is
        kept, so there are no seams. The statistics are fixed inside a private copy of the
        generator: the generator itself (and any untiled translation) is never affected.
        """
        import tensorflow as tf

        from tf_cyclegan.layers import InstanceNormalization, PadToMultiple

        if self.generator is None:
            raise TranslateError("--tile needs --run_dir (tiling fixes instance-norm statistics inside the network)")
        copy = self._tiling_copy()
        stride = next((l.multiple for l in copy.layers if isinstance(l, PadToMultiple)), 1)
        tile, overlap = -(-tile // stride) * stride, -(-overlap // stride) * stride
        norms = [l for l in copy.layers if isinstance(l, InstanceNormalization)]
        x = tf.convert_to_tensor(image, tf.float32)[None] * 2.0 - 1.0
        height, width = int(x.shape[1]), int(x.shape[2])
        padded = PadToMultiple(stride)(x)
        top, left = (padded.shape[1] - height) // 2, (padded.shape[2] - width) // 2
        for layer in norms:
            layer.fixed_moments = None
        moments = _whole_image_moments(copy, norms, x, stats_size) if norms else []
        for layer, layer_moments in zip(norms, moments):
            layer.fixed_moments = layer_moments
        # A graph function frees each layer's buffers as soon as they are consumed (eager Keras keeps more);
        # it is made here so it captures this image's moments.
        run_tile = tf.function(lambda tile_input: copy(tile_input, training=False), reduce_retracing=True)
        result = _assemble_tiles(run_tile, padded, tile, overlap)[:, top : top + height, left : left + width]
        return ((tf.clip_by_value(result, -1.0, 1.0) + 1.0) / 2.0)[0]

    def _tiling_copy(self):
        import keras

        if getattr(self, "_copy", None) is None:
            self._copy = keras.models.clone_model(self.generator)
            self._copy.set_weights(self.generator.get_weights())
        return self._copy


def _whole_image_moments(generator, norms, x, stats_size):
    """(mean, variance) at every instance-norm layer's input, from ``x`` downscaled to ≤ ``stats_size`` px."""
    import keras
    import tensorflow as tf

    height, width = int(x.shape[1]), int(x.shape[2])
    scale = min(1.0, stats_size / max(height, width))
    if scale < 1.0:
        x = tf.image.resize(x, (max(1, round(height * scale)), max(1, round(width * scale))), antialias=True)
    probe = keras.Model(generator.inputs, [layer.input for layer in norms])

    @tf.function
    def collect(images):
        # Only the moments leave the graph, so the large feature maps are freed as it runs.
        features = probe(images, training=False)
        features = features if isinstance(features, (list, tuple)) else [features]
        return [tf.nn.moments(tf.cast(f, tf.float32), axes=[1, 2], keepdims=True) for f in features]

    return collect(x)


def _assemble_tiles(run_tile, padded, tile, overlap):
    """Runs ``run_tile`` on each tile with ``overlap`` px of context and joins the tiles' centres."""
    import tensorflow as tf

    full_h, full_w = int(padded.shape[1]), int(padded.shape[2])
    rows = []
    for y0 in range(0, full_h, tile):
        row = []
        for x0 in range(0, full_w, tile):
            y1, x1 = min(y0 + tile, full_h), min(x0 + tile, full_w)
            cy0, cx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            cy1, cx1 = min(full_h, y1 + overlap), min(full_w, x1 + overlap)
            out = run_tile(padded[:, cy0:cy1, cx0:cx1])
            row.append(out[:, y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0])
        rows.append(tf.concat(row, axis=2))
    return tf.concat(rows, axis=1)


class TooLarge(Exception):
    """An image whose header declares more pixels than allowed (it is not decoded)."""


def read_image(path, channels, background, max_pixels=0):
    """(image in [0, 1] HxWxC composited on ``background``, alpha HxW uint8 or None).

    Raises TooLarge, before decoding anything, when the header declares more than ``max_pixels``.
    """
    import tensorflow as tf
    from tf_cyclegan.data.images import composite, declared_size, decode_rgba

    contents = tf.io.read_file(os.fsencode(path))  # file names in any encoding
    height, width = (int(v) for v in declared_size(contents).numpy())
    if max_pixels and height * width > max_pixels:
        raise TooLarge(f"{width} x {height} pixels, above --max_pixels={max_pixels}")
    rgba = decode_rgba(contents)
    has_alpha = bool(tf.reduce_any(rgba[..., 3] < 1.0))
    alpha = tf.cast(tf.round(rgba[..., 3] * 255.0), tf.uint8).numpy() if has_alpha else None
    return composite(rgba, channels, background), alpha


def write_image(path, image, alpha=None):
    """Saves a [0, 1] HxWxC image; ``alpha`` (uint8 HxW) is attached when the format keeps it."""
    import numpy as np
    from PIL import Image

    pixels = np.round(np.asarray(image) * 255.0).astype(np.uint8)
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    picture = Image.fromarray(pixels)
    if alpha is not None and Path(path).suffix.lower() in (".png", ".webp", ".tif", ".tiff"):
        picture = picture.convert("RGBA" if picture.mode == "RGB" else "LA")
        picture.putalpha(Image.fromarray(alpha))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)


def translate_paths(translator, inputs, output, tile=None, overlap=64, log=print, progress=True, max_pixels=0):
    """Translates a file or every image under a folder into ``output``; returns (written, skipped)."""
    import tensorflow as tf
    import keras

    from tf_cyclegan.data.sources import IMAGE_EXTENSIONS, list_folder

    source = Path(inputs)
    if source.is_dir():
        domain = list_folder(source)
        files = [(Path(p), Path(label)) for p, label in zip(domain.items, domain.labels)]
    elif source.is_file():
        files = [(source, Path(source.name))]
    else:
        raise TranslateError(f"--input: no such file or folder: {source}")
    if not files:
        raise TranslateError(f"--input: no images ({', '.join(IMAGE_EXTENSIONS)}) in {source}")
    bar = keras.utils.Progbar(len(files), unit_name="image", verbose=1 if progress and len(files) > 1 else 0)
    written, skipped = [], []
    for i, (path, relative) in enumerate(files, 1):
        try:
            image, alpha = read_image(path, translator.in_channels, translator.background, max_pixels)
        except (tf.errors.OpError, TooLarge) as error:
            skipped.append(str(path))
            why = str(error) if isinstance(error, TooLarge) else "unreadable"
            log(f"warning: skipped {path}: {why}")
            bar.update(i)
            continue
        result = translator.translate_tiled(image, tile, overlap) if tile else translator.translate(image)
        target = Path(output) / relative
        write_image(target, result.numpy(), alpha)
        written.append(str(target))
        bar.update(i)
    return written, skipped
