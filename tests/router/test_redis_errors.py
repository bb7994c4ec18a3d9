"""Every Redis error crosses the broker as a domain error (issue 18, point 3): an
out-of-memory Redis (a real redis-server at a tiny `maxmemory` with `noeviction`) answers
RESOURCE_EXHAUSTED with retry advice, any other refusal INTERNAL/BACKEND_FAILED, and
nothing reaches a client as gRPC UNKNOWN."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from homeport.core.keys import RegionKeys
from homeport.core.partitioner import partition_of
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.errors import BackendFailedError, GatewayError, TransientError
from homeport.router.gateway import Gateway
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.proto_gen import scheduler_pb2_grpc as pb_grpc

from tests.router.conftest import PARTITIONS, REGION


@pytest.fixture
async def out_of_memory(redis: aioredis.Redis) -> AsyncIterator[None]:
    """The gateway's Redis refuses every write for memory until the test ends."""
    before = await redis.config_get("maxmemory*")
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", 1)
    try:
        yield
    finally:
        await redis.config_set("maxmemory", before["maxmemory"])
        await redis.config_set("maxmemory-policy", before["maxmemory-policy"])


async def test_an_out_of_memory_redis_is_resource_exhausted_with_retry_advice(
    gateway: Gateway, redis: aioredis.Redis, out_of_memory: None
) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        stub = pb_grpc.SchedulerStub(channel)
        spec = pb.TaskSpec(id="oom-1", partition_key="k", kind="noop")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Submit(pb.SubmitRequest(task=spec))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    rich = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert rich is not None
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in rich.details if d.Is(retry.DESCRIPTOR))
    assert retry.retry_delay.ToMilliseconds() == 1000
    assert "command not allowed when used memory" in rich.message, rich.message
    assert "EVALSHA" not in rich.message  # the command (and its task blob) is not echoed
    # Nothing was written: the dedup key of the refused task does not exist.
    pk = RegionKeys(REGION).partition(partition_of("k", PARTITIONS))
    assert await redis.exists(pk.dedup("oom-1")) == 0


async def test_the_sdk_sees_a_retryable_error_and_a_batch_reports_it_per_task(
    gateway: Gateway, out_of_memory: None
) -> None:
    async with AsyncClient(gateway.address, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(TransientError) as info:
            await client.submit("noop", "k2", id="oom-2")
        assert info.value.reason == "RESOURCE_EXHAUSTED"
        assert client.stats.retries == 1  # the SDK resent once, as advised
        [item] = await client.submit_many([_new("oom-3")])
    assert isinstance(item.error, GatewayError)
    assert item.error.reason == "RESOURCE_EXHAUSTED"


async def test_any_other_redis_refusal_is_backend_failed_never_unknown(
    gateway: Gateway, redis: aioredis.Redis
) -> None:
    pk = RegionKeys(REGION).partition(partition_of("wrongtype", PARTITIONS))
    await redis.set(pk.stream, "not a stream")  # XADD on it: WRONGTYPE
    async with AsyncClient(gateway.address, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(BackendFailedError) as info:
            await client.submit("noop", "wrongtype")
    assert info.value.status == grpc.StatusCode.INTERNAL
    assert info.value.reason == "BACKEND_FAILED" and "WRONGTYPE" in info.value.message


def _new(task_id: str):  # type: ignore[no-untyped-def]
    from homeport.router.views import NewTask

    return NewTask("noop", "k3", id=task_id)
