"""Reads and admin writes behind the gateway: task records, cancellation, dead letters,
queue depth. It drives the engine's two boundaries (`core.broker.Broker` for Redis,
`core.store.RecordStore` for PostgreSQL) and hands back wire messages.

A task's record appears in PostgreSQL when a worker first picks it up (the enqueue hot
path never touches PostgreSQL). A task that is still waiting is found in its home's Redis
instead (`Broker.find_waiting`: the dedup key, delayed set and cancelled set that submit
wrote anyway), so GetTask, WatchTask and CancelTask answer ENQUEUED, SCHEDULED (with the
due time) or CANCELLED for it from the moment it was acknowledged. docs/gateway.md says
why this and not a record written at submit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from google.protobuf import timestamp_pb2
from homeport.core import verbs
from homeport.core.broker import Broker
from homeport.core.errors import InvalidArgument, TaskNotFound
from homeport.core.keys import RegionKeys
from homeport.core.partitioner import partition_name, partition_of
from homeport.core.readouts import Waiting
from homeport.core.store import AttemptRecord, RecordStore, Status, TaskRecord
from homeport.router.proto_gen import scheduler_pb2 as pb
from homeport.router.serving import ServedPartition

_FINAL_WIRE = frozenset({pb.TASK_STATUS_SUCCEEDED, pb.TASK_STATUS_DEAD, pb.TASK_STATUS_CANCELLED})
_WAITING_STATUS = {
    "enqueued": pb.TASK_STATUS_ENQUEUED,
    "scheduled": pb.TASK_STATUS_SCHEDULED,
    "cancelled": pb.TASK_STATUS_CANCELLED,
}


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


class TaskLookup:
    """The gateway's read side, for one home region of `partitions` partitions."""

    def __init__(self, broker: Broker, store: RecordStore, region: str, partitions: int):
        self._broker = broker
        self._store = store
        self._region = RegionKeys(region)
        self._region_name = region
        self._partitions = partitions

    @property
    def region(self) -> str:
        return self._region_name

    async def get(self, task_id: str) -> pb.TaskInfo:
        """The task's record, else what its home's Redis says while it waits."""
        found = await self.find(task_id)
        if found is None:
            raise TaskNotFound(task_id)
        return found

    async def find(self, task_id: str) -> pb.TaskInfo | None:
        found = await self.recorded(task_id)
        return found if found is not None else await self.waiting(task_id)

    async def recorded(self, task_id: str) -> pb.TaskInfo | None:
        try:
            record = await self._store.get_task(task_id)
        except TaskNotFound:
            return None
        return task_to_wire(record, await self._store.attempts(task_id))

    async def waiting(self, task_id: str) -> pb.TaskInfo | None:
        """A task not recorded yet, as its partition's Redis holds it (every partition is
        asked at once: the id alone does not say which one)."""
        found = await self._find_waiting(task_id)
        if found is None:
            return None
        number, w = found
        t = w.task
        scheduled_ms = w.due_ms or (t.scheduled_ms if t is not None else 0)
        return pb.TaskInfo(
            id=task_id,
            status=_WAITING_STATUS[w.state],
            region=self._region_name,
            partition=partition_name(self._region_name, number),
            partition_key=t.key if t is not None else "",
            kind=t.kind if t is not None else "",
            payload=t.payload if t is not None else b"",
            epoch=t.epoch if t is not None else 0,
            enqueued_at=_ts(t.enqueued_ms / 1000) if t is not None else None,
            scheduled_at=_ts(scheduled_ms / 1000) if scheduled_ms else None,
        )

    async def _find_waiting(self, task_id: str) -> tuple[int, Waiting] | None:
        pks = [self._region.partition(n) for n in range(self._partitions)]
        for number, w in enumerate(await self._broker.find_waiting(pks, task_id)):
            if w is not None:
                return number, w
        return None

    async def cancel(self, task_id: str, partition_key: str) -> tuple[bool, pb.TaskStatus]:
        """Cancel a task that has not started. Returns (cancelled, status now)."""
        if not partition_key:
            try:
                partition_key = (await self._store.get_task(task_id)).partition_key
            except TaskNotFound:
                found = await self._find_waiting(task_id)
                if found is None:
                    raise TaskNotFound(task_id) from None
                if found[1].task is None:
                    raise InvalidArgument(
                        "partition_key",
                        "",
                        f"task {task_id} waits in partition "
                        f"{partition_name(self._region_name, found[0])} but its entry "
                        "cannot be read back; give its partition key",
                    ) from None
                partition_key = found[1].task.key
        number = partition_of(partition_key, self._partitions)
        cancelled, status = await verbs.cancel(
            self._broker,
            self._store,
            self._region.partition(number),
            task_id,
            partition_key,
            self._region_name,
        )
        return cancelled, status_to_wire(status)

    @staticmethod
    def event(task_id: str, info: pb.TaskInfo) -> pb.TaskEvent:
        """The WatchTask event for what is known of a task now."""
        return pb.TaskEvent(
            task_id=task_id,
            status=info.status,
            attempts=info.attempt_count,
            at=_ts(time.time()),
            error=info.error,
            final=info.status in _FINAL_WIRE,
        )

    async def dead_letters(self, partitions: Sequence[int], limit: int) -> list[pb.DeadLetter]:
        out: list[pb.DeadLetter] = []
        for number in partitions:
            pk = self._region.partition(number)
            for dead in await verbs.dead_letters(self._broker, pk, limit - len(out)):
                out.append(
                    pb.DeadLetter(
                        task_id=dead.task_id,
                        partition=pk.name,
                        partition_key=dead.partition_key,
                        kind=dead.kind,
                        attempts=dead.attempts,
                        error=dead.error,
                        dead_at=_ts(dead.dead_at),
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
            entry_id = await verbs.find_dead(self._broker, pk, task_id)
            if entry_id is not None:
                [moved] = await verbs.requeue_dead(
                    self._broker, self._store, pk, [entry_id], [task_id]
                )
                if moved is not None:
                    return pk.name
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
