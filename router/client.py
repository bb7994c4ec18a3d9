"""The Python SDK: `AsyncClient` and its blocking twin `Client`.

Safety of retries rests on one rule: a task's id is fixed before its first send
(`NewTask` draws a ULID at construction), so every resend of a submit carries the same id
and the gateway's dedup makes it harmless. The SDK therefore retries, with capped
exponential backoff and jitter, every failure whose outcome is unknown or transient
(`RetryableError`: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, NOT_REPLICATED) and
follows WRONG_REGION/FENCED redirects to the gateway the error names, teaching the routing
table as it goes. Each attempt has its own deadline (`timeout`); the number of attempts
bounds the whole call.

`submit_many` cuts tasks into batches of `batch_size`, keeps at most `max_in_flight`
batches on the wire, and pulls from the caller's iterable only when a slot frees: a slow
gateway slows the producer instead of growing memory (backpressure).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from grpc import aio
from homeport.core.retry import equal_jitter
from homeport.router.auth import bearer_metadata
from homeport.router.errors import (
    GatewayError,
    Misrouted,
    RetryableError,
    TransientError,
    from_rpc_error,
)
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.proto_gen import scheduler_pb2_grpc as pb_grpc
from homeport.router.routing import RoutingTable, StaticRoutingTable
from homeport.router.tls import ClientTls
from homeport.router.views import (
    BatchItem,
    CancelOutcome,
    DeadLetterView,
    NewTask,
    RegionView,
    Submitted,
    TaskEventView,
    TaskView,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
# The generated stub is untyped; calls through it return the (typed) messages below.
_new_stub = cast(Callable[[aio.Channel], Any], pb_grpc.SchedulerStub)
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts`: sends per call, first included (1 disables retries). Backoff before
    resend n is min(cap, base * 2**n) seconds times a jitter in [0.5, 1)."""

    attempts: int = 5
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 1.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return equal_jitter(self.backoff_base_s, self.backoff_cap_s, attempt, rng)


@dataclass
class ClientStats:
    """Counters a caller (or a test) can read to see which paths ran."""

    calls: int = 0
    retries: int = 0
    redirects: int = 0
    refresh_failures: int = 0


