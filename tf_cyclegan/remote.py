"""Paths on TensorFlow's file systems (gs://, s3://, hdfs://, ram://): the part of pathlib's interface the
package uses, served by ``tf.io.gfile``. Users' paths reach it through :func:`tf_cyclegan.fs.path`.

TensorFlow loads on the first call that touches the file system, never at import. Its errors
become the OSError a local path would raise (the commands print those in one line).
"""

import contextlib
import errno
import os
import posixpath
import re
from pathlib import PurePosixPath


def gfile():
    """``tf.io.gfile``, imported on first use."""
    import tensorflow as tf  # only where a URI is used: local paths never load TensorFlow here

    return tf.io.gfile


def _os_error(error, location):
    """TensorFlow's file-system error as the OSError a local path would raise (the CLI prints it in one line)."""
    import tensorflow as tf

    kinds = {
        tf.errors.NotFoundError: (FileNotFoundError, errno.ENOENT),
        tf.errors.PermissionDeniedError: (PermissionError, errno.EACCES),
        tf.errors.AlreadyExistsError: (FileExistsError, errno.EEXIST),
    }
    kind, number = kinds.get(type(error), (OSError, errno.EIO))
    reason = (getattr(error, "message", "") or str(error)).strip().splitlines()
    return kind(number, reason[0] if reason else type(error).__name__, str(location))


@contextlib.contextmanager
def reported(location):
    """Turns TensorFlow's file-system errors inside the block into OSErrors naming ``location``."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as error:
        raise _os_error(error, location) from None


class _Stat:
    def __init__(self, length, mtime_nsec):
        self.st_size, self.st_mtime = int(length), mtime_nsec / 1e9


class RemotePath:
    """A file or folder on a TensorFlow file system, named by its URI (``scheme://bucket/key``)."""

    def __init__(self, text, is_file=None):
        scheme, _, rest = str(text).partition("://")
        rest = re.sub(r"/{2,}", "/", rest)
        self._scheme, self._rest = scheme, rest.rstrip("/") or rest
        self._is_file = is_file  # known from a listing: a bucket of many images is not asked once per file

    # Names.
    def __str__(self):
        return f"{self._scheme}://{self._rest}"

    __fspath__ = __str__

    def __repr__(self):
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __lt__(self, other):
        return str(self) < str(other)

    def __truediv__(self, name):
        return RemotePath(f"{self}/{os.fspath(name) if isinstance(name, os.PathLike) else name}")

    @property
    def name(self):
        return self._rest.rsplit("/", 1)[-1]

    @property
    def suffix(self):
        return PurePosixPath(self.name).suffix

    @property
    def stem(self):
        return PurePosixPath(self.name).stem

    @property
    def parent(self):
        head = self._rest.rsplit("/", 1)[0] if "/" in self._rest else ""
        return RemotePath(f"{self._scheme}://{head}") if head else self

    @property
    def parts(self):
        return (f"{self._scheme}://", *[part for part in self._rest.split("/") if part])

    def with_name(self, name):
        return self.parent / name

    def with_suffix(self, suffix):
        return self.with_name(self.stem + suffix)

    def relative_to(self, other):
        return PurePosixPath(self._rest).relative_to(PurePosixPath(RemotePath(str(other))._rest))

    def resolve(self):
        return RemotePath(f"{self._scheme}://{posixpath.normpath(self._rest or '.').lstrip('.')}")

    # The file system.
    def exists(self):
        with reported(self):
            return gfile().exists(str(self))

    def is_dir(self):
        with reported(self):
            return gfile().isdir(str(self))

    def is_file(self):
        if self._is_file is not None:
            return self._is_file
        return self.exists() and not self.is_dir()

    def stat(self):
        with reported(self):
            found = gfile().stat(str(self))
        return _Stat(found.length, found.mtime_nsec)

    def mkdir(self, parents=False, exist_ok=False):
        if self.is_dir():
            if not exist_ok:
                raise FileExistsError(errno.EEXIST, "File exists", str(self))
            return
        if not parents and not self.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(self.parent))
        with reported(self):
            gfile().makedirs(str(self))

    def iterdir(self):
        with reported(self):
            names = gfile().listdir(str(self))
        return [self / name.rstrip("/") for name in sorted(names)]

    def glob(self, pattern):
        with reported(self):
            return [RemotePath(found) for found in sorted(gfile().glob(f"{self}/{pattern}"))]

    def rglob(self, pattern):
        """Everything under this folder (only ``*`` is supported as the pattern)."""
        if pattern != "*":
            raise ValueError(f"RemotePath.rglob supports '*' only, not {pattern!r}")
        found = []
        with reported(self):
            for folder, folders, files in gfile().walk(str(self)):
                found += [RemotePath(f"{folder}/{name.rstrip('/')}", is_file=False) for name in folders]
                found += [RemotePath(f"{folder}/{name}", is_file=True) for name in files]
        return sorted(found)

    def open(self, mode="r"):
        with reported(self):
            return gfile().GFile(str(self), mode)

    def read_bytes(self):
        with reported(self), self.open("rb") as file:
            return file.read()

    def read_text(self, encoding="utf-8", errors="strict"):
        return self.read_bytes().decode(encoding, errors)

    def write_bytes(self, data):
        with reported(self), self.open("wb") as file:
            file.write(data)

    def write_text(self, text, encoding="utf-8"):
        self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok=False):
        if missing_ok and not self.exists():
            return
        with reported(self):
            gfile().remove(str(self))

    def rename(self, target):
        """Moves this file or folder to ``target`` (on an object store, a copy then a delete: not atomic)."""
        with reported(self):
            gfile().rename(str(self), str(target), overwrite=True)
        return target if isinstance(target, RemotePath) else RemotePath(str(target))

    replace = rename

    def chmod(self, mode):
        """Object stores keep no mode bits; their access rules are the bucket's."""
