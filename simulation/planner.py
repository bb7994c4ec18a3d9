"""The planner: how many workers per region keep the p99 queue wait under a target at a
given rate, in normal operation and with any one region down (N+1).

Search: the analytic queue of the busiest worker gives a first guess; the simulation then
decides, stepping up (or down) in doubling steps and bisecting between the last count
that missed the target and the first that met it. Every simulated point is kept for the
p99-against-workers plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from homeport.simulation.checks import at_least, positive
from homeport.simulation.model import simulate
from homeport.simulation.results import backlog_curve, drain_time_s, summarise
from homeport.simulation.scenarios import (
    Workload,
    analytic_p99_s,
    failover_params,
    fluid_drain_s,
    steady_params,
)

MAX_WORKERS = 100_000


@dataclass(frozen=True)
class PlanRequest:
    """The question: total `rate_per_s` over `regions` equal regions, p99 wait target."""

    rate_per_s: float
    p99_wait_s: float
    regions: int
    survive_region_loss: bool
    workload: Workload
    promotion_delay_s: float = 10.0

    def __post_init__(self) -> None:
        positive("rate", self.rate_per_s, "give the total tasks per second, e.g. 50000")
        positive("p99_wait", self.p99_wait_s, "give a duration such as 50ms")
        at_least("regions", self.regions, 1, "give the number of regions")
        if self.survive_region_loss:
            at_least("regions", self.regions, 2, "surviving a region loss needs two or more")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"region-{i + 1}" for i in range(self.regions))

    def standby_of(self, index: int) -> int:
        """Standbys form a ring: region i fails over to region i+1."""
        return (index + 1) % self.regions


@dataclass(frozen=True)
class Evaluation:
    """One simulated point of a search: workers and the p99 wait they gave."""

    workers: int
    p99_wait_s: float
    utilisation: float


@dataclass(frozen=True)
class Scenario:
    """Workers one region needs in one situation (normal, or absorbing a failed region)."""

    name: str
    region: str
    rate_per_s: float
    partitions: int
    workers: int
    p99_wait_s: float
    utilisation: float
    evaluations: tuple[Evaluation, ...]


@dataclass(frozen=True)
class Drain:
    """Backlog after `failed` goes down and `standby` is promoted, with the chosen workers."""

    failed: str
    standby: str
    backlog_tasks: float
    drain_time_s: float
    fluid_drain_time_s: float
    fluid_busiest_worker_s: float
    times_s: tuple[float, ...] = ()
    backlog: tuple[float, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The answer: workers per region (the most any scenario needs) and why."""

    request: PlanRequest
    workers_per_region: dict[str, int]
    scenarios: tuple[Scenario, ...]
    headroom_normal: float
    headroom_after_failover: float | None
    drains: tuple[Drain, ...] = field(default=())


