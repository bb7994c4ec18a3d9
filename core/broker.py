"""All Redis I/O of the engine: connections, Lua scripts, and every command sent.

`Broker` is the only class that talks to Redis. It drives a single primary and a Redis
Cluster through one code path: every operation names the partition (or region) whose
hash-tagged keys it touches, `_client_for` resolves that key's slot to a plain client of
the node serving it (always the same client for a single primary), and one pipeline per
partition goes to that node. We keep our own slot map (from CLUSTER SLOTS, refreshed on
MOVED or a connection error) instead of redis-py's `RedisCluster` because `WAIT` counts
the replicas that acknowledged the writes *of the same connection*: the enqueue script
and its `WAIT` must share one connection to the partition's primary, which a plain
per-node pipeline guarantees and a cluster pipeline does not.

Errors from redis-py are translated here, once (`redis_error`, the one table): connection
failures, timeouts and failover states become `Unavailable`; an out-of-memory refusal
(`maxmemory` with `noeviction`) becomes `ResourceExhausted` with retry advice; any other
refusal becomes `BackendFailed`. A stale epoch or lease token comes back from the scripts
as `Fenced`. No redis-py exception leaves the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import redis.asyncio as aioredis
from homeport.core.entry import Delivery, Undecodable, taken
from homeport.core.errors import Fenced, HomeportError
from homeport.core.keys import GROUP, PartitionKeys, RegionKeys
from homeport.core.nodes import GLOBAL_LANE, MAIN, Held, redis_error, text
from homeport.core.readouts import Readouts, id_tuple
from homeport.core.settings import Settings
from redis import exceptions as rexc
from redis.asyncio.client import PubSub


@dataclass(frozen=True, slots=True)
class Finish:
    """How one delivery ends, for the step script: op "A" ack, "D" dead, "R" retry later."""

    op: str
    entry_id: str
    task_id: str
    a: str | int = ""
    b: str | int | bytes = ""


@dataclass(frozen=True, slots=True)
class TakeKinds:
    """The kinds take.lua may begin, as it reads them: `free` (unordered) whenever read,
    `ordered` only as the first entry of a free key. Packed once per consumer."""

    free: bytes
    ordered: bytes

    @classmethod
    def of(cls, free: Sequence[str], ordered: Sequence[str]) -> TakeKinds:
        # use_bin_type=False: Redis's Lua cmsgpack does not decode msgpack's bin types.
        return cls(
            msgpack.packb(list(free), use_bin_type=False),
            msgpack.packb(list(ordered), use_bin_type=False),
        )


@dataclass(frozen=True, slots=True)
class EnqueueReply:
    """Per-task outcome of one enqueue script call (status codes as in enqueue.lua)."""

    status: int
    ref: str


@dataclass(frozen=True, slots=True)
class EnqueueCall:
    """One partition's batch in `Broker.enqueue`: task ids and, per task, enqueue.lua's
    three arguments (due ms, task id, task blob)."""

    pk: PartitionKeys
    task_ids: Sequence[str]
    task_args: Sequence[Any]


class Subscription:
    """One channel's messages (`Broker.subscribed`)."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def next(self, timeout: float | None) -> str | None:
        """The next message, or None after `timeout` seconds without one (None: wait as
        long as it takes); None may also come early (a subscription confirmation)."""
        try:
            msg = await self._pubsub.get_message(timeout=timeout)
        except rexc.RedisError as exc:
            raise redis_error(exc) from exc
        if msg is None or msg.get("type") != "message":
            return None
        return text(msg["data"])


