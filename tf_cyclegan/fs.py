"""Files and folders users name: local paths and any URI TensorFlow's file systems read (gs://, s3://, hdfs://, ram://).

Every path a user gives goes through :func:`path`: a local one becomes a ``pathlib.Path``,
a URI a :class:`RemotePath` with the part of pathlib's interface the package uses, served by
``tf.io.gfile``. Nothing else in the package opens, lists, renames or deletes user files.

Writes never leave a cut-short file under the final name: a file is written under a hidden
``.<name>.tmp-<pid>`` name beside it and renamed. Locally the rename is atomic; on an object
store it is a server-side copy, which replaces the old object whole, and the size is read back
after it. Folders (exports) are staged locally and published by a rename, or on a URI copied
file by file and read back by the caller. Nothing here loads TensorFlow until a URI is used, so
a command checks a local output folder before it loads a model.
"""

import contextlib
import errno
import fcntl
import glob
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from tf_cyclegan.errors import UserError
from tf_cyclegan.remote import RemotePath, gfile, reported

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
PACKAGE = Path(__file__).resolve().parent  # the installed package (presets, bundled datasets, the web page)


def is_remote(location):
    """True for a URI (``scheme://...``), which TensorFlow's file systems serve; False for a local path."""
    return bool(_URI.match(str(location)))


def path(location):
    """A user's path as a ``pathlib.Path`` (local) or a :class:`RemotePath` (a URI)."""
    if isinstance(location, RemotePath | Path):
        return location
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    return RemotePath(text) if is_remote(text) else Path(text)


class Locked(Exception):
    """The file is locked by another process; ``previous`` is the text it holds."""

    def __init__(self, previous):
        super().__init__(previous)
        self.previous = previous


class LocalLock:
    """An exclusive ``flock`` on a local file, which records its holder; the operating system drops it when
    the process ends, however it ends. Raises :class:`Locked` when another process holds it."""

    def __init__(self, location):
        fd = os.open(location, os.O_RDWR | os.O_CREAT, 0o644)
        self.previous = os.read(fd, 4096).decode("utf-8", "replace")  # the last holder's record, if any
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Locked(self.previous) from None
        self._fd = fd

    def record(self, text):
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def release(self):
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def temporary_name(location):
    """A hidden name beside ``location`` that no other process uses."""
    location = path(location)
    return location.with_name(f".{location.name}.tmp-{os.getpid()}")


def write_atomic(location, data):
    """Writes ``data`` (bytes, or text as UTF-8) to ``location``: whole or not at all under that name."""
    location = path(location)
    data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    temporary = temporary_name(location)
    try:
        temporary.write_bytes(data)
        temporary.replace(location)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if isinstance(location, RemotePath) and location.stat().st_size != len(data):
        raise OSError(errno.EIO, f"wrote {len(data)} bytes, {location.stat().st_size} read back", str(location))


def remove_tree(location):
    """Deletes a folder and everything in it (no error when it is not there)."""
    location = path(location)
    if isinstance(location, RemotePath):
        if location.exists():
            with reported(location):
                gfile().rmtree(str(location))
        return
    shutil.rmtree(location, ignore_errors=True)


def move(source, target):
    """Moves a file (across file systems when needed)."""
    source, target = path(source), path(target)
    if isinstance(source, RemotePath) or isinstance(target, RemotePath):
        copy_file(source, target)
        source.unlink()
        return
    shutil.move(str(source), str(target))


def copy_file(source, target):
    """Copies one file, streamed (either side may be local or a URI), under a temporary name first."""
    source, target = path(source), path(target)
    if not isinstance(source, RemotePath) and not isinstance(target, RemotePath):
        shutil.copyfile(source, target)
        return
    temporary = temporary_name(target)
    with reported(f"{source} -> {target}"):
        gfile().copy(str(source), str(temporary), overwrite=True)
    temporary.replace(target)


