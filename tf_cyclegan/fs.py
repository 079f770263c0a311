"""Files and folders users name: atomic writes, and output folders checked before any work.

A process killed mid-write (SIGKILL, a full disk, a power cut) leaves at most a hidden
``.<name>.tmp-<pid>`` file, never a cut-short file under the final name. Nothing here loads
TensorFlow, so a command checks its output folder before it loads a model.
"""

import os
from pathlib import Path

from tf_cyclegan.errors import UserError


def check_output_folder(output, flag="--output", source=None):
    """Raises UserError (one line naming ``flag``) when ``output`` cannot be a folder to write into: it is a file, a
    name in it is too long for the file system, or it is the ``source`` folder (whose files it would overwrite)."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UserError(f"{flag}: {output} is a file, not a folder")
    for part in output.parts:
        if len(os.fsencode(part)) > 255:  # NAME_MAX of every common file system
            raise UserError(f"{flag}: {output}: File name too long ({len(os.fsencode(part))} bytes in one name)")
    if source is not None and Path(source).is_dir() and output.resolve() == Path(source).resolve():
        raise UserError(f"{flag}: {output} is the --input folder; translations would overwrite the images")
    return output


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
