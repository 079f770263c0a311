"""A whole session on TensorFlow's in-memory file system, in one process: ``python tests/ram_session.py OUT.json``.

``ram://`` goes through the same ``tf.io.gfile`` layer as ``gs://`` but lives in one process,
so the commands' ``main()`` run here one after another, as a user would run them on a bucket:
the data folder is written to ``ram://`` (with TensorFlow's own gfile, not the package's), then
train, resume, evaluate, translate (a run and an export; images and an animated GIF), export
(SavedModel + TFLite) and export --web. OUT.json gets each command's exit code and output and
a listing of ``ram://`` (path: size); the test reads it. Run it with an empty working folder:
nothing may be written there.
"""

import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_cyclegan import evaluate, export, train, translate

PRESETS = Path(__file__).resolve().parent.parent / "configs"
EMOJI = Path(__file__).resolve().parent.parent / "tf_cyclegan" / "datasets" / "emoji"
DATA, RUN = "ram://bucket/data/emoji", "ram://bucket/runs/tiny"
# The paper preset (LSGAN, λ_cycle 10, identity 0.5, pool 50, ResNet + 70x70 PatchGAN), shrunk in size only.
TRAIN = [
    "--config=ram://bucket/configs/monet2photo.yaml",
    f"--dataset={DATA}",
    f"--run_dir={RUN}",
    "--name=tiny",
    "--image_size=32",
    "--load_size=36",
    "--ngf=4",
    "--ndf=4",
    "--n_blocks=2",
    "--log_every_steps=2",
    "--sample_every_steps=2",
    "--save_every_steps=2",
    "--eval_every=1",
    "--max_eval_images=4",
]


def write_dataset(count=6):
    """The first ``count`` images of each split of the bundled Noto/Twemoji sample, a file that is not an image,
    and an animated GIF in testA, copied into ``ram://`` with TensorFlow's gfile; and the paper preset."""
    tf.io.gfile.makedirs("ram://bucket/configs")
    tf.io.gfile.copy(str(PRESETS / "monet2photo.yaml"), "ram://bucket/configs/monet2photo.yaml")
    for split in ("trainA", "trainB", "testA", "testB"):
        tf.io.gfile.makedirs(f"{DATA}/{split}")
        for source in sorted((EMOJI / split).iterdir())[:count]:
            tf.io.gfile.GFile(f"{DATA}/{split}/{source.name}", "wb").write(source.read_bytes())
    tf.io.gfile.GFile(f"{DATA}/trainA/notes.txt", "wb").write(b"not an image")
    frames = [Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)) for i in range(4)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    tf.io.gfile.GFile(f"{DATA}/testA/moving.gif", "wb").write(gif.getvalue())


def run(command, argv):
    """(exit code, stdout) of ``command.main(argv)`` in this process."""
    start = time.monotonic()
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # a real text stream: the CLIs reconfigure stdout
    with contextlib.redirect_stdout(out):
        try:
            code = command.main(argv)
        except SystemExit as error:
            code = error.code
    out.flush()
    seconds = round(time.monotonic() - start, 1)
    return {"argv": argv, "code": code or 0, "stdout": out.buffer.getvalue().decode("utf-8"), "seconds": seconds}


def listing():
    found = {}
    for folder, _, files in tf.io.gfile.walk("ram://bucket"):
        for name in files:
            found[f"{folder}/{name}"] = tf.io.gfile.stat(f"{folder}/{name}").length
    return found


def main(out):
    write_dataset()
    steps = {}
    steps["train"] = run(train, [*TRAIN, "--steps=4"])
    steps["resume"] = run(train, [f"--run_dir={RUN}", "--steps=6"])
    steps["evaluate"] = run(evaluate, [f"--run_dir={RUN}", f"--checkpoint={RUN}/checkpoints/ckpt-4"])
    steps["translate"] = run(
        translate, [f"--run_dir={RUN}", f"--input={DATA}/testA", "--output=ram://bucket/translated"]
    )
    steps["export"] = run(export, [f"--run_dir={RUN}", "--output=ram://bucket/export", "--tflite=fp32"])
    steps["export_again"] = run(export, [f"--run_dir={RUN}", "--output=ram://bucket/export", "--direction=a2b"])
    steps["translate_export"] = run(
        translate,
        ["--saved_model=ram://bucket/export/tiny_a2b/2", f"--input={DATA}/testA", "--output=ram://bucket/served"],
    )
    steps["web"] = run(export, [f"--run_dir={RUN}", "--output=ram://bucket/export", "--web"])
    config = tf.io.gfile.GFile(f"{RUN}/config.yaml").read()
    Path(out).write_text(json.dumps({"steps": steps, "files": listing(), "config": config}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
