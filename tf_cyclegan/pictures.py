"""Image files in and out for translation: decoded once, held small, written whole.

A ``Picture`` keeps a decoded image as RGBA integers (4 bytes a pixel, 8 for a 16-bit PNG) and
turns regions of it into floats only when they are translated. ``read_image`` refuses what should
not be decoded (too many pixels, cut short) before decoding it; ``write_image`` never leaves half a
file under the final name.
"""

import functools
import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_cyclegan import fs
from tf_cyclegan.data.formats import declared_size, problem
from tf_cyclegan.data.images import composite, decode_pixels, is_sixteen_bit


class Refused(Exception):
    """An image refused before decoding (too many pixels, cut short); the message says why."""


class Picture:
    """A decoded image held small: RGBA integers (uint8, or uint16 for a 16-bit PNG), composited over
    ``background`` (as ``channels``) one region at a time."""

    def __init__(self, rgba, channels, background):
        self.rgba, self.channels, self.background = rgba, channels, tuple(background)
        self.height, self.width = rgba.shape[:2]

    @classmethod
    def from_unit(cls, image, background=(1.0, 1.0, 1.0)):
        """A Picture of an HxWxC float image in [0, 1] (C = 1 or 3, opaque), exactly as given."""
        image = np.asarray(image, np.float32)
        channels = image.shape[-1]
        rgb = np.repeat(image, 3, axis=-1) if channels == 1 else image
        return cls(np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1), channels, background)

    def region(self, rows=None, cols=None):
        """Float32 HxWxC in [0, 1] of the pixels at ``rows`` x ``cols`` (index arrays; None = all)."""
        pixels = self.rgba if rows is None else self.rgba[np.ix_(rows, cols)]
        scale = 1.0 if pixels.dtype.kind == "f" else float(np.iinfo(pixels.dtype).max)
        rgba = tf.constant(pixels, tf.float32) / scale
        return composite(rgba, self.channels, self.background)

    def preview(self, size):
        """The whole picture, strided down to at most about 2 x ``size`` px (for whole-image statistics)."""
        step = max(1, max(self.height, self.width) // (2 * size))
        return Picture(self.rgba[::step, ::step], self.channels, self.background).region()

    def alpha(self):
        """Alpha as uint8 HxW, or None when the picture is opaque."""
        alpha = self.rgba[..., 3]
        full = 1.0 if alpha.dtype.kind == "f" else np.iinfo(alpha.dtype).max
        if (alpha >= full).all():
            return None
        if alpha.dtype.kind == "f":
            return np.round(alpha * 255.0).astype(np.uint8)
        return (alpha // 257).astype(np.uint8) if alpha.dtype == np.uint16 else alpha.copy()


def to_uint8(image):
    """[0, 1] floats → uint8 (rounded)."""
    return np.round(np.asarray(image, np.float32) * 255.0).astype(np.uint8)


@functools.cache
def _inspector():
    """A graph function: (declared [height, width], why the bytes cannot be a whole image or '', 16-bit PNG)."""
    return tf.function(
        lambda contents: (declared_size(contents), problem(contents), is_sixteen_bit(contents)),
        input_signature=[tf.TensorSpec([], tf.string)],
    )


@functools.cache
def _decoder(dtype):
    """A graph function: contents → HxWx4 RGBA of ``dtype``, upright (``decode_pixels``)."""
    return tf.function(lambda contents: decode_pixels(contents, dtype), input_signature=[tf.TensorSpec([], tf.string)])


def read_image(path, channels, background, max_pixels=0):
    """The image file at ``path`` as a Picture (RGBA integers, upright: EXIF applied, first frame of an animation).

    Raises Refused, before decoding anything, when the header declares more than ``max_pixels``
    or the file is known to be cut short; a file that does not decode raises tf.errors.OpError.
    """
    contents = tf.io.read_file(os.fsencode(path))  # file names in any encoding
    size, why, sixteen_bit = _inspector()(contents)
    height, width = (int(v) for v in size.numpy())
    if max_pixels and height * width > max_pixels:
        raise Refused(f"{width} x {height} pixels, above --max_pixels={max_pixels}")
    if why.numpy():
        raise Refused(why.numpy().decode())
    rgba = _decoder(tf.uint16 if bool(sixteen_bit) else tf.uint8)(contents)
    return Picture(rgba.numpy(), channels, background)


def encode_image(path, pixels, alpha=None):
    """uint8 HxWxC ``pixels`` (or floats in [0, 1]) as the bytes of the format ``path``'s suffix names;
    ``alpha`` (uint8 HxW) is attached when the format keeps it."""
    pixels = pixels if pixels.dtype == np.uint8 else to_uint8(pixels)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    suffix = fs.path(path).suffix.lower()
    if alpha is not None and suffix in (".png", ".webp", ".tif", ".tiff"):
        picture = picture.convert("RGBA" if picture.mode == "RGB" else "LA")
        picture.putalpha(Image.fromarray(alpha))
    encoded = io.BytesIO()
    picture.save(encoded, Image.registered_extensions().get(suffix, "PNG"))
    return encoded.getvalue()


def write_image(path, pixels, alpha=None):
    """Saves an image under ``path`` (a temporary name first: never half a file under the real one)."""
    fs.path(path).parent.mkdir(parents=True, exist_ok=True)
    fs.write_atomic(path, encode_image(path, np.asarray(pixels), alpha))
