"""Range checks for config values, component params and CLI options: one line naming key, value, range.

A wrong number must fail when the config or component is built — in well under a second, before a
dataset is generated or a model fitted — not minutes later as a NaN or a silent no-op. Every check
goes through :class:`Range`, so the messages read the same everywhere::

    config key 'horizon' must be an integer >= 1, got 0
    gaussian_ensemble param 'lr' must be a finite number > 0, got -0.001

Booleans are rejected where numbers are expected (``True`` is an ``int`` to Python, never a
horizon to a user), floats where integers are expected, and NaN/inf everywhere.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from mopo_kit.errors import MopoKitError


@dataclass(frozen=True)
class Range:
    """Allowed values: an integer or a finite real, optionally bounded (open or closed)."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: value > low; False: value >= low
    high_open: bool = False

    def describe(self) -> str:
        """'an integer >= 1', 'a finite number > 0', 'a number in [0, 1]', ..."""
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{'an integer' if self.integer else 'a number'} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {_fmt(self.low)}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {_fmt(self.high)}"
        return kind

    def accepts(self, value: Any) -> bool:
        """True when ``value`` has the right type and lies in range."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.integer and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(float(value)):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def convert(self, value: Any) -> int | float:
        """The value as a plain ``int`` or ``float`` (NumPy scalars included); call after :meth:`accepts`."""
        return int(value) if self.integer else float(value)


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e15 else repr(bound)


#: The ranges most keys need.
POSITIVE_INT = Range(integer=True, low=1)
NON_NEGATIVE_INT = Range(integer=True, low=0)
SEED = Range(integer=True, low=0, high=2**32 - 1)  # NumPy's legacy seeding accepts no more
POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
FRACTION = Range(low=0, high=1)
FINITE = Range()


def require(value: Any, key: str, allowed: Range, *, where: str = "config key", optional: bool = False) -> Any:
    """``value`` converted to int/float, or a one-line :class:`MopoKitError` naming key, value and range.

    With ``optional``, ``None`` is accepted and returned (a key whose default is computed later).
    """
    if optional and value is None:
        return None
    if not allowed.accepts(value):
        raise MopoKitError(f"{where} '{key}' must be {allowed.describe()}, got {value!r}")
    return allowed.convert(value)


def check_fields(obj: Any, ranges: Mapping[str, Range], *, where: str, optional: tuple[str, ...] = ()) -> None:
    """Check (and normalize in place) the named attributes of a config object."""
    for key, allowed in ranges.items():
        value = require(getattr(obj, key), key, allowed, where=where, optional=key in optional)
        object.__setattr__(obj, key, value)


def check_known_params(cls: type, params: Mapping[str, Any], where: str) -> None:
    """Unknown keys of a dataclass config are one line listing the known ones, not a TypeError."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise MopoKitError(f"{where}: unknown param(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def option(allowed: Range) -> Callable[[str], int | float]:
    """An argparse ``type=`` that parses a CLI value and checks it against ``allowed``.

    argparse turns the error into ``mopo-kit CMD: error: argument --steps: must be an integer
    >= 1, got '0'`` and exit status 2, before the command runs.
    """

    def parse(text: str) -> int | float:
        try:
            value: int | float = int(text) if allowed.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed.describe()}, got {text!r}") from None
        if not allowed.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {allowed.describe()}, got {text!r}")
        return value

    parse.__name__ = "integer" if allowed.integer else "number"  # argparse names the type in errors
    return parse


__all__ = [
    "Range",
    "POSITIVE_INT",
    "NON_NEGATIVE_INT",
    "SEED",
    "POSITIVE",
    "NON_NEGATIVE",
    "FRACTION",
    "FINITE",
    "require",
    "check_fields",
    "check_known_params",
    "option",
]
