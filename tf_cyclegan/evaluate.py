"""``python -m tf_cyclegan.evaluate``: score a run, each number next to the identity baseline.

``python -m tf_cyclegan.evaluate --run_dir=runs/NAME [--dataset=...] [--direction=a2b|b2a|both]
[--metrics=paired,cycle,kid,fid] [--inception_weights=PATH]``
"""

import json
import sys

from tf_cyclegan import cli, fs
from tf_cyclegan.config import EVAL_METRICS as ALL_METRICS

PROG = "python -m tf_cyclegan.evaluate"


def parse_args(argv=None):
    parser = cli.OneLineParser(prog=PROG, description="Evaluate a tf_cyclegan run on its test split.")
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--dataset", help="evaluate on another dataset (default: the run's)")
    parser.add_argument("--direction", choices=("a2b", "b2a", "both"), default="both")
    parser.add_argument("--metrics", default=",".join(ALL_METRICS), help=f"comma-separated: {', '.join(ALL_METRICS)}")
    parser.add_argument(
        "--inception_weights",
        default=None,
        help="local InceptionV3 notop .h5 for KID/FID (default: the run's setting or the Keras cache)",
    )
    parser.add_argument("--checkpoint", help="a specific checkpoint prefix (default: the latest)")
    parser.add_argument("--max_eval_images", type=int, default=None)
    cli.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    args.metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    unknown = [m for m in args.metrics if m not in ALL_METRICS]
    if unknown:
        cli.fail(PROG, f"--metrics: {unknown[0]!r} is not one of {', '.join(ALL_METRICS)}")
    return args


def print_report(report, run_dir):
    # Imported here, not at the top: TensorFlow stays out of --help and flag errors.
    from tf_cyclegan.evaluator import format_table

    print(f"checkpoint {report['checkpoint']} on {report['dataset']}")
    print(format_table(report))
    if report["feature_network"]:
        print(f"features for KID/FID: {report['feature_network']}")
    elif report["notes"]:
        print(f"features for KID/FID: none ({report['notes'][0]})")
    print(f"wrote {fs.path(run_dir) / 'eval.json'}")
    health = fs.path(run_dir) / "health.json"
    if health.is_file():
        # Imported here, not at the top: TensorFlow stays out of --help and flag errors.
        from tf_cyclegan.health import summary_lines

        try:
            print("\n".join(summary_lines(json.loads(health.read_text()))))
        except (ValueError, KeyError, TypeError):
            print(f"note: {health} is unreadable")


def main(argv=None):
    args = parse_args(argv)
    if args.run_dir:
        cli.require_run_dir(PROG, args.run_dir)
    cli.quiet_tensorflow(args.verbose)
    return cli.run_command(PROG, lambda: evaluate(args))


def evaluate(args):
    # Imported here, not at the top: TensorFlow stays out of --help and flag errors.
    from tf_cyclegan import evaluator

    directions = ("a2b", "b2a") if args.direction == "both" else (args.direction,)
    report = evaluator.evaluate_run(
        args.run_dir,
        args.dataset,
        directions,
        args.metrics,
        args.inception_weights,
        args.checkpoint,
        args.max_eval_images,
        log=lambda line: print(line, file=sys.stderr),
    )
    print_report(report, args.run_dir)


if __name__ == "__main__":
    sys.exit(main())
