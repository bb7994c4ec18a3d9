"""`link_down`: disable links (Toxiproxy `enabled: false`): open connections are closed
and new ones refused until the step ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeport.chaos.faults import register
from homeport.chaos.faults.toxic import LinkFault

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext
    from homeport.chaos.scenario import Scenario


@register
class LinkDown(LinkFault):
    name = "link_down"
    summary = "Disable links: connections closed, new ones refused."

    def claims(self, scenario: Scenario) -> list[str]:
        return [f"link {link} down" for link in self.step.all_links()]

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        for link in targets:
            ctx.toxiproxy.set_enabled(link, False)
        return f"down: {', '.join(targets)}"

    async def revert(self, ctx: FaultContext, targets: list[str]) -> str:
        for link in targets:
            ctx.toxiproxy.set_enabled(link, True)
        return f"up again: {', '.join(targets)}"
