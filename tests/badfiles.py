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
