"""The quickstart step's fixed cost: ms/step at batch 1 and batch 4, measured in the real training loop.

    python benchmarks/step_overhead.py [--steps=120] [--batches=1,4] [--precisions=float32] [--repeats=1]

Each case is ``python -m tf_cyclegan.train`` with the quickstart preset (64 px, unet_64, ngf/ndf 32, identity
loss, pool 50) in its own process, cases interleaved when repeated. ms/step comes from the loop's own
``images_per_second`` TensorBoard scalar over the log windows after the first (which holds the tracing), so it
counts everything a user's step costs: the step, the loop between steps, logging. With t1 and t4 the ms/step at
batch 1 and 4, the per-image work is (t4 - t1) / 3 and the fixed share of a batch-1 step (t1 - work) / t1.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import describe_cpu  # noqa: E402  (benchmarks/cpu.py)

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def ms_per_step(run_dir, batch):
    """Median ms/step over the log windows after the first, from the run's TensorBoard events."""
    import tensorflow as tf

    rates = []
    for path in sorted((Path(run_dir) / "logs" / "train").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "images_per_second":
                    rates.append((event.step, float(tf.make_ndarray(value.tensor))))
    later = sorted(rate for _, rate in sorted(rates)[1:])
    return 1000.0 * batch / later[len(later) // 2]


def measure(batch, precision, steps, folder):
    run_dir = Path(folder) / f"b{batch}_{precision}"
    log_every = max(steps // 6, 1)
    command = [
        sys.executable,
        "-m",
        "tf_cyclegan.train",
        f"--run_dir={run_dir}",
        f"--steps={steps}",
        f"--batch_size={batch}",
        f"--precision={precision}",
        f"--log_every_steps={log_every}",
        f"--save_every_steps={steps}",
        f"--sample_every_steps={steps}",
    ]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"batch {batch} {precision} failed:\n{result.stderr[-2000:]}")
    return ms_per_step(run_dir, batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--precisions", default="float32")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repetitions of every case")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    times = {}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for precision in args.precisions.split(","):
                for batch in batches:
                    times.setdefault((precision, batch), []).append(
                        measure(batch, precision, args.steps, Path(folder) / str(repeat))
                    )
    print(f"\n{describe_cpu()}")
    print(
        f"quickstart preset, {args.steps} steps per case, median over log windows after the first; "
        f"{args.repeats} interleaved repeat(s)"
    )
    print("| precision | batch | ms/step | ms/image | fixed share of a batch-1 step |")
    print("|---|---|---|---|---|")
    for precision in args.precisions.split(","):
        t = {batch: sorted(times[(precision, batch)])[len(times[(precision, batch)]) // 2] for batch in batches}
        fixed = ""
        if 1 in t and 4 in t:
            work = (t[4] - t[1]) / 3
            fixed = f"{(t[1] - work) / t[1]:.2f} ({t[1] - work:.0f} ms fixed, {work:.0f} ms per image)"
        for batch in batches:
            print(
                f"| {precision} | {batch} | {t[batch]:.0f} | {t[batch] / batch:.0f} | {fixed if batch == 1 else ''} |"
            )


if __name__ == "__main__":
    main()
