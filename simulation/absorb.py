"""The capacity check the failover controller runs before a promotion, in pure Python.

`answer(question)` is the `regions.capacity.CapacityModel` that `homeport agent` loads by
default (`--capacity-model homeport.simulation.absorb:answer`). It imports neither SimPy
nor NumPy nor SciPy: a plain `pip install homeport` has none of them, and a controller in
the middle of an incident must answer in microseconds. It is the analytic half of
`simulation.capacity.can_absorb` (which needs the `plan` extra for its simulated second
opinion), written for the controller's question:

- the standby serves the failed home's partitions with its own group of `workers`
  processes of `concurrency` slots each (`regions.workforce`), the partitions spread
  round-robin, so the *busiest* worker owns ceil(P / W) of them (no more than P workers
  do anything);
- each worker is an M/M/c queue (Erlang C, `simulation.queueing.MMc`) fed with its
  partitions' share of the home's measured rate, served for the measured mean slot hold
  time (begin step + handler);
- the backlog of the outage (rate × outage) drains on the busiest worker at its spare
  capacity (fluid estimate, as `scenarios.fluid_drain_s`). Its share of the backlog is
  the expected largest of the workers' shares, not the even one: each task's partition
  is a hash of its key, so a backlog of B tasks over W workers is a multinomial sample
  whose largest part is on average B/W + e_W sqrt(B/W) (normal approximation; e_W the
  expected largest of W standard normals, 0.56 for two; with an uneven split, s for 1/W
  and only the workers holding the most partitions count). A backlog of 45 tasks over 2
  workers puts 25.2 on the busier one, not 22.5 (`busiest_backlog`). A count above the
  standby's current one only after the scale-up delay (`regions.capacity.scale_delay`:
  the standby's measured worker boot plus the take-over, half a heartbeat and a quick
  look; its start alone instead of the boot when the standby has that many prepared
  workers): the current workers drain alone until then. The
  backlog arrives with the clients' retries after the route moved (the residual of the
  SDK's capped backoff, `regions.capacity.client_return`), which the drain counts first.

The standby can absorb when the busiest worker's utilisation is below 1, its p99 queue
wait is within the SLO and the backlog drains within the limit. If not, the planner's
worker count is the smallest W up to `max_workers` that passes (or the most that can
help: `max_workers`, or one worker per partition when that is fewer).
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

from homeport.regions.capacity import AbsorbAnswer, AbsorbQuestion
from homeport.simulation.queueing import MMc


def _judge(q: AbsorbQuestion, workers: int) -> AbsorbAnswer:
    active = min(workers, q.partitions)
    busiest_share = math.ceil(q.partitions / active) / q.partitions
    rate = q.rate_per_s * busiest_share
    capacity = q.concurrency / q.hold_mean_s  # tasks/s one worker completes when saturated
    utilisation = rate / capacity
    if utilisation >= 1.0:
        return AbsorbAnswer(
            False,
            f"overloaded: the busiest of {workers} workers would run at "
            f"{utilisation:.0%} of its {q.concurrency} slots; the backlog never drains",
            workers,
            utilisation,
            math.inf,
            math.inf,
        )
    p99 = MMc(rate, q.hold_mean_s, q.concurrency).wait_quantile_s(0.99) if rate > 0 else 0.0
    drain = _drain(q, workers, capacity)
    reason = "ok"
    if p99 > q.p99_wait_target_s:
        reason = (
            f"p99 queue wait {p99 * 1e3:.0f}ms with {workers} workers would exceed the "
            f"{q.p99_wait_target_s * 1e3:.0f}ms SLO"
        )
    elif drain > q.max_drain_s:
        reason = (
            f"the outage's backlog would take {drain:.1f}s to drain on {workers} workers, "
            f"over the {q.max_drain_s:.0f}s limit"
        )
    return AbsorbAnswer(reason == "ok", reason, workers, utilisation, p99, drain)


def _net_drain_per_s(q: AbsorbQuestion, workers: int, capacity: float) -> float:
    """Backlog tasks per second a group of `workers` clears beyond the arrivals, as fast
    as its busiest worker lets it (it owns ceil(P / W) of the partitions)."""
    share = math.ceil(q.partitions / min(workers, q.partitions)) / q.partitions
    return capacity / share - q.rate_per_s


def _drain(q: AbsorbQuestion, workers: int, capacity: float) -> float:
    """Fluid drain of the outage's backlog (rate x outage), from the route's move: the
    backlog arrives with the clients' retries (`client_return_s` later on average), and
    with more workers than the standby has, the current ones drain alone until the added
    ones serve (the scale-up delay runs from the decision, so during the clients' return
    too)."""
    return q.client_return_s + _drain_from(q, workers, capacity, q.client_return_s)


def _drain_from(q: AbsorbQuestion, workers: int, capacity: float, elapsed: float) -> float:
    backlog = q.rate_per_s * q.outage_s
    fast = _net_drain_per_s(q, workers, capacity)
    # Added workers within the standby's prepared ones only wait for their `go`.
    delay = q.prepared_delay_s if workers - q.workers <= q.prepared_workers else q.scale_delay_s
    delay = max(0.0, delay - elapsed)
    if workers <= q.workers or delay <= 0:
        return busiest_backlog(backlog, q.partitions, workers) / fast
    slow = _net_drain_per_s(q, q.workers, capacity)
    alone = busiest_backlog(backlog, q.partitions, q.workers)
    if slow > 0 and alone <= slow * delay:
        return alone / slow
    # Not drained by then (or growing, when the current workers are overloaded): what is
    # left splits over the grown group.
    left = max(0.0, backlog - slow * delay)
    return delay + busiest_backlog(left, q.partitions, workers) / fast


def busiest_backlog(backlog: float, partitions: int, workers: int) -> float:
    """The backlog expressed as the group's even-split equivalent for its busiest worker:
    `backlog` plus the expected excess of the largest worker's share (see the module
    docstring), in units the busiest worker's drain rate (`_net_drain_per_s`) divides."""
    active = min(workers, partitions)
    if active <= 1 or backlog <= 0:
        return backlog
    share = math.ceil(partitions / active) / partitions
    # The workers holding the most partitions (all of them when they divide evenly)
    # vie for the largest part: each holds B*s + sqrt(B*s) * (a standard normal,
    # correlated with the others as a multinomial makes them), whose expected largest
    # of n is e_n whatever the correlation.
    n = partitions % active or active
    return backlog + _expected_max_normal(n) * math.sqrt(backlog / share)


