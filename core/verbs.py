"""Operator verbs on tasks that need both stores: cancel, dead-letter listing, requeue.

One rule each, used by the gateway (`router.records.TaskLookup`, which turns the results
into protobuf) and by the engine's tests:

- `cancel`: first a Redis matter (the worker must see it before it begins the task;
  step.lua checks the cancel mark atomically with the begin), then a record: the task is
  recorded `cancelled` unless it already started, in which case the running handler gets
  a cooperative signal (`TaskContext.cancel_requested`) and its own outcome is recorded.
- `dead_letters` / `find_dead`: a partition's dead-letter stream, decoded by the engine's
  own entry decoder.
- `requeue_dead`: each record reopened, then the dead letter moved back.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from homeport.core.broker import Broker
from homeport.core.entry import Delivery
from homeport.core.errors import TaskNotFound
from homeport.core.keys import PartitionKeys
from homeport.core.store import FINAL, RecordStore, Status

_PAGE = 500


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of a partition's dead-letter stream."""

    dead_id: str
    task_id: str
    partition_key: str
    kind: str
    payload: bytes
    error: str
    attempts: int
    dead_at: float  # unix seconds, from the entry id

    @classmethod
    def decode(cls, entry_id: str, fields: dict[str, bytes]) -> DeadLetter | None:
        """None for an entry that holds no task (an undecodable one, kept for a person)."""
        task = Delivery.decode(entry_id, {k.encode(): v for k, v in fields.items()})
        if task is None:
            return None
        return cls(
            dead_id=entry_id,
            task_id=task.task_id,
            partition_key=task.key,
            kind=task.kind,
            payload=task.payload,
            error=fields.get("err", b"").decode("utf-8", errors="replace"),
            attempts=int(fields.get("at") or 0),
            dead_at=int(entry_id.split("-")[0]) / 1000,
        )


async def cancel(
    broker: Broker,
    store: RecordStore,
    pk: PartitionKeys,
    task_id: str,
    partition_key: str,
    region: str,
) -> tuple[bool, Status]:
    """Cancel a task that has not started. Returns (cancelled, its status now): not
    cancelled when it already finished or is running (then it is signalled)."""
    try:
        record = await store.get_task(task_id)
    except TaskNotFound:  # not run yet, so maybe not recorded yet: it may be queued
        record = None
    if record is not None and record.status in FINAL:
        return False, record.status
    where = await broker.cancel(pk, task_id, int(time.time() * 1000))
    if where == "running":
        # Signalled: the handler's own outcome is the record. Marking it cancelled here
        # would win over that outcome (the first final status wins) if the worker's
        # "running" record is not written yet.
        return False, Status.RUNNING
    status = await store.mark_cancelled(task_id, partition_key, pk.number, region)
    return status == Status.CANCELLED, status


async def dead_letters(
    broker: Broker, pk: PartitionKeys, count: int = 100, after: str = "-"
) -> list[DeadLetter]:
    """Up to `count` dead letters of one partition after entry id `after`."""
    got = await broker.dead_letters(pk, count, after)
    return [d for d in (DeadLetter.decode(eid, f) for eid, f in got) if d is not None]


async def find_dead(broker: Broker, pk: PartitionKeys, task_id: str) -> str | None:
    """The dead-letter entry id of `task_id` in one partition, paging the stream."""
    after = "-"
    while True:
        page = await broker.dead_letters(pk, _PAGE, after)
        for entry_id, fields in page:
            dead = DeadLetter.decode(entry_id, fields)
            if dead is not None and dead.task_id == task_id:
                return entry_id
        if len(page) < _PAGE:
            return None
        after = "(" + page[-1][0]


async def requeue_dead(
    broker: Broker,
    store: RecordStore | None,
    pk: PartitionKeys,
    dead_ids: Sequence[str],
    task_ids: Sequence[str],
) -> list[str | None]:
    """The one requeue rule: each task's record is reopened to `enqueued` first, then its
    dead letter moves back into the stream, so the new run's first record is ordered
    after the reopening and its final status becomes the task's (`RecordStore.reopen`).
    New entry ids, None where the dead letter was gone."""
    if store is not None:
        for task_id in task_ids:
            if task_id:
                await store.reopen(task_id)
    return await broker.requeue(pk, dead_ids)
