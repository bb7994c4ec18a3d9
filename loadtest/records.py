"""What PostgreSQL records say about a run: its tasks and attempts, found by id prefix.

Reads go through `core.store.RecordStore` (the one module that speaks to PostgreSQL).
Timing rows are plain mappings with the field names `simulation.calibration` reads
(`enqueued_at`, `started_at`, `finished_at`, `attempt`, `status`, `partition_key`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from homeport.core.store import RecordStore


@dataclass(frozen=True)
class RunRecords:
    """The tasks (final or not) and the attempts of one run."""

    tasks: int
    finished: int
    rows: list[dict[str, Any]]  # one per attempt, with its task's enqueued_at and key


async def _read(store: RecordStore, run_id: str) -> RunRecords:
    tasks = await store.tasks("id LIKE $1", f"{run_id}-%")
    by_id = {t.id: t for t in tasks}
    rows = [
        {
            "enqueued_at": by_id[a.task_id].enqueued_at,
            "started_at": a.started_at,
            "finished_at": a.finished_at,
            "attempt": a.attempt,
            "status": a.status.value,
            "partition_key": by_id[a.task_id].partition_key,
            "task_finished_at": by_id[a.task_id].finished_at,
            "worker": a.worker,
            "partition": a.partition,
        }
        for a in await store.attempts()
        if a.task_id in by_id
    ]
    finished = sum(1 for t in tasks if t.status.rank == 3)
    return RunRecords(len(tasks), finished, rows)


STALL_S = 15.0


async def read_run(pg_dsn: str, run_id: str, expect: int = 0, wait_s: float = 0.0) -> RunRecords:
    """The run's records; with `expect`, first wait until that many tasks are final (so a
    worker still draining is not mistaken for lost work), at most `wait_s`, and no longer
    than `STALL_S` without progress."""
    store = await RecordStore.connect(pg_dsn)
    try:
        deadline = time.monotonic() + wait_s
        last, last_change = -1, time.monotonic()
        while True:
            count = len(await store.tasks("id LIKE $1 AND status_rank = 3", f"{run_id}-%"))
            now = time.monotonic()
            if count != last:
                last, last_change = count, now
            if count >= expect or now > deadline or now - last_change > STALL_S:
                break
            await asyncio.sleep(0.25)  # waiting for workers to drain; bounded above
        return await _read(store, run_id)
    finally:
        await store.close()
