"""Shared command-line plumbing: flags for every config field, one-line errors."""

import argparse
import sys
from pathlib import Path

from tf_cyclegan import config as config_lib


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


def given_fields(args):
    """{field: text} of the config flags actually given on the command line."""
    return {name: value for name, value in vars(args).items()
            if value is not None and name in config_lib.flat_fields()}


def apply_fields(config, fields, sets=()):
    flat = config_lib.flat_fields()
    for name, text in fields.items():
        config_lib.set_value(config, flat[name][0], text)
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep:
            raise config_lib.ConfigError(f"--set: expected section.field=value, got {item!r}")
        config_lib.set_value(config, key.strip(), text.strip())
    return config


def default_name(config):
    data = config.data
    if data.domain_a and data.domain_b:
        return f"{Path(data.domain_a).name}2{Path(data.domain_b).name}"
    return Path(data.dataset.removeprefix("tfds:").rstrip("/")).name.split(":")[0] or "run"


def read_run_config(run_dir):
    """The resolved config a training run wrote, for translate/export/evaluate."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise config_lib.ConfigError(f"--run_dir: {run_dir} has no config.yaml (is it a tf_cyclegan run directory?)")
    config = config_lib.load_yaml(path)
    config.run_dir = str(run_dir)
    return config
