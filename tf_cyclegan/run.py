"""The run directory: where a run's settings, checkpoints, logs and samples live.

``runs/<name>/config.yaml`` (the resolved settings, re-read by translate, export and
evaluate), ``checkpoints/``, ``logs/``, ``samples/``, ``best/`` and ``eval.json``. The
folder a run was found in is its run directory, wherever it was first created.
"""

import dataclasses
import json
import os
import socket
import time

from tf_cyclegan import config as config_lib
from tf_cyclegan import fs
from tf_cyclegan.errors import UserError


@dataclasses.dataclass(frozen=True)
class RunPaths:
    root: object  # a pathlib.Path or an fs.RemotePath (see fs.path)

    def __post_init__(self):
        object.__setattr__(self, "root", fs.path(self.root))

    @property
    def config(self):
        return self.root / "config.yaml"

    @property
    def checkpoints(self):
        return self.root / "checkpoints"

    @property
    def logs(self):
        return self.root / "logs"

    @property
    def samples(self):
        return self.root / "samples"

    @property
    def best(self):
        return self.root / "best"

    @property
    def eval_report(self):
        return self.root / "eval.json"

    @property
    def health(self):
        return self.root / "health.json"


class RunLocked(UserError, RuntimeError):
    """Another trainer holds the run directory (the message names it)."""


class RunLock:
    """One trainer per run directory: an exclusive ``flock`` on ``<run>/.lock``, which records the holder.

    The operating system drops the lock when its process ends, however it ends, so a lock
    left by a process that is gone is taken over (with a message). Readers (translate,
    export, evaluate, TensorBoard) never take it. ``translate`` holds one on its output folder
    (``holder``, ``name`` and ``advice`` say so in the messages).

    ``flock`` is local: on a run directory that is a URI (gs://, s3://, ...) there is no lock,
    and the start says so in one line (two trainers there would write over each other's files).
    """

    def __init__(
        self,
        run_dir,
        log=print,
        holder="trainer",
        name=".lock",
        advice="wait for it to finish or stop it, or train into another --run_dir",
    ):
        self.path = fs.path(run_dir) / name
        self.log = log
        self.holder, self.advice = holder, advice
        self._lock = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fs.is_remote(self.path):
            self.log(
                f"note: {self.path.parent} is not on a local disk, where the {self.holder} lock works; "
                f"nothing stops a second {self.holder} writing there"
            )
            return self
        try:
            lock = fs.LocalLock(self.path)
        except fs.Locked as locked:
            raise RunLocked(
                f"{self.path.parent} is in use by another {self.holder} ({_describe(locked.previous)}); {self.advice}"
            ) from None
        previous = lock.previous
        if previous.strip():
            self.log(
                f"note: took over {self.path} from a {self.holder} that is no longer running ({_describe(previous)})"
            )
        record = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        lock.record(json.dumps(record))
        self._lock = lock
        return self

    def __exit__(self, *exc):
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        return False


def _describe(record_text):
    try:
        record = json.loads(record_text)
        return f"PID {record['pid']} on {record['host']}, started {record['started']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def write_json(path, value):
    fs.write_atomic(path, json.dumps(value, indent=2))


CONFIG_HEADER = "# tf_cyclegan run config: the resolved settings of this run\n"
CONFIG_END = "# end of config\n"


def read_config(run_dir, validate=True):
    """The resolved config a training run wrote; its ``run_dir`` is the folder it was read from.

    A config.yaml that starts with CONFIG_HEADER must end with CONFIG_END: a file cut short
    is an error, not a run resumed with default settings. A setting out of range is named
    with the file it is in (``validate=False`` leaves that to the caller, who may apply flags first).
    """
    paths = RunPaths(run_dir)
    if not paths.config.is_file():
        raise config_lib.ConfigError(f"--run_dir: {run_dir} has no config.yaml (is it a tf_cyclegan run directory?)")
    config = config_lib.load_yaml(paths.config)
    text = paths.config.read_text(encoding="utf-8")
    if text.startswith(CONFIG_HEADER) and not text.endswith(CONFIG_END):
        lines = text.count("\n") + 1
        raise config_lib.ConfigError(
            f"{paths.config}: cut short after line {lines} (no '{CONFIG_END.strip()}' line); "
            "restore it from a backup or start a new --run_dir"
        )
    config.run_dir = str(run_dir)
    if not validate:
        return config
    try:
        return config_lib.validate(config)
    except config_lib.ConfigError as error:
        raise config_lib.ConfigError(f"{paths.config}: {error}") from None


