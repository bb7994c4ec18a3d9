"""The export for the simulation: a run's measurements in `homeport-loadtest-export/1`.

The format is defined (and read) by `simulation.exports`; docs/loadtest.md describes
where each field comes from:

- `duration_s`: the measured window, from Locust's history (first to last second with
  requests), else the configured duration;
- `arrival_rate_per_s` and `tasks`: tasks the gateway accepted in that window (Locust's
  successful Submits plus the tasks of successful batches) divided by it;
- `service_time_s`: each attempt's `finished_at - started_at` (PostgreSQL `attempts`);
- `queue_wait_s`: first attempt's `started_at` minus the task's `enqueued_at` (set by the
  gateway when it enqueued the task);
- `end_to_end_s`: the task's `finished_at - enqueued_at`;
- `setup`: the workers, their concurrency and the partitions that served the run, and
  (`owners`) per partition the worker that ran most of its attempts;
- `arrival_times_s`: every task's `enqueued_at` (first attempts), seconds from the first
  one, sorted: the arrival process the model replays in `homeport plan validate` (Locust
  users at a constant throughput are far more regular than Poisson arrivals);
- `slot_hold_s`: how long each task held a handler slot, from before its begin step to
  its handler's end (the workers' `homeport_slot_hold_seconds` histogram, summed over
  the workers and read after every task was recorded). The handler time above leaves
  out the begin round trip, which a slot is held for too; the model calibrates on this.

Samples are kept raw up to `MAX_SAMPLES` per measurement, else thinned to every k-th in
start order (deterministic, so the same run exports the same file); p50/p99 are computed
on all values before thinning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from homeport.loadtest.locuststats import HistoryPoint
from prometheus_client.parser import text_string_to_metric_families

EXPORT_FORMAT = "homeport-loadtest-export/1"
MAX_SAMPLES = 20_000


def _quantile(ordered: Sequence[float], q: float) -> float:
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measurement(values: Iterable[float]) -> dict[str, Any] | None:
    """`{samples, p50_s, p99_s}`, or None when nothing was measured."""
    kept = [max(0.0, v) for v in values]
    if not kept:
        return None
    ordered = sorted(kept)
    step = math.ceil(len(kept) / MAX_SAMPLES)
    return {
        "samples": [round(v, 7) for v in kept[::step]],
        "p50_s": _quantile(ordered, 0.5),
        "p99_s": _quantile(ordered, 0.99),
    }


def window_s(history: Sequence[HistoryPoint], fallback_s: float) -> float:
    """Seconds between the first and the last history point that saw requests."""
    busy = [p.timestamp for p in history if p.requests > 0]
    if len(busy) < 2:
        return fallback_s
    return float(busy[-1] - busy[0] + 1)


def build_export(
    *,
    duration_s: float,
    tasks: int,
    rows: Sequence[Mapping[str, Any]],
    workers: int,
    concurrency: int,
    partitions: int,
) -> dict[str, Any]:
    """The export document from the accepted task count and the run's attempt rows."""
    timed = sorted(
        (r for r in rows if r.get("started_at") is not None), key=lambda r: float(r["started_at"])
    )
    service = [
        float(r["finished_at"]) - float(r["started_at"])
        for r in timed
        if r.get("finished_at") is not None
    ]
    wait = [
        float(r["started_at"]) - float(r["enqueued_at"])
        for r in timed
        if r.get("attempt", 1) == 1 and r.get("enqueued_at") is not None
    ]
    e2e = [
        float(r["task_finished_at"]) - float(r["enqueued_at"])
        for r in timed
        if r.get("attempt", 1) == 1
        and r.get("enqueued_at") is not None
        and r.get("task_finished_at") is not None
    ]
    doc: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "duration_s": duration_s,
        "setup": {"workers": workers, "concurrency": concurrency, "partitions": partitions},
        "service_time_s": measurement(service),
    }
    if tasks > 0:
        doc["tasks"] = tasks
        doc["arrival_rate_per_s"] = tasks / duration_s
    for name, values in (("queue_wait_s", wait), ("end_to_end_s", e2e)):
        m = measurement(values)
        if m is not None:
            doc[name] = m
    arrivals = arrival_times(timed)
    if arrivals:
        doc["arrival_times_s"] = arrivals
    owners = partition_owners(timed, partitions)
    if owners is not None:
        doc["setup"]["owners"] = owners
    return doc


def partition_owners(rows: Iterable[Mapping[str, Any]], partitions: int) -> list[int] | None:
    """Per partition, which worker ran most of its attempts (workers numbered in the order
    of their ids), or None when the rows do not say (older rows, or a partition with no
    attempt). The model replays this split instead of assuming an even one."""
    counts: dict[int, dict[str, int]] = {}
    for r in rows:
        worker, partition = r.get("worker"), r.get("partition")
        if worker is None or partition is None:
            return None
        by_worker = counts.setdefault(int(partition), {})
        by_worker[str(worker)] = by_worker.get(str(worker), 0) + 1
    if sorted(counts) != list(range(partitions)):
        return None
    number = {w: i for i, w in enumerate(sorted({w for c in counts.values() for w in c}))}
    return [number[max(counts[p], key=lambda w: (counts[p][w], w))] for p in range(partitions)]


def arrival_times(rows: Iterable[Mapping[str, Any]]) -> list[float]:
    """The tasks' enqueue times (first attempts), seconds from the first, sorted and
    rounded to the microsecond."""
    enqueued = sorted(
        float(r["enqueued_at"])
        for r in rows
        if r.get("attempt", 1) == 1 and r.get("enqueued_at") is not None
    )
    return [round(t - enqueued[0], 6) for t in enqueued]


def slot_hold(metrics_texts: Iterable[str]) -> dict[str, Any] | None:
    """`{histogram: {bounds_s, counts}}` of the slot hold times in the workers' /metrics
    texts (cumulative buckets summed over workers and regions, made per-bucket), or None
    when no worker observed one. Holds beyond the last finite bound (14 s) are left out."""
    cumulative: dict[float, float] = {}
    for text in metrics_texts:
        for family in text_string_to_metric_families(text):
            if family.name != "homeport_slot_hold_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket") and sample.labels["le"] != "+Inf":
                    bound = float(sample.labels["le"])
                    cumulative[bound] = cumulative.get(bound, 0.0) + sample.value
    bounds = sorted(cumulative)
    counts = [int(cumulative[b]) for b in bounds]
    per_bucket = [c - p for c, p in zip(counts, [0, *counts], strict=False)]
    if not sum(per_bucket):
        return None
    return {"histogram": {"bounds_s": bounds, "counts": per_bucket}}


def write_export(doc: Mapping[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path
