"""Operator verbs on tasks that need both stores: cancel, dead-letter listing, requeue.

Public facade: `Control(broker, store, settings)` with `cancel(task_id, partition_key)`,
`dead_letters(partition, count)`, `requeue(partition, dead_ids)`.

Cancelling is first a Redis matter (the worker must see it before it begins the task;
step.lua checks the cancel mark atomically with the begin), then a record: the task is
recorded `cancelled` unless it already started, in which case the running handler gets a
cooperative signal (`TaskContext.cancelled`) and its own outcome is recorded.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from homeport.core.broker import Broker
from homeport.core.errors import AlreadyFinished, TaskNotFound
from homeport.core.keys import PartitionKeys, RegionKeys
from homeport.core.partitioner import partition_of
from homeport.core.settings import Settings
from homeport.core.store import RecordStore, Status


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


class Control:
    """Cancel / dead letters / requeue for one region."""

    def __init__(self, broker: Broker, store: RecordStore | None, settings: Settings) -> None:
        self._broker = broker
        self._store = store
        self._settings = settings
        self._rk = RegionKeys(settings.region)

    async def cancel(self, task_id: str, partition_key: str) -> str:
        """Cancel a task. Returns "cancelled" (it will never run) or "signalled" (running).

        Raises `AlreadyFinished` if its record shows a final status.
        """
        p = partition_of(partition_key, self._settings.partitions)
        if self._store is not None:
            try:
                rec = await self._store.get_task(task_id)
            except TaskNotFound:  # not run yet, so not recorded yet: it may be queued
                rec = None
            if rec is not None and rec.status.rank >= 3:
                raise AlreadyFinished(task_id, rec.status.value)
        state = await self._broker.cancel(self._rk.partition(p), task_id, int(time.time() * 1000))
        if state == "running":
            return "signalled"
        if self._store is not None:
            status = await self._store.mark_cancelled(
                task_id, partition_key, p, self._settings.region
            )
            if status != Status.CANCELLED:
                return "signalled"
        return "cancelled"

    async def dead_letters(
        self, partition: int, count: int = 100, after: str = "-"
    ) -> list[DeadLetter]:
        got = await self._broker.dead_letters(self._rk.partition(partition), count, after)
        return [
            DeadLetter(
                dead_id=eid,
                task_id=f.get("id", b"").decode(),
                partition_key=f.get("k", b"").decode(),
                kind=f.get("n", b"").decode(),
                payload=f.get("p", b""),
                error=f.get("err", b"").decode(),
                attempts=int(f.get("at", b"0") or 0),
            )
            for eid, f in got
        ]

    async def requeue(self, partition: int, dead_ids: list[str]) -> list[str | None]:
        """Move dead letters back into the stream (attempts reset); new entry ids."""
        pk = self._rk.partition(partition)
        found = {eid: f for eid, f in await self._broker.dead_letters(pk, 1_000_000)}
        task_ids = [found[d].get("id", b"").decode() if d in found else "" for d in dead_ids]
        return await requeue_dead(self._broker, self._store, pk, dead_ids, task_ids)


async def requeue_dead(
    broker: Broker,
    store: RecordStore | None,
    pk: PartitionKeys,
    dead_ids: Sequence[str],
    task_ids: Sequence[str],
) -> list[str | None]:
    """The one requeue rule (the gateway's RequeueDeadLetter and `Control.requeue`): each
    task's record is reopened to `enqueued` first, then its dead letter moves back into
    the stream, so the new run's first record is ordered after the reopening and its
    final status becomes the task's (`RecordStore.reopen`). New entry ids, None where the
    dead letter was gone."""
    if store is not None:
        for task_id in task_ids:
            if task_id:
                await store.reopen(task_id)
    return await broker.requeue(pk, dead_ids)
