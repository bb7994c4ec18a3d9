"""What the broker reads about a region store without changing it: a partition's depth
and queue statistics, whether it is drained, where a waiting task is, the replicas and
the memory used. `Readouts` is the read-only half of `core.broker.Broker` (which adds the
writes), on the connections of `core.nodes.Nodes`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from homeport.core.entry import Delivery
from homeport.core.keys import GROUP, PartitionKeys
from homeport.core.nodes import Nodes, text


@dataclass(frozen=True, slots=True)
class PartitionDepth:
    """Queue state of one partition: undelivered entries, pending entries, their age."""

    ready: int
    pending: int
    delayed: int
    oldest_pending_ms: int
    # Age of the oldest undelivered entry: the task that has waited longest to start.
    oldest_ready_ms: int = 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One partition as an operator sees it: backlog, ages, lifetime counters (XINFO's
    entries-added and entries-read, monotonic and replicated with the data) and the
    worker holding its lease ("" when none)."""

    length: int
    ready: int
    pending: int
    delayed: int
    oldest_ready_ms: int
    oldest_pending_ms: int
    added_total: int
    delivered_total: int
    dead: int
    dead_total: int
    worker: str


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """One replica of a single-mode primary, as its INFO replication lists it."""

    address: str
    state: str
    lag_bytes: int


@dataclass(frozen=True, slots=True)
class Waiting:
    """A task found in its partition's Redis before any worker recorded it (GetTask of a
    task that waits): `state` is "scheduled" (delayed set, `due_ms`), "enqueued" (stream)
    or "cancelled"; `task` is its decoded blob when still readable."""

    state: str
    due_ms: int
    task: Delivery | None


