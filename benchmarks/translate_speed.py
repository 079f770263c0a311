"""Translation speed of one 256 px generator across runtimes; prints a table.

    python benchmarks/translate_speed.py [--size=256] [--images=20] [--generator=resnet_9blocks]

Builds a paper-sized generator (weights do not change speed), exports it as a
SavedModel and as TFLite fp32/fp16/int8, then times each runtime in its own
process (so peak RSS is that runtime's alone): Keras (tf.function), the SavedModel's
serving_default, and the TFLite interpreter (ai_edge_litert).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from memory import peak_rss_gib  # benchmarks/memory.py

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build(workdir, kind, size):
    import keras
    import tensorflow as tf

    from tf_cyclegan import build_generator
    from tf_cyclegan.exporter import convert_tflite, make_serving_archive

    keras.utils.set_random_seed(0)
    generator = build_generator(kind)
    generator.save(os.path.join(workdir, "generator.keras"))
    make_serving_archive(generator, 3, (1.0, 1.0, 1.0)).write_out(os.path.join(workdir, "saved_model"), verbose=False)
    calibration = [tf.random.uniform((size, size, 3), -1, 1).numpy() for _ in range(4)]
    for variant in ("fp32", "fp16", "int8"):
        with open(os.path.join(workdir, f"{variant}.tflite"), "wb") as f:
            f.write(convert_tflite(os.path.join(workdir, "saved_model"), variant, calibration))


def measure(workdir, runtime, size, images):
    import numpy as np

    x = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype("float32")
    if runtime == "keras":
        import keras
        import tensorflow as tf

        import tf_cyclegan.layers  # noqa: F401  (registers the custom layers for loading)

        generator = keras.models.load_model(os.path.join(workdir, "generator.keras"))
        run = tf.function(lambda batch: generator(batch, training=False))
        call = lambda: run(x).numpy()  # noqa: E731
    elif runtime == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(os.path.join(workdir, "saved_model"))
        serve = loaded.signatures["serving_default"]
        call = lambda: serve(images=tf.constant(x))["translated"].numpy()  # noqa: E731
    else:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=os.path.join(workdir, f"{runtime.split('_')[1]}.tflite"),
                                  num_threads=os.cpu_count())
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
    print(json.dumps({"runtime": runtime, "s_per_image": median, "images_per_s": 1 / median, "peak_rss_gib": peak}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--generator", default="resnet_9blocks")
    parser.add_argument("--_measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        measure(args._measure[0], args._measure[1], args.size, args.images)
        return
    with tempfile.TemporaryDirectory() as workdir:
        build(workdir, args.generator, args.size)
        rows = []
        for runtime in ("keras", "saved_model", "tflite_fp32", "tflite_fp16", "tflite_int8"):
            result = subprocess.run(
                [sys.executable, __file__, f"--size={args.size}", f"--images={args.images}", "--_measure", workdir,
                 runtime], capture_output=True, text=True,
            )
            if result.returncode:
                sys.exit(f"{runtime} failed:\n{result.stderr[-2000:]}")
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"\n{args.generator} at {args.size}x{args.size}, batch 1, {os.cpu_count()} CPU threads, median of "
          f"{args.images}")
    print("| runtime | s/image | images/s | peak RSS (GiB) |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['runtime']} | {row['s_per_image']:.3f} | {row['images_per_s']:.2f} | {row['peak_rss_gib']:.2f} |")


if __name__ == "__main__":
    main()
