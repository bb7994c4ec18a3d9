"""The shared shape of link faults: a Toxiproxy toxic on one or more named links.

Each toxic module declares its attributes as `Attr(name, low, high, default, unit)`; a
step's `params` must name only those, within range. `stream: both` adds the toxic to
the downstream and the upstream direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from homeport.chaos.faults import Fault

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext
    from homeport.chaos.scenario import Scenario


@dataclass(frozen=True)
class Attr:
    name: str
    low: float
    high: float
    default: float
    unit: str


class LinkFault(Fault):
    """A fault acting on named links; checks that every link exists in the topology."""

    def check(self, scenario: Scenario) -> None:
        links = self.step.all_links()
        if not links:
            raise self.refuse("link", None, "name at least one link ('link' or 'links')")
        known = scenario.catalog.links
        for link in links:
            if link not in known:
                close = [k for k in known if k.split(":")[-1] == link.split(":")[-1]][:4]
                raise self.refuse(
                    "link", link,
                    f"no such link in a {scenario.topology.regions}-region topology; links "
                    f"look like '<from>-><to>:<service>', e.g. {', '.join(close or known[:4])}",
                )  # fmt: skip

    def resolve(self, scenario: Scenario, rng: Any) -> list[str]:
        return self.step.all_links()


class ToxicFault(LinkFault):
    attrs: ClassVar[tuple[Attr, ...]] = ()

    def check(self, scenario: Scenario) -> None:
        super().check(scenario)
        names = {a.name for a in self.attrs}
        for key, value in self.step.params.items():
            if key not in names:
                raise self.refuse(
                    f"params.{key}", value,
                    f"not an attribute of the {self.name} toxic; use {', '.join(sorted(names))}",
                )  # fmt: skip
        for attr in self.attrs:
            value = self.step.params.get(attr.name, attr.default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.refuse(f"params.{attr.name}", value, f"must be a number ({attr.unit})")
            if not attr.low <= value <= attr.high:
                raise self.refuse(
                    f"params.{attr.name}", value,
                    f"out of range: {self.name} {attr.name} must be {attr.low:g}..{attr.high:g} "
                    f"{attr.unit}",
                )  # fmt: skip
        self.check_together(self.attributes())

    def check_together(self, attributes: dict[str, int]) -> None:
        """Constraints between attributes (e.g. jitter no larger than latency)."""

    def attributes(self) -> dict[str, int]:
        return {a.name: int(self.step.params.get(a.name, a.default)) for a in self.attrs}

    def streams(self) -> list[str]:
        return ["downstream", "upstream"] if self.step.stream == "both" else [self.step.stream]

    def claims(self, scenario: Scenario) -> list[str]:
        return [
            f"toxic {self.name} on {link} ({stream})"
            for link in self.step.all_links()
            for stream in self.streams()
        ]

    def toxic_name(self, stream: str) -> str:
        return f"chaos_{self.name}_{stream}"

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        for link in targets:
            for stream in self.streams():
                ctx.toxiproxy.add_toxic(
                    link, self.name, self.attributes(), name=self.toxic_name(stream),
                    stream=stream, toxicity=self.step.toxicity,
                )  # fmt: skip
        return f"{self.name} {self.attributes()} on {', '.join(targets)}"

    async def revert(self, ctx: FaultContext, targets: list[str]) -> str:
        for link in targets:
            for stream in self.streams():
                ctx.toxiproxy.remove_toxic(link, self.toxic_name(stream))
        return f"removed {self.name} from {', '.join(targets)}"
