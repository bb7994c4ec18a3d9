"""Enqueue: fencing, dedup, durability via WAIT, and refusing bad input."""

from __future__ import annotations

import asyncio
import time

import pytest
from homeport.core.broker import Broker
from homeport.core.errors import ErrorCode, Fenced, InvalidArgument, NotReplicated
from homeport.core.keys import RegionKeys
from homeport.core.metrics import Metrics
from homeport.core.partitioner import partition_of
from homeport.core.producer import Producer
from homeport.core.task import Durability, new_task

from .conftest import REGION, make_settings


async def test_stale_epoch_is_fenced_and_writes_nothing(redis_url: str, broker: Broker) -> None:
    settings = make_settings(redis_url)
    producer = Producer(broker, settings)
    first = await producer.submit(new_task("acct-1", "noop", b"a"), epoch=5)
    assert first.ok
    pk = RegionKeys(REGION).partition(first.partition)
    before = await broker.stream_length(pk)

    stale = await producer.submit_many(
        [new_task("acct-1", "noop", b"b"), new_task("acct-1", "noop", b"c")], epoch=4
    )

    assert [r.error.code if r.error else None for r in stale] == [ErrorCode.FENCED] * 2
    assert isinstance(stale[0].error, Fenced) and stale[0].error.current_epoch == 5
    assert await broker.stream_length(pk) == before
    dedup_keys = await broker.raw(pk.stream, lambda c: c.keys(f"hp:{{{pk.name}}}:dedup:*"))
    assert len(dedup_keys) == 1, "the fenced tasks must not leave dedup keys"


async def test_same_id_twice_returns_first_entry(redis_url: str, broker: Broker) -> None:
    producer = Producer(broker, make_settings(redis_url))
    task = new_task("acct-1", "noop", b"a", id="order-42")
    first = await producer.submit(task, epoch=0)
    again = await producer.submit_many([task, task], epoch=0)
    assert not first.duplicate
    assert [(r.entry_id, r.duplicate) for r in again] == [(first.entry_id, True)] * 2
    pk = RegionKeys(REGION).partition(first.partition)
    assert await broker.stream_length(pk) == 1


async def test_global_durability_waits_for_both_replicas(redis_url: str, broker: Broker) -> None:
    producer = Producer(broker, make_settings(redis_url, global_replicas=2))
    res = await producer.submit(new_task("k", "noop", durability=Durability.GLOBAL), epoch=0)
    assert res.ok, res.error


async def test_too_few_replicas_is_not_replicated(redis_url: str, broker: Broker) -> None:
    metrics = Metrics()
    # The primary has 2 replicas; asking for 3 can only time out.
    settings = make_settings(redis_url, global_replicas=3, global_wait_timeout_ms=50)
    producer = Producer(broker, settings, metrics)
    res = await producer.submit(new_task("k", "noop", durability=Durability.GLOBAL), epoch=0)
    assert isinstance(res.error, NotReplicated)
    assert (res.error.wanted, res.error.acked) == (3, 2)
    assert "resubmit it with the same id" in str(res.error)
    assert metrics.value("homeport_not_replicated_total") == 1


async def test_global_waits_its_own_longer_budget_for_the_cross_region_ack(
    redis_url: str, broker: Broker
) -> None:
    # Ask for one replica more than exist, so each WAIT runs to its timeout.
    settings = make_settings(
        redis_url, region_replicas=3, global_replicas=3,
        wait_timeout_ms=50, global_wait_timeout_ms=400,
    )  # fmt: skip
    producer = Producer(broker, settings)
    waited = {}
    for durability in (Durability.REGION, Durability.GLOBAL):
        start = time.monotonic()
        res = await producer.submit(new_task("k", "noop", durability=durability), epoch=0)
        waited[durability] = time.monotonic() - start
        assert isinstance(res.error, NotReplicated), durability
    assert waited[Durability.REGION] < 0.4 <= waited[Durability.GLOBAL], waited


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(partition_key=""), "partition_key"),
        (dict(partition_key="k" * 1025), "partition_key"),
        (dict(payload=b"x" * (1024 * 1024 + 1)), "payload"),
        (dict(scheduled_at=32503680000.0), "scheduled_at"),  # 3000-01-01
        (dict(deadline=1.0), "deadline"),
        (dict(max_attempts=0), "max_attempts"),
        (dict(kind="no spaces"), "kind"),
    ],
)
def test_bad_input_is_refused_naming_its_field(kwargs: dict[str, object], field: str) -> None:
    """Validation happens before a Task exists, so nothing can reach Redis; that a
    refused request writes nothing is checked end to end, through the gateway, in
    tests/router/test_fuzz.py."""
    args: dict[str, object] = dict(partition_key="k", kind="noop", payload=b"")
    args.update(kwargs)
    with pytest.raises(InvalidArgument) as err:
        new_task(**args)  # type: ignore[arg-type]
    assert err.value.field == field
    assert err.value.code == ErrorCode.INVALID_ARGUMENT
    assert field in str(err.value)


