"""Property-based fuzzing of Submit and SubmitBatch requests.

For any request: the gateway answers OK or INVALID_ARGUMENT (never UNKNOWN or INTERNAL),
an INVALID_ARGUMENT names a field of the request in google.rpc.BadRequest, and a refused
request writes nothing to Redis or PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
import redis.asyncio as aioredis
from google.protobuf import timestamp_pb2
from homeport.router.errors import InvalidRequest, from_rpc_error, from_rpc_status
from homeport.router.gateway import Gateway
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.proto_gen import scheduler_pb2_grpc as pb_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import session_security

NOW = 1_790_000_000

texts = st.one_of(
    st.just(""),
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=40),
    st.text(min_size=1100, max_size=1200),
    st.sampled_from(["noop", "send_invoice", "customer-1", " ", "a b", "é", "\x00"]),
)
timestamps = st.one_of(
    st.none(),
    st.builds(
        timestamp_pb2.Timestamp,
        seconds=st.integers(-62135596800, 253402300799) | st.integers(NOW - 100, NOW + 10**8),
        nanos=st.integers(0, 999_999_999),
    ),
)
specs = st.builds(
    pb.TaskSpec,
    id=texts,
    partition_key=texts,
    kind=texts,
    payload=st.one_of(st.binary(max_size=64), st.just(b"x" * (1024 * 1024 + 1))),
    scheduled_at=timestamps,
    durability=st.integers(0, 6),
    max_attempts=st.sampled_from([0, 1, 3, 1000, 1001, 2**32 - 1]),
    deadline=timestamps,
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _footprint(redis: aioredis.Redis, pg_dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(pg_dsn, **session_security().pg_kwargs())
    try:
        rows = await conn.fetchval("SELECT count(*) FROM tasks")
    finally:
        await conn.close()
    return int(await redis.dbsize()), int(rows)


def _stub(channel: grpc.aio.Channel) -> Any:
    return pb_grpc.SchedulerStub(channel)  # type: ignore[no-untyped-call]


@FUZZ
@given(spec=specs)
async def test_fuzzed_submit_is_accepted_or_refused_by_field(
    spec: pb.TaskSpec, gateway: Gateway, redis: aioredis.Redis, pg_dsn: str
) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        before = await _footprint(redis, pg_dsn)
        try:
            await _stub(channel).Submit(pb.SubmitRequest(task=spec), timeout=10)
        except grpc.aio.AioRpcError as exc:
            err = from_rpc_error(exc)
            assert isinstance(err, InvalidRequest), f"{exc.code()}: {exc.details()}"
            assert err.field.startswith("task."), err.violations
            assert await _footprint(redis, pg_dsn) == before


@FUZZ
@given(batch=st.lists(specs, max_size=4))
async def test_fuzzed_batch_gives_one_result_per_task(
    batch: list[pb.TaskSpec], gateway: Gateway, redis: aioredis.Redis, pg_dsn: str
) -> None:
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        before = await _footprint(redis, pg_dsn)
        try:
            reply = await _stub(channel).SubmitBatch(pb.SubmitBatchRequest(tasks=batch), timeout=10)
        except grpc.aio.AioRpcError as exc:
            err = from_rpc_error(exc)
            assert isinstance(err, InvalidRequest) and err.field == "tasks", exc.details()
            assert not batch
            assert await _footprint(redis, pg_dsn) == before
            return
        assert [r.index for r in reply.results] == list(range(len(batch)))
        for r in reply.results:
            if r.HasField("error"):
                err = from_rpc_status(r.error)
                assert isinstance(err, InvalidRequest), r.error.message
                assert err.field.startswith(f"tasks[{r.index}]."), err.violations
        if reply.accepted == 0:
            assert await _footprint(redis, pg_dsn) == before
