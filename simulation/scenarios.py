"""The runs the planner and the capacity check make: one region in steady state, and a
failover from one region to its standby, each reduced to a *worker slice* when that is
exact enough.

Why slices: a worker consumes only its own partitions, so the workers of a region are
independent queues fed by their partitions' traffic. With keys spread evenly, simulating
`s` workers that each own ceil(P/W) partitions, fed with those partitions' share of the
traffic, gives the waits of the region's most loaded workers, at a cost that does not
grow with the region's size. That is conservative (no worker is loaded more) and exact
when W divides P. Skewed keys break the symmetry, so then the whole region is simulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from homeport.simulation.distributions import ServiceTime
from homeport.simulation.params import KeySpace, ModelParams, RetryPolicy
from homeport.simulation.queueing import MMc, fluid_drain_time_s


@dataclass(frozen=True)
class Workload:
    """What every scenario shares: service time, key spread, retries and run size."""

    service_time: ServiceTime
    keys: KeySpace = KeySpace()
    retries: RetryPolicy = RetryPolicy()
    concurrency: int = 1
    partitions: int = 64
    slice_workers: int = 16
    tasks: int = 100_000
    seed: int = 0

    @property
    def work_per_task_s(self) -> float:
        return self.service_time.mean * self.retries.attempts_per_task

    @property
    def skewed(self) -> bool:
        return self.keys.hot_key_share > 0 or self.keys.zipf_s > 0


@dataclass(frozen=True)
class Slice:
    """The part of a region that is simulated: `workers` workers owning `partitions`
    partitions and `rate` tasks/s; `scale` converts its counts back to the region."""

    workers: int
    partitions: int
    rate: float
    scale: float


def slice_of(load: Workload, workers: int, partitions: int, rate: float) -> Slice:
    """The worker slice standing for `workers` workers over `partitions` partitions."""
    busy = min(workers, partitions)
    if load.skewed or busy <= load.slice_workers:
        return Slice(workers, partitions, rate, 1.0)
    per_worker = math.ceil(partitions / busy)
    owned = load.slice_workers * per_worker
    return Slice(load.slice_workers, owned, rate * owned / partitions, busy / load.slice_workers)


def steady_params(
    load: Workload, workers: int, partitions: int, rate: float, *, name: str = "region"
) -> tuple[ModelParams, Slice]:
    """A steady-state run of one region (or its slice) serving `rate` tasks/s."""
    part = slice_of(load, workers, partitions, rate)
    params = ModelParams.model_validate(
        {
            "service_time": load.service_time.model_dump(),
            "regions": [_region(name, part, load.concurrency)],
            "keys": load.keys.model_dump(),
            "retries": load.retries.model_dump(),
            "max_tasks": load.tasks,
            "seed": load.seed,
        }
    )
    return params, part


def failover_params(
    load: Workload,
    *,
    failed: tuple[str, float, int],
    standby: tuple[str, float, int],
    promotion_delay_s: float,
    warmup_s: float,
    run_after_s: float,
) -> tuple[ModelParams, Slice]:
    """`failed` (name, rate, workers) goes down at `warmup_s`; `standby` (name, rate,
    workers) is promoted after the delay and serves both until `run_after_s` later."""
    f_name, f_rate, f_workers = failed
    s_name, s_rate, s_workers = standby
    part = slice_of(load, s_workers, 2 * load.partitions, f_rate + s_rate)
    share = part.rate / (f_rate + s_rate)
    half = Slice(part.workers, max(1, part.partitions // 2), 0.0, part.scale)
    sample = max(0.001, (promotion_delay_s + run_after_s) / 600.0)
    params = ModelParams.model_validate(
        {
            "service_time": load.service_time.model_dump(),
            "regions": [
                _region(
                    f_name,
                    Slice(min(f_workers, half.workers), half.partitions, f_rate * share, 1),
                    load.concurrency,
                    standby=s_name,
                ),
                _region(
                    s_name,
                    Slice(half.workers, half.partitions, s_rate * share, 1),
                    load.concurrency,
                ),
            ],
            "keys": load.keys.model_dump(),
            "retries": load.retries.model_dump(),
            "failover": {
                "region": f_name,
                "at_s": warmup_s,
                "promotion_delay_s": promotion_delay_s,
            },
            "duration_s": warmup_s + promotion_delay_s + run_after_s,
            "sample_interval_s": sample,
            "seed": load.seed,
        }
    )
    return params, part


def _region(
    name: str, part: Slice, concurrency: int, standby: str | None = None
) -> dict[str, object]:
    return {
        "name": name,
        "arrivals": {"kind": "poisson", "rate_per_s": part.rate},
        "workers": part.workers,
        "concurrency": concurrency,
        "partitions": part.partitions,
        "standby": standby,
    }


def worker_queue(load: Workload, workers: int, partitions: int, rate: float) -> MMc | None:
    """The analytic queue of the most loaded worker (M/M/k, by mean service), or None
    when that worker is overloaded."""
    busy = min(workers, partitions)
    worker_rate = rate * math.ceil(partitions / busy) / partitions
    if worker_rate * load.work_per_task_s >= load.concurrency:
        return None
    return MMc(worker_rate, load.work_per_task_s, load.concurrency)


def analytic_p99_s(load: Workload, workers: int, partitions: int, rate: float) -> float:
    """First guess at the p99 wait: M/M/k of the busiest worker, scaled by (1 + cs²)/2
    (Allen-Cunneen) for non-exponential service. The simulation has the last word."""
    queue = worker_queue(load, workers, partitions, rate)
    if queue is None:
        return math.inf
    return queue.wait_quantile_s(0.99) * (1.0 + load.service_time.scv) / 2.0


def fluid_drain_s(
    load: Workload,
    *,
    failed_rate: float,
    standby_rate: float,
    standby_workers: int,
    promotion_delay_s: float,
    partitions: int | None = None,
) -> tuple[float, float]:
    """Fluid estimates of the drain after a promotion: (pooled, busiest worker).

    Pooled treats the standby as one pool serving the failed region's backlog
    (rate x delay) with its spare capacity. But a worker helps only its own partitions,
    and the failed region's partitions land on the standby's workers round-robin after
    its own, so some workers get one more of them than others; the drain ends when the
    worker with the largest share of the backlog for its spare capacity is done.
    """
    parts = partitions or load.partitions
    capacity_per_slot = 1.0 / load.work_per_task_s
    busy = min(standby_workers, 2 * parts)
    pooled = fluid_drain_time_s(
        failed_rate * promotion_delay_s,
        busy * load.concurrency * capacity_per_slot,
        failed_rate + standby_rate,
    )
    own = [0] * standby_workers
    taken = [0] * standby_workers
    for p in range(parts):
        own[p % standby_workers] += 1
        taken[(parts + p) % standby_workers] += 1
    worst = 0.0
    for mine, theirs in zip(own, taken, strict=True):
        backlog = theirs * failed_rate / parts * promotion_delay_s
        load_rate = (theirs * failed_rate + mine * standby_rate) / parts
        worst = max(
            worst, fluid_drain_time_s(backlog, load.concurrency * capacity_per_slot, load_rate)
        )
    return pooled, worst