class AsyncClient:
    """Region-aware asyncio client of the homeport gateway.

    `target` is a gateway address ("127.0.0.1:50051") or a `RoutingTable`. `token` is sent
    as a bearer token; `tls` switches to TLS (mutual when it has a client certificate).
    """

    def __init__(
        self,
        target: str | RoutingTable,
        *,
        token: str | None = None,
        tls: ClientTls | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        batch_size: int = 1000,
        max_in_flight: int = 4,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise ValueError(f"batch_size must be 1..10000, got {batch_size}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.routing: RoutingTable = (
            StaticRoutingTable(target) if isinstance(target, str) else target
        )
        self._metadata = bearer_metadata(token)
        self._tls = tls
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self._options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # Reconnect soon after a gateway comes back (a failback): gRPC's default
            # backoff grows to two minutes, longer than any outage homeport plans for.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            *(tls.channel_options() if tls else []),
        ]
        self._rng = rng or random.Random()
        self._channels: dict[str, tuple[aio.Channel, Any]] = {}
        self.stats = ClientStats()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel, _ in channels.values():
            await channel.close(None)

    def _stub(self, address: str) -> Any:
        if address not in self._channels:
            if self._tls is None:
                channel = aio.insecure_channel(address, options=self._options)
            else:
                channel = aio.secure_channel(address, self._tls.credentials(), self._options)
            self._channels[address] = (channel, _new_stub(channel))
        return self._channels[address][1]

    async def _call(
        self,
        key: str | None,
        method: str,
        request: Any,
        timeout: float | None,
        retry: bool = True,
    ) -> Any:
        """Send `request` to `method`, retrying and following redirects per the policy."""
        attempts = self.retry.attempts if retry else 1
        last: GatewayError | None = None
        for attempt in range(attempts):
            address = self.routing.gateway_for(key) if key else self.routing.any_gateway()
            self.stats.calls += 1
            try:
                rpc = getattr(self._stub(address), method)
                return await rpc(request, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                last = from_rpc_error(exc)
            if isinstance(last, Misrouted) and key and attempt < attempts - 1:
                self.stats.redirects += 1
                if last.redirect.key and last.redirect.gateway:
                    # WRONG_REGION names the key's owner: go there at once, unless the
                    # answer was older than what we know (a gateway whose table lags):
                    # then give the gateways a moment to catch up.
                    self.routing.learn(last.redirect)
                    if self.routing.gateway_for(key) == address:
                        await asyncio.sleep(self.retry.backoff(attempt, self._rng))
                    continue
                # FENCED names a partition that moved on: ask the table's source where.
                await self._refresh_routes()
                await asyncio.sleep(self.retry.backoff(attempt, self._rng))
                continue
            if isinstance(last, Misrouted) and key and attempts > 1:
                # Out of attempts while the key's region was moving (a redirect to a
                # gateway that died, a failover still under way): the outcome is unknown
                # and a resend with the same id is safe, so say "retry", not "wrong region".
                raise TransientError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the region serving key {key!r} could not be reached in {attempts} "
                    f"attempts (last answer: {last.message}); resend with the same task id",
                    reason="UNREACHABLE_HOME",
                    metadata=last.metadata,
                )
            if not isinstance(last, RetryableError) or attempt == attempts - 1:
                raise last
            self.stats.retries += 1
            if last.status == grpc.StatusCode.UNAVAILABLE:
                await self._refresh_routes()
            await asyncio.sleep(self.retry.backoff(attempt, self._rng))
        assert last is not None  # the loop runs at least once and raises or returns
        raise last

    async def _refresh_routes(self) -> None:
        """Reload the routing table; when its source is unreachable, keep the cached
        routes and let the retry loop carry on (the caller sees gateway errors only)."""
        try:
            await self.routing.refresh()
        except Exception as exc:  # noqa: BLE001 - any source failure: keep what we know
            self.stats.refresh_failures += 1
            log.debug("routing refresh failed: %s", exc)

    async def submit(
        self,
        kind: str,
        partition_key: str,
        payload: bytes = b"",
        *,
        id: str | None = None,
        scheduled_at: dt.datetime | float | None = None,
        durability: str | None = None,
        max_attempts: int | None = None,
        deadline: dt.datetime | float | None = None,
        timeout: float | None = None,
    ) -> Submitted:
        """Submit one task; see `NewTask` for the fields. Returns once acknowledged."""
        task = NewTask(
            kind,
            partition_key,
            payload,
            scheduled_at=scheduled_at,
            durability=durability,
            max_attempts=max_attempts,
            deadline=deadline,
            **({"id": id} if id else {}),
        )
        return await self.submit_task(task, timeout=timeout)

    async def submit_task(self, task: NewTask, *, timeout: float | None = None) -> Submitted:
        request = pb.SubmitRequest(task=task.to_wire())
        reply = await self._call(task.partition_key, "Submit", request, timeout)
        return Submitted.from_wire(reply)

    async def _submit_batch(self, tasks: list[NewTask], timeout: float | None) -> list[BatchItem]:
        request = pb.SubmitBatchRequest(tasks=[t.to_wire() for t in tasks])
        reply = await self._call(tasks[0].partition_key, "SubmitBatch", request, timeout)
        return [BatchItem.from_wire(r) for r in reply.results]

    async def submit_many(
        self,
        tasks: Iterable[NewTask] | AsyncIterable[NewTask],
        *,
        batch_size: int | None = None,
        max_in_flight: int | None = None,
        timeout: float | None = None,
    ) -> list[BatchItem]:
        """Submit many tasks in batches; one `BatchItem` per task, in input order.

        Tasks are grouped per gateway (the routing table's answer for their key), so a
        batch never mixes home regions. A failed batch call raises after its retries; per-
        task refusals (e.g. an invalid task) come back as items with `error` set.
        """
        size = batch_size or self.batch_size
        slots = asyncio.Semaphore(max_in_flight or self.max_in_flight)
        results: dict[int, list[BatchItem]] = {}
        pending: dict[str, list[NewTask]] = {}
        running: set[asyncio.Task[None]] = set()
        order = 0

        async def send(seq: int, batch: list[NewTask]) -> None:
            try:
                results[seq] = await self._submit_batch(batch, timeout)
            finally:
                slots.release()

        async def flush(address: str) -> None:
            nonlocal order
            batch = pending.pop(address)
            await slots.acquire()  # backpressure: wait for a free slot before pulling more
            job = asyncio.create_task(send(order, batch))
            order += 1
            running.add(job)
            job.add_done_callback(running.discard)
            if job.done():
                job.result()

        try:
            async for task in _aiter(tasks):
                address = self.routing.gateway_for(task.partition_key)
                pending.setdefault(address, []).append(task)
                if len(pending[address]) >= size:
                    await flush(address)
            for address in list(pending):
                await flush(address)
            if running:
                await asyncio.gather(*running)
        finally:
            for job in running:
                job.cancel()
        return [item for seq in sorted(results) for item in results[seq]]

    async def get(self, task_id: str, *, timeout: float | None = None) -> TaskView:
        reply = await self._call(None, "GetTask", pb.GetTaskRequest(task_id=task_id), timeout)
        return TaskView.from_wire(reply.task)

    async def cancel(
        self, task_id: str, *, partition_key: str = "", timeout: float | None = None
    ) -> CancelOutcome:
        """Cancel a task that has not started. `partition_key` is optional: any gateway
        finds the task's home; with it, the gateway goes straight there."""
        request = pb.CancelTaskRequest(task_id=task_id, partition_key=partition_key)
        reply = await self._call(None, "CancelTask", request, timeout)
        return CancelOutcome.from_wire(reply)

    async def watch(
        self, task_id: str, *, timeout: float | None = None
    ) -> AsyncIterator[TaskEventView]:
        """Yield each status change of the task until a final one. `timeout` bounds the
        whole stream (None: the client's timeout)."""
        stub = self._stub(self.routing.any_gateway())
        call = stub.WatchTask(
            pb.WatchTaskRequest(task_id=task_id),
            timeout=timeout or self.timeout,
            metadata=self._metadata,
        )
        try:
            async for event in call:
                yield TaskEventView.from_wire(event)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    async def dead_letters(
        self, partition: str = "", limit: int = 100, *, timeout: float | None = None
    ) -> list[DeadLetterView]:
        request = pb.ListDeadLettersRequest(partition=partition, limit=limit)
        reply = await self._call(None, "ListDeadLetters", request, timeout)
        return [DeadLetterView.from_wire(d) for d in reply.dead_letters]

    async def requeue(
        self, task_id: str, *, partition_key: str = "", timeout: float | None = None
    ) -> str:
        """Put a dead task back in its stream; returns its partition."""
        request = pb.RequeueDeadLetterRequest(task_id=task_id, partition_key=partition_key)
        reply = await self._call(None, "RequeueDeadLetter", request, timeout)
        return cast(str, reply.partition)

    async def region_status(self, *, timeout: float | None = None) -> RegionView:
        reply = await self._call(None, "RegionStatus", pb.RegionStatusRequest(), timeout)
        return RegionView.from_wire(reply)


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class Client:
    """Blocking client: an `AsyncClient` driven on a private event loop thread, so both
    share one implementation of retries, routing and batching. Safe to use from several
    threads; close it (or use `with`) to stop the thread."""

    def __init__(self, target: str | RoutingTable, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="homeport-client", daemon=True
        )
        self._thread.start()
        self._async = self._run(_build(target, options))

    def _run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(_await(coro), self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def stats(self) -> ClientStats:
        return self._async.stats

    def submit(self, kind: str, partition_key: str, payload: bytes = b"", **kw: Any) -> Submitted:
        return self._run(self._async.submit(kind, partition_key, payload, **kw))

    def submit_task(self, task: NewTask, *, timeout: float | None = None) -> Submitted:
        return self._run(self._async.submit_task(task, timeout=timeout))

    def submit_many(self, tasks: Iterable[NewTask], **kw: Any) -> list[BatchItem]:
        return self._run(self._async.submit_many(tasks, **kw))

    def get(self, task_id: str, *, timeout: float | None = None) -> TaskView:
        return self._run(self._async.get(task_id, timeout=timeout))

    def cancel(self, task_id: str, **kw: Any) -> CancelOutcome:
        return self._run(self._async.cancel(task_id, **kw))

    def watch(self, task_id: str, *, timeout: float | None = None) -> Iterator[TaskEventView]:
        stream = self._async.watch(task_id, timeout=timeout)
        while True:
            try:
                yield self._run(_next(stream))
            except StopAsyncIteration:
                return

    def dead_letters(self, partition: str = "", limit: int = 100) -> list[DeadLetterView]:
        return self._run(self._async.dead_letters(partition, limit))

    def requeue(self, task_id: str, **kw: Any) -> str:
        return self._run(self._async.requeue(task_id, **kw))

    def region_status(self) -> RegionView:
        return self._run(self._async.region_status())


async def _build(target: str | RoutingTable, options: dict[str, Any]) -> AsyncClient:
    # Built on the client's loop so its channels belong to that loop.
    return AsyncClient(target, **options)


async def _await(coro: Awaitable[T]) -> T:
    return await coro


async def _next(stream: AsyncIterator[T]) -> T:
    return await stream.__anext__()
