"""The concrete timeline of one run: every step occurrence with its start, end and
targets, drawn from the scenario with `random.Random(seed)` only. The same scenario and
seed always give the same plan (and the same load: see `chaos.load`)."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from homeport.chaos.faults import Fault, fault_for, windows
from homeport.chaos.scenario import Scenario


@dataclass(frozen=True)
class Planned:
    step: int
    occurrence: int
    fault: str
    start: float  # seconds after the load starts
    end: float | None  # None: stays until the run ends
    targets: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(scenario: Scenario, seed: int) -> list[tuple[Planned, Fault]]:
    rng = random.Random(f"timeline:{seed}")
    out: list[tuple[Planned, Fault]] = []
    for i, step in enumerate(scenario.timeline):
        fault = fault_for(step, i)
        for w in windows(step, i, jitter_bound=False):
            start = w.start + (rng.uniform(0, step.start_jitter_s) if step.start_jitter_s else 0)
            end = start + step.for_s if step.for_s is not None else None
            targets = tuple(fault.resolve(scenario, rng))
            stop = round(end, 3) if end is not None else None
            out.append(
                (Planned(i, w.occurrence, step.fault, round(start, 3), stop, targets), fault)
            )
    out.sort(key=lambda pair: (pair[0].start, pair[0].step, pair[0].occurrence))
    return out
