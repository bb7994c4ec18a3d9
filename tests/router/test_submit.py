"""Submit and SubmitBatch through an in-process gateway on real Redis."""

from __future__ import annotations

import grpc
import pytest
import redis.asyncio as aioredis
from homeport.core.entry import Delivery
from homeport.core.keys import PartitionKeys
from homeport.core.partitioner import partition_of
from homeport.router.client import AsyncClient
from homeport.router.errors import InvalidRequest
from homeport.router.views import NewTask

from tests.router.conftest import PARTITIONS, REGION


def stream_of(key: str) -> str:
    return PartitionKeys(REGION, partition_of(key, PARTITIONS)).stream


async def task_ids(redis: aioredis.Redis, key: str) -> list[str]:
    """Ids of the tasks in `key`'s stream, decoded as the worker decodes them."""
    out = []
    for entry_id, fields in await redis.xrange(stream_of(key)):
        delivery = Delivery.decode(entry_id, fields)
        assert delivery is not None, f"entry {entry_id!r} is not a task blob"
        out.append(delivery.task_id)
    return out


async def test_submit_enqueues_into_the_keys_partition(
    client: AsyncClient, redis: aioredis.Redis
) -> None:
    done = await client.submit("noop", "customer-1", b"hello")
    assert done.partition == f"{REGION}/{partition_of('customer-1', PARTITIONS)}"
    assert not done.duplicate
    assert await task_ids(redis, "customer-1") == [done.task_id]


async def test_resubmitting_the_same_id_enqueues_nothing_new(
    client: AsyncClient, redis: aioredis.Redis
) -> None:
    first = await client.submit("noop", "k", id="task-1")
    again = await client.submit("noop", "k", id="task-1")
    assert (first.duplicate, again.duplicate) == (False, True)
    assert await redis.xlen(stream_of("k")) == 1


async def test_invalid_submit_names_the_field(client: AsyncClient) -> None:
    with pytest.raises(InvalidRequest) as err:
        await client.submit("noop", "")
    assert err.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.field == "task.partition_key"


async def test_batch_with_one_invalid_task_accepts_the_valid_ones(
    client: AsyncClient, redis: aioredis.Redis
) -> None:
    tasks = [NewTask("noop", f"key-{i}", id=f"t{i}") for i in range(5)]
    tasks[2] = NewTask("bad kind!", "key-2", id="t2")
    items = await client.submit_many(tasks)
    assert [item.task_id for item in items] == [f"t{i}" for i in range(5)]
    assert [item.ok for item in items] == [True, True, False, True, True]
    bad = items[2].error
    assert isinstance(bad, InvalidRequest)
    assert bad.field == "tasks[2].kind"
    ids = {task_id for i in range(5) for task_id in await task_ids(redis, f"key-{i}")}
    assert ids == {"t0", "t1", "t3", "t4"}


async def test_batch_repeating_an_id_refuses_the_repeat(client: AsyncClient) -> None:
    items = await client.submit_many(
        [NewTask("noop", "a", id="same"), NewTask("noop", "b", id="same")]
    )
    assert items[0].ok
    assert isinstance(items[1].error, InvalidRequest)
    assert items[1].error.field == "tasks[1].id"


async def test_submit_many_batches_and_keeps_input_order(
    client: AsyncClient, redis: aioredis.Redis
) -> None:
    tasks = [NewTask("noop", f"k{i % 7}") for i in range(2500)]
    items = await client.submit_many(tasks, batch_size=400, max_in_flight=3)
    assert [i.task_id for i in items] == [t.id for t in tasks]
    assert all(i.ok for i in items)
    streams = {stream_of(f"k{i}") for i in range(7)}
    total = sum([await redis.xlen(s) for s in streams])
    assert total == 2500
    assert client.stats.calls == 7  # ceil(2500 / 400) batches, no retries
