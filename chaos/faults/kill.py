"""`kill`: SIGKILL processes (their whole process group). With `for`, the driver starts
them again after that many seconds, from the same command line (as a supervisor would)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeport.chaos.errors import FaultError
from homeport.chaos.faults import register
from homeport.chaos.faults.process import ProcessFault

if TYPE_CHECKING:
    from homeport.chaos.driver import FaultContext


@register
class Kill(ProcessFault):
    name = "kill"
    summary = "SIGKILL processes; restart them after `for` seconds when given."

    async def apply(self, ctx: FaultContext, targets: list[str]) -> str:
        done = [name for name in targets if ctx.processes.kill(name)]
        if not done:  # a fault that did nothing must not let its game day pass
            raise FaultError(f"kill: none of {targets} was running")
        return f"killed {', '.join(done)}"

    async def revert(self, ctx: FaultContext, targets: list[str]) -> str:
        if self.step.for_s is None:
            return ""
        done = [name for name in targets if ctx.processes.restart(name)]
        return f"restarted {', '.join(done) or 'nothing'}"
