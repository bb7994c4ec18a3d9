"""The metrics an operator reads first about one partition: how old is the oldest task
still waiting to start, how many GLOBAL submits were refused, and that a worker stops
reporting a partition it no longer owns (two owners never export the same series)."""

from __future__ import annotations

import time

from homeport.core.broker import Broker
from homeport.core.keys import RegionKeys
from homeport.core.metrics import Metrics
from homeport.core.producer import Producer
from homeport.core.task import Durability, new_task
from homeport.core.trimmer import Trimmer

from .conftest import REGION, make_settings


def _ms(entry_id: str) -> int:
    return int(entry_id.split("-")[0])


async def test_oldest_waiting_age_is_the_first_undelivered_entry(
    redis_url: str, broker: Broker
) -> None:
    producer = Producer(broker, make_settings(redis_url))
    first = await producer.submit(new_task("acct-1", "noop", b"a"), epoch=0)
    second = await producer.submit(new_task("acct-1", "noop", b"b"), epoch=0)
    pk = RegionKeys(REGION).partition(first.partition)
    await broker.ensure_group(pk)
    now = _ms(second.entry_id) + 5000  # an injected clock: no sleep

    waiting = await broker.depth(pk, now)
    assert (waiting.ready, waiting.pending) == (2, 0)
    assert waiting.oldest_ready_ms == now - _ms(first.entry_id)

    await broker.read_new(pk, "c1", count=1, block_ms=0)  # the first is now delivered
    one_left = await broker.depth(pk, now)
    assert (one_left.ready, one_left.pending) == (1, 1)
    assert one_left.oldest_ready_ms == now - _ms(second.entry_id)
    assert one_left.oldest_pending_ms == now - _ms(first.entry_id)

    await broker.read_new(pk, "c1", count=1, block_ms=0)
    assert (await broker.depth(pk, now)).oldest_ready_ms == 0


async def test_global_refusals_are_counted_apart_from_other_durabilities(
    redis_url: str, broker: Broker
) -> None:
    metrics = Metrics()
    # The primary has 2 replicas; asking for 3 times out, for GLOBAL only.
    settings = make_settings(redis_url, global_replicas=3, global_wait_timeout_ms=50)
    producer = Producer(broker, settings, metrics)
    refused = await producer.submit(new_task("k", "noop", durability=Durability.GLOBAL), epoch=0)
    kept = await producer.submit(new_task("k", "noop", durability=Durability.REGION), epoch=0)
    assert refused.error is not None and kept.ok
    assert metrics.value("homeport_not_replicated_total", durability="GLOBAL") == 1
    assert metrics.value("homeport_not_replicated_total", durability="REGION") == 0


async def test_trimmer_drops_the_gauges_of_a_partition_it_no_longer_owns(
    redis_url: str, broker: Broker
) -> None:
    metrics = Metrics()
    producer = Producer(broker, make_settings(redis_url))
    res = await producer.submit(new_task("acct-9", "noop", b"x"), epoch=0)
    pk = RegionKeys(REGION).partition(res.partition)
    await broker.ensure_group(pk)
    owned = [pk]
    trimmer = Trimmer(broker, lambda: owned, 1.0, 3600.0, metrics)
    labels = {"region": REGION, "partition": str(pk.number)}

    await trimmer.run_once()
    assert metrics.value("homeport_queue_depth", state="ready", **labels) == 1
    age = metrics.value("homeport_oldest_waiting_age_seconds", **labels)
    assert 0 <= age < time.time() - _ms(res.entry_id) / 1000 + 1

    owned.clear()  # the partition moved to another worker
    await trimmer.run_once()
    names = {s.name for m in metrics.registry.collect() for s in m.samples}
    assert "homeport_oldest_waiting_age_seconds" not in names
    assert "homeport_queue_depth" not in names
