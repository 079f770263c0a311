"""How much memory a generator needs to translate an image, and how much this machine can give.

``bytes_per_pixel(generator)`` walks the network's graph once at a small probe size: the
feature maps alive at the same time (a skip connection keeps its input alive until it is
used) at their widest point, per input pixel, times a safety factor measured against real
peaks. ``translate`` tiles an image whose estimate is above the budget, and an exported
``translate_bytes`` refuses one before decoding it, so one request cannot take a process down.
"""

import dataclasses
import os

import keras
import numpy as np

from tf_cyclegan import factory, fs
from tf_cyclegan.errors import UserError
from tf_cyclegan.layers import PadToMultiple

# Measured peak resident memory of one graph-mode call / this estimate: up to 2.4 (resnet_9blocks, ngf 64, float32,
# 1-4 MP; unet_64 ngf 32: 1.3), on AMD EPYC (Zen 4, avx512_bf16), TF 2.21, 2026-12-02. The allocator and the
# convolutions' own buffers come on top of the feature maps; the factor keeps the estimate above every measurement.
SAFETY = 2.5
PROBE = 64  # probe size in px, rounded up to the network's stride
GIB = 2**30


def _feature_maps(generator):
    """Per input pixel, the bytes of every feature map of one call, and the positions (in the graph's order)
    where each is made and last used."""

    stride = max([layer.multiple for layer in generator.layers if isinstance(layer, PadToMultiple)] or [1])
    side = -(-PROBE // stride) * stride
    (image,) = generator.inputs
    operations = [op for op in generator.operations if not isinstance(op, keras.layers.InputLayer)]
    probe = keras.Model(image, [op.output for op in operations])
    outputs = probe(np.zeros((1, side, side, image.shape[-1]), np.float32), training=False)
    size = {id(image): image.shape[-1] * 4 / side**2}
    size.update(
        {id(op.output): int(np.prod(out.shape)) * out.dtype.size / side**2 for op, out in zip(operations, outputs)}
    )
    born = {id(image): -1, **{id(op.output): i for i, op in enumerate(operations)}}
    dies = dict(born)
    for i, op in enumerate(operations):
        for tensor in op._inbound_nodes[0].input_tensors:
            dies[id(tensor)] = max(dies[id(tensor)], i)
    return size, born, dies, len(operations)


def bytes_per_pixel(generator):
    """Estimated peak bytes per input pixel of one inference call of a functional Keras ``generator``:
    the feature maps alive at once at the widest point, times SAFETY."""
    size, born, dies, count = _feature_maps(generator)
    peak = max(sum(bytes_ for key, bytes_ in size.items() if born[key] <= i <= dies[key]) for i in range(count))
    return SAFETY * peak


def stored_bytes_per_pixel(generator):
    """Bytes per input pixel of all the feature maps of one call: what training keeps for the backward pass."""
    return sum(_feature_maps(generator)[0].values())


class DoesNotFit(UserError):
    """Settings that cannot train here: a batch larger than the data, or more memory than the machine has."""


def check_training_fits(config, domains):
    """Refuses a batch larger than the data and sizes whose minimum memory (``training_minimum``) is more than
    this machine has, in one line naming the flags."""
    largest = max(len(domains.train_a), len(domains.train_b))
    if config.train.batch_size > largest:
        raise DoesNotFit(
            f"--batch_size={config.train.batch_size} is larger than the {largest} images of the larger "
            "domain: an epoch would be shorter than one batch"
        )
    # A probe with zero weights: drawing random ones here would change the run's own initial weights.
    probe = factory.build_generators(
        dataclasses.replace(config, model=dataclasses.replace(config.model, init="zeros"))
    )[0]
    need, what = training_minimum(config, probe)
    have = total()
    if need > have:
        raise DoesNotFit(
            f"--image_size={config.data.image_size}, --batch_size={config.train.batch_size} and "
            f"--pool_size={config.loss.pool_size} need at least {gib(need)} ({what}), more than this "
            f"machine's {gib(have)}"
        )


def training_minimum(config, generator):
    """(bytes, what) that training at ``config``'s image size needs at the least: both history pools and the
    feature maps of the four generator calls a step keeps for its gradients (no discriminator, no overhead)."""
    data, loss = config.data, config.loss
    if data.preprocess in ("scale_width", "none"):  # sizes vary per image; no pool
        return 0, ""
    pixels = data.image_size**2
    pools = 2 * loss.pool_size * pixels * max(data.channels_a, data.channels_b) * 4
    maps = 4 * config.train.batch_size * pixels * stored_bytes_per_pixel(generator)
    return pools + maps, (
        f"history pools of 2 x {loss.pool_size} images and the feature maps of 4 generator calls "
        f"on {config.train.batch_size} x {data.image_size} x {data.image_size} px"
    )


def estimate(bytes_per_px, height, width, batch=1):
    """Bytes to translate ``batch`` images of ``height`` x ``width`` in one call."""
    return bytes_per_px * height * width * batch


def available():
    """Bytes this process may still use: the smaller of the memory available now and the cgroup's remaining limit."""
    found = []
    try:
        for line in fs.path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            text = fs.path(limit).read_text().strip()
            if text.isdigit():
                found.append(max(0, int(text) - int(fs.path(usage).read_text().strip())))
        except (OSError, ValueError):
            continue
    if not found:
        found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return min(found)


def total():
    """Bytes of memory this machine (or the cgroup it runs in) has in all."""
    found = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = fs.path(path).read_text().strip()
            if text.isdigit():
                found.append(int(text))
        except OSError:
            continue
    return min(found)


def gib(num_bytes):
    """'3.2 GB' (binary gigabytes, as free and top count them)."""
    return f"{num_bytes / GIB:.1f} GB"
