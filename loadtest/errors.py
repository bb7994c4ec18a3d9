"""Errors of the load tests and benchmarks.

LoadTestError
├── WorkloadError      a workload or shape setting is invalid
├── StackError         a process of the system under test did not start or died
└── RunError           Locust failed, or its output could not be read
"""

from __future__ import annotations

from homeport.errors import HomeportError


class LoadTestError(HomeportError):
    """Base of every error raised by `loadtest/`."""


class WorkloadError(LoadTestError):
    """A workload or load-shape setting is invalid; names the field, value and reason."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}={value!r}: {reason}")


class StackError(LoadTestError):
    """A gateway or worker process did not start, or exited while the run needed it."""


class RunError(LoadTestError):
    """Locust exited abnormally, or wrote no statistics to read."""
