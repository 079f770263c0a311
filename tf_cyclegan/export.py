"""``python -m tf_cyclegan.export``: a run's generators for TF Serving and TFLite.

``python -m tf_cyclegan.export --run_dir=runs/NAME [--output=export] [--direction=a2b|b2a|both]
[--version=N] [--tflite=fp32,fp16,int8,int8_full]``
``python -m tf_cyclegan.export --run_dir=runs/NAME --web [--web_size=N] [--litert_js=DIR]``: a page for the browser
"""

import sys

from tf_cyclegan import cli

PROG = "python -m tf_cyclegan.export"
TFLITE_VARIANTS = ("fp32", "fp16", "int8", "int8_full")


def parse_args(argv=None):
    parser = cli.OneLineParser(prog=PROG, description="Export a run's generators for TF Serving and TFLite.")
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--output", default="export", help="export root (default: export)")
    parser.add_argument("--direction", choices=("a2b", "b2a", "both"), default="both")
    parser.add_argument("--version", type=int, default=0, help="SavedModel version (default: next free number)")
    parser.add_argument("--checkpoint", help="a specific checkpoint prefix (default: the latest)")
    parser.add_argument("--tflite", default="", help=f"comma-separated TFLite variants: {', '.join(TFLITE_VARIANTS)}")
    parser.add_argument("--max_request_pixels", type=int, default=16_000_000,
                        help="translate_bytes refuses images whose header declares more pixels (InvalidArgument)")
    web = parser.add_argument_group("browser page (--web writes <output>/web/<name>/ instead of the SavedModels)")
    web.add_argument("--web", action="store_true", help="a static page that runs both generators with LiteRT.js")
    web.add_argument("--web_size", type=int, default=0, help="the page's model size in px (default: the run's)")
    web.add_argument("--web_variant", choices=("fp16", "fp32"), default="fp16", help="TFLite weights of the page")
    web.add_argument("--litert_js", default="", help="a folder from 'npm install @litertjs/core@2.5.3': the "
                     "runtime is copied next to the page (default: loaded from a CDN, pinned, with SRI hashes)")
    cli.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.version < 0 or args.max_request_pixels <= 0 or args.web_size < 0:
        cli.fail(PROG, "--version and --web_size must be >= 0 and --max_request_pixels > 0")
    args.directions = ("a2b", "b2a") if args.direction == "both" else (args.direction,)
    args.variants = tuple(v.strip() for v in args.tflite.split(",") if v.strip())
    unknown = [v for v in args.variants if v not in TFLITE_VARIANTS]
    if unknown:
        cli.fail(PROG, f"--tflite: {unknown[0]!r} is not one of {', '.join(TFLITE_VARIANTS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.run_dir:
        cli.require_run_dir(PROG, args.run_dir)
    cli.quiet_tensorflow(args.verbose)
    from tf_cyclegan.checkpoints import CheckpointError
    from tf_cyclegan.config import ConfigError
    from tf_cyclegan.exporter import ExportError, export_run
    from tf_cyclegan.webpage import WebExportError, export_web

    try:
        if args.web:
            export_web(args.run_dir, args.output, args.web_size, args.litert_js, args.web_variant, args.checkpoint)
            return 0
        export_run(args.run_dir, args.output, args.directions, args.version or None, args.variants,
                   checkpoint=args.checkpoint, max_request_pixels=args.max_request_pixels)
    except ConfigError as error:
        cli.fail(PROG, str(error))
    except (ExportError, WebExportError, CheckpointError) as error:
        cli.fail(PROG, str(error), code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
