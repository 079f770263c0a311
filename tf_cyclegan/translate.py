"""Translate images with a trained run (or an exported SavedModel), any size, optionally tiled.

``python -m tf_cyclegan.translate --run_dir=runs/NAME --direction=a2b --input=FILE_OR_DIR --output=DIR``
"""

import sys
from pathlib import Path

PROG = "python -m tf_cyclegan.translate"


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
    def from_run(cls, run_dir, direction="a2b", checkpoint=None):
        from tf_cyclegan.cli import read_run_config
        from tf_cyclegan.data.images import parse_background
        from tf_cyclegan.trainer import restore_generators, run_checkpoint

        config = read_run_config(run_dir)
        path = run_checkpoint(run_dir, checkpoint)
        if not path:
            raise TranslateError(f"--run_dir: {run_dir} has no checkpoint yet (train first)")
        generator_ab, generator_ba = restore_generators(config, path)
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
        kept, so there are no seams.
        """
        import tensorflow as tf
        import keras

        from tf_cyclegan.layers import InstanceNormalization, PadToMultiple

        if self.generator is None:
            raise TranslateError("--tile needs --run_dir (tiling fixes instance-norm statistics inside the network)")
        generator = self.generator
        stride = next((l.multiple for l in generator.layers if isinstance(l, PadToMultiple)), 1)
        tile = -(-tile // stride) * stride
        overlap = -(-overlap // stride) * stride
        norms = [l for l in generator.layers if isinstance(l, InstanceNormalization)]
        x = tf.convert_to_tensor(image, tf.float32)[None] * 2.0 - 1.0
        height, width = int(x.shape[1]), int(x.shape[2])
        padded = PadToMultiple(stride)(x)
        top, left = (padded.shape[1] - height) // 2, (padded.shape[2] - width) // 2

        for layer in norms:
            layer.fixed_moments = None
        if norms:
            scale = min(1.0, stats_size / max(height, width))
            small = x if scale == 1.0 else tf.image.resize(
                x, (max(1, round(height * scale)), max(1, round(width * scale))), antialias=True
            )
            probe = keras.Model(generator.inputs, [l.input for l in norms])

            @tf.function
            def collect(images):
                # Only the moments leave the graph, so the large feature maps are freed as it runs.
                features = probe(images, training=False)
                features = features if isinstance(features, (list, tuple)) else [features]
                return [tf.nn.moments(tf.cast(f, tf.float32), axes=[1, 2], keepdims=True) for f in features]

            moments = collect(small)
        try:
            for layer, layer_moments in zip(norms, moments if norms else []):
                layer.fixed_moments = layer_moments
            # A graph function frees each layer's buffers as soon as they are consumed (eager Keras keeps more);
            # it is made here so it captures this image's moments.
            run_tile = tf.function(lambda tile_input: generator(tile_input, training=False), reduce_retracing=True)
            rows = []
            full_h, full_w = int(padded.shape[1]), int(padded.shape[2])
            for y0 in range(0, full_h, tile):
                row = []
                for x0 in range(0, full_w, tile):
                    y1, x1 = min(y0 + tile, full_h), min(x0 + tile, full_w)
                    cy0, cx0 = max(0, y0 - overlap), max(0, x0 - overlap)
                    cy1, cx1 = min(full_h, y1 + overlap), min(full_w, x1 + overlap)
                    out = run_tile(padded[:, cy0:cy1, cx0:cx1])
                    row.append(out[:, y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0])
                rows.append(tf.concat(row, axis=2))
            result = tf.concat(rows, axis=1)[:, top : top + height, left : left + width]
        finally:
            for layer in norms:
                layer.fixed_moments = None
        return ((tf.clip_by_value(result, -1.0, 1.0) + 1.0) / 2.0)[0]


def read_image(path, channels, background):
    """(image in [0, 1] HxWxC composited on ``background``, alpha HxW uint8 or None)."""
    import tensorflow as tf
    from tf_cyclegan.data.images import composite, decode_rgba

    contents = tf.io.read_file(str(path))
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


def translate_paths(translator, inputs, output, tile=None, overlap=64, log=print, progress=True):
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
            image, alpha = read_image(path, translator.in_channels, translator.background)
        except tf.errors.OpError:
            skipped.append(str(path))
            log(f"warning: skipped unreadable {path}")
            bar.update(i)
            continue
        result = translator.translate_tiled(image, tile, overlap) if tile else translator.translate(image)
        target = Path(output) / relative
        write_image(target, result.numpy(), alpha)
        written.append(str(target))
        bar.update(i)
    return written, skipped


def main(argv=None):
    from tf_cyclegan import cli

    parser = cli.OneLineParser(prog=PROG, description="Translate images with a trained tf_cyclegan run.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run_dir", help="a training run directory (reads its config.yaml and latest checkpoint)")
    source.add_argument("--saved_model", help="an exported SavedModel directory (…/<name>_<direction>/<version>)")
    parser.add_argument("--direction", choices=("a2b", "b2a"), default="a2b")
    parser.add_argument("--checkpoint", help="a specific checkpoint prefix (default: the latest)")
    parser.add_argument("--input", required=True, help="an image file or a folder (searched recursively)")
    parser.add_argument("--output", required=True, help="output folder (file names and sub-folders are kept)")
    parser.add_argument("--tile", type=int, default=0, help="tile size in px for images too large for memory (0 = off)")
    parser.add_argument("--overlap", type=int, default=64, help="context in px around each tile")
    parser.add_argument("--background", default=None, help="composite colour for alpha (default: the run's)")
    args = parser.parse_args(argv)
    if args.tile < 0 or args.overlap < 0:
        cli.fail(PROG, "--tile and --overlap must be >= 0")

    from tf_cyclegan.config import ConfigError
    from tf_cyclegan.data.images import parse_background

    try:
        if args.run_dir:
            translator = Translator.from_run(args.run_dir, args.direction, args.checkpoint)
        else:
            translator = Translator.from_saved_model(args.saved_model)
        if args.background:
            translator.background = parse_background(args.background)
        written, skipped = translate_paths(translator, args.input, args.output, args.tile, args.overlap)
    except (TranslateError, ConfigError, ValueError) as error:
        cli.fail(PROG, str(error), code=1 if isinstance(error, TranslateError) else 2)
    print(f"translated {len(written)} image(s) into {args.output}" + (f"; skipped {len(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
