"""What an image file's bytes say before it is decoded, as TF graph functions.

The declared size (so a bomb is refused before decoding), whether the file is whole (a JPEG
cut short or emptied decodes "successfully" as gray), the JPEG's EXIF orientation, a PNG's
colour key (tRNS), and an animated GIF cut down to its first frame (TensorFlow's decoder
would decode every frame to return one). Everything is built from string ops, so it runs
the same in ``tf.data`` (training, data check), eagerly (translate) and inside an exported
SavedModel (``translate_bytes``).
"""

import tensorflow as tf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIGNATURES = (PNG_SIGNATURE, b"\xff\xd8\xff", b"GIF8", b"BM")  # PNG, JPEG, GIF, BMP; WebP below
_JPEG_SEGMENTS = 4096  # markers walked before the first scan (real files have a dozen)
_EXIF_ENTRIES = 64  # IFD0 entries searched for the orientation tag (phones write ~12)
_GIF_BLOCKS = 1 << 22  # blocks and sub-blocks walked to the end of the first frame (~1 GB of frame data)
# Huffman-coded JPEG needs at least one bit per 8x8 block of its full-resolution component.
_JPEG_PIXELS_PER_BYTE = 8 * 64
_ARITHMETIC_SOF = (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)  # arithmetic coding can go below that bound


def _bytes_at(contents, start, count):
    """``count`` bytes from ``start`` as int64, zero past the end (never an out-of-range error)."""
    start = tf.clip_by_value(tf.cast(start, tf.int32), 0, tf.strings.length(contents))
    part = tf.strings.substr(tf.strings.join([tf.strings.substr(contents, start, count), b"\0" * count]), 0, count)
    return tf.cast(tf.io.decode_raw(part, tf.uint8), tf.int64)


def _i64(value):
    return tf.constant(value, tf.int64)


def _little(b, start, count):
    """The little-endian unsigned integer in ``b[start : start + count]`` (int64 bytes); a tensor ``start`` too."""
    return tf.reduce_sum(b[start : start + count] * tf.constant([256**i for i in range(count)], tf.int64))


def _big(b, start, count):
    """The big-endian unsigned integer in ``b[start : start + count]``."""
    return tf.reduce_sum(
        b[start : start + count] * tf.constant([256 ** (count - 1 - i) for i in range(count)], tf.int64)
    )


# What ``kind`` returns.
UNKNOWN, PNG, JPEG, GIF, BMP, WEBP = range(6)


def _head_is(head, magic, at=0):
    """Scalar bool: the int64 header bytes ``head`` hold ``magic`` at ``at``."""
    return tf.reduce_all(tf.equal(head[at : at + len(magic)], tf.constant(list(magic), tf.int64)))


def is_png(contents):
    return _head_is(_bytes_at(contents, 0, 8), PNG_SIGNATURE)


def is_gif(contents):
    return _head_is(_bytes_at(contents, 0, 4), b"GIF8")


def kind(contents, head=None):
    """int32 scalar: PNG, JPEG, GIF, BMP, WEBP or UNKNOWN, from the file's first bytes (``head``: 12 or more)."""
    head = _bytes_at(contents, 0, 12) if head is None else head
    found = tf.stack(
        [
            _head_is(head, PNG_SIGNATURE),
            _head_is(head, b"\xff\xd8\xff"),
            _head_is(head, b"GIF8"),
            _head_is(head, b"BM"),
            _head_is(head, b"RIFF") & _head_is(head, b"WEBP", 8),
        ]
    )
    return tf.where(tf.reduce_any(found), tf.cast(tf.argmax(tf.cast(found, tf.int32)), tf.int32) + 1, UNKNOWN)


def is_known_image(contents):
    """Scalar bool: do the bytes start like a PNG, JPEG, GIF, BMP or WebP file?"""
    return tf.not_equal(kind(contents), UNKNOWN)