def copy_tree(source, target, last=()):
    """Copies the folder ``source`` to ``target`` file by file, the names in ``last`` after all others (so a
    reader that waits for, e.g., ``saved_model.pb`` sees the other files first)."""
    source, target = path(source), path(target)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    for found in sorted(files, key=lambda p: p.name in last):
        destination = target / str(found.relative_to(source))
        destination.parent.mkdir(parents=True, exist_ok=True)
        copy_file(found, destination)


def staging_folder(parent, log=print):
    """A private new folder to write an export into before it is published in ``parent``.

    On a local disk it is in ``parent`` (so publishing is a rename), named after this host and
    process (``.staging-<host>-<pid>-*``): those an export on this host left when it was killed
    are removed here, those of a running one never; it is made readable like any folder
    (``mkdtemp`` makes it 0700: a server running as another user could not read the export).
    For a URI it is a local temporary folder, copied when published.
    """
    parent = path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    if isinstance(parent, RemotePath):
        return Path(tempfile.mkdtemp(prefix="tf_cyclegan-staging-"))
    prefix = f".staging-{socket.gethostname()}-"
    for left in parent.glob(f"{glob.escape(prefix)}*"):
        pid = left.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
            log(f"note: removed {left}, left by an export that was stopped")
    staging = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    return staging


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def publish_folder(staging, target, last=()):
    """Puts the finished folder ``staging`` (from :func:`staging_folder`) at ``target``, which must not exist
    (FileExistsError). On a local disk a rename: atomic, and it fails when another process took ``target``
    meanwhile. On a URI a copy, file by file with the names in ``last`` after all others, then the staging
    folder is deleted: object stores have no rename, so the caller reads the result back."""
    target = path(target)
    if target.exists():  # a rename would replace an empty folder, a copy would merge into any
        raise FileExistsError(errno.EEXIST, "File exists", str(target))
    if isinstance(target, RemotePath):
        copy_tree(staging, target, last)
        remove_tree(staging)
        return target
    os.rename(staging, target)
    return target


def replace_folder(staging, target, last=()):
    """Like :func:`publish_folder`, in place of an earlier ``target`` (locally never half of either)."""
    target = path(target)
    if isinstance(target, RemotePath):
        remove_tree(target)
        return publish_folder(staging, target, last)
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        os.rename(target, old)
    os.rename(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


@contextlib.contextmanager
def writing(location):
    """A local path to write the file ``location`` into (for libraries that write only local files by name).
    The file appears under ``location`` only when the block ends without an error: renamed from a hidden
    temporary name beside it, or for a URI copied from a temporary folder; otherwise it is deleted."""
    location = path(location)
    if isinstance(location, RemotePath):
        with tempfile.TemporaryDirectory(prefix="tf_cyclegan-") as folder:
            staged = Path(folder) / f"output{location.suffix}"
            yield staged
            location.parent.mkdir(parents=True, exist_ok=True)
            copy_file(staged, location)
        return
    temporary = temporary_name(location)
    try:
        yield temporary
        os.replace(temporary, location)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def local_file(location):
    """A local path holding the file ``location`` names: itself when local, a temporary copy of a URI
    (for libraries that read only local files); the copy is deleted after."""
    location = path(location)
    if not isinstance(location, RemotePath):
        yield location
        return
    with tempfile.TemporaryDirectory(prefix="tf_cyclegan-") as folder:
        copy = Path(folder) / f"input{location.suffix}"
        copy_file(location, copy)
        yield copy


def check_output_folder(output, flag="--output", source=None):
    """Raises UserError (one line naming ``flag``) when ``output`` cannot be a folder to write into: it is a file, a
    name in it is too long for the file system, or it is the ``source`` folder (whose files it would overwrite).
    Returns it as a path."""
    output = path(output)
    for part in output.parts:
        if len(os.fsencode(part)) > 255:  # NAME_MAX of every common file system
            raise UserError(f"{flag}: {output}: File name too long ({len(os.fsencode(part))} bytes in one name)")
    if output.exists() and not output.is_dir():
        raise UserError(f"{flag}: {output} is a file, not a folder")
    if source is not None and path(source).is_dir() and output.resolve() == path(source).resolve():
        raise UserError(f"{flag}: {output} is the --input folder; translations would overwrite the images")
    return output
