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
import traceback

from tf_cyclegan import config as config_lib
from tf_cyclegan import run
from tf_cyclegan.errors import UserError
from tf_cyclegan.rules import base_type

# TensorFlow C++ lines that are noise for a user: absl INFO/WARNING lines, the CUDA probe on a machine without a GPU,
# grappler's remapper message, the CPU-feature notice. Anything else on stderr (our errors included) passes.
HARMLESS = re.compile(
    r"^(?:[IW]\d{4} [\d:.]+ +\d+ \S+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|E\d{4} .*(?:failed call to cuInit|remapper failed|Unable to register cu\w+ factory"
    r"|oneDNN supports DT_UINT8 only on platforms with AVX-512)"
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


def run_command(prog, body):
    """Runs a command's ``body()`` and returns its exit code (0 when it returns None).

    The one place where errors become what a user sees: a UserError is its one line and its
    ``exit_code``; an OSError (a path that is a file, read-only, too long, gone) names the path;
    running out of memory and Ctrl-C are one line too. Never a traceback, unless
    ``--verbose``/TF_CYCLEGAN_VERBOSE asks for one (for a bug report).
    """
    try:
        return body() or 0
    except UserError as error:
        _explain(prog, str(error), error.exit_code, error)
    except KeyboardInterrupt as error:
        _explain(prog, "interrupted", 130, error)
    except OSError as error:
        _explain(prog, describe_os_error(error), 1, error)
    except MemoryError as error:
        _explain(prog, "out of memory (try a smaller image size, batch or --tile)", 1, error)
    except Exception as error:  # TensorFlow's own errors, e.g. an allocation that failed
        if type(error).__name__ != "ResourceExhaustedError":
            raise
        _explain(
            prog,
            "out of memory: "
            + first_line(getattr(error, "message", "") or str(error))
            + " (try a smaller image size, batch or --tile)",
            1,
            error,
        )


def _explain(prog, message, code, error):
    if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        traceback.print_exception(error)
    fail(prog, message.strip().splitlines()[0] if message.strip() else type(error).__name__, code)


def describe_os_error(error):
    """'<path>: <reason>' for an OSError, naming both paths of a failed rename or link."""
    reason = error.strerror or str(error)
    names = [os.fsdecode(name) for name in (error.filename, error.filename2) if name is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


def first_line(text):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def add_config_flags(parser):
    """One ``--field=value`` flag per config field, default and choices in its help."""
    defaults = config_lib.Config()
    group = parser.add_argument_group("config fields (also settable in YAML or with --set=section.field=value)")
    for name, (dotted, kind) in config_lib.flat_fields().items():
        section, _, field = dotted.rpartition(".")
        default = getattr(getattr(defaults, section), field) if section else getattr(defaults, field)
        choices = config_lib.choices(dotted)
        kind, optional = base_type(kind)
        help_text = f"{dotted} ({kind.__name__}{' or none' if optional else ''}, default: {default!r})"
        if choices:
            help_text += f"; one of {', '.join(map(str, choices))}"
        group.add_argument(f"--{name}", default=None, metavar=kind.__name__.upper(), help=help_text)


def require_run_dir(prog, run_dir):
    """Fails in one line, before TensorFlow loads, when ``run_dir`` is not a training run directory."""
    try:
        run.read_config(run_dir)
    except config_lib.ConfigError as error:
        fail(prog, str(error))


def add_verbose_flag(parser):
    parser.add_argument(
        "--verbose", action="store_true", help=f"show TensorFlow's own log lines (or set {VERBOSE_ENV}=1)"
    )


def given_fields(args):
    """{field: text} of the config flags actually given on the command line."""
    return {name: value for name, value in vars(args).items() if value is not None and name in config_lib.flat_fields()}


_quieted = False


def quiet_tensorflow(verbose=False):
    """Keeps TensorFlow's harmless C++ log lines off the terminal (call before TensorFlow loads).

    Also makes stdout and stderr escape what they cannot encode (a file name in Latin-1, say).

    ``verbose`` (or TF_CYCLEGAN_VERBOSE=1) leaves stderr untouched. Otherwise C++ INFO and
    WARNING lines are turned off and stderr passes through a filter that drops the HARMLESS lines.
    Once per process: a second command run in the same process (a notebook, a test) keeps the first's setup.
    """
    global _quieted
    if _quieted:
        return
    _quieted = True
    for stream in (sys.stdout, sys.stderr):  # file names in any encoding print, escaped, instead of failing
        stream.reconfigure(errors="backslashreplace")
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # run_command then shows a traceback with the error line
    if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
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