def _webp_size(b):
    """(height, width) from a WebP header's VP8X, VP8L or VP8 chunk."""
    chunk = b[15]  # the fourth letter of the first chunk's name: 'X', 'L' or ' '
    extended = tf.stack([_little(b, 27, 3) + 1, _little(b, 24, 3) + 1])
    lossless = tf.stack([(b[22] // 64 + b[23] * 4 + (b[24] % 16) * 1024) + 1, (b[21] + (b[22] % 64) * 256) + 1])
    lossy = tf.stack([_little(b, 28, 2) % 16384, _little(b, 26, 2) % 16384])
    return tf.where(tf.equal(chunk, ord("X")), extended, tf.where(tf.equal(chunk, ord("L")), lossless, lossy))


def _header_size(b, file_kind):
    """int64 [height, width] that a PNG, GIF, BMP or WebP header (``b``: its first 32 bytes) declares at its fixed
    offsets ([0, 0] otherwise)."""
    png = tf.stack([_big(b, 20, 4), _big(b, 16, 4)])
    gif = tf.stack([_little(b, 8, 2), _little(b, 6, 2)])
    bmp = tf.abs(tf.bitcast(tf.cast(tf.stack([_little(b, 22, 4), _little(b, 18, 4)]), tf.uint32), tf.int32))
    zero = tf.zeros([2], tf.int64)
    return tf.gather(tf.stack([zero, png, zero, gif, tf.cast(bmp, tf.int64), _webp_size(b)]), file_kind)


def declared_size(contents):
    """int64 [height, width] that an image's header declares, read without decoding it.

    PNG, GIF, BMP and WebP headers are read at their fixed offsets, JPEG's from its frame
    header; [0, 0] for bytes of no known format (decoding then fails).
    """
    return inspect(contents)["size"]


# JPEG: one walk over the marker segments before the first scan.


def _jpeg_walk(contents, active):
    """(offsets of the first scan (SOS) and of the frame header (SOFn), the frame marker (0xC0..0xCF), the offset of
    the EXIF TIFF header); -1 (marker 0) for what is not found. No step at all unless ``active``.

    Walks the marker segments from the start of the file, each by its length, so an EXIF
    thumbnail inside APP1 (a JPEG of its own) is stepped over, not mistaken for the image.
    """
    length = tf.cast(tf.strings.length(contents), tf.int64)
    no = _i64(-1)

    def keep_walking(position, sos, frame_at, frame, exif, steps):
        return active & (sos < 0) & (position + 4 <= length) & (steps < _JPEG_SEGMENTS)

    def step(position, sos, frame_at, frame, exif, steps):
        b = _bytes_at(contents, position, 10)
        marker, size = b[1], b[2] * 256 + b[3]
        bad = tf.not_equal(b[0], 0xFF)
        standalone = (marker == 0x01) | (marker == 0xFF) | ((marker >= 0xD0) & (marker <= 0xD8))
        is_frame = (marker >= 0xC0) & (marker <= 0xCF) & (marker != 0xC4) & (marker != 0xC8) & (marker != 0xCC)
        is_exif = (marker == 0xE1) & tf.reduce_all(tf.equal(b[4:10], tf.constant([69, 120, 105, 102, 0, 0], tf.int64)))
        sos = tf.where(marker == 0xDA, position, sos)
        first_frame = is_frame & (frame_at < 0)
        frame_at, frame = tf.where(first_frame, position, frame_at), tf.where(first_frame, marker, frame)
        exif = tf.where(is_exif & (exif < 0), position + 10, exif)
        advance = tf.where(marker == 0xFF, _i64(1), tf.where(standalone, _i64(2), 2 + size))
        position = tf.where(bad, length, position + advance)  # not a marker: stop (the decoder will say more)
        return position, sos, frame_at, frame, exif, steps + 1

    _, sos, frame_at, frame, exif, _ = tf.while_loop(keep_walking, step, (_i64(2), no, no, _i64(0), no, _i64(0)))
    return sos, frame_at, frame, exif


def _exif_orientation(contents, tiff):
    """The orientation tag (1-8) in the EXIF TIFF header at ``tiff`` (-1 = none): 1 when absent or invalid."""
    head = _bytes_at(contents, tiff, 8)
    little = tf.equal(head[0], ord("I"))

    def u32(b, at):
        return tf.where(little, _little(b, at, 4), _big(b, at, 4))

    ifd = tiff + u32(head, 4)
    count_bytes = _bytes_at(contents, ifd, 2)
    count = tf.where(little, count_bytes[0] + count_bytes[1] * 256, count_bytes[0] * 256 + count_bytes[1])
    entries = tf.reshape(_bytes_at(contents, ifd + 2, 12 * _EXIF_ENTRIES), [_EXIF_ENTRIES, 12])
    tags = tf.where(little, entries[:, 0] + entries[:, 1] * 256, entries[:, 0] * 256 + entries[:, 1])
    values = tf.where(little, entries[:, 8] + entries[:, 9] * 256, entries[:, 8] * 256 + entries[:, 9])
    found = tf.equal(tags, 0x0112) & (tf.range(_EXIF_ENTRIES, dtype=tf.int64) < count)
    value = tf.reduce_max(tf.where(found, values, _i64(0)))
    return tf.where((tiff >= 0) & (value >= 1) & (value <= 8), value, _i64(1))


def inspect(contents):
    """What the bytes say before decoding, as a dict of tensors: ``kind``, ``size`` (int64 [height, width]
    the header declares), ``problem`` (why they cannot be a whole image, '' when nothing is known to be wrong),
    ``orientation`` (EXIF, 1-8; 1 = as stored) and ``gif_end`` (where a GIF's first frame ends).

    Only what decoders let through is a problem here: a JPEG cut short (libjpeg fills the missing
    part with gray and succeeds) or whose header declares more pixels than its data can hold. Other
    formats' decoders fail on cut-short data themselves. Branch-free: the JPEG and GIF walks take no
    step for other formats (in ``tf.data`` a branch holding a loop costs a millisecond an image).
    """
    head = _bytes_at(contents, 0, 32)
    file_kind = kind(contents, head)
    jpeg = tf.equal(file_kind, JPEG)
    length = tf.cast(tf.strings.length(contents), tf.int64)
    sos, frame_at, frame, tiff = _jpeg_walk(contents, jpeg)
    sof = _bytes_at(contents, frame_at, 9)
    jpeg_size = tf.stack([sof[5] * 256 + sof[6], sof[7] * 256 + sof[8]])
    size = tf.where(jpeg, jpeg_size, _header_size(head, file_kind))
    scan_bytes = tf.where(jpeg, length - tf.maximum(sos, 0), 0)
    blocks = ((size[0] + 7) // 8) * ((size[1] + 7) // 8)
    arithmetic = tf.reduce_any(tf.equal(frame, tf.constant(_ARITHMETIC_SOF, tf.int64)))
    too_short = tf.logical_not(arithmetic) & (scan_bytes * 8 < blocks)
    rest = tf.strings.substr(contents, tf.cast(tf.maximum(sos, 0), tf.int32), tf.cast(scan_bytes, tf.int32))
    ends = tf.size(tf.strings.split(rest, sep=b"\xff\xd9", maxsplit=1)) > 1  # an end-of-image marker after the scan
    why = tf.where(
        sos < 0,
        "cut short (no image data)",
        tf.where(
            too_short,
            tf.strings.format("cut short ({} bytes cannot hold {} x {} pixels)", [length, size[1], size[0]]),
            tf.where(ends, "", "cut short (no end-of-image marker)"),
        ),
    )
    return {
        "kind": file_kind,
        "size": size,
        "problem": tf.where(jpeg, why, ""),
        "orientation": tf.where(jpeg, _exif_orientation(contents, tiff), _i64(1)),
        "gif_end": _gif_end(contents, tf.equal(file_kind, GIF)),
    }


def problem(contents):
    """Scalar string: why the bytes cannot be a whole image ('' when nothing is known to be wrong); see ``inspect``."""
    return inspect(contents)["problem"]


def upright(image, orientation_value):
    """An HxWxC image as EXIF ``orientation_value`` says to show it (1 = as stored).

    Each of the 8 orientations is a transpose or not, then a left-right and an up-down flip or not
    (6: transpose + left-right = 90 degrees clockwise; 8: transpose + up-down = counter-clockwise).
    """
    value = tf.clip_by_value(orientation_value, 1, 8)
    transposed = value >= 5
    left_right = tf.reduce_any(tf.equal(value, tf.constant([2, 3, 6, 7], tf.int64)))
    up_down = tf.reduce_any(tf.equal(value, tf.constant([3, 4, 7, 8], tf.int64)))
    image = tf.cond(transposed, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    image = tf.cond(left_right, lambda: tf.reverse(image, [1]), lambda: image)
    return tf.cond(up_down, lambda: tf.reverse(image, [0]), lambda: image)


# GIF: the first frame alone.


def _gif_end(contents, active):
    """The offset where a GIF's first image ends (its blocks walked, no step unless ``active``)."""
    length = tf.cast(tf.strings.length(contents), tf.int64)
    screen = _bytes_at(contents, 10, 1)[0]
    start = 13 + tf.where(screen >= 128, 3 * tf.bitwise.left_shift(_i64(2), screen % 8), _i64(0))

    # state 0: at a block; 1: in the sub-blocks of an extension; 2: in the image's sub-blocks; 3: done
    def going(position, state, steps):
        return active & (state < 3) & (position < length) & (steps < _GIF_BLOCKS)

    def step(position, state, steps):
        b = _bytes_at(contents, position, 10)
        image_table = tf.where(b[9] >= 128, 3 * tf.bitwise.left_shift(_i64(2), b[9] % 8), _i64(0))
        at_block = tf.equal(state, 0)
        extension, image = at_block & (b[0] == 0x21), at_block & (b[0] == 0x2C)
        in_blocks = state > 0
        end_of_blocks = in_blocks & (b[0] == 0)
        position = tf.where(
            extension,
            position + 2,
            tf.where(image, position + 11 + image_table, tf.where(in_blocks, position + 1 + b[0], length)),
        )
        state = tf.where(
            extension,
            _i64(1),
            tf.where(
                image,
                _i64(2),
                tf.where(end_of_blocks, tf.where(state == 2, _i64(3), _i64(0)), tf.where(in_blocks, state, _i64(3))),
            ),
        )
        return position, state, steps + 1

    end, _, _ = tf.while_loop(going, step, (start, _i64(0), _i64(0)))
    return tf.minimum(end, length)


def gif_first_frame(contents, end=None):
    """The GIF cut after its first image (``end``: ``inspect``'s ``gif_end``) and given a trailer, so decoding
    never touches the other frames."""
    end = _gif_end(contents, tf.constant(True)) if end is None else end
    return tf.strings.join([tf.strings.substr(contents, 0, tf.cast(end, tf.int32)), b";"])
