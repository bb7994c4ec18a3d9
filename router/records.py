"""Reads and admin writes behind the gateway: task records, cancellation, dead letters,
queue depth. It drives the engine's two boundaries (`core.broker.Broker` for Redis,
`core.store.RecordStore` for PostgreSQL) and hands back wire messages.

A task's record appears in PostgreSQL when a worker first picks it up (the enqueue hot
path never touches PostgreSQL), so a task that is still waiting has no record yet:
GetTask answers NOT_FOUND for it, WatchTask waits for the record to appear, and
CancelTask needs the task's partition key to find it in Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from google.protobuf import timestamp_pb2
from homeport.core.broker import Broker
from homeport.core.entry import Delivery
from homeport.core.errors import InvalidArgument, TaskNotFound
from homeport.core.keys import RegionKeys
from homeport.core.partitioner import partition_name, partition_of
from homeport.core.store import AttemptRecord, RecordStore, Status, TaskRecord
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.serving import ServedPartition

_FINAL = frozenset({Status.SUCCEEDED, Status.DEAD, Status.CANCELLED})


def _ts(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def status_to_wire(status: Status) -> pb.TaskStatus:
    return pb.TaskStatus.Value(f"TASK_STATUS_{status.name}")  # type: ignore[return-value]


def _attempt(a: AttemptRecord) -> pb.Attempt:
    return pb.Attempt(
        number=a.attempt,
        worker=a.worker,
        started_at=_ts(a.started_at),
        finished_at=_ts(a.finished_at),
        outcome=status_to_wire(a.status),
        error=a.error or "",
        duplicate=a.duplicate,
    )


def task_to_wire(t: TaskRecord, attempts: Sequence[AttemptRecord]) -> pb.TaskInfo:
    return pb.TaskInfo(
        id=t.id,
        partition_key=t.partition_key,
        kind=t.kind,
        status=status_to_wire(t.status),
        region=t.region,
        partition=partition_name(t.region, t.partition),
        attempt_count=t.attempts,
        attempts=[_attempt(a) for a in attempts],
        result=t.result or b"",
        error=t.error or "",
        scheduled_at=_ts(t.scheduled_at),
        enqueued_at=_ts(t.enqueued_at),
        started_at=_ts(t.started_at),
        finished_at=_ts(t.finished_at),
        payload=t.payload or b"",
        epoch=t.epoch,
    )


def _field(fields: dict[str, bytes], name: str) -> str:
    return fields.get(name, b"").decode("utf-8", errors="replace")


def _dead_task(entry_id: str, fields: dict[str, bytes]) -> Delivery | None:
    """The task blob of a dead-letter entry (the engine's own decoder)."""
    return Delivery.decode(entry_id, {k.encode(): v for k, v in fields.items()})


class TaskLookup:
    """The gateway's read side, for one home region of `partitions` partitions."""

    def __init__(self, broker: Broker, store: RecordStore, region: str, partitions: int):
        self._broker = broker
        self._store = store
        self._region = RegionKeys(region)
        self._region_name = region
        self._partitions = partitions

    async def get(self, task_id: str) -> pb.TaskInfo:
        record = await self._store.get_task(task_id)
        return task_to_wire(record, await self._store.attempts(task_id))

    async def cancel(self, task_id: str, partition_key: str) -> tuple[bool, pb.TaskStatus]:
        """Cancel a task that has not started. Returns (cancelled, status now)."""
        if not partition_key:
            try:
                partition_key = (await self._store.get_task(task_id)).partition_key
            except TaskNotFound:
                raise InvalidArgument(
                    "partition_key",
                    "",
                    "the task has no record yet (no worker picked it up); "
                    "give its partition key so it can be found in its stream",
                ) from None
        number = partition_of(partition_key, self._partitions)
        try:
            record = await self._store.get_task(task_id)
        except TaskNotFound:
            record = None
        if record is not None and record.status in _FINAL:
            return False, status_to_wire(record.status)
        where = await self._broker.cancel(
            self._region.partition(number), task_id, int(time.time() * 1000)
        )
        status = await self._store.mark_cancelled(task_id, partition_key, number, self._region_name)
        cancelled = status == Status.CANCELLED and where != "running"
        return cancelled, status_to_wire(status)

    async def watch(self, task_id: str, poll_s: float) -> AsyncIterator[pb.TaskEvent]:
        """Yield an event per change of (status, attempts) until a final status; the
        caller's deadline bounds it (grpc cancels this generator)."""
        last: tuple[Status, int] | None = None
        while True:
            try:
                record = await self._store.get_task(task_id)
            except TaskNotFound:
                await asyncio.sleep(poll_s)
                continue
            now = (record.status, record.attempts)
            if now != last:
                last = now
                final = record.status in _FINAL
                yield pb.TaskEvent(
                    task_id=task_id,
                    status=status_to_wire(record.status),
                    attempts=record.attempts,
                    at=_ts(time.time()),
                    error=record.error or "",
                    final=final,
                )
                if final:
                    return
            await asyncio.sleep(poll_s)

    async def dead_letters(self, partitions: Sequence[int], limit: int) -> list[pb.DeadLetter]:
        out: list[pb.DeadLetter] = []
        for number in partitions:
            pk = self._region.partition(number)
            for entry_id, fields in await self._broker.dead_letters(pk, limit - len(out)):
                task = _dead_task(entry_id, fields)
                if task is None:
                    continue
                out.append(
                    pb.DeadLetter(
                        task_id=task.task_id,
                        partition=pk.name,
                        partition_key=task.key,
                        kind=task.kind,
                        attempts=int(fields.get("at") or 0),
                        error=_field(fields, "err"),
                        dead_at=_ts(int(entry_id.split("-")[0]) / 1000),
                    )
                )
                if len(out) >= limit:
                    return out
        return out

    async def requeue(self, task_id: str, partition_key: str, partitions: Sequence[int]) -> str:
        """Move the task's dead-letter entry back into its stream; returns the partition."""
        if partition_key:
            partitions = [partition_of(partition_key, self._partitions)]
        for number in partitions:
            pk = self._region.partition(number)
            after = "-"
            while True:
                page = await self._broker.dead_letters(pk, 500, after)
                for entry_id, fields in page:
                    task = _dead_task(entry_id, fields)
                    if task is not None and task.task_id == task_id:
                        [moved] = await self._broker.requeue(pk, [entry_id])
                        if moved is not None:
                            return pk.name
                if len(page) < 500:
                    break
                after = "(" + page[-1][0]
        raise TaskNotFound(task_id)

    async def partition_status(self, served: Sequence[ServedPartition]) -> list[pb.PartitionStatus]:
        now_ms = int(time.time() * 1000)
        out = []
        for part in served:
            pk = RegionKeys(part.home_region).partition(part.partition)
            q = await self._broker.queue_stats(pk, now_ms)
            out.append(
                pb.PartitionStatus(
                    partition=pk.name,
                    epoch=part.epoch,
                    stream_length=q.length,
                    pending=q.pending,
                    delayed=q.delayed,
                    dead=q.dead,
                    ready=q.ready,
                    oldest_ready_age_ms=q.oldest_ready_ms,
                    oldest_pending_age_ms=q.oldest_pending_ms,
                    added_total=q.added_total,
                    delivered_total=q.delivered_total,
                    dead_total=q.dead_total,
                    worker=q.worker,
                )  # fmt: skip
            )
        return out

    async def replicas(self) -> list[pb.ReplicaStatus]:
        """The replicas of this region's own primary (GLOBAL durability needs them all)."""
        return [
            pb.ReplicaStatus(address=r.address, state=r.state, lag_bytes=r.lag_bytes)
            for r in await self._broker.replicas()
        ]
