"""Regenerates a bundled quickstart sample (tf_cyclegan/datasets/<name>) from the full dataset in ../shared/data.

Usage:
  python scripts/make_sample.py fluent ../shared/data/fluent_flat2render
  python scripts/make_sample.py emoji ../shared/data/emoji_noto2twemoji

fluent: every image, resized from 128 to 64 px (Pillow's Lanczos on premultiplied alpha, so transparent
pixels do not bleed into the edges); emoji: every 3rd training image per domain and every 4th test pair (by
sorted file name), as they are (64 px). The dataset's README (its attribution) and licence files are copied.
"""

import shutil
import sys
from pathlib import Path

from PIL import Image

SAMPLES = {
    # name: (strides per split, side in pixels or None to copy the files as they are)
    "fluent": ({"trainA": 1, "trainB": 1, "testA": 1, "testB": 1}, 64),
    "emoji": ({"trainA": 3, "trainB": 3, "testA": 4, "testB": 4}, None),
}


def main(name, source):
    strides, side = SAMPLES[name]
    source = Path(source)
    target = Path(__file__).resolve().parent.parent / "tf_cyclegan" / "datasets" / name
    shutil.rmtree(target, ignore_errors=True)
    for split, stride in strides.items():
        (target / split).mkdir(parents=True)
        for path in sorted((source / split).glob("*.png"))[::stride]:
            if side is None:
                shutil.copy2(path, target / split / path.name)
                continue
            with Image.open(path) as image:
                small = image.convert("RGBA").resize((side, side), Image.Resampling.LANCZOS)
            small.save(target / split / path.name, optimize=True)
    for licence in source.glob("LICENSE*"):
        shutil.copy2(licence, target / licence.name)
    readme = (source / "README.md").read_text(encoding="utf-8")
    counts = ", ".join(f"{split}: {len(list((target / split).iterdir()))}" for split in strides)
    how = f"every image resized to {side} px" if side else "a subset"
    (target / "README.md").write_text(
        f"# Bundled sample of {source.name}\n\n"
        f"{how.capitalize()} ({counts}) of the dataset described below, made by scripts/make_sample.py.\n\n" + readme,
        encoding="utf-8",
    )
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"wrote {target} ({counts}; {size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
