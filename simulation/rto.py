"""The RTO of a region loss (or of a home's Redis primary killed), predicted as a
distribution by a seeded Monte Carlo of the steps that make it up.

What the model adds up, each from the code that does it (defaults are the code's own
settings; `RtoParams` names where each comes from):

1. **Detection.** Every other region's observer (`regions.health.Observer`) probes the
   home's primary every `probe_interval_s`; the first failed probe comes at a uniform
   phase of that interval plus `probe_fail_s`, and starts the observer's `since`.
2. **Confirmation.** The home is judged down when a strict majority of all regions has
   reported it down for `confirm_s` (`health.judge`), a span each observer's own probes
   must cover (its first probe at or after `since + confirm_s`), at the failover
   controller's next step (`controller_interval_s`, uniform phase).
3. **Control plane lost with the region** (`lose_region` only). With probability
   `leader_lost_p` the controller leader ran in the lost region: its election lease
   (`lease_ttl_s`, kept alive every ttl/4) must lapse before another agent leads; with
   probability `etcd_lost_p` the etcd Raft leader was there: etcd answers nothing for one
   to two `etcd_election_s` (the launcher's election timeout).
4. **Promotion.** `promotion_s`: the measured duration of `regions.promotion.promote`
   (samples; the controller logs each step), then `pickup_s` until the standby's
   gateways serve the keys (they watch the routing table).
5. **The client.** The SDK (`router.client.AsyncClient`) sends each submit up to
   `retry.attempts` times; after a failed attempt (`fail_s`, the dead gateway's refusal
   and the routing refresh) it sleeps `RetryPolicy.backoff` (the SDK's own formula,
   imported).
   A submit succeeds when one of its routing refreshes comes after the route moved; a
   submit sent after any refresh saw the new route goes straight to the standby.
6. **The measure.** As `chaos.checker` measures RTO: from the fault to the send time of
   the first submit after the last failed one (all later ones succeed), over the whole
   load (`rate_per_s`, Poisson), of which `home_share` is the lost home's.

What it leaves out: CPU starvation of any of these processes (a loaded machine stretches
every step), the per-key sequencing of the game day's load generator, gRPC's own
reconnect backoff, and a promotion that fails and is retried.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from homeport.router.client import RetryPolicy

Fault = Literal["region", "primary"]


@dataclass(frozen=True)
class RtoParams:
    """Times in seconds, rates per second. `fault`: `region` (a region lost: its agent and
    etcd member die too) or `primary` (only the home's Redis primary)."""

    fault: Fault = "region"
    regions: int = 3
    probe_interval_s: float = 0.25  # regions.health.Observer interval_s
    probe_fail_s: float = 0.01  # a probe of a dead process is refused at once
    confirm_s: float = 3.0  # regions.agent.AgentSettings.confirm_s
    controller_interval_s: float = 0.25  # regions.agent.AgentSettings.interval_s
    lease_ttl_s: float = 3.0  # regions.election.Election ttl
    leader_lost_p: float = 0.0  # share of losses whose region led the controllers
    etcd_election_s: float = 1.0  # regions.servers: etcd --election-timeout 1000 ms
    etcd_lost_p: float = 0.0  # share of losses whose region led etcd's Raft group
    promotion_s: tuple[float, ...] = (0.17,)  # samples of promote()'s duration
    pickup_s: float = 0.01  # route written -> the standby's gateway serves the keys
    fail_s: float = 0.02  # one failed attempt plus the routing refresh after it
    rate_per_s: float = 30.0  # every home's submits together
    home_share: float = 1 / 3  # the lost home's share of them
    # The SDK's policy: the game day's is RetryPolicy(attempts=load.attempts), 3.
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3))

    def __post_init__(self) -> None:
        checks = {
            "regions": self.regions >= 2,
            "probe_interval_s": self.probe_interval_s > 0,
            "confirm_s": self.confirm_s >= 0,
            "controller_interval_s": self.controller_interval_s > 0,
            "leader_lost_p": 0 <= self.leader_lost_p <= 1,
            "etcd_lost_p": 0 <= self.etcd_lost_p <= 1,
            "promotion_s": bool(self.promotion_s) and min(self.promotion_s) >= 0,
            "retry": self.retry.attempts >= 1,
            "rate_per_s": self.rate_per_s > 0,
            "home_share": 0 < self.home_share <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is out of range: regions >= 2, "
                    "probabilities and home_share in 0..1 (home_share > 0), rates and "
                    "intervals > 0, at least one promotion sample >= 0, attempts >= 1"
                )


