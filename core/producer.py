"""The enqueue path: validated `Task`s into their partitions' streams, with durability.

Public facade: `Producer(broker, settings, metrics).submit_many(tasks, epoch)` returns one
`SubmitResult` per task, in input order. It never raises for a single task's failure: the
result carries the `HomeportError` instead, so a batch can partly succeed.

One call groups the tasks by partition (and `_CHUNK`) and sends one pipeline per Redis
node (`Broker.enqueue`): the enqueue script per partition (fence, dedup, XADD or ZADD,
atomically) and, if any task of the batch asks for REGION or GLOBAL durability, one
`WAIT` on the same connection, which covers every script before it. The pipelines of
different nodes run concurrently.

`submit(task, epoch)` (one task, the gateway's single Submit) group-commits: while
`_MAX_IN_FLIGHT` enqueue calls of the same epoch and durability are under way, new single
submits queue, and the next call takes every one queued (the submits of one event-loop
turn always go together). One call is one pipeline per Redis node, whatever partitions
its tasks fall in, so a busy gateway sends few large pipelines rather than one per
Submit: fewer pipelines, system calls, script calls and WAITs per task. At light load
nothing waits: a submit goes out at the end of its turn. Each caller gets its own task's
result, as if it had called alone (a duplicate id in the same group is answered as a
duplicate, as the script dedups in order; a partition's error reaches only its tasks).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence

from homeport.core.broker import Broker, EnqueueCall, EnqueueReply
from homeport.core.entry import pack
from homeport.core.errors import HomeportError, NotReplicated
from homeport.core.keys import RegionKeys
from homeport.core.metrics import Metrics
from homeport.core.partitioner import partition_of
from homeport.core.settings import Settings
from homeport.core.task import Durability, Task

# Tasks per script call: bounds how long one script blocks the Redis event loop (~1 ms).
_CHUNK = 500
# Enqueue calls of single submits under way at once, per (epoch, durability), before new
# ones queue for the next call (group commit; the module docstring).
_MAX_IN_FLIGHT = 4


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
        # Single submits queued, by (epoch, durability); the keys whose next call is
        # scheduled at the end of this loop turn; enqueue calls under way, by key.
        self._queued: dict[tuple[int, Durability], _Group] = {}
        self._scheduled: set[tuple[int, Durability]] = set()
        self._in_flight: dict[tuple[int, Durability], int] = {}
        self._committing: set[asyncio.Future[list[SubmitResult]]] = set()

    async def submit(self, task: Task, epoch: int) -> SubmitResult:
        """Enqueue one task, group-committed with the other single submits queued meanwhile
        (see the module docstring)."""
        key = (epoch, task.durability)
        fut: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(key, []).append((task, fut))
        self._schedule(key)
        return await fut

    def _schedule(self, key: tuple[int, Durability]) -> None:
        """Send `key`'s queue at the end of this turn, unless a call is scheduled already or
        `_MAX_IN_FLIGHT` are under way (the first to return sends it)."""
        if key in self._scheduled or self._in_flight.get(key, 0) >= _MAX_IN_FLIGHT:
            return
        self._scheduled.add(key)
        asyncio.get_running_loop().call_soon(self._commit, key)

    def _commit(self, key: tuple[int, Durability]) -> None:
        self._scheduled.discard(key)
        group = self._queued.pop(key, [])
        if not group:
            return
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        call = asyncio.ensure_future(self._submit_all([t for t, _ in group], key[0]))
        self._committing.add(call)

        def answer(call: asyncio.Future[list[SubmitResult]]) -> None:
            self._committing.discard(call)
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]  # keys come and go with epochs
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
            if self._queued.get(key):
                self._schedule(key)

        call.add_done_callback(answer)

    async def submit_many(self, tasks: Sequence[Task], epoch: int) -> list[SubmitResult]:
        """Enqueue `tasks` (already validated by `new_task`) under the caller's `epoch`."""
        return await self._submit_all(tasks, epoch)

    async def _submit_all(self, tasks: Sequence[Task], epoch: int) -> list[SubmitResult]:
        """Enqueue `tasks` in one `Broker.enqueue`: a script call per partition and chunk
        of `_CHUNK`, one pipeline per node; the results in the order of `tasks`."""
        if not tasks:
            return []
        by_part: dict[int, list[int]] = {}
        parts = self._settings.partitions
        for i, task in enumerate(tasks):
            by_part.setdefault(partition_of(task.partition_key, parts), []).append(i)
        chunks = [
            (p, idx[lo : lo + _CHUNK])
            for p, idx in by_part.items()
            for lo in range(0, len(idx), _CHUNK)
        ]
        now_ms = int(time.time() * 1000)
        calls = []
        for p, idx in chunks:
            args: list[object] = []
            for i in idx:
                due, blob = pack(tasks[i], now_ms, epoch)
                args += (due, tasks[i].id, blob)
            calls.append(EnqueueCall(self._region.partition(p), [tasks[i].id for i in idx], args))
        wanted, timeout = max(self._wait[t.durability] for t in tasks)
        outs = await self._broker.enqueue(
            calls,
            epoch=epoch,
            dedup_window_ms=int(self._settings.dedup_window_s * 1000),
            wait_replicas=wanted,
            wait_timeout_ms=timeout,
            cross_region=any(t.durability is Durability.GLOBAL for t in tasks),
        )
        results: list[SubmitResult | None] = [None] * len(tasks)
        for (p, idx), (replies, acked) in zip(chunks, outs, strict=True):
            done = self._results(p, [tasks[i] for i in idx], replies, acked)
            for i, res in zip(idx, done, strict=True):
                results[i] = res
        return [r for r in results if r is not None]

    def _results(
        self,
        p: int,
        tasks: list[Task],
        replies: list[EnqueueReply] | HomeportError,
        acked: int,
    ) -> list[SubmitResult]:
        """One partition's submit results from its script's replies (or its error) and the
        replica acks WAIT reported; counts them in the metrics."""
        labels = (self._settings.region, str(p))
        if isinstance(replies, HomeportError):
            if replies.code == "FENCED":
                self._metrics.fenced.labels(*labels).inc(len(tasks))
            return [SubmitResult(t.id, p, error=replies) for t in tasks]
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
