"""Costs that grow with work stay flat: stream entries are trimmed, dedup keys expire."""

from __future__ import annotations

import asyncio

import pytest
from homeport.core.app import App, TaskContext
from homeport.core.broker import Broker
from homeport.core.keys import RegionKeys
from homeport.core.producer import Producer
from homeport.core.task import new_task

from tests.conftest import running_worker, wait_for

from .conftest import REGION, make_settings

TOLERANCE_BYTES = 2 * 1024 * 1024


async def _quiet(broker: Broker, partitions: int, keys_at_most: int) -> bool:
    rk = RegionKeys(REGION)
    lengths = [await broker.stream_length(rk.partition(p)) for p in range(partitions)]
    keys = await broker.raw("x", lambda c: c.dbsize())
    return sum(lengths) == 0 and keys <= keys_at_most


@pytest.mark.timeout(300)
async def test_redis_memory_returns_to_baseline_after_200k_tasks(
    redis_url: str, broker: Broker
) -> None:
    app = App()
    done = [0]

    @app.task("noop")
    async def noop(ctx: TaskContext) -> None:
        done[0] += 1

    settings = make_settings(redis_url, dedup_window_s=1.0, trim_interval_s=0.1)
    producer = Producer(broker, settings)

    async def ran(n: int) -> bool:
        return done[0] >= n

    async with running_worker(app, settings):
        warm = [new_task(f"w{i}", "noop", b"x" * 64) for i in range(2000)]
        await producer.submit_many(warm, epoch=0)
        await wait_for(lambda: ran(2000), 30, "the warm-up tasks")
        # Baseline: streams, groups and consumers exist; warm-up dedup keys have expired.
        keys = 3 * settings.partitions + 2  # stream + epoch + lease per partition, ...
        await wait_for(
            lambda: _quiet(broker, settings.partitions, keys + 8),
            30,
            "warm-up entries trimmed and dedup keys expired",
            poll=0.1,
        )
        baseline_keys = await broker.raw("x", lambda c: c.dbsize())
        baseline = await broker.memory_used()

        total = 200_000
        peak = baseline
        for lo in range(0, total, 5000):
            batch = [new_task(f"k{i}", "noop", b"x" * 64) for i in range(lo, lo + 5000)]
            results = await producer.submit_many(batch, epoch=0)
            assert all(r.ok for r in results)
            peak = max(peak, await broker.memory_used())
            while done[0] < 2000 + lo - 20_000:  # keep at most ~20k queued
                await asyncio.sleep(0.01)
        await wait_for(lambda: ran(2000 + total), 300, f"{total} tasks to run")
        await wait_for(
            lambda: _quiet(broker, settings.partitions, baseline_keys),
            30,
            "streams trimmed and dedup keys expired",
            poll=0.1,
        )
        after = await broker.memory_used()

    grew = after - baseline
    assert peak - baseline > 2 * TOLERANCE_BYTES, "the load should have used memory"
    assert grew < TOLERANCE_BYTES, (
        f"Redis memory {baseline} -> {after} bytes (+{grew}), peak {peak}; "
        f"tolerance {TOLERANCE_BYTES} bytes"
    )
