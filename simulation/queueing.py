"""Closed-form queueing results the model is checked against and the planner starts from.

M/M/c (Erlang C) for a worker's slots, M/M/1 for one key under per-key order, and the
fluid approximation of a backlog draining after a failover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from homeport.simulation.checks import positive
from homeport.simulation.errors import UnstableLoadError


def erlang_b(servers: int, offered: float) -> float:
    """Blocking probability of M/M/c/c, by the recurrence that stays stable for large c."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return blocking


@dataclass(frozen=True)
class MMc:
    """An M/M/c queue: Poisson arrivals at `rate`, `servers` exponential servers of mean
    `mean_service_s`. Erlang C gives the chance of waiting and the wait distribution."""

    rate: float
    mean_service_s: float
    servers: int

    def __post_init__(self) -> None:
        positive("rate", self.rate, "give arrivals per second")
        positive("mean_service_s", self.mean_service_s, "give seconds")
        if self.utilisation >= 1.0:
            raise UnstableLoadError(
                "servers",
                self.servers,
                f"utilisation {self.utilisation:.3f} >= 1: the M/M/c queue has no steady state",
                f"use more than {self.offered:.1f} servers",
            )

    @property
    def offered(self) -> float:
        return self.rate * self.mean_service_s

    @property
    def utilisation(self) -> float:
        return self.offered / self.servers

    @property
    def p_wait(self) -> float:
        """Erlang C: the chance an arrival finds every server busy."""
        b = erlang_b(self.servers, self.offered)
        return b / (1.0 - self.utilisation * (1.0 - b))

    @property
    def mean_wait_s(self) -> float:
        return self.p_wait / (self.servers / self.mean_service_s - self.rate)

    def wait_quantile_s(self, q: float) -> float:
        """The q-quantile of the wait: P(W > t) = C * exp(-(c*mu - lambda) t)."""
        tail = 1.0 - q
        if self.p_wait <= tail:
            return 0.0
        return math.log(self.p_wait / tail) / (self.servers / self.mean_service_s - self.rate)


def mm1_mean_wait_s(rate: float, mean_service_s: float) -> float:
    """M/M/1 mean queue wait, rho / (mu - lambda): the wait of one key under per-key order."""
    return MMc(rate, mean_service_s, 1).mean_wait_s


def fluid_drain_time_s(backlog: float, capacity_per_s: float, load_per_s: float) -> float:
    """Time for `backlog` tasks to drain when served at `capacity_per_s` while new work
    keeps arriving at `load_per_s`; infinite when the capacity does not exceed the load."""
    headroom = capacity_per_s - load_per_s
    if backlog <= 0:
        return 0.0
    return backlog / headroom if headroom > 0 else math.inf