def route_moved(p: RtoParams, rng: random.Random) -> float:
    """Seconds from the fault until the standby serves the home (steps 1-4)."""
    others = p.regions - 1
    needed = p.regions // 2 + 1
    since = sorted(rng.uniform(0, p.probe_interval_s) + p.probe_fail_s for _ in range(others))
    # A vote counts from the observer's first probe that has seen the home unreachable
    # for confirm_s (health.judge compares the verdict's `at` with its `since`).
    held = p.probe_interval_s * math.ceil(p.confirm_s / p.probe_interval_s - 1e-9)
    ready = since[needed - 1] + held if needed <= others else math.inf
    if p.fault == "region":
        if rng.random() < p.leader_lost_p:
            lapse = p.lease_ttl_s - rng.uniform(0, p.lease_ttl_s / 4)
            ready = max(ready, lapse)
        if rng.random() < p.etcd_lost_p:
            ready = max(ready, rng.uniform(p.etcd_election_s, 2 * p.etcd_election_s))
    judged = ready + rng.uniform(0, p.controller_interval_s)
    return judged + rng.choice(p.promotion_s) + p.pickup_s


def _submit(p: RtoParams, sent: float, moved: float, rng: random.Random) -> tuple[bool, float]:
    """(succeeded, when its last routing refresh or its failure happened) of one submit
    of the lost home sent at `sent`, the route having moved at `moved`."""
    t = sent
    for attempt in range(p.retry.attempts):
        t += p.fail_s  # this attempt failed at the old route; the refresh reads the table
        if attempt == p.retry.attempts - 1:
            return False, t
        if t >= moved:
            return True, t
        t += p.retry.backoff(attempt, rng)
    return False, t  # attempts >= 1: not reached


def one_rto(p: RtoParams, rng: random.Random) -> float:
    moved = route_moved(p, rng)
    known = math.inf  # the first refresh that saw the new route
    last_fail = 0.0
    t = 0.0
    sends: list[float] = []
    while True:
        t += rng.expovariate(p.rate_per_s)
        sends.append(t)
        if t > moved + 5.0:
            break
        if t >= known or rng.random() >= p.home_share:
            continue  # another home's submit, or the new route is already known
        ok, at = _submit(p, t, moved, rng)
        if ok:
            known = min(known, at)
        else:
            last_fail = max(last_fail, at)
    if last_fail == 0.0:
        return 0.0
    return next(s for s in sends if s > last_fail)


@dataclass(frozen=True)
class RtoDistribution:
    samples: tuple[float, ...]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def summary(self) -> dict[str, float]:
        return {
            "p05_s": self.quantile(0.05),
            "p50_s": self.median,
            "p95_s": self.quantile(0.95),
            "mean_s": statistics.fmean(self.samples),
        }


def predict(p: RtoParams, runs: int = 2000, seed: int = 0) -> RtoDistribution:
    rng = random.Random(seed)
    return RtoDistribution(tuple(one_rto(p, rng) for _ in range(runs)))


def median_within(predicted: float, measured: Sequence[float], tolerance: float) -> bool:
    """Whether the median of `measured` lies within `tolerance` (a share) of `predicted`."""
    return abs(statistics.median(measured) - predicted) <= tolerance * predicted
