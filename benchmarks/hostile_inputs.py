"""Hostile inputs, one process each: what every command made of them and its peak resident memory; prints a table.

    python benchmarks/hostile_inputs.py [--run_dir=runs/fluent]

Without --run_dir a tiny quickstart-preset run (32 px, 4 channels, 8 steps) is trained first. Each hostile file
goes alone through `translate` and `data check`; the serving cases go through an exported SavedModel's signatures
via the REST emulation. Peak memory is the process's VmHWM.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from badfiles import BILLION_LAUGHS, bomb_png, declaring_jpeg, jpeg_bytes, keyed_png, many_frame_gif, rotated_jpeg  # noqa: E402

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
MEASURED = (
    "import runpy, sys\nsys.argv = sys.argv[1:]\ntry:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
    "finally:\n    peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "    print('MAXRSS_MB', int(peak) // 1024, flush=True)"
)
SERVE = """
import base64, json, sys
import tensorflow as tf
from tf_cyclegan.rest_emulation import predict_rest
loaded = tf.saved_model.load(sys.argv[1])
body = {"signature_name": "translate_bytes", "instances": [{"b64": base64.b64encode(open(sys.argv[2], "rb").read())
                                                             .decode()}]}
answer = predict_rest(loaded, body)
print("ANSWER", "translated" if "predictions" in answer else answer["error"][:150])
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print("MAXRSS_MB", int(peak) // 1024)
"""


def files():
    import numpy as np

    progressive = jpeg_bytes(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8), progressive=True)
    return {
        "663 B JPEG declaring 4000 x 4000": ("a.jpg", declaring_jpeg(4000, 4000)),
        "JPEG declaring 7000 x 7000": ("b.jpg", declaring_jpeg(7000, 7000)),
        "progressive JPEG cut at 70%": ("c.jpg", progressive[: len(progressive) * 7 // 10]),
        "phone photo, EXIF orientation 6": ("d.jpg", rotated_jpeg(np.zeros((40, 80, 3), np.uint8), 6)),
        "GIF, 300 frames of 2000 x 2000": ("e.gif", many_frame_gif(2000, 300)),
        "gray PNG with a tRNS key": ("f.png", keyed_png("L")),
        "RGB PNG with a tRNS key": ("g.png", keyed_png("RGB")),
        "valid 6000 x 6000 PNG in 35 KB": ("h.png", bomb_png(6000, 6000)),
    }


def measured(module, *args, cwd=None):
    result = subprocess.run(
        [sys.executable, "-c", MEASURED, module, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=1800
    )
    return result, int([line for line in result.stdout.splitlines() if line.startswith("MAXRSS_MB")][0].split()[1])


def outcome(result, needles):
    text = result.stdout + result.stderr
    for line in text.splitlines():
        if any(needle in line for needle in needles):
            return line.split(": ", 2)[-1][:90] if "skipped" in line or "error" in line else line[:90]
    return f"exit {result.returncode}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        run_dir = args.run_dir
        if not run_dir:
            run_dir = str(root / "run")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tf_cyclegan.train",
                    f"--run_dir={run_dir}",
                    "--steps=8",
                    "--image_size=32",
                    "--load_size=36",
                    "--ngf=4",
                    "--ndf=4",
                    "--max_dataset_size=4",
                ],
                env=ENV,
                capture_output=True,
                check=True,
            )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tf_cyclegan.export",
                f"--run_dir={run_dir}",
                f"--output={root / 'x'}",
                "--direction=a2b",
            ],
            env=ENV,
            capture_output=True,
            check=True,
        )
        saved_model = next((root / "x").glob("*_a2b/1"))
        (root / "serve.py").write_text(SERVE)
        record = json.loads((saved_model / "assets.extra" / "tf_cyclegan.json").read_text())
        print(f"run {run_dir}; serving limit {record['max_request_pixels']} pixels per request")
        print("| file | translate | peak MB | data check | peak MB | translate_bytes | peak MB |")
        print("|---|---|---|---|---|---|---|")
        for label, (name, contents) in files().items():
            case = root / name.split(".")[0]
            for split in ("in", "data/trainA", "data/trainB"):
                (case / split).mkdir(parents=True)
            (case / "in" / name).write_bytes(contents)
            (case / "data" / "trainA" / name).write_bytes(contents)
            (case / "data" / "trainB" / name).write_bytes(contents)
            translated, t_peak = measured(
                "tf_cyclegan.translate", f"--run_dir={run_dir}", f"--input={case / 'in'}", f"--output={case / 'out'}"
            )
            checked, c_peak = measured("tf_cyclegan.data", "check", str(case / "data"), "--image_size=32")
            served = subprocess.run(
                [sys.executable, str(root / "serve.py"), str(saved_model), str(case / "in" / name)],
                env=ENV,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            s_peak = int([line for line in served.stdout.splitlines() if line.startswith("MAXRSS_MB")][0].split()[1])
            answer = [line[7:] for line in served.stdout.splitlines() if line.startswith("ANSWER")][0]
            print(
                f"| {label} | {outcome(translated, ('skipped', 'error', 'translated', 'tiles'))} | {t_peak} | "
                f"{outcome(checked, ('unreadable ' + name, 'warning'))} | {c_peak} | {answer[:90]} | {s_peak} |"
            )
        (root / "bomb.yaml").write_text(BILLION_LAUGHS)
        result, peak = measured("tf_cyclegan.train", f"--config={root / 'bomb.yaml'}")
        print(f"| YAML bomb as --config ({len(BILLION_LAUGHS)} B) | {outcome(result, ('error',))} | {peak} | | | | |")


if __name__ == "__main__":
    main()
