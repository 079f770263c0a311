"""Decoding and preprocessing of single images, as TF graph functions.

Everything here runs inside ``tf.data``; randomness is stateless (seeded per
example), so a pipeline position fully determines its crops and flips.
"""

import tensorflow as tf

BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128)}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIGNATURES = (_PNG_SIGNATURE, b"\xff\xd8\xff", b"GIF8", b"BM")  # PNG, JPEG, GIF, BMP; WebP below


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
            raise ValueError(f"--background: expected white, black, gray or R,G,B in 0-255, got {text!r}")
    return tuple(v / 255.0 for v in rgb)


def _to_rgba(image):
    """Any of 1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA) channels → RGBA."""
    channels = tf.shape(image)[-1]
    opaque = tf.ones_like(image[..., :1])
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


def is_known_image(contents):
    """Scalar bool: do the bytes start like a PNG, JPEG, GIF, BMP or WebP file?"""
    head = tf.strings.join([tf.strings.substr(contents, 0, 12), b"\0" * 12])  # safe for short input
    starts = lambda magic, at=0: tf.equal(tf.strings.substr(head, at, len(magic)), magic)  # noqa: E731
    return tf.reduce_any([starts(magic) for magic in _SIGNATURES]) | (starts(b"RIFF") & starts(b"WEBP", 8))


def decode_rgba(contents):
    """Encoded PNG/JPEG/BMP/GIF/WebP bytes → float32 HxWx4 RGBA in [0, 1].

    16-bit PNGs keep their precision; gray is expanded; opaque formats get alpha 1.
    GIFs give their first frame.
    """
    is_png = tf.equal(tf.strings.substr(contents, 0, 8), _PNG_SIGNATURE)
    image = tf.cond(
        is_png,
        lambda: tf.cast(tf.io.decode_png(contents, channels=0, dtype=tf.uint16), tf.float32) / 65535.0,
        lambda: tf.cast(tf.io.decode_image(contents, channels=0, expand_animations=False), tf.float32) / 255.0,
    )
    rgba = _to_rgba(image)
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


def decode(contents, channels=3, background=(1.0, 1.0, 1.0)):
    """Encoded image bytes → float32 HxWxC in [0, 1], alpha composited over ``background``."""
    return composite(decode_rgba(contents), channels, background)


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
