"""Decoding and preprocessing of single images, as TF graph functions.

Everything here runs inside ``tf.data``; randomness is stateless (seeded per
example), so a pipeline position fully determines its crops and flips.
"""

import functools

import tensorflow as tf

from tf_cyclegan.data import formats
from tf_cyclegan.errors import UsageError

BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128)}


def parse_background(text):
    """'white' / 'black' / 'gray' / 'R,G,B' (0-255) → RGB floats in [0, 1]."""
    if text in BACKGROUNDS:
        rgb = BACKGROUNDS[text]
    else:
        try:
            rgb = tuple(int(v) for v in text.split(","))
        except ValueError:
            rgb = ()
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise UsageError(f"--background: expected white, black, gray or R,G,B in 0-255, got {text!r}")
    return tuple(v / 255.0 for v in rgb)


def _to_rgba(image):
    """Any of 1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA) channels → RGBA (opaque = the dtype's maximum)."""
    channels = tf.shape(image)[-1]
    opaque = tf.ones_like(image[..., :1]) * (image.dtype.max if image.dtype.is_integer else 1)
    gray = image[..., :1]
    return tf.switch_case(
        tf.clip_by_value(channels, 1, 4) - 1,
        [
            lambda: tf.concat([gray, gray, gray, opaque], -1),
            lambda: tf.concat([gray, gray, gray, image[..., 1:2]], -1),
            lambda: tf.concat([image[..., :3], opaque], -1),
            lambda: image[..., :4],
        ],
    )


def refuse_unless_whole(contents, facts, max_pixels=0, limit_note=""):
    """``contents``, made to fail with InvalidArgument before any decoding when the header declares more than
    ``max_pixels`` pixels (0 = no limit; ``limit_note`` follows the number in the message) or the bytes are
    known to be cut short (``facts``: ``formats.inspect``)."""
    size, checks = facts["size"], []
    if max_pixels:  # first: the message that says what the header declares
        checks.append(
            tf.debugging.Assert(
                size[0] * size[1] <= max_pixels,
                [f"image of more than {max_pixels} pixels refused before decoding{limit_note}: height, width =", size],
            )
        )
    with tf.control_dependencies(checks):
        whole = tf.debugging.Assert(
            tf.equal(facts["problem"], ""), ["image refused before decoding:", facts["problem"]]
        )
    with tf.control_dependencies([whole]):
        return tf.identity(contents)


def is_sixteen_bit(contents):
    """Scalar bool: a 16-bit PNG (the one format whose precision uint8 would lose)."""
    head = formats._bytes_at(contents, 0, 25)
    return formats._head_is(head, formats.PNG_SIGNATURE) & tf.equal(head[24], 16)


def decode_pixels(contents, dtype=tf.uint8, facts=None):
    """Encoded PNG/JPEG/BMP/GIF/WebP bytes → HxWx4 RGBA of ``dtype`` (uint8; or uint16, which keeps a 16-bit PNG's
    precision and holds 8-bit values times 257), upright, without range checks (see ``refuse_unless_whole``).

    Gray is expanded; a PNG's colour key (tRNS) becomes alpha; opaque formats get full alpha; a
    JPEG's EXIF orientation is applied. Animations give their first frame (a GIF's other frames are
    never decoded). ``facts`` (``formats.inspect``) saves inspecting the bytes again.
    """
    facts = facts or formats.inspect(contents)

    def widened(rgb):  # uint8 RGB → dtype RGBA, opaque
        pixels = tf.cast(rgb, dtype) * (257 if dtype == tf.uint16 else 1)
        return tf.concat(
            [pixels, tf.fill(tf.concat([tf.shape(pixels)[:2], [1]], 0), tf.constant(dtype.max, dtype))], -1
        )

    def png():  # decode_png expands gray and palettes and honours a colour key (tRNS) when asked for 4 channels
        return tf.io.decode_png(contents, 4, dtype)

    def jpeg():
        return formats.upright(widened(tf.io.decode_jpeg(contents, channels=3)), facts["orientation"])

    def gif():
        return widened(tf.io.decode_gif(formats.gif_first_frame(contents, facts["gif_end"]))[0])

    def other():  # BMP, WebP (its first frame), or bytes the decoder will refuse
        rgba = _to_rgba(tf.io.decode_image(contents, channels=0, expand_animations=False))
        return tf.cast(rgba, dtype) * (257 if dtype == tf.uint16 else 1)

    branch = tf.gather(tf.constant([3, 0, 1, 2, 3, 3]), facts["kind"])  # UNKNOWN, PNG, JPEG, GIF, BMP, WEBP
    rgba = tf.switch_case(branch, [png, jpeg, gif, other])
    rgba.set_shape([None, None, 4])
    return rgba


