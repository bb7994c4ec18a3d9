"""Waits that end on a notice, not on a tight poll: the delayed-task forwarder
(`core.forwarder`) and a parked worker (`core.worker.wait_for_promotion`).

Every test sets the fallback poll far above what it asserts, so a wait that ends on time
can only have ended through its notice: enqueue.lua's publish, the worker's own note of
a retry it scheduled, or a fence's announcement."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from homeport.core.app import App, TaskContext
from homeport.core.broker import Broker
from homeport.core.keys import RegionKeys
from homeport.core.producer import Producer
from homeport.core.security import Identity
from homeport.core.task import new_task
from homeport.core.worker import wait_for_promotion
from homeport.regions import stores

from tests.conftest import running_worker, wait_for

from .conftest import REGION, make_settings

FALLBACK_S = 30.0  # a task late by this much came from the fallback scan


def _timed_app(started: dict[str, float]) -> App:
    app = App()

    @app.task("timed", ordered=False)
    async def timed(ctx: TaskContext) -> None:
        started[ctx.payload.decode()] = time.time()

    return app


def _client(redis_url: str) -> aioredis.Redis:
    """A plain client as the session's operator (PUBSUB, CLIENT KILL)."""
    return aioredis.Redis.from_url(redis_url, **Identity.from_env().redis_pool_kwargs())


async def _subscribed(redis_url: str, channel: str = RegionKeys(REGION).due) -> bool:
    """Does anyone listen on `channel` (by default: a forwarder, for delayed tasks)?"""
    client = _client(redis_url)
    try:
        got = await client.pubsub_numsub(channel)
        return int(got[0][1]) >= 1
    finally:
        await client.aclose()


async def test_a_task_delayed_after_the_last_scan_runs_at_its_due_time(
    redis_url: str, broker: Broker
) -> None:
    started: dict[str, float] = {}
    settings = make_settings(redis_url, forward_interval_s=FALLBACK_S)
    producer = Producer(broker, settings)
    async with running_worker(_timed_app(started), settings):
        await wait_for(lambda: _subscribed(redis_url), 5, "the forwarder to subscribe")
        await asyncio.sleep(0.3)  # the forwarder has scanned and sleeps for the fallback
        now = time.time()
        # A late task first, then an earlier one: the second notice moves the step again.
        late = new_task("k1", "timed", b"late", scheduled_at=now + 1.5)
        soon = new_task("k2", "timed", b"soon", scheduled_at=now + 0.4)
        for task in (late, soon):
            [result] = await producer.submit_many([task], epoch=0)
            assert result.entry_id and result.entry_id.startswith("delayed:")
        await wait_for(lambda: len(started) == 2, 10, "both delayed tasks to start")
    for name, due in (("soon", now + 0.4), ("late", now + 1.5)):
        lateness = started[name] - due
        assert 0 <= lateness < 2.0, f"{name}: started {lateness:+.2f}s after its due time"


async def test_an_unordered_retry_is_forwarded_at_its_backoff(
    redis_url: str, broker: Broker
) -> None:
    app = App()
    attempts: list[float] = []

    @app.task("flaky", ordered=False, backoff_base_s=0.3, backoff_max_s=0.3)
    async def flaky(ctx: TaskContext) -> None:
        attempts.append(time.time())
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    settings = make_settings(redis_url, forward_interval_s=FALLBACK_S)
    async with running_worker(app, settings):
        await asyncio.sleep(0.3)
        await Producer(broker, settings).submit(new_task("k", "flaky", b""), epoch=0)
        await wait_for(lambda: len(attempts) == 2, 10, "the retry to run")
    gap = attempts[1] - attempts[0]
    assert gap < 2.0, f"the retry ran {gap:.2f}s after the failure (backoff 0.3s, jittered)"


async def test_a_lost_subscription_is_counted_and_renewed_and_the_task_still_runs(
    redis_url: str, broker: Broker
) -> None:
    started: dict[str, float] = {}
    settings = make_settings(redis_url, forward_interval_s=1.0)
    admin = _client(redis_url)
    try:
        async with running_worker(_timed_app(started), settings) as worker:
            await wait_for(lambda: _subscribed(redis_url), 5, "the forwarder to subscribe")
            errors = worker.metrics.loop_errors.labels("forwarder-notices")
            before = errors._value.get()
            killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            assert killed >= 1
            # Published while nobody listens: lost. The renewed subscription's step (or
            # the fallback scan) forwards it.
            due = time.time() + 0.2
            task = new_task("k", "timed", b"t", scheduled_at=due)
            await Producer(broker, settings).submit(task, epoch=0)
            await wait_for(lambda: "t" in started, 10, "the task whose notice was lost")
            await wait_for(lambda: _subscribed(redis_url), 5, "the forwarder to resubscribe")
            assert errors._value.get() > before
    finally:
        await admin.aclose()
    assert started["t"] - due < 2.5, f"started {started['t'] - due:.2f}s late"


async def test_a_parked_worker_starts_on_the_fence_notice(redis_url: str, broker: Broker) -> None:
    """A parked worker waits for its store to carry the promotion's epoch; the fence that
    sets it announces it, and the worker goes at once, not at its next poll."""
    settings = make_settings(redis_url)
    target = await broker.get_epoch(RegionKeys(REGION).partition(0)) + 1
    waiter = asyncio.create_task(wait_for_promotion(settings, target, poll_s=FALLBACK_S))
    channel = RegionKeys(REGION).fenced
    await wait_for(lambda: _subscribed(redis_url, channel), 5, "the parked worker to listen")
    assert not waiter.done(), "went before its epoch was set"
    admin = _client(redis_url)
    keys = [RegionKeys(REGION).partition(p).epoch for p in range(settings.partitions)]
    before = await admin.mget(keys)
    try:
        fenced_at = time.monotonic()
        await stores.fence(admin, REGION, settings.partitions, target)
        await asyncio.wait_for(waiter, 5)
    finally:  # the other tests write at their own epoch
        for key, value in zip(keys, before, strict=True):
            await (admin.delete(key) if value is None else admin.set(key, value))
        await admin.aclose()
    assert time.monotonic() - fenced_at < 2.0


async def test_delayed_tasks_of_partitions_taken_over_are_forwarded_at_once(
    redis_url: str, broker: Broker
) -> None:
    """Tasks came due while no worker owned their partitions (their notices reached
    nobody): the worker that takes the partitions over forwards them at once, not at its
    fallback scan."""
    started: dict[str, float] = {}
    settings = make_settings(redis_url, forward_interval_s=FALLBACK_S)
    due = time.time() + 0.2
    tasks = [new_task(f"k{i}", "timed", f"t{i}".encode(), scheduled_at=due) for i in range(20)]
    await Producer(broker, settings).submit_many(tasks, epoch=0)
    await asyncio.sleep(0.3)  # due, and nobody forwards them
    async with running_worker(_timed_app(started), settings):
        await wait_for(lambda: len(started) == len(tasks), 10, "the overdue delayed tasks")
