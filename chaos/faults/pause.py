"""`pause`: SIGSTOP processes (a stuck, not dead, component); SIGCONT when the step ends
(and, whatever happens, when the run ends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeport.chaos.errors import FaultError
from homeport.chaos.faults import register
from homeport.chaos.faults.process import ProcessFault

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext


@register
class Pause(ProcessFault):
    name = "pause"
    summary = "SIGSTOP processes; SIGCONT when the step ends."

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        done = [name for name in targets if ctx.processes.pause(name)]
        if not done:  # a fault that did nothing must not let its game day pass
            raise FaultError(f"pause: none of {targets} was running")
        return f"paused {', '.join(done)}"

    async def revert(self, ctx: FaultContext, targets: list[str]) -> str:
        done = [name for name in targets if ctx.processes.resume(name)]
        return f"resumed {', '.join(done) or 'nothing'}"
