"""Choosing the quickstart's recipe by measurement: train candidates over seeds, score them next to doing nothing.

    python benchmarks/quickstart_recipe.py --candidates=preset,resnet --seeds=0 --split=validation
    python benchmarks/quickstart_recipe.py --candidates=preset --seeds=0,1,2 --split=held_out --picture=docs/x.png

Each candidate is the quickstart preset (configs/fluent.yaml: the bundled Fluent Flat -> 3D sample at 64 px)
plus a few flags, trained through the CLI (one process at a time, the README's command with those flags).
Its final generators translate the test split (152 pairs by file name), scored as the paper scores a
translation: L1 / PSNR / SSIM against the paired ground truth, FID and KID (the standard TF-FID Inception
network, see tf_fid_torch.py) against the target domain's test images, each beside the identity baseline
("output = input"). The test pairs are split in two by sorted name: ``validation`` (even positions, 76 pairs)
is what recipes are chosen on; ``held_out`` (odd positions, 76 pairs) is only for reporting the final
choice; ``all`` is the whole split. Trained runs in --out are reused; scores are cached per run and split.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import describe_cpu  # noqa: E402  (benchmarks/cpu.py)

# name: flags on top of configs/fluent.yaml (the preset itself is "preset")
CANDIDATES = {
    "preset": [],
    # The generators output input + a learned change (--residual): the Flat drawing's edges pass through.
    "residual": ["--residual=true"],
    "residual_id0.1": ["--residual=true", "--lambda_identity=0.1"],
    "residual_id0": ["--residual=true", "--lambda_identity=0"],
    # The paper's identity weight on top of the preset (seed 4 of identity 0.1 swapped orange and blue).
    "id0.5": ["--lambda_identity=0.5"],
    "ema999": ["--ema_decay=0.999"],
    "ema99": ["--ema_decay=0.99"],
    "da_color_translation": ["--diffaugment=color,translation"],
    "da_all": ["--diffaugment=color,translation,cutout"],
    "ema999_da_ct": ["--ema_decay=0.999", "--diffaugment=color,translation"],
    "ngf16_s3600": ["--ngf=16", "--steps=3600"],
    "ngf16_s3600_da": ["--ngf=16", "--steps=3600", "--diffaugment=color,translation"],
    "ngf16_s3600_da_ema": ["--ngf=16", "--steps=3600", "--diffaugment=color,translation", "--ema_decay=0.999"],
    "ngf16_ndf16_s4400_da": ["--ngf=16", "--ndf=16", "--steps=4400", "--diffaugment=color,translation"],
    "ngf16_s3600_lr4e-4_da": ["--ngf=16", "--steps=3600", "--lr=0.0004", "--diffaugment=color,translation"],
    # No resize: the 64 px images as they are (resize_and_crop upscaled them to 72 and blurred both domains).
    "crop": ["--preprocess=crop"],
    "crop_ngf16_s3600_da": ["--preprocess=crop", "--ngf=16", "--steps=3600", "--diffaugment=color,translation"],
    "crop_ngf16_s3600": ["--preprocess=crop", "--ngf=16", "--steps=3600"],
    "crop_ngf16_s3600_da_ema": [
        "--preprocess=crop",
        "--ngf=16",
        "--steps=3600",
        "--diffaugment=color,translation",
        "--ema_decay=0.999",
    ],
    "crop_ngf16_s3600_da_id0.1": [
        "--preprocess=crop",
        "--ngf=16",
        "--steps=3600",
        "--diffaugment=color,translation",
        "--lambda_identity=0.1",
    ],
    "crop_ngf16_s3600_da_transpose": [
        "--preprocess=crop",
        "--ngf=16",
        "--steps=3600",
        "--diffaugment=color,translation",
        "--upsample=transpose",
    ],
    "crop_ngf16_s3600_da_cycle5": [
        "--preprocess=crop",
        "--ngf=16",
        "--steps=3600",
        "--diffaugment=color,translation",
        "--lambda_cycle=5",
    ],
    "resnet6": ["--generator=resnet", "--n_blocks=6", "--upsample=resize"],
    "steps2400": ["--steps=2400"],
    "steps1200": ["--steps=1200"],
    "identity0.1": ["--lambda_identity=0.1"],
    "lr1e-4": ["--lr=0.0001"],
}
COLUMNS = ("l1", "psnr", "ssim", "fid", "kid")
HIGHER = {"psnr", "ssim"}


def train(name, seed, out):
    """Trains one candidate with one seed (unless done); returns (run_dir, minutes, health warnings)."""
    run_dir = Path(out) / name / f"seed{seed}"
    record = run_dir / "recipe_train.json"
    if not record.is_file():
        command = [
            sys.executable,
            "-m",
            "tf_cyclegan.train",
            "--dataset=fluent",
            f"--run_dir={run_dir}",
            f"--seed={seed}",
        ]
        started = time.perf_counter()
        result = subprocess.run([*command, *CANDIDATES[name]], capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{name} seed {seed} failed: {result.stderr[-2000:]}")
        done = re.search(r"Done: step \d+/\d+ in ([\d.]+) min", result.stdout)
        warnings = [line for line in result.stdout.splitlines() if "health warning" in line]
        record.write_text(
            json.dumps(
                {
                    "training_minutes": float(done.group(1)) if done else None,
                    "command_minutes": (time.perf_counter() - started) / 60,
                    "health_warnings": warnings,
                    "flags": CANDIDATES[name],
                }
            )
        )
    return run_dir, json.loads(record.read_text())


def halves(labels, split):
    """Indexes of ``labels`` (sorted) in the requested part of the test split."""
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    if split == "all":
        return order
    return order[0::2] if split == "validation" else order[1::2]


def score(run_dir, split, features):
    """{direction: {translation: {...}, identity_baseline: {...}}} of a run's latest checkpoint (cached)."""
    cache = Path(run_dir) / f"recipe_scores_{split}.json"
    if cache.is_file():
        return json.loads(cache.read_text())

    from tf_cyclegan import data as data_lib
    from tf_cyclegan import evaluator, factory

    config, _, (generator_ab, generator_ba) = factory.restore_run(str(run_dir), purpose="score")
    pipeline = data_lib.prepare(evaluator.eval_data_config(config.data), 1, report=lambda line: None)
    real_a, labels_a = pipeline.test_images("A")
    real_b, labels_b = pipeline.test_images("B")
    keep_a, keep_b = halves(labels_a, split), halves(labels_b, split)
    real_a, real_b = real_a.numpy()[keep_a], real_b.numpy()[keep_b]
    labels_a, labels_b = [labels_a[i] for i in keep_a], [labels_b[i] for i in keep_b]
    metrics = ("paired", "cycle", "kid", "fid")
    scores = {
        "a2b": evaluator.evaluate_direction(
            generator_ab, generator_ba, real_a, real_b, labels_a, labels_b, metrics, features
        ),
        "b2a": evaluator.evaluate_direction(
            generator_ba, generator_ab, real_b, real_a, labels_b, labels_a, metrics, features
        ),
    }
    for direction in scores.values():
        for row in ("translation", "identity_baseline"):
            direction[row]["kid"] *= 1000  # KID x 1000, as usually reported
            direction[row] = {k: v for k, v in direction[row].items() if not k.endswith("_std")}
    cache.write_text(json.dumps(scores, default=float))
    return json.loads(cache.read_text())


