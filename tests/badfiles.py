"""Real bad files, written the way they turn up: empty, cut short, mislabelled, exotic, hostile."""

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image


def png_bytes(pixels, mode=None, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "PNG", **options)
    return buffer.getvalue()


def bomb_png(width, height):
    """A grayscale PNG that declares ``width`` x ``height`` pixels in a few hundred KB (zeros compress well)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def write_corpus(folder):
    """Writes the bad (and odd but valid) files into ``folder``; returns {file name: 'bad' | 'valid'}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
    good = png_bytes(rgb)
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buffer, "JPEG")
    cmyk = buffer.getvalue()
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    frames = [Image.fromarray(np.full((30, 30, 3), value, np.uint8)) for value in (0, 128, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    files = {
        "empty.png": (b"", "bad"),
        "cut_short.png": (good[: len(good) // 3], "bad"),
        "not_an_image.jpg": (b"hello, I am text\n" * 20, "bad"),
        "bomb.png": (bomb_png(10_000, 10_000), "bad"),
        "really_a_jpeg.png": (jpeg, "valid"),
        "cmyk.jpg": (cmyk, "valid"),
        "sixteen_bit.png": (png_bytes(rng.integers(0, 65535, (20, 24), dtype=np.uint16)), "valid"),
        "animated.gif": (buffer.getvalue(), "valid"),
        "one_pixel.png": (png_bytes(rgb[:1, :1]), "valid"),
        "strip.png": (png_bytes(np.zeros((1, 100_000, 3), np.uint8)), "valid"),
    }
    for name, (contents, _) in files.items():
        (folder / name).write_bytes(contents)
    os.symlink("loop.png", folder / "loop.png")  # a symlink to itself
    os.symlink(".", folder / "cycle")  # a folder symlink back to its parent
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.png"), "wb") as handle:  # a Latin-1 (non-UTF-8) name
        handle.write(good)
    return {name: kind for name, (_, kind) in files.items()} | {"caf\udce9.png": "valid"}


def jpeg_bytes(pixels, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def declaring_jpeg(width, height):
    """A few hundred bytes of real JPEG whose frame header is patched to declare ``width`` x ``height``:
    libjpeg fills what the data lacks with gray and "succeeds" (with 'Corrupt JPEG data' on stderr)."""
    contents = bytearray(jpeg_bytes(np.full((16, 16, 3), 200, np.uint8), quality=50))
    frame = contents.find(b"\xff\xc0")
    contents[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(contents)


def rotated_jpeg(pixels, orientation):
    """A JPEG stored as ``pixels`` with an EXIF orientation tag (6: shown turned 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(pixels, quality=95, exif=exif.tobytes())


def many_frame_gif(side, frames):
    """An animated GIF of ``frames`` solid ``side`` x ``side`` frames in a few MB: one LZW-compressed frame's
    bytes repeated (each frame decodes to side * side * 4 bytes)."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side), 7, np.uint8), "L").save(buffer, "GIF")
    single = buffer.getvalue()
    start = single.index(b"\x2c", 13)  # the image descriptor (the one frame), after header and colour table
    frame = b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + single[start:-1]  # a graphic control extension (0.1 s) + frame
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    return single[:start] + loop + frame * frames + b";"


def keyed_png(mode):
    """A 2 x 2 gray or RGB PNG whose colour key (tRNS) makes two pixels transparent."""
    if mode == "L":
        return png_bytes(np.array([[0, 100], [200, 0]], np.uint8), "L", transparency=0)
    pixels = np.array([[[255, 0, 0], [0, 0, 255]], [[0, 255, 0], [255, 0, 0]]], np.uint8)
    return png_bytes(pixels, "RGB", transparency=(255, 0, 0))


BILLION_LAUGHS = "".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)]
)
