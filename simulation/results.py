"""What a run records, and the statistics planners read from it.

The record keeps one row per task (arrival, first start, finish, home region, key) as
numpy arrays, so every statistic, Little's law included, is computed afterwards from the
same sample path rather than from counters that could disagree with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _empty() -> np.ndarray:
    return np.zeros(0)


@dataclass
class RunRecord:
    """Raw output of one run, filled in by the model while it runs.

    `start` is the start of a task's first attempt, so `start - arrival` is its queue wait
    (time blocked behind its key included); `finish` is when it succeeded or was
    dead-lettered. `sample_waiting` holds, per sample time, the waiting count per home
    region.
    """

    region_names: tuple[str, ...]
    arrival: np.ndarray = field(default_factory=_empty)
    start: np.ndarray = field(default_factory=_empty)
    finish: np.ndarray = field(default_factory=_empty)
    home: np.ndarray = field(default_factory=_empty)
    key: np.ndarray = field(default_factory=_empty)
    dead: np.ndarray = field(default_factory=_empty)
    arrived: int = 0
    retries: int = 0
    duplicates: int = 0
    outage_at: float | None = None
    promoted_at: float | None = None
    backlog_at_promotion: int = 0
    sample_t: list[float] = field(default_factory=list)
    sample_waiting: list[tuple[int, ...]] = field(default_factory=list)
    wall_s: float = 0.0
    end_s: float = 0.0

    @property
    def tasks(self) -> int:
        return len(self.arrival)

    def steady_mask(self, warmup_fraction: float) -> np.ndarray:
        """Tasks that arrived after the first `warmup_fraction` of arrivals."""
        if not len(self.arrival):
            return np.zeros(0, dtype=bool)
        cutoff = np.quantile(self.arrival, warmup_fraction) if warmup_fraction else -1.0
        return self.arrival >= cutoff


@dataclass(frozen=True)
class LittlesLaw:
    """L = λW over the window between the first and last counted arrival.

    L is the time-average number of tasks waiting, integrated exactly from each task's
    wait interval clipped to the window; λ and W come from the tasks arriving in it.
    """

    mean_waiting: float
    arrival_rate: float
    mean_wait_s: float

    @property
    def relative_error(self) -> float:
        predicted = self.arrival_rate * self.mean_wait_s
        if predicted == 0.0:
            return 0.0 if self.mean_waiting == 0.0 else float("inf")
        return abs(self.mean_waiting - predicted) / predicted


@dataclass(frozen=True)
class WaitSummary:
    """Queue-wait and end-to-end statistics of the counted tasks (seconds)."""

    tasks: int
    mean_wait_s: float
    p50_wait_s: float
    p99_wait_s: float
    p_wait: float
    p50_latency_s: float
    p99_latency_s: float
    dead_lettered: int

    @classmethod
    def of(cls, record: RunRecord, mask: np.ndarray) -> WaitSummary:
        waits = (record.start - record.arrival)[mask]
        latency = (record.finish - record.arrival)[mask]
        if not len(waits):
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
        return cls(
            tasks=len(waits),
            mean_wait_s=float(np.mean(waits)),
            p50_wait_s=float(np.quantile(waits, 0.5)),
            p99_wait_s=float(np.quantile(waits, 0.99)),
            p_wait=float(np.mean(waits > 0.0)),
            p50_latency_s=float(np.quantile(latency, 0.5)),
            p99_latency_s=float(np.quantile(latency, 0.99)),
            dead_lettered=int(np.sum(record.dead[mask])),
        )


def littles_law(record: RunRecord, mask: np.ndarray) -> LittlesLaw:
    """Measure both sides of Little's law for the waiting line over the counted window."""
    arrival, start = record.arrival, record.start
    counted = arrival[mask]
    low, high = float(counted.min()), float(counted.max())
    span = high - low
    overlap = np.clip(np.minimum(start, high) - np.maximum(arrival, low), 0.0, None)
    return LittlesLaw(
        mean_waiting=float(overlap.sum() / span),
        arrival_rate=float(len(counted) / span),
        mean_wait_s=float(np.mean(start[mask] - counted)),
    )


def summarise(record: RunRecord, warmup_fraction: float, region: str | None = None) -> WaitSummary:
    """Summary of steady-state tasks, of all regions or of one home region."""
    mask = record.steady_mask(warmup_fraction)
    if region is not None:
        mask &= record.home == record.region_names.index(region)
    return WaitSummary.of(record, mask)


def backlog_curve(record: RunRecord, homes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Sampled times and the number of tasks waiting whose home is one of `homes`."""
    columns = [record.region_names.index(name) for name in homes]
    counts = np.asarray(record.sample_waiting, dtype=float).reshape(-1, len(record.region_names))
    return np.asarray(record.sample_t), counts[:, columns].sum(axis=1)


def drain_time_s(
    record: RunRecord, homes: tuple[str, ...], *, until_s: float, settle_fraction: float = 0.2
) -> float:
    """Time from the promotion until the waiting line of `homes` is back to normal.

    Normal is the usual range of that line once settled: its 99th percentile over the
    last `settle_fraction` of the run after the promotion (before `until_s`, when
    arrivals stop). The standby now carries both regions' traffic, so the line it settles
    to is longer than before the outage, and an empty line may never be seen. The run
    must last well past the drain; the planner runs it for 1.6 busiest-worker fluid drain
    times. Infinite if the line never came back into its range.
    """
    if record.outage_at is None or record.promoted_at is None:
        raise ValueError("drain_time_s needs a run with a failover and sampling")
    times, waiting = backlog_curve(record, homes)
    settle_from = until_s - settle_fraction * (until_s - record.promoted_at)
    settled = waiting[(times >= settle_from) & (times <= until_s)]
    normal = float(np.quantile(settled, 0.99)) if len(settled) else 0.0
    after = (times >= record.promoted_at) & (times <= until_s) & (waiting <= normal)
    if not after.any():
        return float("inf")
    return float(times[after][0] - record.promoted_at)


@dataclass(frozen=True)
class KeyOrder:
    """Per-key order in a record: same-key successor pairs checked, and how many of
    them started before their predecessor finished (design §3.3 allows none)."""

    pairs: int
    violations: int


def key_order(record: RunRecord) -> KeyOrder:
    """Check that within each key tasks start in arrival order after the previous one
    finished, across failovers and retries included."""
    order = np.lexsort((record.arrival, record.key, record.home))
    home, key = record.home[order], record.key[order]
    start, finish = record.start[order], record.finish[order]
    same = (home[1:] == home[:-1]) & (key[1:] == key[:-1])
    return KeyOrder(int(same.sum()), int(np.sum(start[1:][same] < finish[:-1][same])))