async def test_delayed_task_goes_to_the_delayed_set(redis_url: str, broker: Broker) -> None:
    import time

    producer = Producer(broker, make_settings(redis_url))
    res = await producer.submit(new_task("k", "noop", scheduled_at=time.time() + 60), epoch=0)
    assert res.entry_id is not None and res.entry_id.startswith("delayed:")
    pk = RegionKeys(REGION).partition(partition_of("k", 8))
    assert await broker.stream_length(pk) == 0
    depth = await broker.depth(pk, 0)
    assert depth.delayed == 1


async def test_concurrent_single_submits_to_a_partition_share_one_enqueue_call(
    redis_url: str, broker: Broker
) -> None:
    settings = make_settings(redis_url)
    producer = Producer(broker, settings)
    keys = [f"k{i}" for i in range(5000) if partition_of(f"k{i}", settings.partitions) == 3]
    tasks = [new_task(k, "noop", b"x") for k in keys[:200]]
    again = new_task(keys[0], "noop", b"x", id=tasks[0].id)  # same id, same turn
    pk = RegionKeys(REGION).partition(3)

    async def script_calls() -> int:
        stats = await broker.raw(pk.stream, lambda c: c.info("commandstats"))
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    before = await script_calls()
    results = await asyncio.gather(*(producer.submit(t, epoch=0) for t in [*tasks, again]))
    calls = await script_calls() - before
    assert calls == 1, f"{len(results)} single submits took {calls} enqueue calls, not one"
    assert all(r.ok and r.partition == 3 for r in results)
    assert [r.task_id for r in results] == [t.id for t in [*tasks, again]]
    assert not any(r.duplicate for r in results[:-1])
    assert results[-1].duplicate and results[-1].entry_id == results[0].entry_id
    assert await broker.stream_length(pk) == 200
    fenced = await asyncio.gather(*(producer.submit(t, epoch=-1) for t in tasks[:3]))
    assert all(isinstance(r.error, Fenced) for r in fenced), "errors reach every caller"


async def test_concurrent_single_submits_to_many_partitions_share_one_pipeline(
    redis_url: str, broker: Broker
) -> None:
    """Single submits of one turn go in one pipeline per node: a script call per
    partition and one WAIT for all of them (REGION durability). A partition's error
    reaches only its own tasks: the others are enqueued and acknowledged."""
    settings = make_settings(redis_url)
    producer = Producer(broker, settings)
    parts = settings.partitions
    tasks = [new_task(f"m{i}", "noop", b"x", durability=Durability.REGION) for i in range(64)]
    touched = {partition_of(t.partition_key, parts) for t in tasks}
    assert len(touched) == parts
    fenced_part = partition_of(tasks[0].partition_key, parts)
    await broker.set_epoch(RegionKeys(REGION).partition(fenced_part), 10)

    async def calls(name: str) -> int:
        stats = await broker.raw("x", lambda c: c.info("commandstats"))
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    before = (await calls("evalsha"), await calls("wait"))
    results = await asyncio.gather(*(producer.submit(t, epoch=5) for t in tasks))
    after = (await calls("evalsha"), await calls("wait"))
    assert (after[0] - before[0], after[1] - before[1]) == (parts, 1)
    assert [r.task_id for r in results] == [t.id for t in tasks]
    for t, r in zip(tasks, results, strict=True):
        if partition_of(t.partition_key, parts) == fenced_part:
            assert isinstance(r.error, Fenced) and r.error.current_epoch == 10, r
        else:
            assert r.ok and not r.duplicate and r.entry_id, r
    enqueued = sum(
        [await broker.stream_length(RegionKeys(REGION).partition(p)) for p in range(parts)]
    )
    assert enqueued == sum(1 for r in results if r.ok)
