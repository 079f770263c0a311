"""Where one training step spends its time: TensorFlow profiler totals per op type and layer.

    python benchmarks/profile_step.py [--size=128] [--blocks=6] [--top=20] [--serial] [--precision=float32]
    python benchmarks/profile_step.py --preset=emoji [--batch=4]     # the quickstart's networks at 64 px

Builds the paper's networks (as benchmarks/train_speed.py) or a preset's, warms the compiled step up,
profiles two steps and prints a table of self-time per (op type, layer kind), summed
over both generators/discriminators and every residual block. ``--serial`` runs one op
at a time (inter-op threads = 1), so times add up to the step and attribute cleanly;
without it concurrent ops overlap and the column sums to more than the wall clock.
"""

import argparse
import collections
import glob
import json
import os
import re
import tempfile
import time

from train_speed import warm_paper_step  # benchmarks/train_speed.py

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def layer_kind(op_name):
    """'gradient_tape/generator_ab_3/r4_conv1_1/convolution/...' -> 'generator r*_conv1'."""
    parts = [p for p in op_name.split("/") if p != "gradient_tape"]
    if len(parts) < 2:
        return "-"
    network = re.sub(r"_(ab|ba|a|b)(_\d+)?$", "", parts[0])
    layer = re.sub(r"^r\d+_", "r*_", re.sub(r"_\d+$", "", parts[1]))
    return f"{network} {layer}" if network in ("generator", "discriminator") else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--serial", action="store_true", help="one op at a time (clean attribution)")
    parser.add_argument("--preset", default="", help="a preset's networks and image size (e.g. emoji)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--precision", default="float32", help="a Keras policy, or auto")
    parser.add_argument("--by", choices=("layer", "op"), default="layer", help="group by op type and layer, or op type")
    args = parser.parse_args()

    import keras
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as profiler_plugin

    from tf_cyclegan.precision import choose_here

    if args.serial:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    precision = choose_here(args.precision).precision
    keras.mixed_precision.set_global_policy(precision)
    step, batch = warm_paper_step(args.size, args.blocks, preset=args.preset, batch_size=args.batch)
    steps = 2
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(steps):
            float(step(batch)["generator_total"])
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        planes = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        data, ok = profiler_plugin.xspace_to_tools_data(planes, "framework_op_stats")
    if not ok:
        raise SystemExit("the profiler produced no op statistics")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    totals = collections.Counter()
    for row in table["rows"]:
        values = dict(zip(columns, (cell.get("v") for cell in row["c"])))
        layer = layer_kind(values["operation"]) if args.by == "layer" else "*"
        totals[(values["type"], layer)] += values["total_self_time"] / steps / 1e3
    total = sum(totals.values())
    what = f"preset {args.preset}" if args.preset else f"{args.size} px, ResNet-{args.blocks}"
    print(
        f"\n{what}, batch {args.batch}, {precision}: {wall:.3f} s/step while profiled "
        f"({'serial' if args.serial else 'concurrent'} ops); op self-time {total / 1e3:.2f} s/step"
    )
    print("| op type | layer | ms/step | share |")
    print("|---|---|---|---|")
    for (op_type, layer), ms in totals.most_common(args.top):
        print(f"| {op_type} | {layer} | {ms:.0f} | {100 * ms / total:.1f}% |")


if __name__ == "__main__":
    main()
