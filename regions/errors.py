"""Errors raised by the `regions` package.

RegionsError
├── TopologyError        a topology file or value is malformed; names field, value, fix
├── LaunchError          a local-cluster component failed to start; names it and its log
└── ClusterStateError    `homeport dev` found no cluster, or one already running
"""

from __future__ import annotations

from pathlib import Path

from homeport.errors import HomeportError


class RegionsError(HomeportError):
    """Base of every error this package raises on purpose."""


class TopologyError(RegionsError):
    """A topology is invalid. `field` is a dotted path such as `regions[1].standby`."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"topology field {field!r} = {value!r}: {reason}")


class LaunchError(RegionsError):
    """A component of the local cluster did not start or did not become ready in time."""

    def __init__(self, component: str, reason: str, log: Path | None = None) -> None:
        self.component = component
        self.reason = reason
        self.log = log
        where = f" (log: {log})" if log is not None else ""
        super().__init__(f"{component}: {reason}{where}")


class ClusterStateError(RegionsError):
    """The state directory does not hold what the command needs."""
