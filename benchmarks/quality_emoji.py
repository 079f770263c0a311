"""Quality on emoji_noto2twemoji: train a fixed number of steps, score testA→B against testB; prints a table.

    python benchmarks/quality_emoji.py [--data=../shared/data/emoji_noto2twemoji] [--steps=N]
                                       [--run_dir=runs/quality_emoji] [--picture=docs/emoji_a2b.png]
    python benchmarks/quality_emoji.py --from_run=runs/emoji [--picture=...]   # score a finished run instead

Uses the emoji quickstart preset (64 px) on the full shared set (1469/1559 training images,
376 test pairs), then reports L1/PSNR/SSIM against the ground truth, cycle error and KID
(when InceptionV3 weights are available), next to the identity baseline, and saves a
picture of testA | translation | ground truth for a few emoji. With ``--from_run`` it trains nothing
and scores that run's latest checkpoint (e.g. the quickstart's, trained on the bundled sample) on ``--data``.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "emoji_noto2twemoji"))
    parser.add_argument("--steps", type=int, default=0, help="training steps (default: the preset's)")
    parser.add_argument("--run_dir", default="runs/quality_emoji")
    parser.add_argument("--picture", default="", help="save testA | translation | ground truth here (PNG)")
    parser.add_argument("--inception_weights", default="")
    parser.add_argument("--from_run", default="", help="score this run's latest checkpoint instead of training")
    args = parser.parse_args()
    if not Path(args.data, "testA").is_dir():
        sys.exit(f"--data: {args.data} has no testA folder (the shared emoji_noto2twemoji set)")

    import numpy as np
    from PIL import Image

    from tf_cyclegan import config as config_lib
    from tf_cyclegan import data as data_lib
    from tf_cyclegan import evaluator as evaluate
    from tf_cyclegan import factory, run, trainer

    if args.from_run:
        try:
            config = run.read_config(args.from_run)
        except config_lib.ConfigError as error:
            sys.exit(str(error).replace("--run_dir", "--from_run", 1))
        checkpoint = run.run_checkpoint(args.from_run)
        if not checkpoint:
            sys.exit(f"--from_run: {args.from_run} has no checkpoint")
        generator_ab, generator_ba = factory.restore_generators(config, checkpoint)
        trained = f"{checkpoint} (trained on {config.data.dataset})"
        config.data.dataset, config.data.domain_a, config.data.domain_b = args.data, "", ""
    else:
        config = config_lib.load_yaml(config_lib.preset_path("emoji"))
        config.data.dataset, config.run_dir = args.data, args.run_dir
        config.train.steps = args.steps or config.train.steps
        config.name, config.train.num_samples = "quality_emoji", 0
        session = trainer.start_session(config_lib.validate(config))
        minutes = trainer.run_session(session, log=lambda line: None, progress=False).get("seconds", 0) / 60
        generator_ab, generator_ba = session.model.translator_ab, session.model.translator_ba
        trained = f"{config.train.steps} steps ({minutes:.1f} min)"
    features, note = None, ""
    try:
        features = evaluate.inception_features(args.inception_weights)
    except evaluate.FeaturesUnavailable as error:
        note = str(error)
    pipeline = data_lib.prepare(evaluate.eval_data_config(config.data), 1, report=lambda line: None)
    results = evaluate.evaluate_generators(
        generator_ab, generator_ba, pipeline, ("a2b",), ("paired", "cycle", "kid"), features
    )
    print(f"\nemoji_noto2twemoji, {trained}, testA -> B vs testB ({results['a2b']['pairs']} pairs)")
    print("| | L1 | PSNR (dB) | SSIM | cycle L1 | KID |\n|---|---|---|---|---|---|")
    for row in ("translation", "identity_baseline"):
        values = results["a2b"][row]
        kid = f"{values['kid']:.4f}" if "kid" in values else "n/a"
        print(
            f"| {row} | {values['l1']:.3f} | {values['psnr']:.2f} | {values['ssim']:.3f} | "
            f"{values['cycle_l1']:.3f} | {kid} |"
        )
    print(f"KID features: {features.name if features else note}")
    if args.picture:
        real_a, labels = pipeline.test_images("A", 6)
        real_b, _ = pipeline.test_images("B", 6)
        fake_b = generator_ab(real_a, training=False).numpy()
        unit = lambda x: np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8)  # noqa: E731
        rows = [
            np.concatenate([unit(a), unit(f), unit(b)], axis=1)
            for a, f, b in zip(real_a.numpy(), fake_b, real_b.numpy())
        ]
        Path(args.picture).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, axis=0)).resize((3 * 128, 6 * 128), Image.NEAREST).save(args.picture)
        print(f"picture: {args.picture} (testA | translation | ground truth)")


if __name__ == "__main__":
    main()
