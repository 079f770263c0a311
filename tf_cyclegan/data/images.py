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


def _header_bytes(contents, length=32):
    """The first ``length`` bytes as int64 (zero-padded for short input)."""
    head = tf.strings.substr(tf.strings.join([contents, b"\0" * length]), 0, length)
    return tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)


def _little(b, start, count):
    return sum(b[start + i] * (256**i) for i in range(count))


def _big(b, start, count):
    return sum(b[start + i] * (256 ** (count - 1 - i)) for i in range(count))


def _webp_size(b):
    """(height, width) from a WebP header's VP8X, VP8L or VP8 chunk."""
    kind = b[15]  # the fourth letter of the first chunk's name: 'X', 'L' or ' '
    extended = tf.stack([_little(b, 27, 3) + 1, _little(b, 24, 3) + 1])
    lossless = tf.stack([(b[22] // 64 + b[23] * 4 + (b[24] % 16) * 1024) + 1, (b[21] + (b[22] % 64) * 256) + 1])
    lossy = tf.stack([_little(b, 28, 2) % 16384, _little(b, 26, 2) % 16384])
    return tf.where(tf.equal(kind, ord("X")), extended, tf.where(tf.equal(kind, ord("L")), lossless, lossy))


def declared_size(contents):
    """int64 [height, width] that an image's header declares, read without decoding it.

    PNG, GIF, BMP and WebP headers are read at their fixed offsets, JPEG's by
    ``extract_jpeg_shape``; [0, 0] for bytes of no known format (decoding then fails).
    """
    b = _header_bytes(contents)
    starts = lambda magic, at=0: tf.equal(tf.strings.substr(  # noqa: E731
        tf.strings.join([contents, b"\0" * 16]), at, len(magic)), magic)
    png = tf.stack([_big(b, 20, 4), _big(b, 16, 4)])
    gif = tf.stack([_little(b, 8, 2), _little(b, 6, 2)])
    bmp = tf.abs(tf.bitcast(tf.cast(tf.stack([_little(b, 22, 4), _little(b, 18, 4)]), tf.uint32), tf.int32))
    cases = [
        (starts(_PNG_SIGNATURE), lambda: png),
        (starts(b"GIF8"), lambda: gif),
        (starts(b"BM"), lambda: tf.cast(bmp, tf.int64)),
        (starts(b"RIFF") & starts(b"WEBP", 8), lambda: _webp_size(b)),
        (starts(b"\xff\xd8\xff"), lambda: tf.cast(tf.io.extract_jpeg_shape(contents)[:2], tf.int64)),
    ]
    return tf.case(cases, default=lambda: tf.zeros([2], tf.int64), exclusive=False)


def pixels_within(contents, max_pixels):
    """Scalar bool: does the header declare at most ``max_pixels`` pixels (0 = no limit)?"""
    size = declared_size(contents)
    return tf.logical_or(max_pixels <= 0, size[0] * size[1] <= max_pixels)


def decode_rgba(contents, max_pixels=0):
    """Encoded PNG/JPEG/BMP/GIF/WebP bytes → float32 HxWx4 RGBA in [0, 1].

    16-bit PNGs keep their precision (8-bit ones decode to 8 bits); gray is expanded;
    opaque formats get alpha 1. GIFs give their first frame. With ``max_pixels`` an image
    whose header declares more pixels fails with InvalidArgument before any decoding.
    """
    if max_pixels:
        size = declared_size(contents)
        check = tf.debugging.Assert(size[0] * size[1] <= max_pixels, [
            f"image of more than {max_pixels} pixels refused before decoding: height, width =", size])
        with tf.control_dependencies([check]):
            contents = tf.identity(contents)
    is_png = tf.equal(tf.strings.substr(contents, 0, 8), _PNG_SIGNATURE)
    sixteen_bit = tf.equal(_header_bytes(contents)[24], 16)
    image = tf.cond(
        is_png & sixteen_bit,
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


def decode(contents, channels=3, background=(1.0, 1.0, 1.0), max_pixels=0):
    """Encoded image bytes → float32 HxWxC in [0, 1], alpha composited over ``background``."""
    return composite(decode_rgba(contents, max_pixels), channels, background)


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
