"""The fetch budget (`concurrency + prefetch`): a worker reads ahead of its slots by
`prefetch` entries without beginning them, and exports the running totals the load meter
turns into the mean fetch hold (`regions.loadmeter`). Against real Redis and PostgreSQL,
the worker in-process."""

from __future__ import annotations

import asyncio

import pytest
from homeport.core.app import App, TaskContext
from homeport.core.broker import Broker
from homeport.core.keys import GROUP, RegionKeys
from homeport.core.producer import Producer
from homeport.core.store import RecordStore
from homeport.core.task import new_task

from tests.conftest import running_worker, wait_for

from .conftest import REGION, make_settings

TASKS = 8


async def _pending(broker: Broker) -> int:
    stream = RegionKeys(REGION).partition(0).stream
    got = await broker.raw(stream, lambda c: c.xpending(stream, GROUP))
    return int(got["pending"])


async def _begun(broker: Broker) -> int:
    started = RegionKeys(REGION).partition(0).started
    return int(await broker.raw(started, lambda c: c.hlen(started)))


@pytest.mark.parametrize("prefetch", [0, 3])
async def test_a_worker_reads_prefetch_entries_ahead_of_its_slots_without_beginning_them(
    redis_url: str, pg_dsn: str, broker: Broker, store: RecordStore, prefetch: int
) -> None:
    app = App()
    go = asyncio.Event()
    running = [0]

    @app.task("gated")
    async def gated(ctx: TaskContext) -> None:
        running[0] += 1
        await go.wait()

    # One partition: its reader is the only one, so the budget is exact (each partition's
    # reader may land one read past it).
    settings = make_settings(redis_url, pg_dsn, partitions=1, concurrency=1, prefetch=prefetch)
    async with running_worker(app, settings) as w:
        producer = Producer(broker, settings)
        tasks = [new_task(f"key-{i}", "gated") for i in range(TASKS)]
        assert all(r.ok for r in await producer.submit_many(tasks, epoch=0))

        async def read_ahead() -> bool:
            return running[0] == 1 and await _pending(broker) == 1 + prefetch

        await wait_for(read_ahead, 10, f"one task running and {prefetch} read ahead")
        # The budget holds: the reader waits for a release, nothing more is read, and
        # of the entries read only the running one has begun (a crash now would make
        # one suspect, not 1 + prefetch).
        await asyncio.sleep(0.3)
        assert (running[0], await _pending(broker), await _begun(broker)) == (1, 1 + prefetch, 1)
        go.set()

        async def all_done() -> bool:
            return await _pending(broker) == 0 and running[0] == TASKS

        await wait_for(all_done, 20, "every task to run and be acked")
        m = w.metrics
        assert m.value("homeport_fetch_budget") == 1 + prefetch
        assert m.value("homeport_fetch_budget_released") == TASKS
        # Each unit was held at least from its read to the gate's opening, 0.3 s above.
        assert m.value("homeport_fetch_budget_held_seconds") >= 0.3 * (1 + prefetch)
