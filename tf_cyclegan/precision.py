"""Choosing the numeric precision for the hardware at hand (``--precision=auto``).

bfloat16 pays off only where the hardware multiplies it natively: CPUs with AVX-512 BF16 or
AMX-BF16 (oneDNN's bf16 convolutions run about twice as fast as float32 there) and GPUs of
compute capability 8.0 or newer. Older GPUs with tensor cores (7.x) get float16 with loss
scaling. Everywhere else bfloat16 is emulated (many times slower), so float32 is the choice.
"""

import dataclasses

import tensorflow as tf

from tf_cyclegan import fs

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# CPU flags (as /proc/cpuinfo spells them) that mean native bfloat16 arithmetic.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
SET = "as set by a flag, the preset or the run's config.yaml"


@dataclasses.dataclass(frozen=True)
class Choice:
    precision: str
    reason: str

    def line(self):
        return f"precision {self.precision} ({self.reason})"


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (empty where the system does not list them)."""
    try:
        text = fs.path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16_flags(flags):
    """The flags among ``flags`` that give native bfloat16, in BF16_FLAGS order."""
    return [flag for flag in BF16_FLAGS if flag in flags]


def gpu_capabilities():
    """(major, minor) compute capability of each visible GPU ((0, 0) where TensorFlow does not say)."""

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability") or (0, 0)))
    return capabilities


def choose(requested, flags, gpus):
    """The precision for ``requested`` ('auto' or one of PRECISIONS) on a machine with CPU ``flags``
    and GPUs of compute capabilities ``gpus`` (a list of (major, minor)); returns a Choice."""
    native = native_bf16_flags(flags)
    if requested != "auto":
        if requested == "mixed_bfloat16" and not gpus and not native:
            return Choice(
                requested,
                f"{SET}; this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag), "
                "so it is emulated and slow: --precision=auto picks float32 here",
            )
        return Choice(requested, SET)
    if gpus:
        oldest = min(gpus)
        if oldest >= (8, 0):
            return Choice("mixed_bfloat16", f"auto: GPU compute capability {oldest[0]}.{oldest[1]} has native bfloat16")
        if oldest >= (7, 0):
            return Choice(
                "mixed_float16",
                f"auto: GPU compute capability {oldest[0]}.{oldest[1]} has float16 "
                "tensor cores, no fast bfloat16; with loss scaling",
            )
        return Choice("float32", "auto: a GPU older than compute capability 7.0 has no fast half precision")
    if native:
        return Choice("mixed_bfloat16", f"auto: the CPU has native bfloat16 ({', '.join(native)})")
    return Choice("float32", "auto: the CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag)")


def choose_here(requested):
    """``choose`` for this machine."""
    gpus = gpu_capabilities() if requested in ("auto", "mixed_bfloat16") else []
    return choose(requested, cpu_flags(), gpus)
