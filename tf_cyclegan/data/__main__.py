"""``python -m tf_cyclegan.data check PATH``: the pre-flight report for a dataset.

PATH is a folder with trainA/trainB (testA/testB), 'fluent' or 'emoji' (bundled), or a TFDS name.
"""

import sys

from tf_cyclegan import cli
from tf_cyclegan.config import DataConfig


def main(argv=None):
    parser = cli.OneLineParser(prog="python -m tf_cyclegan.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="count usable, unreadable and small images per domain")
    check.add_argument("dataset", help="folder with trainA/trainB, 'fluent' or 'emoji' (bundled), or a TFDS name")
    check.add_argument("--image_size", type=int, default=256, help="crop size to compare image sizes with")
    check.add_argument("--channels", type=int, default=3, choices=(1, 3))
    check.add_argument("--data_dir", default="", help="TFDS data directory")
    check.add_argument(
        "--max_pixels",
        type=int,
        default=DataConfig().max_pixels,
        help="images whose header declares more pixels are reported and never decoded (0 = no limit)",
    )
    check.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    args = parser.parse_args(argv)
    cli.quiet_tensorflow(args.verbose)

    # Imported here, not at the top: TensorFlow stays out of --help and flag errors.
    from tf_cyclegan import data as data_lib

    config = DataConfig(
        dataset=args.dataset,
        image_size=args.image_size,
        channels_a=args.channels,
        channels_b=args.channels,
        data_dir=args.data_dir,
        max_pixels=args.max_pixels,
    )

    def check_data():
        domains, reports = data_lib.check(data_lib.resolve(config), config)
        print(f"data: {domains.description}")
        for report in reports:
            print("\n".join(report.lines(args.image_size)))

    return cli.run_command(parser.prog, check_data)


if __name__ == "__main__":
    sys.exit(main())
