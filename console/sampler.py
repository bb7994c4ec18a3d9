"""`QueueSampler`: asks every gateway for RegionStatus every `interval_s` seconds and
keeps a short history per partition, from which the Queues page draws rates and charts.

Rates are differences of the monotonic counters RegionStatus carries (entries added to
the stream, delivered to workers, added to the dead-letter stream) over the time between
two samples. A counter that goes down (a store restarted empty) counts as no change
rather than a negative rate. History lives in memory only: charts start when the console
starts.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from homeport.console.gateways import Gateways, StatusAnswer
from homeport.core.loop import Loop
from homeport.core.metrics import Metrics
from homeport.router.views import PartitionView

KEEP = 90  # samples per partition: three minutes at the default 2 s


@dataclass(frozen=True)
class Sample:
    at: float
    ready: int
    oldest_ready_ms: int
    added: int
    delivered: int
    dead: int


@dataclass(frozen=True)
class Rates:
    """Per second, between two samples."""

    submit: float
    run: float
    fail: float


def rates(a: Sample, b: Sample) -> Rates:
    span = max(b.at - a.at, 1e-3)
    return Rates(
        max(0, b.added - a.added) / span,
        max(0, b.delivered - a.delivered) / span,
        max(0, b.dead - a.dead) / span,
    )


class QueueSampler(Loop):
    name = "console-sampler"

    def __init__(self, gateways: Gateways, interval_s: float, metrics: Metrics) -> None:
        super().__init__(interval_s, metrics)
        self.gateways = gateways
        self.latest: dict[str, StatusAnswer] = {}
        self.latest_at = 0.0
        self.samples: dict[str, deque[Sample]] = {}

    async def run_once(self) -> float | None:
        answers = await self.gateways.statuses()
        now = time.time()
        for answer in answers.values():
            for p in answer.view.partitions if answer.view else ():
                self._keep(p, now)
        self.latest, self.latest_at = answers, now
        return None

    def _keep(self, p: PartitionView, now: float) -> None:
        sample = Sample(
            now, p.ready, p.oldest_ready_age_ms, p.added_total, p.delivered_total, p.dead_total
        )
        self.samples.setdefault(p.partition, deque(maxlen=KEEP)).append(sample)

    async def fresh(self) -> dict[str, StatusAnswer]:
        """The latest answers, sampled now when the loop has not run yet (first page)."""
        if not self.latest or time.time() - self.latest_at > 3 * self.interval_s:
            await self.run_once()
        return self.latest

    def series(self, partitions: list[str]) -> tuple[list[int], list[Rates]]:
        """Backlog and rates over time, summed over `partitions` (one home, or one)."""
        by_time: dict[int, list[Sample]] = {}
        for name in partitions:
            for s in self.samples.get(name, ()):
                by_time.setdefault(round(s.at / self.interval_s), []).append(s)
        ticks = sorted(by_time)
        summed = [
            Sample(
                max(s.at for s in by_time[t]),
                sum(s.ready for s in by_time[t]),
                max(s.oldest_ready_ms for s in by_time[t]),
                sum(s.added for s in by_time[t]),
                sum(s.delivered for s in by_time[t]),
                sum(s.dead for s in by_time[t]),
            )
            for t in ticks
            if len(by_time[t]) == len(partitions)
        ]
        backlog = [s.ready for s in summed]
        return backlog, [rates(a, b) for a, b in zip(summed, summed[1:], strict=False)]
