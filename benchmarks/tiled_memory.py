"""Peak memory and time of tiled translation of a large image; prints a table.

    python benchmarks/tiled_memory.py [--size=4096] [--tile=512] [--overlap=64] [--generator=resnet_9blocks]

A paper-sized generator (random weights: memory and time do not depend on them)
translates one smooth random image of --size x --size with Translator.translate_tiled.
"""

import argparse
import os
import time

from memory import peak_rss_gib  # benchmarks/memory.py

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--generator", default="resnet_9blocks")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from tf_cyclegan import build_generator
    from tf_cyclegan.translator import Translator

    generator = build_generator(args.generator)
    translator = Translator(generator)
    low = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype("float32")
    image = tf.image.resize(low, (args.size, args.size), method="bicubic")[0].numpy().clip(0, 1)
    before = peak_rss_gib()
    start = time.perf_counter()
    result = translator.translate_tiled(image, tile=args.tile, overlap=args.overlap).numpy()
    seconds = time.perf_counter() - start
    peak = peak_rss_gib()
    assert result.shape == image.shape
    print(f"\n{args.generator}, {args.size}x{args.size} image, tile {args.tile}, overlap {args.overlap}")
    print("| seconds | peak RSS (GiB) | peak RSS before translating (GiB) |\n|---|---|---|")
    print(f"| {seconds:.0f} | {peak:.2f} | {before:.2f} |")


if __name__ == "__main__":
    main()
