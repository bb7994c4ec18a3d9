"""Parsing of human-written durations (`50ms`, `2s`, `1.5m`) into seconds.

Planners type latency targets the way dashboards show them; accepting the unit in the
string avoids the classic factor-of-1000 mistake of a bare number.
"""

from __future__ import annotations

import re
from typing import Any

import click
from homeport.simulation.errors import ParameterError

_UNITS: dict[str, float] = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµ]+)\s*$")


def parse_duration(text: str, *, field: str = "duration") -> float:
    """Return `text` (a number followed by a unit: us, ms, s, m, h) in seconds.

    A bare number is refused rather than guessed: `50` could mean 50 ms or 50 s.
    """
    match = _PATTERN.match(text)
    if match is None or match.group(2) not in _UNITS:
        raise ParameterError(
            field,
            text,
            "not a duration",
            "write a number followed by a unit, e.g. 50ms, 2s, 1.5m (units: us, ms, s, m, h)",
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """Render seconds with a unit a person reads at a glance (µs, ms, s, min)."""
    if seconds != seconds or seconds == float("inf"):
        return "∞"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f}ms"
    if seconds < 120.0:
        return f"{seconds:.1f}s"
    return f"{seconds / 60.0:.1f}min"


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in click>=8.2
    """A click parameter accepting `50ms`, `2s`, `1.5m`; the value is in seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value), field=param.name if param and param.name else "")
        except ParameterError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()
