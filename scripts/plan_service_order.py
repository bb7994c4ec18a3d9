"""How far a worker's service order is from FIFO, from a load test's records.

Usage: .venv/bin/python scripts/plan_service_order.py PG_DSN RUN_ID
(while the cluster of the run is still up: `homeport loadtest run` prints the run id).
Among tasks that waited more than 10 ms, the share of (task, task enqueued after it among
the next 60) pairs where the later task started first, split into overtakes from the same
partition and from others. FIFO has none; a worker serving its partitions round-robin has
overtakes from other partitions only (docs/simulation.md, "Service order"; 2.0 % measured
at ρ 0.85 with one worker of 4 slots and 16 partitions).
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np
from homeport.loadtest.records import read_run


def overtakes(
    enqueued: np.ndarray, started: np.ndarray, partition: np.ndarray, window: int = 60
) -> tuple[int, int, int]:
    """(pairs, overtakes by the same partition, by other partitions); arrays in enqueue
    order, seconds. A pair counts when the later one was enqueued > 2 ms after and
    started > 2 ms before the waiting task."""
    n = len(enqueued)
    pairs = same = other = 0
    for i in np.flatnonzero(started - enqueued > 0.010):
        later = np.arange(i + 1, min(n, i + window))
        later = later[enqueued[later] > enqueued[i] + 0.002]
        pairs += len(later)
        ahead = later[started[later] < started[i] - 0.002]
        same += int(np.sum(partition[ahead] == partition[i]))
        other += int(np.sum(partition[ahead] != partition[i]))
    return pairs, same, other


def main(dsn: str, run_id: str) -> None:
    records = asyncio.run(read_run(dsn, run_id))
    rows = sorted(
        (r for r in records.rows if r.get("attempt", 1) == 1 and r.get("started_at")),
        key=lambda r: float(r["enqueued_at"]),
    )
    enqueued = np.array([float(r["enqueued_at"]) for r in rows])
    started = np.array([float(r["started_at"]) for r in rows])
    partition = np.array([int(r["partition"]) for r in rows])
    pairs, same, other = overtakes(enqueued, started, partition)
    share = (same + other) / max(pairs, 1)
    print(
        f"{len(rows)} tasks, {pairs} pairs: overtaken {share:.1%} (same partition {same}, "
        f"other partitions {other})"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
