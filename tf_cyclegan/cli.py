"""Shared command-line plumbing: flags for every config field, one-line errors, quiet TensorFlow.

Only the command-line modules (train, translate, export, evaluate, data) import this;
the library never does.
"""

import argparse
import atexit
import os
import re
import sys
import threading

from tf_cyclegan import config as config_lib

# TensorFlow C++ lines that are noise for a user: absl INFO/WARNING lines, the CUDA probe on a machine without a GPU,
# grappler's remapper message, the CPU-feature notice. Anything else on stderr (our errors included) passes.
HARMLESS = re.compile(
    r"^(?:[IW]\d{4} [\d:.]+ +\d+ \S+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|E\d{4} .*(?:failed call to cuInit|remapper failed|Unable to register cu\w+ factory)"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)"
)
VERBOSE_ENV = "TF_CYCLEGAN_VERBOSE"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a single line and exits with code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def fail(prog, message, code=2):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def add_config_flags(parser):
    """One ``--field=value`` flag per config field, default and choices in its help."""
    defaults = config_lib.Config()
    group = parser.add_argument_group("config fields (also settable in YAML or with --set=section.field=value)")
    for name, (dotted, kind) in config_lib.flat_fields().items():
        section, _, field = dotted.rpartition(".")
        default = getattr(getattr(defaults, section), field) if section else getattr(defaults, field)
        choices = config_lib.CHOICES.get(dotted)
        help_text = f"{dotted} ({kind.__name__}, default: {default!r})"
        if choices:
            help_text += f"; one of {', '.join(choices)}"
        group.add_argument(f"--{name}", default=None, metavar=kind.__name__.upper(), help=help_text)


def require_run_dir(prog, run_dir):
    """Fails in one line, before TensorFlow loads, when ``run_dir`` is not a training run directory."""
    from tf_cyclegan import run

    try:
        run.read_config(run_dir)
    except config_lib.ConfigError as error:
        fail(prog, str(error))


def add_verbose_flag(parser):
    parser.add_argument("--verbose", action="store_true",
                        help=f"show TensorFlow's own log lines (or set {VERBOSE_ENV}=1)")


def given_fields(args):
    """{field: text} of the config flags actually given on the command line."""
    return {name: value for name, value in vars(args).items()
            if value is not None and name in config_lib.flat_fields()}


def quiet_tensorflow(verbose=False):
    """Keeps TensorFlow's harmless C++ log lines off the terminal (call before TensorFlow loads).

    Also makes stdout and stderr escape what they cannot encode (a file name in Latin-1, say).

    ``verbose`` (or TF_CYCLEGAN_VERBOSE=1) leaves stderr untouched. Otherwise C++ INFO and
    WARNING lines are turned off and stderr passes through a filter that drops the HARMLESS lines.
    """
    for stream in (sys.stdout, sys.stderr):  # file names in any encoding print, escaped, instead of failing
        stream.reconfigure(errors="backslashreplace")
    if verbose or os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as lines, os.fdopen(terminal, "wb", buffering=0) as out:
            for line in lines:
                if not HARMLESS.match(line.decode("utf-8", "replace")):
                    out.write(line)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()

    def drain():
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # closes the pipe's last writer: the filter sees its end
        thread.join(timeout=5)

    atexit.register(drain)
