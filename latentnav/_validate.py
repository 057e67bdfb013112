"""Field checks for config dataclasses: each error names the field and the accepted range."""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real

__all__ = ["check_int", "check_real", "check_choice", "MAX_SEED"]

MAX_SEED = 2**62  # seeds get small offsets added and go to torch and numpy generators


def _range(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '≥'} {low}"
    if high is not None:
        return f"{'<' if high_open else '≤'} {high}"
    return ""


def check_int(value: object, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` is an int (not a bool) with ``low ≤ value ≤ high`` where given."""
    ok = isinstance(value, Integral) and not isinstance(value, bool)
    if ok and (low is not None and value < low or high is not None and value > high):
        ok = False
    if not ok:
        where = _range(low, high, False, False)
        raise ValueError(f"{name} must be an int{' ' * bool(where)}{where}, got {value!r}")
    return int(value)


def check_real(
    value: object,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` is a finite real number in the interval given (open ends where asked)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        where = _range(low, high, low_open, high_open)
        raise ValueError(f"{name} must be a finite number{' ' * bool(where)}{where}, got {value!r}")
    return float(value)


def check_choice(value: object, name: str, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