class Readouts(Nodes):
    """The read-only operations of the broker (see the module docstring)."""

    async def depth(self, pk: PartitionKeys, now_ms: int) -> PartitionDepth:
        async def run(client: aioredis.Redis) -> PartitionDepth:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xinfo_groups(pk.stream)
                pipe.xpending(pk.stream, GROUP)
                pipe.zcard(pk.delayed)
                groups, summary, delayed = await pipe.execute(raise_on_error=False)
            if isinstance(groups, Exception) or isinstance(summary, Exception):
                return PartitionDepth(0, 0, int(delayed) if isinstance(delayed, int) else 0, 0)
            group = next((g for g in groups if text(g["name"]) == GROUP), None)
            ready = int(group.get("lag") or 0) if group else 0
            oldest = 0
            if summary["pending"]:
                oldest = max(0, now_ms - id_tuple(text(summary["min"]))[0])
            waiting = 0
            # Lag is None when Redis cannot count it (after XDEL): look then too. The
            # first entry past the group's last-delivered id is the oldest undelivered
            # one; its id is its enqueue (or due) time. One extra read, only with a backlog.
            if group is not None and (ready or group.get("lag") is None):
                first = await client.xrange(
                    pk.stream, "(" + text(group["last-delivered-id"]), "+", count=1
                )
                if first:
                    waiting = max(0, now_ms - id_tuple(text(first[0][0]))[0])
            return PartitionDepth(ready, int(summary["pending"]), int(delayed), oldest, waiting)

        return await self._on(pk.stream, run)

    async def drained(self, pk: PartitionKeys) -> bool:
        """True when nothing is waiting, running or delayed in the partition."""

        async def run(client: aioredis.Redis) -> bool:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xinfo_groups(pk.stream)
                pipe.xinfo_stream(pk.stream)
                pipe.zcard(pk.delayed)
                groups, stream, delayed = await pipe.execute(raise_on_error=False)
            if isinstance(groups, Exception) or isinstance(stream, Exception):
                return int(delayed) == 0 if isinstance(delayed, int) else False
            group = next((g for g in groups if text(g["name"]) == GROUP), None)
            if group is None:
                return stream["length"] == 0 and int(delayed) == 0
            return (
                int(group["pending"]) == 0
                and text(group["last-delivered-id"]) == text(stream["last-generated-id"])
                and int(delayed) == 0
            )

        return await self._on(pk.stream, run)

    # --- dead letters and cancellation --------------------------------------------------

    async def find_waiting(
        self, pks: Sequence[PartitionKeys], task_id: str
    ) -> list[Waiting | None]:
        """Where `task_id` waits, per partition of `pks`, read from the keys submit already
        wrote (dedup key, delayed set, cancelled set): no extra write on the submit path.
        One pipeline per node. None where a partition does not know it (or its dedup key
        expired)."""
        groups: dict[int, list[int]] = {}
        for i, pk in enumerate(pks):
            groups.setdefault(id(self._client_for(pk.stream)), []).append(i)
        out: list[Waiting | None] = [None] * len(pks)

        async def one(idx: list[int]) -> None:
            async def run(client: aioredis.Redis) -> list[Any]:
                async with client.pipeline(transaction=False) as pipe:
                    for i in idx:
                        pk = pks[i]
                        pipe.get(pk.dedup(task_id))
                        pipe.zscore(pk.delayed, task_id)
                        pipe.hget(pk.delayed_data, task_id)
                        pipe.zscore(pk.cancelled, task_id)
                    return list(await pipe.execute())

            got = await self._on(pks[idx[0]].stream, run)
            for n, i in enumerate(idx):
                ref, due, blob, cancelled = got[4 * n : 4 * n + 4]
                if ref is not None or due is not None or cancelled is not None:
                    out[i] = await self._waiting(pks[i], ref, due, blob, cancelled)

        await asyncio.gather(*(one(idx) for idx in groups.values()))
        return out

    async def _waiting(
        self, pk: PartitionKeys, ref: Any, due: Any, blob: Any, cancelled: Any
    ) -> Waiting:
        task = Delivery.decode("0-0", {b"t": blob}) if blob is not None else None
        if task is None and ref is not None and not text(ref).startswith("delayed:"):
            entry = text(ref)
            rows: Any = await self._on(pk.stream, lambda c: c.xrange(pk.stream, entry, entry))
            task = Delivery.decode(rows[0][0], rows[0][1]) if rows else None
        if cancelled is not None:
            return Waiting("cancelled", 0, task)
        if due is not None:
            return Waiting("scheduled", int(due), task)
        return Waiting("enqueued", 0, task)

    async def memory_used(self) -> int:
        """Bytes of memory used, summed over every primary of the region store."""
        if not self._cluster:
            info = await self._guard(self._seed.info("memory"))
            return int(info["used_memory"])
        total = 0
        for addr in set(self._slots):
            info = await self._on_addr(addr, lambda c: c.info("memory"))
            total += int(info["used_memory"])
        return total

    async def stream_length(self, pk: PartitionKeys) -> int:
        return int(await self._on(pk.stream, lambda c: c.xlen(pk.stream)))

    async def queue_stats(self, pk: PartitionKeys, now_ms: int) -> QueueStats:
        """Backlog, ages and counters of one partition (RegionStatus, the web console).
        Read-only: two round trips, nothing written on the hot path to count rates."""

        async def run(client: aioredis.Redis) -> QueueStats:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xinfo_stream(pk.stream)
                pipe.xinfo_groups(pk.stream)
                pipe.xpending(pk.stream, GROUP)
                pipe.zcard(pk.delayed)
                pipe.xinfo_stream(pk.dead)
                pipe.hget(pk.lease, "owner")
                got = await pipe.execute(raise_on_error=False)
            stream, groups, summary, delayed, dead, owner = (
                None if isinstance(v, Exception) else v for v in got
            )
            group = next((g for g in groups or [] if text(g["name"]) == GROUP), None)
            pending = oldest_pending = 0
            if summary and summary["pending"]:
                pending = int(summary["pending"])
                oldest_pending = max(0, now_ms - id_tuple(text(summary["min"]))[0])
            length = int(stream["length"]) if stream else 0
            ready = length if group is None else int(group.get("lag") or 0)
            oldest_ready = 0
            if ready:
                after = "-" if group is None else "(" + text(group["last-delivered-id"])
                first = await client.xrange(pk.stream, min=after, max="+", count=1)
                if first:
                    oldest_ready = max(0, now_ms - id_tuple(text(first[0][0]))[0])
            return QueueStats(
                length, ready, pending, int(delayed or 0), oldest_ready, oldest_pending,
                int(stream.get("entries-added") or 0) if stream else 0,
                int(group.get("entries-read") or 0) if group else 0,
                int(dead["length"]) if dead else 0,
                int(dead.get("entries-added") or 0) if dead else 0,
                text(owner) if owner else "",
            )  # fmt: skip

        return await self._on(pk.stream, run)

    async def replicas(self) -> list[ReplicaInfo]:
        """Replicas of a single-mode primary and how far behind each is; [] in cluster
        mode. Tells whether WAIT can count enough replicas for GLOBAL durability."""
        if self._cluster:
            return []
        info = await self._guard(self._seed.info("replication"))
        offset = int(info.get("master_repl_offset", 0))
        return [
            ReplicaInfo(
                f"{v['ip']}:{v['port']}", str(v["state"]), max(0, offset - int(v["offset"]))
            )
            for k, v in sorted(info.items())
            if k.startswith("slave") and isinstance(v, dict)
        ]


def id_tuple(entry_id: str) -> tuple[int, int]:
    """A stream entry id as (milliseconds, sequence), for ordering."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
