"""The gRPC servicer: translates between the wire and the engine, and nothing else.

Each RPC validates its request (router.wire, core.task.new_task), asks the serving check
where the key lives, calls the engine, and turns the outcome back into messages. Domain
errors leave through `_abort`, which is the only place a status is built from one
(`router.errors.to_rpc_status`).

Batch rule (SubmitBatch): each task is judged on its own. Valid tasks are enqueued and
acknowledged even when other tasks of the same request are invalid or misrouted; every
task gets a `SubmitResult` at its index with either `accepted` or `error` (the same
status and rich details a single Submit of that task would have failed with). The whole
request is refused, with nothing written, only when the request itself is malformed: no
tasks, or more than `max_batch`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from grpc import aio
from grpc_status import rpc_status
from homeport.core.errors import Fenced, HomeportError, InvalidArgument
from homeport.core.metrics import GatewayMetrics
from homeport.core.partitioner import partition_name
from homeport.core.producer import Producer, SubmitResult
from homeport.core.task import Durability, Limits, Task
from homeport.router.errors import to_rpc_status
from homeport.router.finder import TaskFinder
from homeport.router.kinds import KindCheck
from homeport.router.metrics import timed
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.proto_gen import scheduler_pb2_grpc as pb_grpc
from homeport.router.records import TaskLookup
from homeport.router.serving import Placement, ServingCheck
from homeport.router.wire import DURABILITY_TO_WIRE, task_from_wire, task_id_from_wire

Context = aio.ServicerContext[Any, Any]
_DEAD_LIMIT_DEFAULT = 100
_DEAD_LIMIT_MAX = 1000
# A request whose caller has less time left than this is refused before anything is
# written: the enqueue could not be acknowledged in time anyway.
_MIN_TIME_LEFT_S = 0.001


@dataclass(frozen=True)
class ServicerConfig:
    region: str
    advertise: str
    limits: Limits
    default_durability: Durability
    max_batch: int
    watch_poll_s: float


class SchedulerServicer(pb_grpc.SchedulerServicer):
    """Implements homeport.v1.Scheduler on top of a `Producer` and a `TaskLookup`."""

    def __init__(
        self,
        producer: Producer,
        lookup: TaskLookup,
        serving: ServingCheck,
        config: ServicerConfig,
        metrics: GatewayMetrics,
        producer_for: Callable[[str], Awaitable[Producer]] | None = None,
        finder: TaskFinder | None = None,
        kinds: KindCheck | None = None,
    ) -> None:
        self._producer = producer
        # Multi-region serving writes each home region's keys into that home's current
        # copy; a single-region gateway has one producer for everything.
        self._producer_for = producer_for
        self._lookup = lookup
        # GetTask, WatchTask and CancelTask find any task's home (router.finder).
        self._finder = finder or TaskFinder.single(lookup)
        # Kinds no worker of the home registered are refused (router.kinds); None = off.
        self._kinds = kinds
        self._serving = serving
        self._config = config
        self._metrics = metrics

    # --- errors ----------------------------------------------------------------------

    def _hints(self, exc: HomeportError) -> dict[str, str]:
        """What a FENCED error does not know itself: who serves its partition now."""
        if isinstance(exc, Fenced):
            return self._serving.owner_hints(exc.partition)
        return {}

    async def _abort(self, context: Context, exc: HomeportError) -> NoReturn:
        status = to_rpc_status(exc, self._hints(exc))
        self._metrics.errors.labels(exc.code.value).inc()
        # grpc-stubs lacks aio's abort_with_status; grpcio has it (grpc/aio/_base_server.py).
        await context.abort_with_status(rpc_status.to_status(status))  # type: ignore[attr-defined]
        raise AssertionError("context.abort returned")  # pragma: no cover

    def _check_time_left(self, context: Context) -> None:
        left = context.time_remaining()
        if left is not None and left < _MIN_TIME_LEFT_S:
            raise _DeadlineSpent()

    # --- submit ----------------------------------------------------------------------

    def _task(self, spec: pb.TaskSpec, path: str) -> Task:
        return task_from_wire(
            spec,
            path,
            limits=self._config.limits,
            default_durability=self._config.default_durability,
        )

    def _accepted(
        self, task: Task, result: SubmitResult, placement: Placement
    ) -> pb.SubmitResponse:
        return pb.SubmitResponse(
            task_id=task.id,
            duplicate=result.duplicate,
            partition=partition_name(placement.home_region, result.partition),
            epoch=placement.epoch,
            durability=DURABILITY_TO_WIRE[task.durability],
        )

    @timed("Submit")
    async def Submit(self, request: pb.SubmitRequest, context: Context) -> pb.SubmitResponse:
        try:
            task = self._task(request.task, "task.")
            placement = self._serving.place(task.partition_key)
            await self._check_kind(task, placement, "task.kind")
            self._check_time_left(context)
            producer = await self._producer_of(placement.home_region)
            result = await producer.submit(task, placement.epoch)  # group-committed
            if result.error is not None:
                raise result.error
        except HomeportError as exc:
            await self._abort(context, exc)
        except _DeadlineSpent:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline spent before enqueue")
        self._metrics.tasks.labels("accepted").inc()
        return self._accepted(task, result, placement)

    @timed("SubmitBatch")
    async def SubmitBatch(
        self, request: pb.SubmitBatchRequest, context: Context
    ) -> pb.SubmitBatchResponse:
        count = len(request.tasks)
        if not 1 <= count <= self._config.max_batch:
            await self._abort(
                context,
                InvalidArgument(
                    "tasks", f"<{count} tasks>", f"must hold 1 to {self._config.max_batch} tasks"
                ),
            )
        results: list[pb.SubmitResult | None] = [None] * count
        ready: dict[tuple[str, int], list[tuple[int, Task, Placement]]] = {}
        first_index: dict[str, int] = {}
        for index, spec in enumerate(request.tasks):
            try:
                task = self._task(spec, f"tasks[{index}].")
                seen = first_index.setdefault(task.id, index)
                if seen != index:
                    raise InvalidArgument(
                        f"tasks[{index}].id", task.id, f"repeats tasks[{seen}].id in this batch"
                    )
                placement = self._serving.place(task.partition_key)
                await self._check_kind(task, placement, f"tasks[{index}].kind")
            except HomeportError as exc:
                results[index] = self._rejected(index, spec.id, exc)
                continue
            ready.setdefault((placement.home_region, placement.epoch), []).append(
                (index, task, placement)
            )
        if ready:
            try:
                self._check_time_left(context)
            except _DeadlineSpent:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline spent")
        for (home, epoch), group in ready.items():
            producer = await self._producer_of(home)
            outcomes = await producer.submit_many([t for _, t, _ in group], epoch)
            for (index, task, placement), outcome in zip(group, outcomes, strict=True):
                if outcome.error is not None:
                    results[index] = self._rejected(index, task.id, outcome.error)
                else:
                    accepted = self._accepted(task, outcome, placement)
                    results[index] = pb.SubmitResult(
                        index=index, task_id=task.id, accepted=accepted
                    )
        final = [r for r in results if r is not None]
        accepted_count = sum(1 for r in final if r.HasField("accepted"))
        self._metrics.tasks.labels("accepted").inc(accepted_count)
        self._metrics.tasks.labels("rejected").inc(count - accepted_count)
        return pb.SubmitBatchResponse(
            results=final, accepted=accepted_count, rejected=count - accepted_count
        )

    async def _check_kind(self, task: Task, placement: Placement, field: str) -> None:
        if self._kinds is not None:
            await self._kinds.check(task.kind, placement.home_region, field)

    async def _producer_of(self, home: str) -> Producer:
        if self._producer_for is None:
            return self._producer
        return await self._producer_for(home)

    def _rejected(self, index: int, task_id: str, exc: HomeportError) -> pb.SubmitResult:
        self._metrics.errors.labels(exc.code.value).inc()
        status = to_rpc_status(exc, self._hints(exc))
        return pb.SubmitResult(index=index, task_id=task_id, error=status)

    # --- reading and cancelling -------------------------------------------------------

    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.GetTaskResponse:
        try:
            task_id = task_id_from_wire(request.task_id)
            info = await self._finder.get(task_id)
        except HomeportError as exc:
            await self._abort(context, exc)
        return pb.GetTaskResponse(task=info)

    async def CancelTask(
        self, request: pb.CancelTaskRequest, context: Context
    ) -> pb.CancelTaskResponse:
        try:
            task_id = task_id_from_wire(request.task_id)
            cancelled, status = await self._finder.cancel(task_id, request.partition_key)
        except HomeportError as exc:
            await self._abort(context, exc)
        return pb.CancelTaskResponse(cancelled=cancelled, status=status)

    async def WatchTask(
        self, request: pb.WatchTaskRequest, context: Context
    ) -> AsyncIterator[pb.TaskEvent]:
        try:
            task_id = task_id_from_wire(request.task_id)
            async for event in self._finder.watch(task_id, self._config.watch_poll_s):
                yield event
        except HomeportError as exc:
            await self._abort(context, exc)

    # --- admin -----------------------------------------------------------------------

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Context
    ) -> pb.ListDeadLettersResponse:
        try:
            limit = _dead_limit(request.limit)
            partitions = self._served_partitions(request.partition)
            entries = await self._lookup.dead_letters(partitions, limit)
        except HomeportError as exc:
            await self._abort(context, exc)
        return pb.ListDeadLettersResponse(dead_letters=entries)

    async def RequeueDeadLetter(
        self, request: pb.RequeueDeadLetterRequest, context: Context
    ) -> pb.RequeueDeadLetterResponse:
        try:
            task_id = task_id_from_wire(request.task_id)
            partitions = self._served_partitions("")
            partition = await self._lookup.requeue(task_id, request.partition_key, partitions)
        except HomeportError as exc:
            await self._abort(context, exc)
        return pb.RequeueDeadLetterResponse(requeued=True, partition=partition)

    async def RegionStatus(
        self, request: pb.RegionStatusRequest, context: Context
    ) -> pb.RegionStatusResponse:
        try:
            parts = await self._lookup.partition_status(self._serving.served())
            replicas = await self._lookup.replicas()
        except HomeportError as exc:
            await self._abort(context, exc)
        return pb.RegionStatusResponse(
            region=self._config.region,
            gateway=self._config.advertise,
            partitions=parts,
            replicas=replicas,
        )

    def _served_partitions(self, wanted: str) -> Sequence[int]:
        served = {p.name: p.partition for p in self._serving.served()}
        if not wanted:
            return sorted(served.values())
        if wanted not in served:
            raise InvalidArgument(
                "partition",
                wanted,
                f"not served by this gateway; it serves {', '.join(sorted(served))}",
            )
        return [served[wanted]]


class _DeadlineSpent(Exception):
    """The caller's deadline is (nearly) over; nothing was written."""


def _dead_limit(limit: int) -> int:
    if limit == 0:
        return _DEAD_LIMIT_DEFAULT
    if limit > _DEAD_LIMIT_MAX:
        raise InvalidArgument("limit", limit, f"must be at most {_DEAD_LIMIT_MAX}")
    return limit
