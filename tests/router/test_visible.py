"""A task is visible from the moment its submit is acknowledged (issue 18, point 1):
GetTask, WatchTask and CancelTask answer for a task no worker has picked up yet, from
what its home's Redis holds, on a real gateway, Redis, PostgreSQL and worker."""

from __future__ import annotations

import asyncio
import time

import pytest
from homeport.core.broker import Broker
from homeport.core.errors import Unavailable
from homeport.core.store import RecordStore
from homeport.router.client import AsyncClient
from homeport.router.errors import TaskNotFoundError
from homeport.router.finder import TaskFinder
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.records import TaskLookup
from homeport.router.views import TaskEventView

from tests.router import apps
from tests.router.conftest import PARTITIONS, REGION
from tests.router.test_end_to_end import RUN_LIMIT_S, run_worker_until_drained


async def test_a_queued_task_is_enqueued_with_its_fields_before_any_worker(
    client: AsyncClient,
) -> None:
    done = await client.submit("echo", "visible-1", b"p-1")
    task = await client.get(done.task_id)
    assert task.status == "enqueued"
    assert (task.kind, task.partition_key, task.payload) == ("echo", "visible-1", b"p-1")
    assert (task.partition, task.region) == (done.partition, REGION)
    assert task.enqueued_at is not None and task.attempts == ()


async def test_a_delayed_task_is_scheduled_with_its_due_time(client: AsyncClient) -> None:
    due = time.time() + 600
    done = await client.submit("noop", "visible-2", scheduled_at=due)
    task = await client.get(done.task_id)
    assert task.status == "scheduled"
    assert task.scheduled_at is not None
    assert abs(task.scheduled_at.timestamp() - due) < 0.01


async def test_an_unknown_id_is_still_not_found(client: AsyncClient) -> None:
    with pytest.raises(TaskNotFoundError):
        await client.get("never-submitted")


async def test_cancel_needs_no_key_for_a_waiting_task_and_it_never_runs(
    client: AsyncClient, redis_url: str, pg_dsn: str
) -> None:
    queued = await client.submit("noop", "visible-3")
    delayed = await client.submit("noop", "visible-4", scheduled_at=time.time() + 600)
    for task_id in (queued.task_id, delayed.task_id):
        outcome = await client.cancel(task_id)  # no partition key: found in Redis
        assert (outcome.cancelled, outcome.status) == (True, "cancelled")
        assert (await client.get(task_id)).status == "cancelled"
    await run_worker_until_drained(redis_url, pg_dsn)
    assert apps.EXECUTIONS[queued.task_id] == 0
    assert apps.EXECUTIONS[delayed.task_id] == 0


async def test_watch_starts_at_enqueued_and_ends_at_the_final_status(
    client: AsyncClient, redis_url: str, pg_dsn: str
) -> None:
    done = await client.submit("echo", "visible-5", b"x")
    events: list[TaskEventView] = []
    first = asyncio.Event()

    async def watch() -> None:
        async for event in client.watch(done.task_id, timeout=RUN_LIMIT_S):
            events.append(event)
            first.set()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(first.wait(), RUN_LIMIT_S)  # before any worker runs
    await run_worker_until_drained(redis_url, pg_dsn)
    await asyncio.wait_for(watcher, RUN_LIMIT_S)
    assert events[0].status == "enqueued" and not events[0].final
    assert events[-1].status == "succeeded" and events[-1].final


async def test_an_unreachable_home_neither_hides_a_task_nor_fakes_not_found(
    client: AsyncClient, redis_url: str, pg_dsn: str
) -> None:
    """`TaskFinder` over two homes, one of them a Redis nobody listens on (connection
    refused, for real): a task of the reachable home is still found; an unknown id is
    UNAVAILABLE (the other home could not be asked), not NOT_FOUND."""
    done = await client.submit("noop", "visible-6")
    broker, dead = Broker(redis_url), Broker("redis://127.0.0.1:1/0")
    await broker.connect()
    store = await RecordStore.connect(pg_dsn)
    lookups = {
        REGION: TaskLookup(broker, store, REGION, PARTITIONS),
        "nowhere": TaskLookup(dead, store, "nowhere", 2),
    }

    async def lookup_for(home: str) -> TaskLookup:
        return lookups[home]

    finder = TaskFinder(lambda: ["nowhere", REGION], lookup_for, lambda _: REGION)
    try:
        assert (await finder.get(done.task_id)).status == pb.TASK_STATUS_ENQUEUED
        with pytest.raises(Unavailable):
            await finder.get("never-submitted")
    finally:
        await broker.close()
        await dead.close()
        await store.close()