def other_real_images(split, features, count_like):
    """FID and KID x 1000 of real 3D (trainB) and real Flat (trainA) renders of *other* emoji against the split's
    testB: with a few dozen images, FID measures which emoji are shown as much as how they are rendered."""
    import numpy as np
    from PIL import Image

    from tf_cyclegan import metrics
    from tf_cyclegan.data.sources import BUNDLED

    def load(paths):
        pixels = [np.asarray(Image.open(p).convert("RGBA"), np.float32) / 255 for p in paths]
        return np.stack([p[..., :3] * p[..., 3:] + (1 - p[..., 3:]) for p in pixels])

    root = BUNDLED["fluent"]
    test_b = sorted((root / "testB").glob("*.png"))
    target = features(load([test_b[i] for i in halves([p.name for p in test_b], split)]))
    rows = {}
    for name, folder in (("real 3D, other emoji (trainB)", "trainB"), ("real Flat, other emoji (trainA)", "trainA")):
        paths = sorted((root / folder).glob("*.png"))
        chosen = [paths[i * len(paths) // count_like] for i in range(count_like)]
        feats = features(load(chosen))
        rows[name] = {"fid": metrics.fid(feats, target), "kid": metrics.kid(feats, target)["kid"] * 1000}
    return rows


def picture(run_dir, path, count=8):
    """testA | translation | ground truth, ``count`` held-out emoji side by side (a2b)."""
    import numpy as np
    from PIL import Image

    from tf_cyclegan import data as data_lib
    from tf_cyclegan import evaluator, factory

    config, _, (generator_ab, _) = factory.restore_run(str(run_dir), purpose="draw")
    pipeline = data_lib.prepare(evaluator.eval_data_config(config.data), 1, report=lambda line: None)
    real_a, labels_a = pipeline.test_images("A")
    real_b, labels_b = pipeline.test_images("B")
    held = halves(labels_a, "held_out")
    chosen = [held[i * len(held) // count] for i in range(count)]
    by_name = {label: i for i, label in enumerate(labels_b)}
    a = real_a.numpy()[chosen]
    b = real_b.numpy()[[by_name[labels_a[i]] for i in chosen]]
    fake = generator_ab(a, training=False).numpy()
    unit = lambda x: np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8)  # noqa: E731
    rows = [np.concatenate(list(unit(x)), axis=1) for x in (a, fake, b)]
    grid = np.concatenate(rows, axis=0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)
    print(f"picture: {path} (rows: Flat input | translation | 3D ground truth; held-out emoji {chosen})")


def cell(values, name):
    if not values:
        return "-"
    mean = sum(values) / len(values)
    digits = {"l1": 4, "psnr": 2, "ssim": 3, "fid": 1, "kid": 2}[name]
    spread = f" ({min(values):.{digits}f}-{max(values):.{digits}f})" if len(values) > 1 else ""
    return f"{mean:.{digits}f}{spread}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default="preset", help=f"comma-separated, of {', '.join(CANDIDATES)}")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--split", default="validation", choices=("validation", "held_out", "all"))
    parser.add_argument("--out", default="recipe_runs")
    parser.add_argument("--picture", default="", help="draw the first candidate's first seed (held-out emoji)")
    parser.add_argument("--per_seed", action="store_true", help="a row per seed, not only the means")
    args = parser.parse_args()
    names = args.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"--candidates: unknown {unknown}; known: {', '.join(CANDIDATES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    from tf_fid_torch import TorchInception

    features = TorchInception()
    rows = {}
    for name in names:
        for seed in seeds:
            run_dir, record = train(name, seed, args.out)
            rows.setdefault(name, []).append((seed, record, score(run_dir, args.split, features)))
            print(f"{name} seed {seed}: {json.dumps(rows[name][-1][2]['a2b']['translation'])}", flush=True)
    print(f"\n{describe_cpu()}; {time.strftime('%Y-%m-%d')}")
    print(f"split: {args.split}; seeds {args.seeds}; means over seeds (min-max); KID x 1000; features: {features.name}")
    for direction in ("a2b", "b2a"):
        print(f"\n{direction} | " + " | ".join(COLUMNS) + " | training min | health warnings |")
        print("|---|" + "---|" * (len(COLUMNS) + 2))
        baseline = rows[names[0]][0][2][direction]["identity_baseline"]
        print("| identity baseline | " + " | ".join(cell([baseline[c]], c) for c in COLUMNS) + " | | |")
        if direction == "a2b":
            for name, values in other_real_images(args.split, features, rows[names[0]][0][2]["a2b"]["images"]).items():
                print(f"| {name} | - | - | - | {values['fid']:.1f} | {values['kid']:.2f} | | |")
        for name, results in rows.items():
            values = {c: [r[direction]["translation"][c] for _, _, r in results] for c in COLUMNS}
            beats = all(
                all((v > baseline[c]) if c in HIGHER else (v < baseline[c]) for v in values[c]) for c in COLUMNS
            )
            minutes = [rec["training_minutes"] for _, rec, _ in results if rec["training_minutes"]]
            warnings = sum(len(rec["health_warnings"]) for _, rec, _ in results)
            print(
                f"| {name}{' (beats all)' if beats else ''} | "
                + " | ".join(cell(values[c], c) for c in COLUMNS)
                + f" | {cell(minutes, 'psnr')} | {warnings} |"
            )
            for seed, record, result in results if args.per_seed else ():
                scores = result[direction]["translation"]
                print(
                    f"| {name} seed {seed} | "
                    + " | ".join(cell([scores[c]], c) for c in COLUMNS)
                    + f" | {cell([record['training_minutes'] or 0], 'psnr')} | {len(record['health_warnings'])} |"
                )
    if args.picture:
        picture(Path(args.out) / names[0] / f"seed{seeds[0]}", args.picture)


if __name__ == "__main__":
    main()
