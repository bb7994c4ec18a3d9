"""Range checks shared by the parameter models, raising `ParameterError` with a fix."""

from __future__ import annotations

import math

from homeport.simulation.errors import ParameterError


def positive(field: str, value: float, fix: str) -> float:
    """Refuse zero, negative and non-finite values of a rate, mean or duration."""
    if not math.isfinite(value) or value <= 0:
        raise ParameterError(field, value, "must be a finite number above zero", fix)
    return value


def non_negative(field: str, value: float, fix: str) -> float:
    """Refuse negative and non-finite values where zero is meaningful (e.g. a delay)."""
    if not math.isfinite(value) or value < 0:
        raise ParameterError(field, value, "must be a finite number of zero or more", fix)
    return value


def probability(field: str, value: float, fix: str) -> float:
    """Refuse values outside [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ParameterError(field, value, "must be in [0, 1)", fix)
    return value


def at_least(field: str, value: int, low: int, fix: str) -> int:
    """Refuse counts below `low`."""
    if value < low:
        raise ParameterError(field, value, f"must be at least {low}", fix)
    return value
