"""``python -m tf_cyclegan.train``: train (or resume) a CycleGAN.

With no flags it trains the quickstart (Fluent Emoji Flat -> 3D, bundled) offline.
Settings come from (later wins): defaults, the preset for the dataset (or
--config), the run directory's config.yaml when resuming, flags, then --set.
"""

import sys

from tf_cyclegan import cli, run
from tf_cyclegan.errors import Stopped

PROG = "python -m tf_cyclegan.train"


def parse_args(argv=None):
    parser = cli.OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a YAML preset (default: configs/<dataset>.yaml when it exists)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override any field, e.g. --set=model.n_blocks=6 (repeatable)",
    )
    cli.add_verbose_flag(parser)
    cli.add_config_flags(parser)
    return parser.parse_args(argv)


def config_from_args(args):
    """The validated Config the flags describe (raises ConfigError naming the flag)."""
    return run.resolve_config(cli.given_fields(args), args.set, args.config)


def parse_config(argv=None):
    return config_from_args(parse_args(argv))


def print_summary(summary):
    root = summary["run_dir"]
    lines = [
        f"Done: step {summary['final_step']}/{summary['total_steps']}"
        + (f" in {summary['seconds'] / 60:.1f} min" if "seconds" in summary else ""),
        f"  run directory : {root}",
        f"  config        : {root}/config.yaml",
        f"  checkpoint    : {summary.get('checkpoint')}",
    ]
    if "samples" in summary:
        lines.append(f"  samples       : {summary['samples']}/  (real | translated | reconstructed)")
        lines.append(f"  TensorBoard   : tensorboard --logdir {summary['logs']}")
    if "best" in summary:
        lines.append(f"  best          : {summary['best']}")
    lines.append(f"  continue      : {PROG} --run_dir={root} --steps=N")
    print("\n".join(lines))


def main(argv=None):
    args = parse_args(argv)
    cli.quiet_tensorflow(args.verbose)
    return cli.run_command(PROG, lambda: train(args))


def train(args):
    config = config_from_args(args)
    from tf_cyclegan import trainer  # here, not at the top: TensorFlow stays out of --help

    try:
        summary = trainer.train(config, progress=True)
    except KeyboardInterrupt:
        raise Stopped("interrupted before the first training step; nothing was saved") from None
    print_summary(summary)


if __name__ == "__main__":
    sys.exit(main())
