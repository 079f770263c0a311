"""``python -m tf_cyclegan.export``: a run's generators for TF Serving, TFLite and ONNX Runtime.

``python -m tf_cyclegan.export --run_dir=runs/NAME [--output=export] [--direction=a2b|b2a|both]
[--version=N] [--tflite=fp32,fp16,int8,int8_full] [--onnx]``
``python -m tf_cyclegan.export --run_dir=runs/NAME --web [--web_size=N] [--litert_js=DIR]``: a page for the browser
"""

import sys

from tf_cyclegan import cli, fs
from tf_cyclegan.config import MAX_REQUEST_GB, MAX_REQUEST_PIXELS, TFLITE_VARIANTS

PROG = "python -m tf_cyclegan.export"


def parse_args(argv=None):
    parser = cli.OneLineParser(prog=PROG, description="Export a run's generators for TF Serving and TFLite.")
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--output", default="export", help="export root (default: export)")
    parser.add_argument("--direction", choices=("a2b", "b2a", "both"), default="both")
    parser.add_argument("--version", type=int, default=0, help="SavedModel version (default: next free number)")
    parser.add_argument("--checkpoint", help="a specific checkpoint prefix (default: the latest)")
    parser.add_argument("--tflite", default="", help=f"comma-separated TFLite variants: {', '.join(TFLITE_VARIANTS)}")
    parser.add_argument(
        "--onnx",
        action="store_true",
        help='also <output>/onnx/<name>_<direction>.onnx, checked with ONNX Runtime (pip install -e ".[onnx]")',
    )
    parser.add_argument(
        "--max_request_pixels",
        type=int,
        default=MAX_REQUEST_PIXELS,
        help="a request of more pixels is refused (InvalidArgument; translate_bytes: before decoding)",
    )
    parser.add_argument(
        "--max_request_gb",
        type=float,
        default=MAX_REQUEST_GB,
        help="and of more pixels than this much memory translates (estimated for the network)",
    )
    web = parser.add_argument_group("browser page (--web writes <output>/web/<name>/ instead of the SavedModels)")
    web.add_argument("--web", action="store_true", help="a static page that runs both generators with LiteRT.js")
    web.add_argument("--web_size", type=int, default=0, help="the page's model size in px (default: the run's)")
    web.add_argument("--web_variant", choices=("fp16", "fp32"), default="fp16", help="TFLite weights of the page")
    web.add_argument(
        "--litert_js",
        default="",
        help="a folder from 'npm install @litertjs/core@2.5.3': the "
        "runtime is copied next to the page (default: loaded from a CDN, pinned, with SRI hashes)",
    )
    cli.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if (
        args.version < 0
        or args.max_request_pixels <= 0
        or args.web_size < 0
        or not 0 < args.max_request_gb < float("inf")
    ):
        cli.fail(PROG, "--version and --web_size must be >= 0, --max_request_pixels and --max_request_gb > 0")
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
    return cli.run_command(PROG, lambda: export(args))


def export(args):
    fs.check_output_folder(args.output)  # before TensorFlow and the model load
    # Imported here, not at the top: TensorFlow stays out of --help and flag errors.
    from tf_cyclegan.exporter import export_run
    from tf_cyclegan.webpage import export_web

    if args.web:
        export_web(args.run_dir, args.output, args.web_size, args.litert_js, args.web_variant, args.checkpoint)
    else:
        export_run(
            args.run_dir,
            args.output,
            args.directions,
            args.version or None,
            args.variants,
            checkpoint=args.checkpoint,
            max_request_pixels=args.max_request_pixels,
            max_request_gb=args.max_request_gb,
            onnx=args.onnx,
        )


if __name__ == "__main__":
    sys.exit(main())
