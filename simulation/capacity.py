"""The capacity check before a promotion: can the standby absorb the failed region's load,
and how long will the backlog take to drain?

The failover controller lives in `regions/`, which may not import this package (design
§1a: imports point from `homeport` towards `core`). `homeport` wires `can_absorb` into
the controller as a plain callable; the arguments and the verdict are plain frozen
dataclasses so nothing else crosses that boundary.

By default the check is analytic (Erlang C per worker, fluid drain) and takes
microseconds, which suits a controller mid-incident; `simulate=True` runs the SimPy model
of the failover for a second opinion that includes variability and per-key order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from homeport.simulation.checks import at_least, non_negative, positive
from homeport.simulation.distributions import ServiceTime
from homeport.simulation.errors import ParameterError
from homeport.simulation.params import KeySpace, RetryPolicy
from homeport.simulation.planner import measure_drain
from homeport.simulation.scenarios import Workload, analytic_p99_s, fluid_drain_s


@dataclass(frozen=True)
class RegionLoad:
    """A region as the controller sees it: its traffic and its worker pool."""

    name: str
    rate_per_s: float
    workers: int
    concurrency: int = 1
    partitions: int = 64

    def __post_init__(self) -> None:
        non_negative(f"{self.name}.rate_per_s", self.rate_per_s, "give tasks per second")
        at_least(f"{self.name}.workers", self.workers, 1, "count the live workers")
        at_least(f"{self.name}.concurrency", self.concurrency, 1, "1 = one task at a time")
        at_least(f"{self.name}.partitions", self.partitions, 1, "see the topology file")


@dataclass(frozen=True)
class AbsorbVerdict:
    """The answer. `ok` is False when the standby would be overloaded, would breach the
    p99 target, or would take longer than `max_drain_s` to drain; `reason` says which.

    `drain_time_s` is the simulated drain with `simulate=True`, else the busiest-worker
    fluid estimate, which is what the average worker takes: the slowest of several
    workers finishes later, and in the tests the simulation came out at 0.89-1.25 times
    it, so a margin of about 30% on `max_drain_s` is prudent with the fast check.
    `fluid_drain_time_s` is the pooled estimate, which ignores partition spread."""

    ok: bool
    failed: str
    standby: str
    utilisation_after: float
    headroom_after: float
    backlog_tasks: float
    drain_time_s: float
    fluid_drain_time_s: float
    fluid_busiest_worker_s: float
    p99_wait_after_s: float
    simulated: bool
    reason: str


def can_absorb(
    failed: RegionLoad,
    standby: RegionLoad,
    *,
    service_time: ServiceTime,
    promotion_delay_s: float = 10.0,
    p99_wait_target_s: float | None = None,
    max_drain_s: float | None = None,
    keys: KeySpace | None = None,
    retries: RetryPolicy | None = None,
    simulate: bool = False,
    seed: int = 0,
) -> AbsorbVerdict:
    """Judge whether `standby` can serve its own and `failed`'s traffic after promotion."""
    non_negative("promotion_delay_s", promotion_delay_s, "give seconds from outage to serving")
    if p99_wait_target_s is not None:
        positive("p99_wait_target_s", p99_wait_target_s, "give seconds, or None for no target")
    if failed.partitions != standby.partitions:
        raise ParameterError(
            f"{failed.name}.partitions",
            failed.partitions,
            f"differs from {standby.name}.partitions={standby.partitions}",
            "the model assumes equal partition counts per region",
        )
    load = Workload(
        service_time=service_time,
        keys=keys or KeySpace(),
        retries=retries or RetryPolicy(),
        concurrency=standby.concurrency,
        partitions=standby.partitions,
        seed=seed,
    )
    total = failed.rate_per_s + standby.rate_per_s
    slots = min(standby.workers, 2 * standby.partitions) * standby.concurrency
    utilisation = total * load.work_per_task_s / slots
    pooled, fluid = fluid_drain_s(
        load,
        failed_rate=failed.rate_per_s,
        standby_rate=standby.rate_per_s,
        standby_workers=standby.workers,
        promotion_delay_s=promotion_delay_s,
    )
    p99 = analytic_p99_s(load, standby.workers, 2 * standby.partitions, total)
    drain = fluid
    simulated = False
    if simulate and math.isfinite(fluid):
        measured = measure_drain(
            load,
            (failed.name, failed.rate_per_s, failed.workers),
            (standby.name, standby.rate_per_s, standby.workers),
            promotion_delay_s,
        )
        drain, simulated = measured.drain_time_s, True
    reason = _judge(utilisation, p99, drain, p99_wait_target_s, max_drain_s)
    return AbsorbVerdict(
        ok=reason == "ok",
        failed=failed.name,
        standby=standby.name,
        utilisation_after=utilisation,
        headroom_after=1.0 / utilisation - 1.0 if utilisation > 0 else math.inf,
        backlog_tasks=failed.rate_per_s * promotion_delay_s,
        drain_time_s=drain,
        fluid_drain_time_s=pooled,
        fluid_busiest_worker_s=fluid,
        p99_wait_after_s=p99,
        simulated=simulated,
        reason=reason,
    )


def _judge(
    utilisation: float, p99: float, drain: float, target: float | None, max_drain: float | None
) -> str:
    if utilisation >= 1.0 or not math.isfinite(drain) or not math.isfinite(p99):
        return (
            f"overloaded: utilisation {utilisation:.2f} (pooled); the busiest worker "
            "cannot keep up, so the backlog never drains; add workers before promoting"
        )
    if target is not None and p99 > target:
        return f"p99 wait {p99 * 1e3:.1f}ms would exceed the {target * 1e3:.1f}ms target"
    if max_drain is not None and drain > max_drain:
        return f"backlog would take {drain:.1f}s to drain, over the {max_drain:.1f}s limit"
    return "ok"
