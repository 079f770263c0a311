"""Training-step speed per precision; prints a table.

    python benchmarks/train_speed.py [--steps=5] [--cases=128:6,256:9] [--precisions=float32,mixed_bfloat16]

Each (size, blocks, precision) case runs in its own process (so peak RSS is its own):
the paper's networks (ngf=ndf=64, PatchGAN, LSGAN, identity loss, pool 50), batch 1,
a compiled step timed after two warm-up steps. GFLOP/s uses the analytic work of one
step (338 GFLOP at 128 px / 6 blocks, 1879 at 256 px / 9 blocks); "% of peak" compares it
with the faster of a float32 and a bfloat16 2048x2048 matmul measured here.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from memory import peak_rss_gib  # benchmarks/memory.py

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
WORK_GFLOP = {(128, 6): 338.0, (256, 9): 1879.0}


def matmul_peak(dtype="bfloat16", n=2048, repeats=10):
    """GFLOP/s of an n x n matmul in ``dtype`` (the result is reduced in-graph: no copy out)."""
    import tensorflow as tf

    a = tf.cast(tf.random.uniform((n, n), dtype=tf.float32), dtype)
    matmul = tf.function(lambda x: tf.reduce_sum(tf.cast(tf.matmul(x, x), tf.float32)))
    matmul(a).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        matmul(a).numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def warm_paper_step(size, blocks, jit=False):
    """(compiled train step, batch) of the paper's networks at batch 1, after two warm-up steps."""
    import tensorflow as tf

    from tf_cyclegan.config import Config
    from tf_cyclegan.factory import build_model

    config = Config()
    config.data.image_size, config.model.n_blocks = size, blocks
    model = build_model(config)
    model.compile(jit_compile=jit)
    rng = tf.random.Generator.from_seed(0)
    batch = (rng.uniform((1, size, size, 3), -1, 1), rng.uniform((1, size, size, 3), -1, 1))
    step = tf.function(model.train_step)
    for _ in range(2):
        float(step(batch)["generator_total"])
    return step, batch


def measure(size, blocks, precision, steps, jit):
    import keras

    keras.mixed_precision.set_global_policy(precision)
    step, batch = warm_paper_step(size, blocks, jit)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        float(step(batch)["generator_total"])
        times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    peak = peak_rss_gib()
    print(json.dumps({"size": size, "blocks": blocks, "precision": precision, "jit": jit, "s_per_step": median,
                      "peak_rss_gib": peak}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cases", default="128:6,256:9")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--jit", action="store_true", help="also time XLA-compiled steps")
    parser.add_argument("--_measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        size, blocks, precision, jit = args._measure
        measure(int(size), int(blocks), precision, args.steps, jit == "1")
        return
    peaks = {dtype: matmul_peak(dtype) for dtype in ("float32", "bfloat16")}
    peak = max(peaks.values())
    rows = []
    for case in args.cases.split(","):
        size, blocks = (int(v) for v in case.split(":"))
        for precision in args.precisions.split(","):
            for jit in ((False, True) if args.jit else (False,)):
                result = subprocess.run([sys.executable, __file__, f"--steps={args.steps}", "--_measure", str(size),
                                         str(blocks), precision, "1" if jit else "0"], capture_output=True, text=True)
                if result.returncode:
                    sys.exit(f"{case} {precision} failed:\n{result.stderr[-2000:]}")
                rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"\nbatch 1, {os.cpu_count()} CPU threads, median of {args.steps} steps; matmul peak "
          + ", ".join(f"{dtype} {rate:.0f} GFLOP/s" for dtype, rate in peaks.items()))
    print("| size | blocks | precision | XLA | s/step | images/s | GFLOP/s | % of peak | peak RSS (GiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        work = WORK_GFLOP.get((row["size"], row["blocks"]))
        rate = work / row["s_per_step"] if work else float("nan")
        print(f"| {row['size']} | {row['blocks']} | {row['precision']} | {'on' if row['jit'] else 'off'} | "
              f"{row['s_per_step']:.2f} | {1 / row['s_per_step']:.2f} | {rate:.0f} | {100 * rate / peak:.0f}% | "
              f"{row['peak_rss_gib']:.2f} |")


if __name__ == "__main__":
    main()
