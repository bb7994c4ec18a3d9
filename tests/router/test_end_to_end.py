"""Submit, run, get, watch, cancel, dead-letter and requeue through a real gateway and a
real worker, both in this process, on the test cluster's Redis and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from homeport.core.worker import Worker
from homeport.router.client import AsyncClient
from homeport.router.views import TaskEventView

from tests.router import apps
from tests.router.conftest import REGION, engine_settings

RUN_LIMIT_S = 30.0


async def run_worker_until_drained(redis_url: str, pg_dsn: str) -> None:
    settings = engine_settings(redis_url, pg_dsn, heartbeat_s=0.05, block_ms=20)
    worker = Worker(apps.app, settings, seed=7)
    await asyncio.wait_for(worker.run(burst=True), RUN_LIMIT_S)


@pytest.fixture
def run(redis_url: str, pg_dsn: str):  # type: ignore[no-untyped-def]
    async def go() -> None:
        await run_worker_until_drained(redis_url, pg_dsn)

    return go


async def test_submitted_task_runs_and_is_readable_and_watchable(client: AsyncClient, run) -> None:
    done = await client.submit("echo", "customer-9", b"payload-1")
    events: list[TaskEventView] = []

    async def watch() -> None:
        async for event in client.watch(done.task_id, timeout=RUN_LIMIT_S):
            events.append(event)

    watcher = asyncio.create_task(watch())
    # Not recorded until a worker picks it up, but visible from its home's Redis.
    assert (await client.get(done.task_id)).status == "enqueued"
    await run()
    await asyncio.wait_for(watcher, RUN_LIMIT_S)
    task = await client.get(done.task_id)
    assert (task.status, task.result, task.region) == ("succeeded", b"payload-1", REGION)
    assert task.partition == done.partition
    assert [a.outcome for a in task.attempts] == ["succeeded"]
    assert events[-1].status == "succeeded" and events[-1].final
    assert apps.EXECUTIONS[done.task_id] == 1


async def test_cancelled_task_never_runs(client: AsyncClient, run) -> None:
    done = await client.submit("noop", "order-5")
    outcome = await client.cancel(done.task_id, partition_key="order-5")
    assert outcome.cancelled and outcome.status == "cancelled"
    await run()
    assert (await client.get(done.task_id)).status == "cancelled"
    assert apps.EXECUTIONS[done.task_id] == 0
    again = await client.cancel(done.task_id)  # recorded now: no key needed
    assert not again.cancelled and again.status == "cancelled"


async def test_dead_letter_is_listed_and_requeued(client: AsyncClient, run) -> None:
    apps.FAILING.add("fragile")
    done = await client.submit("flaky", "fragile", max_attempts=2)
    await run()
    task = await client.get(done.task_id)
    assert task.status == "dead"
    assert [a.outcome for a in task.attempts] == ["failed", "failed"]
    dead = await client.dead_letters()
    assert [d.task_id for d in dead] == [done.task_id]
    assert dead[0].partition == done.partition and dead[0].kind == "flaky"
    apps.FAILING.discard("fragile")
    assert await client.requeue(done.task_id) == done.partition
    assert await client.dead_letters() == []
    assert (await client.get(done.task_id)).status == "enqueued"  # a new run begins
    await run()
    task = await client.get(done.task_id)
    assert apps.EXECUTIONS[done.task_id] == 3
    # The final status is the last run's; every attempt of both runs stays in the history.
    assert (task.status, task.error, task.attempt_count) == ("succeeded", "", 1)
    assert [a.outcome for a in task.attempts] == ["failed", "failed", "succeeded"]
