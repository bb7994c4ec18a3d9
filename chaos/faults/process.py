"""The shared shape of process faults: targets picked from the catalog by name, or by
kind (and region) with the run's seed."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from homeport.chaos.catalog import KINDS, Component
from homeport.chaos.faults import Fault

if TYPE_CHECKING:
    from homeport.chaos.scenario import Scenario


class ProcessFault(Fault):
    def candidates(self, scenario: Scenario) -> list[Component]:
        target = self.step.target
        cat = scenario.catalog
        if target is None:
            return []
        if target.component is not None:
            found = cat.component(target.component)
            return [found] if found else []
        return [
            c
            for c in cat.components
            if c.kind == target.kind and (target.region is None or c.region == target.region)
        ]

    def check(self, scenario: Scenario) -> None:
        target = self.step.target
        if target is None:
            raise self.refuse("target", None, "name a 'component' or a 'kind' to act on")
        if target.kind is not None and target.kind not in KINDS:
            raise self.refuse("target.kind", target.kind, f"unknown kind; use one of {KINDS}")
        if target.region is not None and target.region not in scenario.catalog.regions:
            raise self.refuse(
                "target.region", target.region, f"use one of {scenario.catalog.regions}"
            )
        found = self.candidates(scenario)
        if target.component is not None and not found:
            names = [c.name for c in scenario.catalog.components]
            raise self.refuse(
                "target.component", target.component, f"no such component; known: {names}"
            )
        if target.kind is not None and len(found) < target.count:
            raise self.refuse(
                "target.count", target.count,
                f"only {len(found)} components of kind {target.kind!r}"
                + (f" in {target.region}" if target.region else ""),
            )  # fmt: skip

    def claims(self, scenario: Scenario) -> list[str]:
        target = self.step.target
        if (
            target is not None
            and target.component is None
            and target.count < len(self.candidates(scenario))
        ):
            return []  # a seeded pick among several: the driver skips a busy one
        return [f"process {c.name}" for c in self.candidates(scenario)]

    def resolve(self, scenario: Scenario, rng: random.Random) -> list[str]:
        names = sorted(c.name for c in self.candidates(scenario))
        count = self.step.target.count if self.step.target else 1
        return sorted(rng.sample(names, min(count, len(names))))
