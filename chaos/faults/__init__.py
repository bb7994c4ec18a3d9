"""The fault registry: one fault per module, registered by name (as Toxiproxy's toxics/).

A fault is a class with a `name`, a `check` that refuses a bad step before anything runs,
the exclusive `claims` it holds while applied (two steps claiming the same thing at the
same time cannot both be applied: the timeline is refused), a `resolve` that turns the
step's target into concrete names with the run's seed, and `apply` / `revert` against the
running cluster.

Adding a fault: write `chaos/faults/<name>.py` with a `Fault` subclass decorated with
`@register`, and add the module to `_MODULES` below.
"""

from __future__ import annotations

import importlib
import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from homeport.chaos.errors import ScenarioError

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext
    from homeport.chaos.scenario import Scenario, Step

FAULTS: dict[str, type[Fault]] = {}

_MODULES = (
    "latency", "bandwidth", "timeout", "reset_peer", "slicer", "limit_data", "slow_close",
    "link_down", "kill", "pause", "isolate", "lose_region", "promote", "failback",
    "kill_controller",
)  # fmt: skip


@dataclass(frozen=True)
class Window:
    """One occurrence of a step: from `start` to `end` seconds after the load starts
    (`end` is infinite for a step that stays applied until the run ends)."""

    step: int
    occurrence: int
    start: float
    end: float

    def overlaps(self, other: Window) -> bool:
        return self.start < other.end and other.start < self.end


class Fault(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    # Process faults pick their targets from the catalog; link faults name links.
    disruptive: ClassVar[bool] = True

    def __init__(self, step: Step, index: int) -> None:
        self.step = step
        self.index = index

    @property
    def where(self) -> str:
        return f"timeline[{self.index}]"

    def refuse(self, field: str, value: Any, reason: str) -> ScenarioError:
        return ScenarioError(f"{self.where}.{field}" if field else self.where, value, reason)

    def check(self, scenario: Scenario) -> None:
        """Refuse a step this fault cannot apply to `scenario`'s topology."""
        return None

    def claims(self, scenario: Scenario) -> list[str]:
        """Resources held exclusively while applied (e.g. `toxic:<link>:latency:down`)."""
        return []

    def resolve(self, scenario: Scenario, rng: random.Random) -> list[str]:
        """Concrete target names for one occurrence, drawn with the run's seed."""
        return []

    @abstractmethod
    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        """Inject the fault; returns what was done, for the progress output."""

    async def revert(self, ctx: FaultContext, targets: list[str]) -> str:
        """Undo the fault (no-op for one-shot faults such as a kill or a promotion)."""
        return ""


def register(cls: type[Fault]) -> type[Fault]:
    if cls.name in FAULTS:
        raise RuntimeError(f"fault {cls.name!r} registered twice")
    FAULTS[cls.name] = cls
    return cls


def _load() -> None:
    """Import every fault module (a module imported on its own, as chaos/rpo.py imports
    `latency`, registers only itself: the registry cannot be judged by being non-empty)."""
    for module in _MODULES:
        importlib.import_module(f"homeport.chaos.faults.{module}")


def fault_for(step: Step, index: int) -> Fault:
    _load()
    cls = FAULTS.get(step.fault)
    if cls is None:
        raise ScenarioError(
            f"timeline[{index}].fault", step.fault, f"unknown fault; known: {', '.join(FAULTS)}"
        )
    return cls(step, index)


def registry() -> dict[str, type[Fault]]:
    _load()
    return dict(FAULTS)


def windows(step: Step, index: int, jitter_bound: bool = True) -> list[Window]:
    """Occurrences of `step`; with `jitter_bound`, each stretched by the most start jitter
    any seed could add (what validation must assume)."""
    out = []
    times = step.repeat.times if step.repeat else 1
    every = step.repeat.every_s if step.repeat else 0.0
    for n in range(times):
        start = step.at + n * every
        hold = _hold(step)
        end = start + hold + (step.start_jitter_s if jitter_bound else 0.0)
        out.append(Window(index, n, start, end))
    return out


def _hold(step: Step) -> float:
    return step.for_s if step.for_s is not None else math.inf


def check_timeline(scenario: Scenario) -> None:
    """Check every step on its own, then that no two steps claim one resource at once."""
    faults = [fault_for(step, i) for i, step in enumerate(scenario.timeline)]
    for fault in faults:
        fault.check(scenario)
    held: list[tuple[str, Window]] = []
    for fault in faults:
        for window in windows(fault.step, fault.index):
            for claim in fault.claims(scenario):
                for other_claim, other in held:
                    if other_claim == claim and other.overlaps(window):
                        raise ScenarioError(
                            f"timeline[{fault.index}]",
                            fault.step.fault,
                            f"overlaps timeline[{other.step}] on {claim} between "
                            f"{max(window.start, other.start):g}s and "
                            f"{min(window.end, other.end):g}s; both cannot be applied at once: "
                            "move one step (mind 'for', 'repeat' and 'start_jitter_s')",
                        )
                held.append((claim, window))
    _check_failover_order(scenario)


def _check_failover_order(scenario: Scenario) -> None:
    """Promotions and failbacks must alternate per home region, in time order. A region
    lost, isolated or with its primary killed is promoted by the failover controller, so
    it may be failed back (and must not be promoted by hand as well)."""
    promoted: dict[str, int] = {}
    steps = sorted(enumerate(scenario.timeline), key=lambda pair: pair[1].at)
    for i, step in steps:
        home = step.region or ""
        if step.fault in ("lose_region", "isolate") and step.region:
            promoted.setdefault(home, i)
        elif step.fault == "kill" and step.target and step.target.component:
            name = step.target.component
            if name.startswith("redis-") and name.endswith("-primary"):
                promoted.setdefault(name.removeprefix("redis-").removesuffix("-primary"), i)
        elif step.fault == "promote":
            if home in promoted:
                raise ScenarioError(
                    f"timeline[{i}].region", home,
                    f"already promoted (by hand or by the controller) after timeline"
                    f"[{promoted[home]}]; fail it back first",
                )  # fmt: skip
            promoted[home] = i
        elif step.fault == "failback":
            if home not in promoted:
                raise ScenarioError(
                    f"timeline[{i}].region", home,
                    "no earlier promote, region loss or isolation of this region: "
                    "nothing to fail back",
                )  # fmt: skip
            del promoted[home]
