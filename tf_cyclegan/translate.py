"""``python -m tf_cyclegan.translate``: translate images with a trained run (or an exported SavedModel or ONNX file).

``python -m tf_cyclegan.translate --run_dir=runs/NAME --direction=a2b --input=FILE_OR_DIR --output=DIR``
"""

import sys

from tf_cyclegan import cli, fs
from tf_cyclegan.config import PRECISIONS, TRANSLATE_MAX_PIXELS

PROG = "python -m tf_cyclegan.translate"


def parse_args(argv=None):
    parser = cli.OneLineParser(prog=PROG, description="Translate images with a trained tf_cyclegan run.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run_dir", help="a training run directory (reads its config.yaml and latest checkpoint)")
    source.add_argument("--saved_model", help="an exported SavedModel directory (…/<name>_<direction>/<version>)")
    source.add_argument("--onnx_model", help='an exported .onnx file (export --onnx; pip install -e ".[onnx]")')
    parser.add_argument("--direction", choices=("a2b", "b2a"), default="a2b")
    parser.add_argument("--checkpoint", help="a specific checkpoint prefix (default: the latest)")
    parser.add_argument(
        "--input",
        required=True,
        help="an image, video or animated GIF/WebP, or a folder of them (searched recursively)",
    )
    parser.add_argument("--output", required=True, help="output folder (file names and sub-folders are kept)")
    parser.add_argument("--tile", type=int, default=0, help="tile size in px for images too large for memory (0 = off)")
    parser.add_argument("--overlap", type=int, default=64, help="context in px around each tile")
    parser.add_argument("--background", default=None, help="composite colour for alpha (default: the run's)")
    parser.add_argument(
        "--max_pixels",
        type=int,
        default=TRANSLATE_MAX_PIXELS,
        help="images whose header declares more pixels are skipped, never decoded (0 = no limit)",
    )
    parser.add_argument(
        "--max_memory_gb",
        type=float,
        default=0.0,
        help="memory one image may take (GB); a larger one is translated in tiles (0 = 2 GB, or half "
        "of what the machine has available when that is less)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="with --run_dir: auto = bfloat16 where the CPU or GPU has it natively, else float32",
    )
    parser.add_argument(
        "--video_stats",
        default="auto",
        choices=("auto", "clip", "window", "frame"),
        help="videos and animations: instance-norm statistics shared by the whole clip, by a window of frames "
        "around each one (scenes that change), or each frame's own; auto = clip for ResNet generators, frame for "
        "U-Nets (the steadier of the two for each, as measured)",
    )
    parser.add_argument("--video_window", type=int, default=9, help="frames per window for --video_stats=window")
    cli.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.video_window < 1:
        cli.fail(PROG, f"--video_window: must be >= 1, got {args.video_window}")
    if args.tile < 0 or args.overlap < 0 or args.max_pixels < 0 or not 0 <= args.max_memory_gb < float("inf"):
        cli.fail(PROG, "--tile, --overlap, --max_pixels and --max_memory_gb must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.run_dir:
        cli.require_run_dir(PROG, args.run_dir)
    cli.quiet_tensorflow(args.verbose)
    return cli.run_command(PROG, lambda: translate(args))


def translate(args):
    fs.check_output_folder(args.output, "--output", args.input)  # before TensorFlow and the model load
    return _translate(args)


def _translate(args):
    # Imported here, not at the top: TensorFlow stays out of --help and flag errors.
    from tf_cyclegan.data.images import parse_background
    from tf_cyclegan.precision import choose_here
    from tf_cyclegan.translate_files import translate_paths
    from tf_cyclegan.translator import Translator

    if args.run_dir:
        choice = choose_here(args.precision)
        print(choice.line())
        translator = Translator.from_run(args.run_dir, args.direction, args.checkpoint, choice.precision)
    elif args.onnx_model:
        translator = Translator.from_onnx(args.onnx_model)
    else:
        translator = Translator.from_saved_model(args.saved_model)
    if args.background:
        translator.background = parse_background(args.background)
    written, skipped = translate_paths(
        translator,
        args.input,
        args.output,
        args.tile,
        args.overlap,
        max_pixels=args.max_pixels,
        max_memory=int(args.max_memory_gb * 2**30),
        video_stats=args.video_stats,
        video_window=args.video_window,
    )
    print(f"translated {len(written)} file(s) into {args.output}" + (f"; skipped {len(skipped)}" if skipped else ""))


if __name__ == "__main__":
    sys.exit(main())
