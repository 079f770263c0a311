"""Checkpoints that survive damage: verified saves, careful rotation, restore with fallback.

A save is written, read back (its index and its step), and only then recorded in the
``checkpoint`` index file and allowed to rotate older ones away. A restore tries the
newest checkpoint on disk (listed in the index or not) and falls back to older ones when
it is unreadable, partial or missing; the damaged files are moved to ``damaged/``, never
deleted. A folder whose checkpoints all fail is an error, never a silent restart.
"""

import re

import tensorflow as tf

from tf_cyclegan import fs
from tf_cyclegan.errors import UserError

NAME = "ckpt"


class CheckpointError(UserError, RuntimeError):
    """No usable checkpoint, or one that does not fit the config (the message is one line)."""


class DoesNotMatch(CheckpointError):
    """A readable checkpoint of another configuration (other networks or settings)."""


def step_of(prefix):
    match = re.search(rf"{NAME}-(\d+)$", str(prefix))
    return int(match.group(1)) if match else None


def on_disk(directory):
    """Checkpoint prefixes in ``directory``: those with an index file and those the index file names."""
    directory = fs.path(directory)
    found = {str(p)[: -len(".index")] for p in directory.glob(f"{NAME}-*.index")}
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except (tf.errors.OpError, ValueError):
        state = None  # a garbled index file: the files themselves still tell
    if state is not None:
        found |= {str(directory / fs.path(p).name) for p in state.all_model_checkpoint_paths}
    return sorted((p for p in found if step_of(p) is not None), key=step_of, reverse=True)


def damage(prefix):
    """Why ``prefix`` cannot be a complete checkpoint ('' when its files look whole)."""
    index = fs.path(f"{prefix}.index")
    if not index.is_file():
        return "its files are missing"
    if not list(index.parent.glob(f"{index.name[: -len('.index')]}.data-*")):
        return "its data file is missing"
    try:
        # Not tf.train.load_checkpoint: it takes a prefix for a folder where the file system says one exists
        # (ram:// answers "is a folder" for any prefix of a file name).
        reader = tf.compat.v1.train.NewCheckpointReader(str(prefix))
        for name in reader.get_variable_to_shape_map():  # every tensor, so each one's checksum is verified
            reader.get_tensor(name)
    except Exception as error:  # noqa: BLE001 - any failure to read means damage
        return f"unreadable: {first_line(error)}"
    return ""


def first_line(error):
    """The first line of an error, without TensorFlow's ``{{function_node ...}}`` prefix."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", str(error)).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:160]


def files_of(prefix):
    """The files of the checkpoint ``prefix`` (its index and data files)."""
    prefix = fs.path(prefix)
    return prefix.parent.glob(f"{prefix.name}.*")


def move_aside(prefix):
    """Moves a checkpoint's files into ``damaged/`` next to it (never deletes them); returns that folder."""
    prefix = fs.path(prefix)
    folder = prefix.parent / "damaged"
    folder.mkdir(exist_ok=True)
    for path in files_of(prefix):
        fs.move(path, folder / path.name)
    return folder


class CheckpointKeeper:
    """Saves, verifies and rotates the checkpoints of one folder; restores the newest that restores."""

    def __init__(self, checkpoint, directory, keep, log=print):
        self.checkpoint, self.directory, self.keep, self.log = checkpoint, fs.path(directory), int(keep), log
        checkpoint.save_counter  # noqa: B018 - created now, so every write holds it (restore expects it)
        self.kept = [p for p in reversed(on_disk(self.directory)) if not damage(p)]

    @property
    def latest(self):
        return self.kept[-1] if self.kept else None

    def restore(self, source=None):
        """Restores the newest checkpoint of ``source`` (default: this folder) that restores; None if there is none."""
        source = fs.path(source or self.directory)
        candidates = on_disk(source)
        failures = []
        for prefix in candidates:
            reason = damage(prefix) or self._try(prefix)
            if not reason:
                self._report(failures, prefix, source)
                return prefix
            failures.append((prefix, reason))
        if failures:
            listed = "; ".join(f"{fs.path(p).name}: {why}" for p, why in failures[:3])
            raise CheckpointError(
                f"none of the {len(failures)} checkpoint(s) in {source} can be restored ({listed}); "
                "nothing was moved or deleted. Use a new --run_dir to start again"
            )
        return None

    def _try(self, prefix):
        try:
            self.checkpoint.restore(prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError) as error:
            raise DoesNotMatch(
                f"cannot resume from {prefix}: it does not match this config ({first_line(error)}); use a new --run_dir"
            ) from None
        except Exception as error:  # noqa: BLE001 - a read failure mid-restore is damage
            return f"unreadable: {first_line(error)}"
        return ""

    def _report(self, failures, restored, source):
        own = source == self.directory  # another worker's folder is its own to tidy
        for prefix, reason in failures:
            files = list(files_of(prefix))
            moved = f"moved to {move_aside(prefix)}" if own and files else "nothing moved"
            self.log(
                f"warning: skipped checkpoint {prefix} ({reason}; {moved}); resuming from step {step_of(restored)}"
            )
        if failures and own:
            self.kept = [p for p in self.kept if p not in dict(failures)]
            self._write_index()

    def save(self, step):
        """Writes ``ckpt-<step>``, reads it back, records it, and only then rotates older ones away."""
        prefix = str(self.directory / f"{NAME}-{step}")
        try:
            written = self.checkpoint.write(prefix)
        except (tf.errors.OpError, OSError) as error:
            raise CheckpointError(
                f"could not save {prefix} ({first_line(error)}); the previous checkpoint {self.latest} is intact"
            ) from None
        reason = damage(written)
        if reason:
            raise CheckpointError(
                f"the checkpoint just written, {written}, does not read back ({reason}); "
                f"the previous checkpoint {self.latest} is intact"
            )
        self.kept = [p for p in self.kept if p != written] + [written]
        self._write_index()
        self._rotate()
        return written

    def _rotate(self):
        """Deletes the oldest checkpoints beyond ``keep`` (called only once a newer save has read back)."""
        while len(self.kept) > max(self.keep, 1):
            old = self.kept.pop(0)
            self._write_index()
            for path in files_of(old):
                path.unlink()

    def _write_index(self):
        """Rewrites the ``checkpoint`` index file atomically, with names relative to the folder (runs can move)."""
        if not self.kept:
            return
        names = [fs.path(p).name for p in self.kept]
        lines = [f'model_checkpoint_path: "{names[-1]}"'] + [f'all_model_checkpoint_paths: "{n}"' for n in names]
        fs.write_atomic(self.directory / "checkpoint", "\n".join(lines) + "\n")
