"""The failover controller: one active instance, elected in etcd, that promotes a home
region's standby when a quorum of other regions has found the home unreachable.

Each step (`run_once`):

1. campaign: only the leader acts; the others stay hot standbys;
2. finish any promotion a previous leader began but did not complete (the route says
   "served by the mirror" while the mirror still replicates): promotion is re-entrant;
3. `health.judge` every region from the observers' verdicts; when the quorum agrees a
   region is down for `confirm_s` seconds, fail over every home whose serving copy is
   there, to the copy its route names next (`routing.next_standby`): its mirror, or the
   spare re-protection lent it (so a home can fail over a second time);
4. re-protect (`regions.protection`): lend a spare of a surviving region to every home
   whose serving copy lost its cross-region replica with a region judged down, and take
   spares back once the original placement is restored. It runs right after a
   promotion, at every step while a region is down, and every `CHECK_S` otherwise.

Safety against a still-running old home rests on ordering, not on the verdict being
right: `confirm_s` is at least the gateways' lease TTL, so by the time a promotion
starts, every gateway of a partitioned home has stopped writing (see `regions.fence`),
and the epoch written into every copy refuses anything already in flight.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from homeport.core.loop import Loop
from homeport.core.metrics import Metrics
from homeport.regions import capacity, clusterpromotion, stores
from homeport.regions.control import ControlPlane
from homeport.regions.election import Election
from homeport.regions.health import Judgement, judge, read_all_verdicts
from homeport.regions.metrics import RegionsMetrics
from homeport.regions.promotion import PromotionReport, promote
from homeport.regions.protection import Protector
from homeport.regions.routing import Route, next_standby

log = logging.getLogger(__name__)
# Controller events an operator should see at the default level: a region lost, a
# failover, a standby too small, a home left without protection. The rest is INFO.
_WARNING_EVENTS = frozenset(
    {"judged-down", "promoted", "capacity-undersized", "capacity-unknown", "unprotected", "dropped"}
)


@dataclass(frozen=True)
class ControllerEvent:
    at: float
    # "elected", "judged-down", "promoted", "completed"; the capacity check:
    # "capacity-ok", "capacity-undersized", "capacity-unknown", "scale-ordered"; re-protection:
    # "protected", "released", "dropped", "repointed", "unprotected", "standby"
    kind: str
    home: str
    detail: str


class Controller(Loop):
    name = "failover-controller"

    def __init__(
        self,
        cp: ControlPlane,
        candidate: str,
        metrics: Metrics,
        regions_metrics: RegionsMetrics,
        *,
        confirm_s: float = 3.0,
        lease_ttl_s: int = 3,
        interval_s: float = 0.25,
        capacity_model: capacity.CapacityModel | None = None,
    ) -> None:
        if confirm_s < lease_ttl_s:
            raise ValueError(
                f"confirm_s = {confirm_s} is shorter than the gateways' lease TTL "
                f"({lease_ttl_s} s): a partitioned home could still be writing; raise it"
            )
        super().__init__(interval_s, metrics)
        self.cp = cp
        self.election = Election(cp.etcd, cp.topology.etcd_prefix, candidate, lease_ttl_s)
        self.rm = regions_metrics
        self.confirm_s = confirm_s
        # Asked before every promotion unless the topology turns it off (`capacity:`).
        self.capacity_model = capacity_model
        self.is_leader = False
        self.events: list[ControllerEvent] = []
        self.protector = Protector(
            cp, self.election.guard, event=self._protection_event,
            failed=lambda: metrics.loop_errors.labels("protection").inc(),
            capacity_model=capacity_model,
        )  # fmt: skip

    def _protection_event(self, kind: str, home: str, detail: str) -> None:
        if kind == "protected":
            self.rm.protections.labels(home).inc()
        self._event(kind, home, detail)

    def _event(self, kind: str, home: str, detail: str) -> None:
        self.events.append(ControllerEvent(time.time(), kind, home, detail))
        level = logging.WARNING if kind in _WARNING_EVENTS else logging.INFO
        log.log(level, "controller %s: %s %s: %s", self.election.candidate, kind, home, detail)

    async def run_once(self) -> float | None:
        leader = await self.election.campaign()
        if leader and not self.is_leader:
            self._event("elected", "-", f"{self.election.candidate} leads")
        self.is_leader = leader
        if not leader:
            return None
        table = await self.cp.routing.load()
        now = time.time()
        judgements: dict[str, Judgement] = {}
        verdicts = await read_all_verdicts(self.cp.etcd, self.cp.topology.etcd_prefix)
        for home in self.cp.topology.region_names():
            found = verdicts.get(home, [])
            judgements[home] = judge(home, found, len(table.routes), self.confirm_s, now)
        down = {home for home, judgement in judgements.items() if judgement.down}
        promoted = False
        for home in self.cp.topology.region_names():
            route = table.route(home)
            if route.copy != "primary":
                await self._complete(route)
            # The copy serving `home` is in a region judged down: its own primary, or,
            # failed over already, a mirror or spare whose region is lost in turn.
            if route.serving in down:
                report = await self._fail_over(route, judgements[route.serving], down)
                promoted = report is not None or promoted
        if promoted:
            table = await self.cp.routing.load()
        await self.protector.run_once(table, down, force=promoted)
        return None

    async def _fail_over(
        self, route: Route, judgement: Judgement, down: set[str]
    ) -> PromotionReport | None:
        home = route.home
        target = next_standby(self.cp.topology, route)
        if target is None or target[0] in down:
            return None
        standby = target[0]
        self._event("judged-down", home, judgement.reason)
        decision = await self._check_capacity(home, standby, judgement.since)
        report = await promote(
            self.cp,
            home,
            standby,
            reason=judgement.reason,
            say=lambda m: log.info("promote %s: %s", home, m),
            guard=self.election.guard,
            capacity=decision.describe() if decision is not None else None,
        )
        self.rm.promotions.labels(home, standby).inc()
        self._event("promoted", home, f"to {standby} ({target[1]}) at epoch {report.new_epoch}")
        if decision is not None and decision.verdict == "undersized":
            await self._scale_up(home, decision, report.new_epoch)
        return report

    async def _check_capacity(
        self, home: str, standby: str, down_since: float | None
    ) -> capacity.CapacityDecision | None:
        """Ask the capacity model about `standby` (regions.capacity), the outage counted
        from `down_since`; never blocks the promotion, whatever it answers."""
        if self.capacity_model is None or not self.cp.topology.capacity_policy.check:
            return None
        decision = await capacity.decide(
            self.cp.etcd, self.cp.topology, home, standby, self.capacity_model,
            down_since=down_since,
        )  # fmt: skip
        self._event(f"capacity-{decision.verdict}", home, f"{standby}: {decision.reason}")
        if decision.verdict == "undersized":
            self.rm.undersized.labels(home, standby).inc()
            self.rm.workers_ordered.labels(home, standby).set(decision.workers_ordered)
        return decision

    async def _scale_up(self, home: str, decision: capacity.CapacityDecision, epoch: int) -> None:
        """Order the standby's agent to run the planner's worker count for `home`."""
        if decision.workers_ordered <= decision.workers:
            return  # already at the topology's limit: the alert is all that can be done
        order = capacity.ScaleOrder(
            home, decision.standby, decision.workers_ordered, epoch, decision.reason, time.time()
        )
        await capacity.write_order(self.cp.etcd, self.cp.topology.etcd_prefix, order)
        self._event(
            "scale-ordered", home,
            f"{decision.standby}: {decision.workers} -> {decision.workers_ordered} workers",
        )  # fmt: skip

    async def _complete(self, route: Route) -> None:
        """Finish a promotion whose leader died after moving the route."""
        if self.cp.topology.region(route.home).redis.mode == "cluster":
            if await clusterpromotion.complete(self.cp, route):
                self._event("completed", route.home, f"mirrors took over at epoch {route.epoch}")
            return
        serving = self.cp.store(route)
        if (await stores.replication(serving)).role == "master":
            return
        region = self.cp.topology.region(route.home)
        await stores.make_primary(serving)
        await stores.reset_ownership(serving, route.home, region.partitions)
        await stores.fence(serving, route.home, region.partitions, route.epoch)
        self._event(
            "completed", route.home, f"finished an interrupted promotion at epoch {route.epoch}"
        )

    async def stop(self) -> None:
        await super().stop()
        await self.election.resign()
