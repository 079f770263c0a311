"""Translation speed of one 256 px generator across runtimes; prints a table.

    python benchmarks/translate_speed.py [--size=256] [--images=20] [--generator=resnet_9blocks]
    python benchmarks/translate_speed.py --against_torch [--repeats=2]   # beside a PyTorch generator

Builds a paper-sized generator (weights do not change speed), exports it as a
SavedModel, as ONNX (export --onnx's conversion) and as TFLite fp32/fp16/int8, then times
each runtime in its own process (so peak RSS is that runtime's alone): Keras (tf.function),
the SavedModel's serving_default, ONNX Runtime (CPU) and the TFLite interpreter (ai_edge_litert).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from cpu import describe_cpu  # benchmarks/cpu.py
from memory import peak_rss_gib  # benchmarks/memory.py

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
RUNTIMES = ("keras", "saved_model", "onnx", "tflite_fp32", "tflite_fp16", "tflite_int8")
KIND = ["resnet_9blocks"]  # the generator, set from --generator in every process


def build(workdir, kind, size):
    import keras
    import tensorflow as tf

    from tf_cyclegan import build_generator
    from tf_cyclegan.exporter import convert_tflite, make_serving_archive

    keras.utils.set_random_seed(0)
    generator = build_generator(kind)
    generator.save_weights(os.path.join(workdir, "generator.weights.h5"))
    make_serving_archive(generator, 3, (1.0, 1.0, 1.0)).write_out(os.path.join(workdir, "saved_model"), verbose=False)
    calibration = [tf.random.uniform((size, size, 3), -1, 1).numpy() for _ in range(4)]
    for variant in ("fp32", "fp16", "int8"):
        with open(os.path.join(workdir, f"{variant}.tflite"), "wb") as f:
            f.write(convert_tflite(os.path.join(workdir, "saved_model"), variant, calibration))
    try:
        from tf_cyclegan.onnx_export import OnnxError, convert_onnx

        with open(os.path.join(workdir, "generator.onnx"), "wb") as f:
            f.write(convert_onnx(generator, 3))
    except OnnxError as error:  # the ONNX extra is not installed: its row says so
        print(f"note: {error}", file=sys.stderr)


def keras_call(workdir, runtime, x):
    """``keras`` (float32) or ``keras_<precision>``: the generator built under that policy, its weights loaded."""
    import keras
    import tensorflow as tf

    from tf_cyclegan import build_generator
    from tf_cyclegan.precision import choose_here

    precision = choose_here(runtime.partition("_")[2] or "float32").precision
    keras.mixed_precision.set_global_policy(precision)
    generator = build_generator(KIND[0])
    generator.load_weights(os.path.join(workdir, "generator.weights.h5"))
    run = tf.function(lambda batch: generator(batch, training=False))
    return lambda: run(x).numpy()


def torch_call(runtime, x):
    """``torch_float32`` or ``torch_bf16``: the same ResNet generator (benchmarks/torch_cyclegan.py), inference mode."""
    import torch
    from torch_cyclegan import resnet_generator

    blocks = int(KIND[0].removeprefix("resnet_").removesuffix("blocks"))
    generator = resnet_generator(blocks).eval()
    batch = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

    def call():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=runtime == "torch_bf16"):
            return generator(batch).float().numpy()

    return call


def measure(workdir, runtime, size, images):
    import numpy as np

    x = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype("float32")
    if runtime.startswith("keras"):
        call = keras_call(workdir, runtime, x)
    elif runtime.startswith("torch"):
        call = torch_call(runtime, x)
    elif runtime == "onnx":
        from tf_cyclegan.onnx_export import session

        runner = session(os.path.join(workdir, "generator.onnx"))
        call = lambda: runner.run(None, {"images": x})[0]  # noqa: E731
    elif runtime == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(os.path.join(workdir, "saved_model"))
        serve = loaded.signatures["serving_default"]
        call = lambda: serve(images=tf.constant(x))["translated"].numpy()  # noqa: E731
    else:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(
            model_path=os.path.join(workdir, f"{runtime.split('_')[1]}.tflite"), num_threads=os.cpu_count()
        )
        runner = interpreter.get_signature_runner("serving_default")
        call = lambda: runner(images=x)  # noqa: E731
    call()
    call()
    times = []
    for _ in range(images):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    peak = peak_rss_gib()
    if runtime.startswith("keras_"):
        from tf_cyclegan.precision import choose_here

        runtime = f"keras ({choose_here(runtime.partition('_')[2]).precision})"
    print(json.dumps({"runtime": runtime, "s_per_image": median, "images_per_s": 1 / median, "peak_rss_gib": peak}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--generator", default="resnet_9blocks")
    parser.add_argument(
        "--runtimes",
        default=",".join(RUNTIMES),
        help="keras[_auto|_mixed_bfloat16], saved_model, onnx, tflite_fp32|fp16|int8, torch_float32|bf16",
    )
    parser.add_argument(
        "--against_torch",
        action="store_true",
        help="ours (auto and float32) beside PyTorch float32 and bf16 (pip install torch==2.13.0)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="interleaved processes per runtime")
    parser.add_argument("--_measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    KIND[0] = args.generator
    if args.against_torch:
        args.runtimes = "keras,keras_auto,keras_mixed_bfloat16,torch_float32,torch_bf16"
    if args._measure:
        measure(args._measure[0], args._measure[1], args.size, args.images)
        return
    with tempfile.TemporaryDirectory() as workdir:
        build(workdir, args.generator, args.size)
        runs = {}
        for _ in range(args.repeats):
            for runtime in args.runtimes.split(","):
                result = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        f"--size={args.size}",
                        f"--images={args.images}",
                        f"--generator={args.generator}",
                        "--_measure",
                        workdir,
                        runtime,
                    ],
                    capture_output=True,
                    text=True,
                )
                if result.returncode:
                    sys.exit(f"{runtime} failed:\n{result.stderr[-2000:]}")
                runs.setdefault(runtime, []).append(json.loads(result.stdout.strip().splitlines()[-1]))
    print_table(args, runs)


def print_table(args, runs):
    medians = {runtime: sorted(r["s_per_image"] for r in rows)[len(rows) // 2] for runtime, rows in runs.items()}
    torch_best = min((t for name, t in medians.items() if name.startswith("torch")), default=None)
    if torch_best:
        reference, against = torch_best, "the faster PyTorch runtime's"
    else:
        reference, against = medians.get("keras"), "Keras'"
    print(
        f"\n{describe_cpu()}\n{args.generator} at {args.size}x{args.size}, batch 1, median of {args.images} "
        f"images per process, {args.repeats} process(es) per runtime"
        + (f"; speed = {against} s/image / this one's" if reference else "")
    )
    print("| runtime | s/image | images/s | peak RSS (GiB) |" + (" speed |" if reference else ""))
    print("|---|---|---|---|" + ("---|" if reference else ""))
    for runtime, rows in runs.items():
        median = medians[runtime]
        ratio = f" {reference / median:.2f} |" if reference else ""
        print(
            f"| {rows[0]['runtime']} | {median:.3f} | {1 / median:.2f} | "
            f"{max(r['peak_rss_gib'] for r in rows):.2f} |{ratio}"
        )


if __name__ == "__main__":
    main()