def decode_rgba(contents, max_pixels=0, limit_note=""):
    """Encoded image bytes → float32 HxWx4 RGBA in [0, 1], upright (``decode_pixels``), 16-bit PNGs at 16 bits.

    Fails with InvalidArgument, before any decoding, for what ``refuse_unless_whole`` refuses.
    """
    facts = formats.inspect(contents)
    contents = refuse_unless_whole(contents, facts, max_pixels, limit_note)
    pixels = decode_pixels(contents, tf.uint16, facts)
    # 8-bit values are held times 257: divided back first, so they map to v / 255 exactly as an 8-bit decode would.
    rgba = tf.where(
        is_sixteen_bit(contents), tf.cast(pixels, tf.float32) / 65535.0, tf.cast(pixels // 257, tf.float32) / 255.0
    )
    rgba.set_shape([None, None, 4])
    return rgba


def composite(rgba, channels=3, background=(1.0, 1.0, 1.0)):
    """RGBA → RGB over ``background`` (or gray when ``channels == 1``)."""
    alpha = rgba[..., 3:]
    rgb = rgba[..., :3] * alpha + tf.constant(background, tf.float32) * (1.0 - alpha)
    if channels == 1:
        rgb = tf.image.rgb_to_grayscale(rgb)
    elif channels != 3:
        raise ValueError(f"decoding to {channels} channels is not supported (1 or 3)")
    rgb.set_shape([None, None, channels])
    return rgb


def decode(contents, channels=3, background=(1.0, 1.0, 1.0), max_pixels=0):
    """Encoded image bytes → float32 HxWxC in [0, 1], alpha composited over ``background``.

    One graph function per setting, traced once a process: the decoding graph is large (format
    checks, EXIF, first frames), and every ``tf.data`` pipeline would otherwise trace it anew.
    """
    return _decoder(channels, tuple(float(v) for v in background), int(max_pixels))(contents)


@functools.cache
def _decoder(channels, background, max_pixels):
    return tf.function(
        lambda contents: composite(decode_rgba(contents, max_pixels), channels, background),
        input_signature=[tf.TensorSpec([], tf.string)],
        autograph=False,
    )


def _resize(image, height, width):
    resized = tf.image.resize(image, tf.stack([height, width]), method="bicubic", antialias=True)
    return tf.clip_by_value(resized, 0.0, 1.0)


def _scale_width(image, target_width, min_size):
    """Resizes so the width is ``target_width`` (height keeps the aspect, ≥ ``min_size``)."""
    shape = tf.cast(tf.shape(image), tf.float32)
    height = tf.cast(tf.round(shape[0] * float(target_width) / shape[1]), tf.int32)
    return _resize(image, tf.maximum(height, min_size), target_width)


def _at_least(image, size):
    """Upscales (keeping the aspect) so both sides are at least ``size``."""
    shape = tf.shape(image)
    scale = tf.maximum(1.0, float(size) / tf.cast(tf.minimum(shape[0], shape[1]), tf.float32))
    new = tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale), tf.int32)
    return tf.cond(scale > 1.0, lambda: _resize(image, new[0], new[1]), lambda: image)


def _center_crop(image, size):
    shape = tf.shape(image)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return image[top : top + size, left : left + size]


def resize_for(image, preprocess, load_size, image_size):
    """The deterministic resize part of ``preprocess`` (what ``cache`` may keep)."""
    if preprocess == "resize_and_crop":
        return _resize(image, load_size, load_size)
    if preprocess in ("scale_width", "scale_width_and_crop"):
        return _scale_width(image, load_size, image_size if preprocess == "scale_width_and_crop" else 1)
    if preprocess == "crop":
        return _at_least(image, image_size)
    return image


def augment(image, preprocess, image_size, flip, seed):
    """Random crop and flip for training; ``seed`` is a stateless seed of shape [2]."""
    if preprocess in ("resize_and_crop", "crop", "scale_width_and_crop"):
        channels = image.shape[-1]
        image = tf.image.stateless_random_crop(image, [image_size, image_size, channels], seed=seed)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seed + [0, 1])
    return image


def finish_test(image, preprocess, image_size):
    """Deterministic test-time counterpart of :func:`augment`: centre crop, no flip."""
    if preprocess in ("resize_and_crop", "crop", "scale_width_and_crop"):
        image = _center_crop(image, image_size)
    return image


def to_model_range(image):
    """[0, 1] → [-1, 1], the generators' tanh range."""
    return image * 2.0 - 1.0


def to_unit_range(image):
    """[-1, 1] → [0, 1]."""
    return (tf.clip_by_value(image, -1.0, 1.0) + 1.0) / 2.0