class Broker(Readouts):
    """The engine's Redis boundary; one per process, shared by all its components. Its
    connections, slot routing, scripts and error table are `core.nodes.Nodes`."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Broker:
        return cls(
            settings.redis_url,
            cluster=settings.redis_cluster,
            pool_size=settings.redis_pool_size,
            global_pool_size=settings.redis_global_pool_size,
            pool_wait_s=settings.redis_pool_wait_s,
        )

    # --- enqueue -------------------------------------------------------------------------

    async def enqueue(
        self,
        calls: Sequence[EnqueueCall],
        *,
        epoch: int,
        dedup_window_ms: int,
        wait_replicas: int,
        wait_timeout_ms: int,
        cross_region: bool = False,
    ) -> list[tuple[list[EnqueueReply] | HomeportError, int]]:
        """Run enqueue.lua once per call (a batch of one partition): one pipeline per Redis
        node, its scripts in call order and then one WAIT on the same connection, which
        covers every write before it. The nodes' pipelines run concurrently.

        Per call: its per-task replies, or its error (`Fenced` for its partition, or the
        node's `HomeportError` for every call of that node), with the replica count WAIT
        reported for its node (`wait_replicas` itself when no WAIT was needed).
        `cross_region` (GLOBAL durability) sends it through a pool of its own: a WAIT for
        the standby region holds its connection up to a second when the mirror lags, and
        many of them must not leave LOCAL and REGION submits without a connection.
        """
        lane = GLOBAL_LANE if cross_region else MAIN
        sha = self._sha["enqueue"]
        out: list[tuple[list[EnqueueReply] | HomeportError, int]] = [([], 0)] * len(calls)
        by_node: dict[int, list[int]] = {}
        for i, call in enumerate(calls):
            by_node.setdefault(id(self._client_for(call.pk.stream, lane)), []).append(i)

        async def node(idx: list[int]) -> None:
            scripts = []
            for i in idx:
                pk, ids = calls[i].pk, calls[i].task_ids
                keys = [pk.stream, pk.delayed, pk.delayed_data, pk.epoch]
                keys.extend(pk.dedup(t) for t in ids)
                due = RegionKeys(pk.region).due
                scripts.append((keys, [epoch, dedup_window_ms, due, *calls[i].task_args]))

            async def run(client: aioredis.Redis) -> list[Any]:
                async with client.pipeline(transaction=False) as pipe:
                    for keys, args in scripts:
                        pipe.evalsha(sha, len(keys), *keys, *args)
                    if wait_replicas > 0:
                        pipe.execute_command("WAIT", wait_replicas, wait_timeout_ms)
                    return list(await pipe.execute())

            try:
                got = await self._on(calls[idx[0]].pk.stream, run, lane)
            except HomeportError as exc:
                for i in idx:
                    out[i] = (exc, 0)
                return
            acked = int(got[-1]) if wait_replicas > 0 else wait_replicas
            for i, reply in zip(idx, got, strict=False):
                if reply and reply[0] == b"FENCED":
                    out[i] = (Fenced(calls[i].pk.name, epoch, int(reply[1])), acked)
                else:
                    pairs = range(0, len(reply), 2)
                    got_i = [EnqueueReply(int(reply[j]), text(reply[j + 1])) for j in pairs]
                    out[i] = (got_i, acked)

        await asyncio.gather(*(node(idx) for idx in by_node.values()))
        return out

    async def set_epoch(self, pk: PartitionKeys, epoch: int) -> int:
        """Raise the partition's epoch (fencing older writers); returns the epoch now."""
        return int(await self._script("fence", [pk.epoch], [epoch]))

    async def role(self) -> str:
        """The seed node's replication role: `master` or `slave`."""
        reply = await self._guard(self._seed.execute_command("ROLE"))  # type: ignore[no-untyped-call]
        return text(reply[0])

    async def get_epoch(self, pk: PartitionKeys) -> int:
        raw = await self._on(pk.epoch, lambda c: c.get(pk.epoch))
        return int(raw or 0)

    # --- consuming -----------------------------------------------------------------------

    async def ensure_group(self, pk: PartitionKeys) -> None:
        """Create the partition's stream and consumer group if missing (reads from 0)."""

        async def run(client: aioredis.Redis) -> None:
            try:
                await client.xgroup_create(pk.stream, GROUP, id="0", mkstream=True)
            except rexc.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        await self._on(pk.stream, run)

    async def read_new(
        self,
        pk: PartitionKeys,
        consumer: str,
        count: int,
        block_ms: int,
        bad: list[Undecodable] | None = None,
    ) -> list[Delivery]:
        """XREADGROUP `>`: entries never delivered before, in stream order. Entries that
        are no task blob of this version are left out, and appended to `bad` if given."""

        async def run(client: aioredis.Redis) -> Any:
            try:
                return await client.xreadgroup(
                    GROUP, consumer, {pk.stream: ">"}, count=count, block=block_ms or None
                )
            except rexc.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                return None  # the group is missing: made below

        got = await self._on(pk.stream, run)
        if got is None:
            await self.ensure_group(pk)
            return []
        if not got:
            return []
        return _split([Delivery.parse(eid, fields) for eid, fields in got[0][1] if fields], bad)

    async def take(
        self,
        pk: PartitionKeys,
        token: int,
        consumer: str,
        count: int,
        kinds: TakeKinds,
        held: list[str],
        begin_max: int,
        bad: list[Undecodable],
        conn: Held | None = None,
    ) -> list[tuple[Delivery, int]]:
        """Run take.lua: read up to `count` new entries and begin up to `begin_max` of
        them: of `kinds.free` any, of `kinds.ordered` only a key's first entry in the read,
        and none of a key in `held` (the caller's keys with entries not yet acked). Per
        entry its verdict (-2 = not begun; else as `step`). One reply of plain arrays: no
        stream-reply parsing in redis-py. On `conn` if given (`core.nodes.Held`). Raises
        `Fenced`."""
        args = [
            GROUP,
            token,
            consumer,
            count,
            begin_max,
            kinds.free,
            kinds.ordered,
            msgpack.packb(held, use_bin_type=False),
        ]
        keys = [pk.stream, pk.lease, pk.started, pk.cancelled]
        reply = await self._script("take", keys, args, conn)
        if reply and reply[0] == b"FENCED":
            raise Fenced(pk.name, token, int(reply[1]))
        if reply and reply[0] == b"NOGROUP":
            await self.ensure_group(pk)
            return []
        return taken(reply, bad)

    async def claim_pending(
        self,
        pk: PartitionKeys,
        consumer: str,
        batch: int,
        bad: list[Undecodable] | None = None,
    ) -> list[Delivery]:
        """Take over every pending entry of the group, oldest first, with delivery counts.
        Undecodable entries are left out, and appended to `bad` if given.

        Runs when a worker gains a partition: the previous owner's unacknowledged entries
        must run before anything new, in stream order. XCLAIM raises each delivery count
        by one; entries deleted meanwhile (trimmed) are dropped from the PEL by Redis.
        """
        out: list[Delivery] = []
        start = "-"
        while True:
            rows = await self._on(
                pk.stream,
                lambda c, lo=start: c.xpending_range(pk.stream, GROUP, lo, "+", batch),  # type: ignore[misc]
            )
            if not rows:
                return out
            counts = {text(r["message_id"]): int(r["times_delivered"]) for r in rows}
            # Entries this very process had (it lost the lease, say, and got it back) did
            # not crash a worker: they are no suspects, whatever their begin count says.
            ours = {text(r["message_id"]) for r in rows if text(r["consumer"]) == consumer}
            ids = list(counts)
            got = await self._on(
                pk.stream,
                lambda c, ids=ids: c.xclaim(pk.stream, GROUP, consumer, 0, ids),  # type: ignore[misc]
            )
            found = _split(
                [Delivery.parse(eid, f, counts[text(eid)] + 1) for eid, f in got if f], bad
            )
            if found:
                tids = [d.task_id for d in found]
                marks: list[Any] = await self._on(
                    pk.started,
                    lambda c, t=tids: c.hmget(pk.started, t),  # type: ignore[misc]
                )
                for d, mark in zip(found, marks, strict=True):
                    entry, _, n = text(mark).rpartition("|") if mark else ("", "", "0")
                    mine = d.entry_id in ours
                    d.prior_starts = int(n) if entry == d.entry_id and not mine else 0
            out.extend(found)
            start = "(" + ids[-1]
            if len(rows) < batch:
                return out

    async def step(
        self,
        pk: PartitionKeys,
        token: int,
        consumer: str,
        finishes: Sequence[Finish],
        begins: Sequence[tuple[str, str]],
        dead_maxlen: int,
        conn: Held | None = None,
    ) -> list[int]:
        """Run step.lua: finish entries, then begin others; on `conn` if given
        (`core.nodes.Held`). Raises `Fenced`."""
        fins = [
            (f.op, f.entry_id, f.task_id)
            if f.op == "A"
            else (f.op, f.entry_id, f.task_id, f.a, f.b)
            for f in finishes
        ]
        # use_bin_type=False: Redis's Lua cmsgpack does not decode msgpack's bin types.
        args = [
            GROUP,
            token,
            consumer,
            dead_maxlen,
            msgpack.packb(fins, use_bin_type=False),
            msgpack.packb(begins, use_bin_type=False),
        ]
        keys = [pk.stream, pk.lease, pk.started, pk.cancelled, pk.dead, pk.delayed, pk.delayed_data]
        reply = await self._script("step", keys, args, conn)
        if reply and reply[0] == b"FENCED":
            raise Fenced(pk.name, token, int(reply[1]))
        return [int(v) for v in reply]

    async def forward(self, pk: PartitionKeys, now_ms: int, limit: int) -> tuple[int, int]:
        """Move due delayed tasks into the stream: (moved, next due ms or -1)."""
        moved, nxt = await self._script(
            "forward", [pk.delayed, pk.delayed_data, pk.stream], [now_ms, limit]
        )
        return int(moved), int(nxt)

    async def forward_many(
        self, pks: Sequence[PartitionKeys], now_ms: int, limit: int
    ) -> list[tuple[int, int]]:
        """`forward` for many partitions, pipelined per node (re-running is harmless)."""
        got = await self._script_many(
            "forward", [([pk.delayed, pk.delayed_data, pk.stream], [now_ms, limit]) for pk in pks]
        )
        return [(int(moved), int(nxt)) for moved, nxt in got]

    @contextlib.asynccontextmanager
    async def subscribed(self, channel: str, at_seed: bool = False) -> AsyncIterator[Subscription]:
        """A subscription to `channel` (`RegionKeys.due`, `RegionKeys.fenced`), held for
        the block: on the node serving it, or with `at_seed` on the node this broker was
        given (a Redis Cluster passes every publish to every node; a parked worker's own
        node outlives the master it replicates). Raises `Unavailable` when the connection
        fails, after relearning a cluster's slot map. Pub/sub is at most once: what is
        published while nobody listens is lost, so every user keeps a fallback poll."""
        client = self._seed if at_seed else self._client_for(channel)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            try:
                await pubsub.subscribe(channel)
            except rexc.RedisError as exc:
                if self._cluster and not at_seed:
                    with contextlib.suppress(rexc.RedisError):
                        await self._refresh()
                raise redis_error(exc) from exc
            yield Subscription(pubsub)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def acquire_many(
        self, leases: Sequence[tuple[str, str]], owner: str, ttl_ms: int
    ) -> list[int]:
        """`acquire` of many (lease key, fence key) pairs, pipelined per node."""
        got = await self._script_many("lease", [([lk, fk], [owner, ttl_ms]) for lk, fk in leases])
        return [int(v) for v in got]

    async def cancelled_ids(self, pk: PartitionKeys) -> set[str]:
        got = await self._on(pk.cancelled, lambda c: c.zrange(pk.cancelled, 0, -1))
        return {text(v) for v in got}

    async def trim(self, pk: PartitionKeys, cancel_horizon_ms: int) -> int:
        """XTRIM MINID below the oldest entry still needed; returns entries removed.

        Needed = pending (delivered, unacked) or not yet delivered. Entries are only
        appended above both bounds meanwhile, so reading them first and trimming next
        never drops a needed entry.
        """

        async def run(client: aioredis.Redis) -> int:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xpending(pk.stream, GROUP)
                pipe.xinfo_groups(pk.stream)
                pipe.zremrangebyscore(pk.cancelled, "-inf", cancel_horizon_ms)
                summary, groups, _ = await pipe.execute(raise_on_error=False)
            if isinstance(summary, Exception) or isinstance(groups, Exception):
                return 0
            group = next((g for g in groups if text(g["name"]) == GROUP), None)
            if group is None:
                return 0
            bound = _next_id(text(group["last-delivered-id"]))
            if summary["pending"]:
                bound = min(bound, text(summary["min"]), key=id_tuple)
            return int(await client.xtrim(pk.stream, minid=bound, approximate=False))

        return await self._on(pk.stream, run)

    async def dead_letters(
        self, pk: PartitionKeys, count: int, after: str = "-"
    ) -> list[tuple[str, dict[str, bytes]]]:
        """Dead-letter entries (oldest first, after `after`) as field dicts.

        Besides the stored `t` (task blob), `err`, `src` and `at`, each dict carries the
        blob decoded as `id`, `k` (partition key), `n` (kind) and `p` (payload).
        """
        got: Any = await self._on(pk.dead, lambda c: c.xrange(pk.dead, after, "+", count=count))
        out = []
        for eid, f in got:
            fields = {text(k): v for k, v in f.items()}
            d = Delivery.decode(eid, f)
            if d is not None:
                fields.update(
                    id=d.task_id.encode(), k=d.key.encode(), n=d.kind.encode(), p=d.payload
                )
            out.append((text(eid), fields))
        return out

    async def requeue(self, pk: PartitionKeys, dead_ids: Sequence[str]) -> list[str | None]:
        """Move dead letters back into the stream with attempts reset; new entry ids.

        The blobs are rebuilt here (msgpack in Python) and moved by requeue.lua, which
        only adds an entry if it removed the dead one, so a double requeue adds one.
        """
        if not dead_ids:
            return []

        async def read(client: aioredis.Redis) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                for dead in dead_ids:
                    pipe.xrange(pk.dead, dead, dead)
                return list(await pipe.execute())

        found = await self._on(pk.dead, read)
        args: list[Any] = []
        index: list[int] = []
        for i, rows in enumerate(found):
            d = Delivery.decode(rows[0][0], rows[0][1]) if rows else None
            if d is not None:
                args += [dead_ids[i], d.repack(0)]
                index.append(i)
        out: list[str | None] = [None] * len(dead_ids)
        if args:
            got = await self._script("requeue", [pk.dead, pk.stream], args)
            for i, v in zip(index, got, strict=True):
                out[i] = text(v) if v else None
        return out

    async def cancel(self, pk: PartitionKeys, task_id: str, now_ms: int) -> str:
        """ "removed" (it was delayed), "running" (a handler started: it gets a cooperative
        cancel signal) or "pending" (the worker acks it without running it).

        How the race with a worker starting the task ends: the worker's step script reads
        the cancelled zset and writes the started hash in one go, and the read of the
        started hash here comes after the task entered the cancelled zset. So either the
        worker started it before (the read sees it: "running") or it sees the
        cancellation and skips it ("pending")."""
        keys = [pk.cancelled, pk.delayed, pk.delayed_data]
        if text(await self._script("cancel", keys, [task_id, now_ms])) == "removed":
            return "removed"
        started = await self._on(pk.started, lambda c: c.hexists(pk.started, task_id))
        return "running" if started else "pending"

    # --- leases, workers, assignment -----------------------------------------------------

    async def acquire(self, lease_key: str, fence_key: str, owner: str, ttl_ms: int) -> int:
        """Acquire or renew a lease; the fencing token, or 0 if someone else holds it."""
        return int(await self._script("lease", [lease_key, fence_key], [owner, ttl_ms]))

    async def release(self, lease_key: str, owner: str) -> bool:
        return bool(await self._script("release", [lease_key], [owner]))

    async def evict(self, rk: RegionKeys, worker: str, partitions: int) -> int:
        """Give up, on its behalf, all that `worker` holds in the region: its registration,
        the leases of its partitions and the manager lease. Only for a worker known to be
        dead (its supervisor reaped the process): the survivors take its partitions over
        at their next step instead of a lease TTL later. Tokens are not touched, so the
        next owner's token is higher. Returns the partition leases released."""
        await self.leave(rk, worker)
        calls: list[tuple[Sequence[str], Sequence[Any]]] = [
            ([rk.partition(p).lease], [worker]) for p in range(partitions)
        ]
        calls.append(([rk.leader], [worker]))
        got = await self._script_many("release", calls)
        return sum(int(v) for v in got[:-1])

    async def heartbeat(self, rk: RegionKeys, worker: str, ttl_ms: int) -> None:
        now = _now_ms()
        await self._on(rk.workers, lambda c: c.zadd(rk.workers, {worker: now + ttl_ms}))

    async def announce_kinds(self, rk: RegionKeys, kinds: Sequence[str]) -> None:
        """Record that a worker of the region handles `kinds` (gateways refuse others)."""
        if kinds:
            now = _now_ms()
            mapping: dict[Any, Any] = {k: now for k in kinds}
            await self._on(rk.kinds, lambda c: c.hset(rk.kinds, mapping=mapping))

    async def known_kinds(self, rk: RegionKeys) -> set[str]:
        """Every kind a worker of the region has announced."""
        return {text(k) for k in await self._on(rk.kinds, lambda c: c.hkeys(rk.kinds))}

    async def leave(self, rk: RegionKeys, worker: str) -> None:
        await self._on(rk.workers, lambda c: c.zrem(rk.workers, worker))

    async def live_workers(self, rk: RegionKeys) -> list[str]:
        """Workers whose heartbeat has not expired; expired ones are removed."""
        now = _now_ms()

        async def run(client: aioredis.Redis) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(rk.workers, "-inf", now)
                pipe.zrange(rk.workers, 0, -1)
                return list(await pipe.execute())

        return sorted(text(w) for w in (await self._on(rk.workers, run))[1])

    async def assignment(self, rk: RegionKeys) -> dict[int, str]:
        got = await self._on(rk.assignment, lambda c: c.hgetall(rk.assignment))
        return {int(k): text(v) for k, v in got.items()}

    async def set_assignment(self, rk: RegionKeys, changes: dict[int, str]) -> None:
        if changes:
            mapping: dict[Any, Any] = {str(k): v for k, v in changes.items()}
            await self._on(rk.assignment, lambda c: c.hset(rk.assignment, mapping=mapping))


def _split(parsed: list[Delivery | Undecodable], bad: list[Undecodable] | None) -> list[Delivery]:
    out = []
    for d in parsed:
        if isinstance(d, Delivery):
            out.append(d)
        elif bad is not None:
            bad.append(d)
    return out


def _next_id(entry_id: str) -> str:
    ms, seq = id_tuple(entry_id)
    return f"{ms}-{seq + 1}"


def _now_ms() -> int:
    return int(time.time() * 1000)
