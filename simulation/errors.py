"""Errors of the capacity-planning package.

    SimulationError
    ├── ParameterError        a model, planner or calibration input is wrong
    │   ├── UnstableLoadError utilisation >= 1 with no bound on the run length
    │   └── EmptyTraceError   a trace or measurement set holds nothing to replay or fit
    └── CalibrationError      measurements exist but cannot be turned into parameters

Every message names the field, the bad value and what to do about it, because the person
reading it is usually editing a YAML file or a command line, not this code.
"""

from __future__ import annotations

from homeport.errors import HomeportError


class SimulationError(HomeportError):
    """Root of the package's errors; catch this to handle any of them."""


class ParameterError(SimulationError):
    """An input parameter is invalid.

    Deliberately not a `ValueError`: pydantic wraps `ValueError`s raised in validators into
    its own error type, which would drop the fix hint; this one propagates as raised.
    """

    def __init__(self, field: str, value: object, problem: str, fix: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}={value!r}: {problem}; {fix}")


class UnstableLoadError(ParameterError):
    """The offered load meets or exceeds capacity and the run has no end."""


class EmptyTraceError(ParameterError):
    """A trace to replay, or samples to fit, is empty."""


class CalibrationError(SimulationError):
    """Measurements could not be turned into model parameters."""
