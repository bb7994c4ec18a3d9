"""The enqueue path: validated `Task`s into their partitions' streams, with durability.

Public facade: `Producer(broker, settings, metrics).submit_many(tasks, epoch)` returns one
`SubmitResult` per task, in input order. It never raises for a single task's failure: the
result carries the `HomeportError` instead, so a batch can partly succeed.

One call groups the tasks by partition and sends one pipeline per partition: the enqueue
script (fence, dedup, XADD or ZADD, atomically) and, if any task of the batch asks for
REGION or GLOBAL durability, a `WAIT` on the same connection. The pipelines of different
partitions run concurrently.

`submit(task, epoch)` (one task, the gateway's single Submit) group-commits: the submits
made during one event-loop turn for the same partition, epoch and durability go to Redis
in one enqueue call (up to `_CHUNK` tasks), and each caller gets its own task's result,
as if it had called alone (a duplicate id in the same group is answered as a duplicate,
as the script dedups in order).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence

from homeport.core.broker import Broker
from homeport.core.entry import pack
from homeport.core.errors import HomeportError, NotReplicated
from homeport.core.keys import RegionKeys
from homeport.core.metrics import Metrics
from homeport.core.partitioner import partition_of
from homeport.core.settings import Settings
from homeport.core.task import Durability, Task

# Tasks per script call: bounds how long one script blocks the Redis event loop (~1 ms).
_CHUNK = 500


@dataclasses.dataclass(frozen=True, slots=True)
class SubmitResult:
    """Outcome of one task's submit.

    `entry_id` is the stream entry id, or `delayed:<due ms>` for a task scheduled ahead.
    `duplicate` is True when the id was seen within the dedup window: `entry_id` is then
    the first submission's. `error` is set (and the task is *not* acknowledged) on
    failure: `Fenced`, `NotReplicated` or `Unavailable`.
    """

    task_id: str
    partition: int
    entry_id: str | None = None
    duplicate: bool = False
    error: HomeportError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_Group = list[tuple[Task, "asyncio.Future[SubmitResult]"]]


class Producer:
    """Enqueues tasks of one region; safe to share between coroutines."""

    def __init__(self, broker: Broker, settings: Settings, metrics: Metrics | None = None):
        self._broker = broker
        self._settings = settings
        self._region = RegionKeys(settings.region)
        self._metrics = metrics or Metrics()
        # Per durability: (replica acks WAIT asks for, its timeout in ms). A batch waits
        # for the largest: the most acks, and for a tie the longer (GLOBAL) budget.
        self._wait = {
            Durability.LOCAL: (0, 0),
            Durability.REGION: (settings.region_replicas, settings.wait_timeout_ms),
            Durability.GLOBAL: (settings.global_replicas, settings.global_wait_timeout_ms),
        }
        # Single submits of this event-loop turn, by (partition, epoch, durability), and
        # the enqueue calls under way for earlier groups.
        self._groups: dict[tuple[int, int, Durability], _Group] = {}
        self._committing: set[asyncio.Future[list[SubmitResult]]] = set()

    async def submit(self, task: Task, epoch: int) -> SubmitResult:
        """Enqueue one task, group-committed with this turn's other single submits to its
        partition (see the module docstring)."""
        loop = asyncio.get_running_loop()
        key = (partition_of(task.partition_key, self._settings.partitions), epoch, task.durability)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = []
            loop.call_soon(self._commit, key, group)
        fut: asyncio.Future[SubmitResult] = loop.create_future()
        group.append((task, fut))
        if len(group) >= _CHUNK:
            del self._groups[key]  # full: the next submit starts a new group
        return await fut

    def _commit(self, key: tuple[int, int, Durability], group: _Group) -> None:
        if self._groups.get(key) is group:
            del self._groups[key]
        call = asyncio.ensure_future(self._submit_partition(key[0], [t for t, _ in group], key[1]))
        self._committing.add(call)

        def answer(call: asyncio.Future[list[SubmitResult]]) -> None:
            self._committing.discard(call)
            exc = None if call.cancelled() else call.exception()
            for i, (_, fut) in enumerate(group):
                if fut.done():
                    continue  # its caller went away (cancelled)
                if call.cancelled():
                    fut.cancel()
                elif exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(call.result()[i])

        call.add_done_callback(answer)

    async def submit_many(self, tasks: Sequence[Task], epoch: int) -> list[SubmitResult]:
        """Enqueue `tasks` (already validated by `new_task`) under the caller's `epoch`."""
        by_part: dict[int, list[int]] = {}
        parts = self._settings.partitions
        for i, task in enumerate(tasks):
            by_part.setdefault(partition_of(task.partition_key, parts), []).append(i)
        results: list[SubmitResult | None] = [None] * len(tasks)
        chunks = [
            (p, idx[lo : lo + _CHUNK])
            for p, idx in by_part.items()
            for lo in range(0, len(idx), _CHUNK)
        ]
        outs = await asyncio.gather(
            *(self._submit_partition(p, [tasks[i] for i in idx], epoch) for p, idx in chunks)
        )
        for (_, idx), out in zip(chunks, outs, strict=True):
            for i, res in zip(idx, out, strict=True):
                results[i] = res
        return [r for r in results if r is not None]

    async def _submit_partition(self, p: int, tasks: list[Task], epoch: int) -> list[SubmitResult]:
        pk = self._region.partition(p)
        now_ms = int(time.time() * 1000)
        args: list[object] = []
        for task in tasks:
            due, blob = pack(task, now_ms, epoch)
            args += (due, task.id, blob)
        wanted, timeout = max(self._wait[t.durability] for t in tasks)
        labels = (self._settings.region, str(p))
        try:
            replies, acked = await self._broker.enqueue(
                pk,
                [t.id for t in tasks],
                args,
                epoch=epoch,
                dedup_window_ms=int(self._settings.dedup_window_s * 1000),
                wait_replicas=wanted,
                wait_timeout_ms=timeout,
                cross_region=any(t.durability is Durability.GLOBAL for t in tasks),
            )
        except HomeportError as exc:
            if exc.code == "FENCED":
                self._metrics.fenced.labels(*labels).inc(len(tasks))
            return [SubmitResult(t.id, p, error=exc) for t in tasks]
        out = []
        counts = [0, 0]  # enqueued, duplicate
        refused: dict[str, int] = {}  # not replicated, by durability
        for task, reply in zip(tasks, replies, strict=True):
            need = self._wait[task.durability][0]
            if acked < need:
                refused[task.durability.name] = refused.get(task.durability.name, 0) + 1
                out.append(
                    SubmitResult(
                        task.id, p, reply.ref, reply.status == 2, NotReplicated(need, acked)
                    )
                )
            elif reply.status == 2:
                counts[1] += 1
                out.append(SubmitResult(task.id, p, reply.ref, True))
            else:
                counts[0] += 1
                out.append(SubmitResult(task.id, p, reply.ref, False))
        m = self._metrics
        for counter, n in zip((m.enqueued, m.duplicate_submits), counts, strict=True):
            if n:
                counter.labels(*labels).inc(n)
        for durability, n in refused.items():
            m.not_replicated.labels(*labels, durability).inc(n)
        return out
