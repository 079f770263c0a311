"""Fault soak: one run killed (SIGKILL) at random moments, its newest checkpoint sometimes damaged, resumed each time;
then translate and export stopped by SIGTERM at random moments.

    python benchmarks/fault_soak.py [--kills=6] [--steps=300] [--seed=0] [--signals=6]

Trains a small quickstart-preset run (32 px, 4 channels, deterministic ops) once without faults and once with them,
then compares every saved value. Prints a table: faults injected, resumes, steps redone (the steps of damaged
checkpoints), checkpoints lost (resumes that did not start from the newest good checkpoint; goal 0), and whether the
final weights equal the uninterrupted run's. Then ``--signals`` SIGTERMs each to a translate of 40 images and to an
export of the run, and a table of what they left: files under their final names that do not decode, temporary files,
exit codes, and SavedModel versions that do not load or staging folders left after the next export (goals 0).
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def command(run_dir, steps):
    """The quickstart preset at 32 px and 4 channels (pool 50, identity loss), deterministic ops."""
    return [
        sys.executable,
        "-m",
        "tf_cyclegan.train",
        f"--run_dir={run_dir}",
        f"--steps={steps}",
        "--image_size=32",
        "--load_size=36",
        "--ngf=4",
        "--ndf=4",
        "--save_every_steps=5",
        "--sample_every_steps=1000",
        "--deterministic=true",
        "--seed=3",
        "--keep_checkpoints=3",
    ]


def checkpoints(run_dir):
    folder = Path(run_dir) / "checkpoints"
    return sorted(int(p.name[5:-6]) for p in folder.glob("ckpt-*.index")) if folder.is_dir() else []


def damage_newest(run_dir):
    steps = checkpoints(run_dir)
    if not steps:
        return None
    data = next((Path(run_dir) / "checkpoints").glob(f"ckpt-{steps[-1]}.data-*"))
    data.write_bytes(os.urandom(1000))
    return steps[-1]


def soak(run_dir, steps, kills, rng):
    """Kills one run ``kills`` times at random moments (damaging the newest checkpoint every other time)."""
    stats = {"faults": 0, "recovered": 0, "redone": 0, "lost": 0}
    expected_resume = None
    for round_number in range(kills + 1):
        log = open(Path(run_dir).parent / f"round{round_number}.log", "w")
        process = subprocess.Popen(command(run_dir, steps), env=ENV, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + (rng.uniform(18, 45) if round_number < kills else 3600)
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        log.close()
        text = (Path(run_dir).parent / f"round{round_number}.log").read_text()
        resumed = [
            int(line.split(" at step ")[1].split("/")[0])
            for line in text.splitlines()
            if line.startswith("resuming from")
        ]
        if expected_resume is not None and resumed:
            stats["recovered"] += 1
            stats["lost"] += resumed[0] < expected_resume  # a good checkpoint was not the one resumed from
        if process.poll() is not None:
            return stats, process.returncode
        process.send_signal(signal.SIGKILL)
        process.wait()
        stats["faults"] += 1
        good = checkpoints(run_dir)
        if round_number % 2 and len(good) > 1:
            damage_newest(run_dir)
            stats["faults"] += 1
            stats["redone"] += good[-1] - good[-2]
            good = good[:-1]
        expected_resume = good[-1] if good else None
    return stats, None


def final_values(run_dir):
    import tensorflow as tf

    prefix = tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    reader = tf.train.load_checkpoint(prefix)
    return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(prefix) if "CHECKPOINTABLE" not in n}


def sigterm_at_random(command, rng, low, high):
    """Runs ``command``, sends SIGTERM after a random delay; returns its exit code (None when it finished first)."""
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + rng.uniform(low, high)
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.poll() is not None:
        return None
    process.send_signal(signal.SIGTERM)
    return process.wait()


def soak_translate(root, run_dir, signals, rng):
    from PIL import Image

    inputs = root / "images"
    inputs.mkdir()
    for i in range(40):
        Image.new("RGB", (160, 120), (i * 6, 90, 200 - i * 4)).save(inputs / f"image_{i:02d}.png")
    stats = {"signals": 0, "codes": set(), "broken": 0, "temporary": 0}
    for round_number in range(signals):
        out = root / f"translated_{round_number}"
        command = [
            sys.executable,
            "-m",
            "tf_cyclegan.translate",
            f"--run_dir={run_dir}",
            f"--input={inputs}",
            f"--output={out}",
        ]
        code = sigterm_at_random(command, rng, 6, 20)
        stats["signals"] += code is not None
        stats["codes"].add(code)
        for path in out.glob("*.png") if out.is_dir() else []:
            try:
                Image.open(path).load()
            except OSError:
                stats["broken"] += 1
        stats["temporary"] += len(list(out.glob(".*.tmp-*"))) if out.is_dir() else 0
    return stats


def soak_export(root, run_dir, signals, rng):
    import tensorflow as tf

    out = root / "export"
    command = [sys.executable, "-m", "tf_cyclegan.export", f"--run_dir={run_dir}", f"--output={out}", "--direction=a2b"]
    stats = {"signals": 0, "codes": set(), "unloadable": 0, "staging_left": 0}
    for _ in range(signals):
        code = sigterm_at_random(command, rng, 4, 25)
        stats["signals"] += code is not None
        stats["codes"].add(code)
    subprocess.run(command, env=ENV, capture_output=True, check=True)  # the next export cleans up after them
    base = next(out.glob("*_a2b"))
    for version in sorted(p for p in base.iterdir() if p.name.isdigit()):
        try:
            tf.saved_model.load(str(version))
        except Exception:  # noqa: BLE001 - any failure to load is what is counted
            stats["unloadable"] += 1
    stats["staging_left"] = len(list(base.glob(".staging-*")))
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--signals", type=int, default=6)
    args = parser.parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        subprocess.run(command(root / "straight", args.steps), env=ENV, capture_output=True, check=True)
        stats, code = soak(root / "faulty", args.steps, args.kills, random.Random(args.seed))
        straight, faulty = final_values(root / "straight"), final_values(root / "faulty")
        equal = straight.keys() == faulty.keys() and all(np.array_equal(straight[k], faulty[k]) for k in straight)
        signal_rng = random.Random(args.seed + 1)
        translated = soak_translate(root, root / "straight", args.signals, signal_rng)
        exported = soak_export(root, root / "straight", args.signals, signal_rng)
    print(
        f"{args.steps}-step run, {args.kills} SIGKILLs at random moments, every other one followed by damaging "
        f"the newest checkpoint; finished with exit code {code}"
    )
    print("| faults injected | resumes | steps redone | checkpoints lost | final weights == uninterrupted run |")
    print("|---|---|---|---|---|")
    print(f"| {stats['faults']} | {stats['recovered']} | {stats['redone']} | {stats['lost']} | {equal} |")
    codes = lambda found: ", ".join(sorted("finished" if c is None else str(c) for c in found))  # noqa: E731
    print(f"\nSIGTERM at random moments ({args.signals} runs each)")
    print(
        "| command | signals delivered | exit codes | broken files | temporary files left | unloadable versions | "
        "staging folders left |\n|---|---|---|---|---|---|---|"
    )
    print(
        f"| translate (40 images) | {translated['signals']} | {codes(translated['codes'])} | {translated['broken']} | "
        f"{translated['temporary']} | — | — |"
    )
    print(
        f"| export (a2b) | {exported['signals']} | {codes(exported['codes'])} | — | — | {exported['unloadable']} | "
        f"{exported['staging_left']} |"
    )


if __name__ == "__main__":
    main()
