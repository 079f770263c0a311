"""What a config field accepts, declared beside the field: ``lr: float = setting(2e-4, low=0.0, low_open=True)``.

``config.validate`` checks every field's Rule; the message names the flag and the bound it breaks.
"""

import dataclasses
import math
import types
import typing

from tf_cyclegan.errors import ConfigError

MAX_COUNT = 2**31 - 1  # steps, sizes and counts above this overflow TensorFlow's int32 shapes and counters


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a config field accepts, kept beside the field (``setting(...)``) and checked by ``validate``."""

    low: float | None = None  # inclusive unless low_open
    high: float | None = None  # inclusive unless high_open
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    parts: tuple = ()  # a comma-separated list of these, each at most once ('' = none)
    also: tuple = ()  # values accepted outside the range (e.g. -1 = "same as lambda_cycle")
    note: str = ""  # what ``also`` means, for the message

    def problem(self, value):
        """Why ``value`` is not accepted ('' when it is): the bound it breaks."""
        if self.choices:
            return "" if value in self.choices else f"{value!r} is not one of {', '.join(map(str, self.choices))}"
        if self.parts:
            named = split_parts(value)
            unknown = [part for part in named if part not in self.parts]
            if unknown:
                return f"unknown part {unknown[0]!r}; give a comma-separated list of {', '.join(self.parts)}"
            return f"{value!r} names {named[0]!r} twice" if len(set(named)) < len(named) else ""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value in self.also:
            return ""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        extra = "".join(f", or {_number(v)} for {self.note}" for v in self.also)
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"must be {'>' if self.low_open else '>='} {_number(self.low)}{extra}, got {value}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"must be {'<' if self.high_open else '<='} {_number(self.high)}{extra}, got {value}"
        return ""


def split_parts(text):
    """'color, translation' -> ('color', 'translation'); '' -> ()."""
    return tuple(part.strip() for part in str(text or "").split(",") if part.strip())


def _number(value):
    return str(int(value)) if float(value).is_integer() else str(value)


def setting(default, **rule):
    """A dataclass field with its Rule (see ``Rule``)."""
    return dataclasses.field(default=default, metadata={"rule": Rule(**rule)})


def count(default, low=0, high=MAX_COUNT):
    """An int in [low, high]; low=1 reads "> 0" in messages."""
    return setting(default, low=0, low_open=True, high=high) if low == 1 else setting(default, low=low, high=high)


def weight(default, **more):
    """A loss weight: finite, >= 0."""
    return setting(default, low=0.0, **more)


def base_type(hint):
    """(type, optional) of a field's annotation: ``float | None`` → (float, True)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return kinds[0], len(kinds) < len(typing.get_args(hint))
    return hint, False


NONE_WORDS = ("none", "null", "~")


def parse_value(key, hint, text):
    """Converts ``text`` (from a flag or YAML) to the field's type, naming ``key`` when it cannot.

    An optional field (``float | None``) takes None, or none/null/~ as text.
    """
    kind, optional = base_type(hint)
    if optional and (text is None or (isinstance(text, str) and text.strip().lower() in NONE_WORDS)):
        return None
    if isinstance(text, kind) and not (kind is int and isinstance(text, bool)):
        return text
    if kind is bool:
        lowered = str(text).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--{key.split('.')[-1]}: expected true or false, got {text!r}")
    try:
        if kind is int:
            as_float = float(text)
            if not as_float.is_integer():
                raise ValueError
            return int(as_float)
        return kind(text)
    except (TypeError, ValueError):
        raise ConfigError(f"--{key.split('.')[-1]}: expected {kind.__name__}, got {text!r}") from None
