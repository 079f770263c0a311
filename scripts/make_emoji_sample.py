"""Regenerates the bundled emoji sample (tf_cyclegan/datasets/emoji) from the full set.

Usage: python scripts/make_emoji_sample.py ../shared/data/emoji_noto2twemoji
Takes every 3rd training image per domain and every 4th test pair (by sorted file
name), copies the dataset README's attribution, and keeps the sample under 5 MB.
"""

import shutil
import sys
from pathlib import Path

STRIDES = {"trainA": 3, "trainB": 3, "testA": 4, "testB": 4}


def main(source):
    source = Path(source)
    target = Path(__file__).resolve().parent.parent / "tf_cyclegan" / "datasets" / "emoji"
    shutil.rmtree(target, ignore_errors=True)
    for split, stride in STRIDES.items():
        (target / split).mkdir(parents=True)
        for path in sorted((source / split).glob("*.png"))[::stride]:
            shutil.copy2(path, target / split / path.name)
    readme = (source / "README.md").read_text(encoding="utf-8")
    counts = ", ".join(f"{split}: {len(list((target / split).iterdir()))}" for split in STRIDES)
    (target / "README.md").write_text(
        "# Bundled sample of emoji_noto2twemoji\n\n"
        f"A subset ({counts}) of the dataset described below, made by scripts/make_emoji_sample.py.\n\n" + readme,
        encoding="utf-8",
    )
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"wrote {target} ({counts}; {size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1])
