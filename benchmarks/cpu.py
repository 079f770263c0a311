"""The CPU a benchmark ran on, named with its bfloat16 flags (every speed figure is printed next to it)."""

import os
import platform
from pathlib import Path


def describe_cpu():
    """'Intel(R) Xeon(R) ... (2 threads; native bf16: amx_bf16, avx512_bf16)' or '... native bf16: none'."""
    from tf_cyclegan.precision import cpu_flags, native_bf16_flags

    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    native = native_bf16_flags(flags)
    avx512 = "AVX-512" if "avx512f" in flags else "no AVX-512"
    return (
        f"CPU: {model} ({os.cpu_count()} threads, {avx512}; native bf16: {', '.join(native) or 'none'}; "
        f"oneDNN {'off' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '0' else 'default'})"
    )
