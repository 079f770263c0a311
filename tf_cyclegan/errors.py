"""The one base of every error a user can act on, and the exit code each kind maps to.

Library modules raise these with a one-line message naming the flag, file or field;
``cli.run_command`` prints that line and exits with ``exit_code``. Nothing here imports
TensorFlow, so a command line can map errors before TensorFlow loads.
"""


class UserError(Exception):
    """Something the user can fix; the message is one line naming the flag, file or field."""

    exit_code = 1


class UsageError(UserError):
    """A bad flag, setting or config file (argparse's code: 2)."""

    exit_code = 2


class Stopped(UserError):
    """Stopped on request (Ctrl-C or SIGTERM) after saving what was done (128 + SIGINT)."""

    exit_code = 130


class ConfigError(UsageError, ValueError):
    """A bad setting; the message names the setting and what is allowed."""
