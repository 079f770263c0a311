"""Writing files so that a reader never sees half of one: a temporary name beside the target, then a rename.

A process killed mid-write (SIGKILL, a full disk, a power cut) leaves at most a hidden
``.<name>.tmp-<pid>`` file, never a cut-short file under the final name.
"""

import os
from pathlib import Path


def temporary_name(path):
    """A hidden name beside ``path`` that no other process uses."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_atomic(path, data):
    """Writes ``data`` (bytes, or text as UTF-8) to ``path`` by way of a temporary file and a rename."""
    path = Path(path)
    temporary = temporary_name(path)
    try:
        temporary.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