@functools.cache
def _expected_max_normal(n: int) -> float:
    """E[max of n independent standard normals] (0 for 1, 0.5642 for 2, 1.0294 for 4),
    by the trapezoid rule over [-8, 8] (pure Python: the controller has no SciPy)."""
    dist = NormalDist()
    step = 0.01
    total = 0.0
    for i in range(1601):
        x = -8.0 + i * step
        total += x * n * dist.pdf(x) * dist.cdf(x) ** (n - 1)
    return total * step


def answer(question: AbsorbQuestion) -> AbsorbAnswer:
    """Can the standby's current workers absorb the home? If not, with how many could
    they (`workers_needed`, capped at `max_workers`)? See the module docstring."""
    now = _judge(question, question.workers)
    if now.ok:
        return now
    # Workers beyond one per partition own nothing: they would not help.
    useful = min(question.max_workers, question.partitions)
    for workers in range(question.workers + 1, useful + 1):
        found = _judge(question, workers)
        if found.ok:
            return AbsorbAnswer(
                False, now.reason, workers, now.utilisation, now.p99_wait_s, now.drain_s,
                after_p99_wait_s=found.p99_wait_s, after_drain_s=found.drain_s,
            )  # fmt: skip
    most = max(useful, question.workers)
    limit = "the limit" if useful == question.max_workers else "one per partition"
    capped = _judge(question, most)
    return AbsorbAnswer(
        False, f"{now.reason}; even {most} workers ({limit}) fall short",
        most, now.utilisation, now.p99_wait_s, now.drain_s,
        after_p99_wait_s=capped.p99_wait_s, after_drain_s=capped.drain_s,
    )  # fmt: skip
