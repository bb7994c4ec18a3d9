"""Errors of the chaos package.

ChaosError
├── ScenarioError      a scenario file is malformed or asks for something impossible
├── FaultError         a fault could not be applied or reverted on the running cluster
└── RunError           a game day could not run (cluster, services, load)
"""

from __future__ import annotations

from typing import Any

from homeport.errors import HomeportError


class ChaosError(HomeportError):
    """Base of every error the chaos package raises on purpose."""


class ScenarioError(ChaosError):
    """A scenario is refused: names the file, the field, the bad value and the fix."""

    def __init__(self, field: str, value: Any, reason: str, source: str = "scenario") -> None:
        self.field, self.value, self.reason, self.source = field, value, reason, source
        super().__init__(f"{source}: field {field} = {value!r}: {reason}")


class FaultError(ChaosError):
    """Applying or reverting one fault failed; the message names the step and the target."""


class RunError(ChaosError):
    """The game day could not run; the message says which part and what to check."""