def write_config(config, run_dir):
    RunPaths(run_dir).root.mkdir(parents=True, exist_ok=True)
    fs.write_atomic(RunPaths(run_dir).config, CONFIG_HEADER + config_lib.to_yaml(config) + CONFIG_END)


def resolve_config(fields, sets=(), config_file=None):
    """Assembles a run's config once, in this order (later wins):

    defaults → the preset named after the dataset (or ``config_file``) → the run's own
    config.yaml when the run directory already holds one (resuming) → ``fields``
    (``{flag name: text}``) → ``sets`` (``section.field=value``). The run directory is
    ``fields['run_dir']`` or ``runs/<name>``; a resumed run's ``run_dir`` is the folder it
    was found in, not the one saved in its config.yaml.
    """
    fresh = config_lib.Config()
    data_fields = {k: v for k, v in fields.items() if k in ("dataset", "domain_a", "domain_b")}
    config_lib.apply_fields(fresh, data_fields)
    preset = fs.path(config_file) if config_file else config_lib.preset_for_dataset(fresh.data.dataset)
    if preset is not None:
        fresh = config_lib.load_yaml(preset)
    config_lib.apply_fields(fresh, fields, sets)
    run_dir = fields.get("run_dir") or str(fs.path("runs") / (fresh.name or config_lib.default_name(fresh)))
    fs.check_output_folder(run_dir, "--run_dir")  # a file, or a name too long: one line before TensorFlow loads
    if RunPaths(run_dir).config.is_file():
        config = config_lib.apply_fields(read_config(run_dir, validate=False), fields, sets)
    else:
        config = fresh
    config.name = config.name or config_lib.default_name(config)
    config.run_dir = run_dir
    try:
        return config_lib.validate(config)
    except config_lib.ConfigError as error:
        if RunPaths(run_dir).config.is_file():  # the bad value may come from the run's own config.yaml
            raise config_lib.ConfigError(f"{error} (settings of {RunPaths(run_dir).config} and the flags)") from None
        raise


def latest_checkpoint(directory):
    """The newest checkpoint prefix in ``directory``, listed in its index file or not (None when it has none)."""
    # Here, not at the top: checkpoints loads TensorFlow, and run serves the command lines' fast paths.
    from tf_cyclegan import checkpoints

    found = checkpoints.on_disk(directory) if fs.path(directory).is_dir() else []
    return found[0] if found else None


def run_checkpoint(run_dir, checkpoint=None):
    """``checkpoint`` when given, else the run directory's latest checkpoint prefix (None if it has none)."""
    return checkpoint or latest_checkpoint(RunPaths(run_dir).checkpoints)


class NoCheckpoint(UserError):
    """The run directory has no checkpoint yet."""


def open_run(run_dir, checkpoint=None, purpose="use"):
    """(config, checkpoint prefix) of a training run: ``checkpoint`` when given, else the latest.

    The one way translate, export, evaluate and the web page open a run; a folder that is not a
    run is a ConfigError, a run without a checkpoint a NoCheckpoint naming ``purpose``.
    """
    config = read_config(run_dir)
    path = run_checkpoint(run_dir, checkpoint)
    if not path:
        raise NoCheckpoint(f"--run_dir: {run_dir} has no checkpoint to {purpose} (train first)")
    return config, path


def read_best(run_dir):
    """The best/ checkpoint's record ({metric, value, step}) or None."""
    record = RunPaths(run_dir).best / "best.json"
    return json.loads(record.read_text()) if record.is_file() else None


def write_best(run_dir, record):
    write_json(RunPaths(run_dir).best / "best.json", record)
