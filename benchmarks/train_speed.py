"""Training-step speed per precision; prints a table.

    python benchmarks/train_speed.py [--steps=5] [--cases=128:6,256:9] [--precisions=float32,mixed_bfloat16]
    python benchmarks/train_speed.py --against_torch [--precisions=auto,float32,mixed_bfloat16] [--repeats=2]

Each (size, blocks, precision) case runs in its own process (so peak RSS is its own):
the paper's networks (ngf=ndf=64, PatchGAN, LSGAN, identity loss, pool 50), batch 1,
a compiled step timed after two warm-up steps. GFLOP/s uses the analytic work of one
step (338 GFLOP at 128 px / 6 blocks, 1879 at 256 px / 9 blocks); "% of peak" compares it
with the faster of a float32 and a bfloat16 2048x2048 matmul measured here.

``--against_torch`` times a PyTorch step of the same networks and losses (benchmarks/torch_cyclegan.py) beside
ours, each in its own process, interleaved, and prints the ratio: absolute times differ between machines, the
ratio measured in one run is the figure of merit. ``auto`` is compared with PyTorch's default, float32.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from cpu import describe_cpu  # benchmarks/cpu.py
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


def warm_paper_step(size, blocks, jit=False, preset=None, batch_size=1):
    """(compiled train step, batch) of the paper's networks (or a preset's, at its own image size) after two
    warm-up steps."""
    import tensorflow as tf

    from tf_cyclegan.config import Config, load_yaml, preset_path
    from tf_cyclegan.factory import build_model

    config = load_yaml(preset_path(preset)) if preset else Config()
    if not preset:
        config.data.image_size, config.model.n_blocks = size, blocks
    size = config.data.image_size
    model = build_model(config)
    model.compile(jit_compile=jit)
    rng = tf.random.Generator.from_seed(0)
    shape = (batch_size, size, size, 3)
    batch = (rng.uniform(shape, -1, 1), rng.uniform(shape, -1, 1))
    step = tf.function(model.train_step)
    for _ in range(2):
        float(step(batch)["generator_total"])
    return step, batch


def median_time(call, steps):
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure(size, blocks, precision, steps, jit):
    import keras

    from tf_cyclegan.precision import choose_here

    precision = choose_here(precision).precision
    keras.mixed_precision.set_global_policy(precision)
    step, batch = warm_paper_step(size, blocks, jit)
    median = median_time(lambda: float(step(batch)["generator_total"]), steps)
    return {"precision": precision, "s_per_step": median, "peak_rss_gib": peak_rss_gib()}


def measure_torch(size, blocks, precision, steps):
    """The same step in PyTorch (benchmarks/torch_cyclegan.py): bf16 autocast for mixed_bfloat16, else float32."""
    import torch
    from torch_cyclegan import CycleGANStep

    bf16 = precision == "mixed_bfloat16"
    step = CycleGANStep(blocks, bf16=bf16)
    generator = torch.Generator().manual_seed(0)
    real_a, real_b = (torch.rand(1, 3, size, size, generator=generator) * 2 - 1 for _ in range(2))
    for _ in range(2):
        step(real_a, real_b)
    median = median_time(lambda: step(real_a, real_b), steps)
    return {"precision": "bf16 autocast" if bf16 else "float32", "s_per_step": median, "peak_rss_gib": peak_rss_gib()}


def run_case(framework, size, blocks, precision, steps, jit=False):
    """One measurement in a fresh process (so its peak RSS is its own)."""
    command = [
        sys.executable,
        __file__,
        f"--steps={steps}",
        "--_measure",
        framework,
        str(size),
        str(blocks),
        precision,
        "1" if jit else "0",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{framework} {size}:{blocks} {precision} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def torch_precision(ours):
    """The PyTorch counterpart of one of our precisions: auto is compared with PyTorch's default, float32."""
    return "mixed_bfloat16" if ours == "mixed_bfloat16" else "float32"


def against_torch(args):
    """Ours and PyTorch's step per (case, precision), one process each, interleaved over ``repeats``."""
    cases = [tuple(int(v) for v in case.split(":")) for case in args.cases.split(",")]
    results = {}
    for _ in range(args.repeats):
        for size, blocks in cases:
            for precision in args.precisions.split(","):
                for framework in ("tf", "torch"):
                    asked = precision if framework == "tf" else torch_precision(precision)
                    results.setdefault((size, blocks, precision, framework), []).append(
                        run_case(framework, size, blocks, asked, args.steps)
                    )
    print(f"\n{describe_cpu()}")
    print(
        f"batch 1, median of {args.steps} steps per process, {args.repeats} interleaved process(es) per cell; "
        "ratio = PyTorch s/step / ours (> 1: ours is faster)"
    )
    print(
        "| size | blocks | ours | PyTorch | ours s/step | PyTorch s/step | ours images/s | ratio | peak RSS ours / "
        "PyTorch (GiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (size, blocks, precision, framework), rows in results.items():
        if framework != "tf":
            continue
        ours, theirs = rows, results[(size, blocks, precision, "torch")]
        mine, other = (sorted(r["s_per_step"] for r in x)[len(x) // 2] for x in (ours, theirs))
        label = f"{precision} → {ours[0]['precision']}" if precision == "auto" else precision
        print(
            f"| {size} | {blocks} | {label} | {theirs[0]['precision']} | {mine:.3f} | {other:.3f} | {1 / mine:.2f} | "
            f"{other / mine:.2f} | {max(r['peak_rss_gib'] for r in ours):.2f} / "
            f"{max(r['peak_rss_gib'] for r in theirs):.2f} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cases", default="128:6,256:9")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16", help="Keras policies, or auto")
    parser.add_argument("--jit", action="store_true", help="also time XLA-compiled steps")
    parser.add_argument(
        "--against_torch",
        action="store_true",
        help="time a PyTorch step of the same networks beside ours (pip install torch==2.13.0)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="with --against_torch: processes per cell")
    parser.add_argument("--_measure", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        framework, size, blocks, precision, jit = args._measure
        if framework == "torch":
            row = measure_torch(int(size), int(blocks), precision, args.steps)
        else:
            row = measure(int(size), int(blocks), precision, args.steps, jit == "1")
        print(json.dumps(row))
        return
    if args.against_torch:
        against_torch(args)
        return
    peaks = {dtype: matmul_peak(dtype) for dtype in ("float32", "bfloat16")}
    peak = max(peaks.values())
    print(
        f"\n{describe_cpu()}\nbatch 1, median of {args.steps} steps; matmul peak "
        + ", ".join(f"{dtype} {rate:.0f} GFLOP/s" for dtype, rate in peaks.items())
    )
    print("| size | blocks | precision | XLA | s/step | images/s | GFLOP/s | % of peak | peak RSS (GiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        size, blocks = (int(v) for v in case.split(":"))
        for precision in args.precisions.split(","):
            for jit in (False, True) if args.jit else (False,):
                row = run_case("tf", size, blocks, precision, args.steps, jit)
                rate = WORK_GFLOP[(size, blocks)] / row["s_per_step"] if (size, blocks) in WORK_GFLOP else float("nan")
                print(
                    f"| {size} | {blocks} | {row['precision']} | {'on' if jit else 'off'} | {row['s_per_step']:.2f} | "
                    f"{1 / row['s_per_step']:.2f} | {rate:.0f} | {100 * rate / peak:.0f}% | {row['peak_rss_gib']:.2f} |"
                )


if __name__ == "__main__":
    main()
