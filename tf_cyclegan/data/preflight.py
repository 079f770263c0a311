"""Pre-flight check: which images of each domain can actually be used.

Every file is decoded once, in parallel, with the same decoder as training; files
that fail are named and dropped so training never stops on them mid-run.
"""

import dataclasses
import functools

import tensorflow as tf

from tf_cyclegan import fs
from tf_cyclegan.data.formats import inspect
from tf_cyclegan.data.images import decode_pixels
from tf_cyclegan.data.sources import DataError


@dataclasses.dataclass
class DomainReport:
    split: str
    origin: str
    found: int
    readable: int
    unreadable: list  # (file, reason)
    small: list  # files smaller than the crop size (upscaled)
    skipped: list  # non-image files

    def lines(self, image_size):
        head = (
            f"{self.split:<9} {self.readable:>6} images  {len(self.unreadable)} unreadable  "
            f"{len(self.small)} smaller than {image_size}px  ({self.origin})"
        )
        out = [head]
        out += [f"  warning: skipped unreadable {name}: {reason}" for name, reason in self.unreadable]
        if self.small:
            shown = ", ".join(self.small[:3]) + (" ..." if len(self.small) > 3 else "")
            out.append(f"  warning: {len(self.small)} images smaller than {image_size}px will be upscaled: {shown}")
        if self.skipped:
            shown = ", ".join(self.skipped[:3]) + (" ..." if len(self.skipped) > 3 else "")
            out.append(f"  note: ignored {len(self.skipped)} non-image files: {shown}")
        return out


@functools.cache
def _size_of():
    """(contents, max_pixels) → (decoded [height, width], within max_pixels, why refused): one graph function a
    process, written without Python branches on tensors, so it is traced once and never run through autograph
    (which took ~3 s for each domain checked)."""

    def size(contents, max_pixels):
        facts = inspect(contents)
        declared, why = facts["size"], facts["problem"]
        within = tf.logical_or(max_pixels <= 0, declared[0] * declared[1] <= max_pixels)
        why = tf.where(within, why, "")
        decoded = tf.cond(
            within & tf.equal(why, ""),
            lambda: tf.cast(tf.shape(decode_pixels(contents, tf.uint8, facts))[:2], tf.int64),
            lambda: declared,
        )
        return decoded, within, why

    return tf.function(
        size, input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64)], autograph=False
    )


def _decoded_sizes(domain, max_pixels):
    """({index: (height, width)} of the items that decode, {index: declared size} of those above ``max_pixels``,
    {index: why} of those refused from their bytes, e.g. cut short).

    An image whose header declares more than ``max_pixels``, or whose bytes are known to be
    incomplete, is never decoded; other failures are simply absent.
    """
    table = domain.item_tensor()
    read = (lambda x: x) if domain.in_memory else tf.io.read_file
    limit = tf.constant(int(max_pixels), tf.int64)

    def size(index):
        return (index, *_size_of()(read(table[index]), limit))

    dataset = (
        tf.data.Dataset.range(len(domain.items))
        .map(size, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .ignore_errors()
    )
    sizes, too_large, refused = {}, {}, {}
    for i, hw, within, why in dataset.as_numpy_iterator():
        if why:
            refused[int(i)] = why.decode()
        else:
            (sizes if within else too_large)[int(i)] = (int(hw[0]), int(hw[1]))
    return sizes, too_large, refused


def check_domain(domain, channels, image_size, required=True, max_pixels=0):
    """Decodes every item; returns (the domain without unreadable or too large items, its report)."""
    if not domain.items:
        if required:
            raise DataError(f"{domain.split}: no images found in {domain.origin}")
        return domain, DomainReport(domain.split, domain.origin, 0, 0, [], [], domain.skipped)
    sizes, too_large, refused = _decoded_sizes(domain, max_pixels)
    unreadable = []
    for i, label in enumerate(domain.labels):
        if i in refused:
            unreadable.append((label, refused[i]))
        elif i in too_large:
            height, width = too_large[i]
            unreadable.append((label, f"{width} x {height} pixels, above --max_pixels={max_pixels} (not decoded)"))
        elif i not in sizes:
            item = domain.items[i]
            empty = (len(item) == 0) if domain.in_memory else (fs.path(item).stat().st_size == 0)
            unreadable.append((label, "empty file" if empty else "cannot be decoded as an image"))
    small = [domain.labels[i] for i, (h, w) in sorted(sizes.items()) if min(h, w) < image_size]
    report = DomainReport(domain.split, domain.origin, len(domain), len(sizes), unreadable, small, domain.skipped)
    if not sizes and required:
        raise DataError(f"{domain.split}: none of the {len(domain)} files in {domain.origin} is a readable image")
    return domain.subset(sizes.keys()), report


def check(domains, data):
    """Checks all splits of ``domains`` for a DataConfig; returns (clean domains, reports)."""
    reports = []
    channels = {"A": data.channels_a, "B": data.channels_b}
    clean = {}
    for name, domain in domains.splits().items():
        kept, report = check_domain(
            domain, channels[name[-1]], data.image_size, required=name.startswith("train"), max_pixels=data.max_pixels
        )
        clean[name] = kept
        reports.append(report)
    result = dataclasses.replace(
        domains,
        train_a=clean["trainA"],
        train_b=clean["trainB"],
        test_a=clean.get("testA") or None,
        test_b=clean.get("testB") or None,
    )
    return result, reports
