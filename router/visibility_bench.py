"""Benchmark: what making a waiting task visible costs, for the two designs issue 18
allowed (docs/gateway.md, "A task is visible from its acknowledgement").

- **redis** (chosen): submit is unchanged; GetTask of an unrecorded task reads the keys the
  enqueue script writes anyway (`Broker.find_waiting` on every partition of the home).
- **record**: submit also writes an ENQUEUED row to PostgreSQL before acknowledging
  (`RecordStore.write`, batched per call, as a gateway would have to).

Measured in one run, alternating the two, medians over `--reps`: single-task submit
latency (sequential, one task per call), batched submit throughput (`--batch` per call),
and the read side of the redis design (GetTask of a waiting task: one `find_waiting` per
partition, concurrently). Writes go to region `--region` of the given Redis and database
and are deleted afterwards.

    python -m homeport.router.visibility_bench --redis-url redis://... --pg-dsn postgresql://...
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import click
from homeport.core.broker import Broker
from homeport.core.keys import RegionKeys
from homeport.core.partitioner import partition_of
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.store import RecordStore, Status, TaskRecord
from homeport.core.task import Task, new_task


def _tasks(n: int) -> list[Task]:
    run = uuid.uuid4().hex[:8]
    return [new_task(id=f"vb-{run}-{i}", partition_key=f"k{i}", kind="noop") for i in range(n)]


def _records(tasks: list[Task], region: str, partitions: int) -> list[TaskRecord]:
    now = time.time()
    return [
        TaskRecord(t.id, t.partition_key, partition_of(t.partition_key, partitions), region,
                   t.kind, Status.ENQUEUED, payload=t.payload, enqueued_at=now)
        for t in tasks
    ]  # fmt: skip


async def _submit(producer: Producer, store: RecordStore | None, tasks: list[Task],
                  settings: Settings) -> None:  # fmt: skip
    await producer.submit_many(tasks, 0)
    if store is not None:
        await store.write(_records(tasks, settings.region, settings.partitions), [])


async def _single_p50_ms(producer: Producer, store: RecordStore | None, settings: Settings,
                         n: int) -> float:  # fmt: skip
    took = []
    for task in _tasks(n):
        t0 = time.perf_counter()
        await _submit(producer, store, [task], settings)
        took.append((time.perf_counter() - t0) * 1000)
    return statistics.median(took)


async def _batch_rate(producer: Producer, store: RecordStore | None, settings: Settings,
                      batch: int, batches: int) -> float:  # fmt: skip
    work = [_tasks(batch) for _ in range(batches)]
    t0 = time.perf_counter()
    for tasks in work:
        await _submit(producer, store, tasks, settings)
    return batch * batches / (time.perf_counter() - t0)


async def _lookup_p50_ms(broker: Broker, settings: Settings, task_ids: list[str]) -> float:
    rk = RegionKeys(settings.region)
    took = []
    for task_id in task_ids:
        t0 = time.perf_counter()
        got = await broker.find_waiting(
            [rk.partition(p) for p in range(settings.partitions)], task_id
        )
        assert any(w is not None for w in got), f"{task_id} not found"
        took.append((time.perf_counter() - t0) * 1000)
    return statistics.median(took)


async def run(redis_url: str, pg_dsn: str, region: str, partitions: int, reps: int,
              singles: int, batch: int, batches: int) -> None:  # fmt: skip
    settings = Settings(region=region, partitions=partitions, redis_url=redis_url,
                        pg_dsn=pg_dsn, admin_port=-1)  # fmt: skip
    broker = Broker.from_settings(settings)
    await broker.connect()
    store = await RecordStore.connect(pg_dsn)
    await store.migrate()
    producer = Producer(broker, settings)
    rows: dict[str, list[float]] = {}
    try:
        for _ in range(reps):
            for name, s in (("redis", None), ("record", store)):
                rows.setdefault(f"single p50 ms ({name})", []).append(
                    await _single_p50_ms(producer, s, settings, singles)
                )
                rows.setdefault(f"batch tasks/s ({name})", []).append(
                    await _batch_rate(producer, s, settings, batch, batches)
                )
            ids = [t.id for t in _tasks(200)]
            await producer.submit_many([new_task(id=i, partition_key=i, kind="noop")
                                        for i in ids], 0)  # fmt: skip
            rows.setdefault("GetTask of a waiting task, p50 ms (redis)", []).append(
                await _lookup_p50_ms(broker, settings, ids)
            )
    finally:
        async with store._conn() as conn:
            await conn.execute("DELETE FROM tasks WHERE region = $1", region)
        await store.close()
        await broker.close()
    for name, values in rows.items():
        print(f"{name:45} median {statistics.median(values):10.3f}   "
              f"runs {', '.join(f'{v:.3f}' for v in values)}")  # fmt: skip
    single = statistics.median(rows["single p50 ms (record)"]) / statistics.median(
        rows["single p50 ms (redis)"]
    )
    rate = statistics.median(rows["batch tasks/s (redis)"]) / statistics.median(
        rows["batch tasks/s (record)"]
    )
    print(f"record at submit: single submit x{single:.2f} slower, batch x{rate:.2f} slower")


@click.command("visibility")
@click.option("--redis-url", required=True, help="Redis to enqueue into (a test region).")
@click.option("--pg-dsn", required=True, help="PostgreSQL for the record-at-submit variant.")
@click.option("--region", default="bench-vis", show_default=True, help="Region name written.")
@click.option("--partitions", default=16, show_default=True)
@click.option("--reps", default=5, show_default=True, help="Alternating repetitions.")
@click.option("--singles", default=500, show_default=True, help="Single submits per rep.")
@click.option("--batch", default=1000, show_default=True, help="Tasks per batched submit.")
@click.option("--batches", default=10, show_default=True, help="Batched submits per rep.")
def main(**opts: object) -> None:
    """Measure the submit-path cost of making waiting tasks visible, both designs."""
    asyncio.run(run(**opts))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
