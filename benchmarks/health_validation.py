"""Do the health checks mean something? The paper's ablations and two designed shortcuts, measured.

    python benchmarks/health_validation.py [--steps=1000] [--sample_every=125] [--out=health_runs] [--only=...]
        [--full_runs=RUN_DIR,...]

Trains the quickstart preset (configs/fluent.yaml: the bundled Fluent Flat -> 3D sample, 64 px) through the CLI
with the paper's ablations (§5.1.4, Table 4): the full objective with and without the identity loss, GAN alone,
GAN + forward cycle, GAN + backward cycle and cycle alone (the ablations without identity loss, as the paper's).
Then scores two designed failures on the full run's final checkpoint: its translations inverted, and hue-rotated
by 120° (both as easy to cycle back as the real thing). Prints, per run and signal, the worst value after the
warm-up, whether the thresholds of tf_cyclegan/health.py flag it, and the step of the first warning. Runs already
in --out are reused. --full_runs adds finished runs of the preset at its own length (e.g. the seeds of
quickstart_recipe.py), each replayed with its own warm-up, and the range of every signal at their first and last
checks (what a healthy run looks like).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import describe_cpu  # noqa: E402  (benchmarks/cpu.py)

RUNS = {
    "full (the preset)": [],
    "full, no identity": ["--lambda_identity=0"],
    "GAN alone": ["--lambda_cycle=0", "--lambda_identity=0"],
    "GAN + forward cycle": ["--lambda_cycle_b=0", "--lambda_identity=0"],
    "GAN + backward cycle": ["--lambda_cycle_a=0", "--lambda_identity=0"],
    "cycle alone": ["--lambda_gan=0", "--lambda_identity=0"],
}
EXPECTED = {  # what the paper reports (§5.1.4, Table 4, Figure 7) and the designed shortcuts
    "full (the preset)": "no warning",
    "full, no identity": "no warning",
    "GAN alone": "a warning (paper: mode collapse)",
    "GAN + forward cycle": "a warning (paper: unstable, collapse)",
    "GAN + backward cycle": "a warning (paper: unstable, collapse)",
    "cycle alone": "a warning (paper: not the target domain)",
    "inverted translations": "away",
    "hue-rotated translations": "away",
}


def folder_name(name):
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def train(name, flags, args):
    run_dir = Path(args.out) / folder_name(name)
    if not (run_dir / "health.json").is_file():
        command = [
            sys.executable,
            "-m",
            "tf_cyclegan.train",
            f"--run_dir={run_dir}",
            f"--steps={args.steps}",
            f"--sample_every_steps={args.sample_every}",
            f"--seed={args.seed}",
            *flags,
        ]
        subprocess.run(command, capture_output=True, text=True)
    return json.loads((run_dir / "health.json").read_text())["history"]


def shortcut_history(full_run, transform):
    """One check of the full run's final generators with ``transform`` applied to every translation."""
    import tensorflow as tf

    from tf_cyclegan import data as data_lib
    from tf_cyclegan import factory, run
    from tf_cyclegan.health import Probe

    config = run.read_config(full_run)
    model = factory.build_model(config)
    tf.train.Checkpoint(model=model).restore(run.run_checkpoint(full_run, None)).expect_partial()  # no optimizers
    pipeline = data_lib.prepare(config.data, 1, report=lambda line: None)
    for name in ("generator_ab", "generator_ba"):
        inner = getattr(model, name)
        setattr(model, name, lambda x, training=False, inner=inner: transform(inner(x, training=training)))
    probe = Probe(model, pipeline.test_images("A", 32)[0], pipeline.test_images("B", 32)[0])
    step = config.train.steps
    return [{"step": step, "values": probe()}] * 3  # a failure that persists: the same state at three checks


def hue_rotation(y):
    import tensorflow as tf

    return tf.image.adjust_hue((y + 1) / 2, 1 / 3) * 2 - 1


def replay(history, warmup):
    """The warnings tf_cyclegan/health.py gives for a recorded history, and the worst value per signal."""
    from tf_cyclegan.health import RULES, HealthMonitor

    monitor = HealthMonitor(warmup=warmup)
    first = {}
    for check in history:
        for warning in monitor.check(check["step"], check["values"]):
            key = warning.split(": ")[1].split(" ")[:2]
            first.setdefault(tuple(key), check["step"])
    worst = {}
    for rule in RULES:
        for direction in ("a2b", "b2a"):
            values = [c["values"][f"{direction}/{rule.signal}"] for c in history if c["step"] > monitor.warmup]
            if values:
                worst[(direction, rule.signal)] = (max if rule.above else min)(values)
    return worst, first


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--sample_every", type=int, default=125)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="health_runs")
    parser.add_argument("--only", default="", help="comma-separated run names to train (default: all)")
    parser.add_argument("--full_runs", default="", help="comma-separated finished runs of the preset to replay")
    args = parser.parse_args()
    from tf_cyclegan.health import RULES, default_warmup

    warmup = default_warmup(args.steps)
    histories = {
        name: train(name, flags, args) for name, flags in RUNS.items() if not args.only or name in args.only.split(",")
    }
    full = Path(args.out) / folder_name("full (the preset)")
    if (full / "health.json").is_file():
        histories["inverted translations"] = shortcut_history(full, lambda y: -y)
        histories["hue-rotated translations"] = shortcut_history(full, hue_rotation)
    print(
        f"\n{describe_cpu()}\nquickstart preset, {args.steps} steps, checks every {args.sample_every}, "
        f"seed {args.seed}, warm-up {warmup} steps; cells: worst value after the warm-up "
        "(flagged: * and the step of the first warning)"
    )
    signals = [(d, r.signal) for r in RULES for d in ("a2b", "b2a")]
    print("| run | expected | " + " | ".join(f"{d} {s}" for d, s in signals) + " |")
    print("|---|---|" + "---|" * len(signals))
    print(
        "| threshold | | "
        + " | ".join(f"{'>' if r.above else '<'} {r.threshold}" for r in RULES for _ in ("a2b", "b2a"))
        + " |"
    )
    for name, history in histories.items():
        worst, first = replay(history, warmup)
        cells = [f"{worst.get(key, float('nan')):.2f}" + (f" *{first[key]}" if key in first else "") for key in signals]
        print(f"| {name} | {EXPECTED[name]} | " + " | ".join(cells) + " |")
    full_runs = [Path(r) for r in args.full_runs.split(",") if r]
    for run_dir in full_runs:
        record = json.loads((run_dir / "health.json").read_text())
        worst, first = replay(record["history"], record["warmup"])
        cells = [f"{worst.get(key, float('nan')):.2f}" + (f" *{first[key]}" if key in first else "") for key in signals]
        label = f"{run_dir} ({record['step']} steps, warm-up {record['warmup']})"
        print(f"| {label} | no warning | " + " | ".join(cells) + " |")
    if full_runs:
        histories = [json.loads((r / "health.json").read_text())["history"] for r in full_runs]
        print("\nrange over those runs: first check / last check")
        for key in signals:
            name = f"{key[0]}/{key[1]}"
            at = [[h[i]["values"][name] for h in histories] for i in (0, -1)]
            print(f"{name}: {min(at[0]):.2f}-{max(at[0]):.2f} / {min(at[1]):.2f}-{max(at[1]):.2f}")


if __name__ == "__main__":
    main()