class _Search:
    """Finds the fewest workers meeting the target for one (rate, partitions) pair."""

    def __init__(self, request: PlanRequest, rate: float, partitions: int) -> None:
        self.request = request
        self.load = request.workload
        self.rate = rate
        self.partitions = partitions
        self.cache: dict[int, Evaluation] = {}

    def evaluate(self, workers: int) -> Evaluation:
        if workers not in self.cache:
            params, _ = steady_params(self.load, workers, self.partitions, self.rate)
            record = simulate(params)
            p99 = summarise(record, params.warmup_fraction).p99_wait_s
            slots = min(workers, self.partitions) * self.load.concurrency
            rho = self.rate * self.load.work_per_task_s / slots
            self.cache[workers] = Evaluation(workers, p99, rho)
        return self.cache[workers]

    def meets(self, workers: int) -> bool:
        return self.evaluate(workers).p99_wait_s <= self.request.p99_wait_s

    def first_guess(self) -> int:
        floor = math.floor(self.rate * self.load.work_per_task_s / self.load.concurrency) + 1
        workers = floor
        while (
            workers < MAX_WORKERS
            and analytic_p99_s(self.load, workers, self.partitions, self.rate)
            > self.request.p99_wait_s
        ):
            workers += max(1, workers // 50)
        return min(workers, MAX_WORKERS)

    def run(self) -> int:
        floor = math.floor(self.rate * self.load.work_per_task_s / self.load.concurrency) + 1
        guess = self.first_guess()
        if self.meets(guess):
            good, step = guess, 1
            while good - step >= floor and self.meets(good - step):
                good, step = good - step, step * 2
            bad = max(floor - 1, good - step)
        else:
            bad, step = guess, 1
            while not self.meets(bad + step):
                if bad + step >= MAX_WORKERS:
                    return MAX_WORKERS
                bad, step = bad + step, step * 2
            good = bad + step
        while good - bad > 1:
            middle = (good + bad) // 2
            if middle >= floor and self.meets(middle):
                good = middle
            else:
                bad = middle
        return good


def _scenario(
    request: PlanRequest,
    searches: dict[tuple[float, int], _Search],
    name: str,
    region: str,
    rate: float,
    partitions: int,
) -> Scenario:
    search = searches.setdefault((rate, partitions), _Search(request, rate, partitions))
    workers = search.run()
    chosen = search.evaluate(workers)
    return Scenario(
        name,
        region,
        rate,
        partitions,
        workers,
        chosen.p99_wait_s,
        chosen.utilisation,
        tuple(sorted(search.cache.values(), key=lambda e: e.workers)),
    )


def measure_drain(
    load: Workload,
    failed: tuple[str, float, int],
    standby: tuple[str, float, int],
    promotion_delay_s: float,
) -> Drain:
    """Simulate a failover with the given workers; compare with the fluid estimate."""
    f_name, f_rate, _ = failed
    s_name, s_rate, s_workers = standby
    backlog = f_rate * promotion_delay_s
    pooled, fluid = fluid_drain_s(
        load,
        failed_rate=f_rate,
        standby_rate=s_rate,
        standby_workers=s_workers,
        promotion_delay_s=promotion_delay_s,
    )
    if not math.isfinite(fluid):
        return Drain(f_name, s_name, backlog, math.inf, pooled, fluid)
    warmup = max(1.0, 20_000 / max(f_rate + s_rate, 1.0))
    params, part = failover_params(
        load,
        failed=failed,
        standby=standby,
        promotion_delay_s=promotion_delay_s,
        warmup_s=warmup,
        run_after_s=max(1.0, 1.6 * fluid + 0.5),
    )
    record = simulate(params)
    times, waiting = backlog_curve(record, (f_name, s_name))
    return Drain(
        failed=f_name,
        standby=s_name,
        backlog_tasks=record.backlog_at_promotion * part.scale,
        drain_time_s=drain_time_s(
            record, (f_name, s_name), until_s=params.duration_s or record.end_s
        ),
        fluid_drain_time_s=pooled,
        fluid_busiest_worker_s=fluid,
        times_s=tuple(float(t - warmup) for t in times),
        backlog=tuple(float(w * part.scale) for w in waiting),
    )


def plan(request: PlanRequest, *, drains: bool = True) -> Plan:
    """Answer a `PlanRequest` (see the module docstring for the search)."""
    load = request.workload
    names = request.names
    rate = request.rate_per_s / request.regions
    searches: dict[tuple[float, int], _Search] = {}
    scenarios = [
        _scenario(request, searches, "normal", name, rate, load.partitions) for name in names
    ]
    if request.survive_region_loss:
        for index, name in enumerate(names):
            standby = names[request.standby_of(index)]
            scenarios.append(
                _scenario(request, searches, f"{name} down", standby, 2 * rate, 2 * load.partitions)
            )
    workers = {name: max(s.workers for s in scenarios if s.region == name) for name in names}
    slots = min(min(workers.values()), load.partitions) * load.concurrency
    headroom = slots / (rate * load.work_per_task_s) - 1.0
    after = None
    measured: list[Drain] = []
    if request.survive_region_loss:
        slots_after = min(min(workers.values()), 2 * load.partitions) * load.concurrency
        after = slots_after / (2 * rate * load.work_per_task_s) - 1.0
        if drains:
            first, second = names[0], names[request.standby_of(0)]
            measured.append(
                measure_drain(
                    load,
                    (first, rate, workers[first]),
                    (second, rate, workers[second]),
                    request.promotion_delay_s,
                )
            )
    return Plan(request, workers, tuple(scenarios), headroom, after, tuple(measured))
