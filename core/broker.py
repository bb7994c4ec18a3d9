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
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import redis.asyncio as aioredis
from homeport.core.entry import Delivery, Undecodable
from homeport.core.errors import (
    BackendFailed,
    Fenced,
    HomeportError,
    ResourceExhausted,
    Unavailable,
)
from homeport.core.keys import GROUP, PartitionKeys, RegionKeys
from homeport.core.security import Identity
from homeport.core.settings import Settings
from redis import exceptions as rexc
from redis.crc import key_slot

T = TypeVar("T")
_SCRIPT_DIR = Path(__file__).parent / "scripts"
# Connection pools per Redis node: the main lane, and one for GLOBAL submits' cross-region
# WAITs. A caller waits up to POOL_WAIT_S for a free connection, then gets Unavailable.
MAIN, GLOBAL_LANE = "main", "global"
POOL_SIZE = 128
GLOBAL_POOL_SIZE = 256
POOL_WAIT_S = 2.0
_SCRIPTS = ("enqueue", "step", "forward", "lease", "release", "cancel", "requeue", "fence")
_MAX_REDIRECTS = 3
# How long a client is told to wait before resending after Redis refused for memory.
OOM_RETRY_AFTER_MS = 1000
# The one table from redis-py's exceptions to domain errors; first match wins, and
# `RedisError` (their base) catches whatever the rows above it do not name.
_REDIS_ERRORS: tuple[tuple[tuple[type[Exception], ...], Callable[[str], HomeportError]], ...] = (
    ((rexc.OutOfMemoryError,), lambda d: ResourceExhausted("redis", d, OOM_RETRY_AFTER_MS)),
    (
        (
            rexc.ConnectionError,
            rexc.TimeoutError,
            rexc.ClusterDownError,
            rexc.TryAgainError,
            rexc.BusyLoadingError,
            rexc.ReadOnlyError,
            rexc.MasterDownError,
            rexc.MovedError,
            rexc.AskError,
        ),
        lambda d: Unavailable("redis", d),
    ),
    ((rexc.RedisError,), lambda d: BackendFailed("redis", d)),
)


def redis_error(exc: Exception) -> HomeportError:
    """The domain error for a redis-py exception (`_REDIS_ERRORS`)."""
    # A pipeline's error repeats the whole command (task blobs included): keep the reason.
    text = str(exc.args[0]) if exc.args else str(exc)
    reason = text.rpartition(" caused error: ")[2]
    detail = f"{type(exc).__name__}: {reason[:300]}"
    for kinds, make in _REDIS_ERRORS:
        if isinstance(exc, kinds):
            return make(detail)
    return BackendFailed("redis", detail)


@dataclass(frozen=True, slots=True)
class Finish:
    """How one delivery ends, for the step script: op "A" ack, "D" dead, "R" retry later."""

    op: str
    entry_id: str
    task_id: str
    a: str | int = ""
    b: str | int | bytes = ""


@dataclass(frozen=True, slots=True)
class EnqueueReply:
    """Per-task outcome of one enqueue script call (status codes as in enqueue.lua)."""

    status: int
    ref: str


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


class Broker:
    """The engine's Redis boundary; one per process, shared by all its components."""

    def __init__(
        self,
        url: str,
        *,
        cluster: bool = False,
        pool_size: int = POOL_SIZE,
        global_pool_size: int = GLOBAL_POOL_SIZE,
        pool_wait_s: float = POOL_WAIT_S,
        identity: Identity | None = None,
    ) -> None:
        # Credentials and TLS of this process's role (`core.security`), read per connection.
        self._auth = (identity or Identity.from_env()).redis_pool_kwargs()
        self._url = url
        self._cluster = cluster
        self._pool_size = {MAIN: pool_size, GLOBAL_LANE: global_pool_size}
        self._pool_wait_s = pool_wait_s
        self._seed = self._new_client(MAIN, url=url)
        self._seed_global: aioredis.Redis | None = None
        self._nodes: dict[tuple[tuple[str, int], str], aioredis.Redis] = {}
        self._slots: list[tuple[str, int]] = []
        self._loaded: set[int] = set()
        self._src = {n: (_SCRIPT_DIR / f"{n}.lua").read_text() for n in _SCRIPTS}
        self._sha = {n: hashlib.sha1(s.encode()).hexdigest() for n, s in self._src.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> Broker:
        return cls(
            settings.redis_url,
            cluster=settings.redis_cluster,
            pool_size=settings.redis_pool_size,
            global_pool_size=settings.redis_global_pool_size,
            pool_wait_s=settings.redis_pool_wait_s,
        )

    def _new_client(self, lane: str, *, url: str | None = None, **kwargs: Any) -> aioredis.Redis:
        """A client of its own bounded pool: a caller waits up to `pool_wait_s` for a free
        connection (redis-py's default pool raises at once when all are busy)."""
        size, wait = self._pool_size[lane], self._pool_wait_s
        if url is not None:
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=size, timeout=wait, **self._auth
            )
        else:
            pool = aioredis.BlockingConnectionPool(
                max_connections=size, timeout=wait, **kwargs, **self._auth
            )
        return aioredis.Redis.from_pool(pool)

    async def connect(self) -> None:
        """Check the server is reachable and, for a cluster, learn the slot map."""
        await self._guard(self._refresh())

    async def close(self) -> None:
        for client in self._nodes.values():
            await client.aclose()
        if self._seed_global is not None:
            await self._seed_global.aclose()
        await self._seed.aclose()

    async def _refresh(self) -> None:
        if not self._cluster:
            return
        last: Exception | None = None
        for client in [self._seed, *self._nodes.values()]:
            try:
                rows = await client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except (rexc.ConnectionError, rexc.TimeoutError) as exc:
                last = exc
                continue
            slots: list[tuple[str, int]] = [("", 0)] * 16384
            for row in rows:
                host = row[2][0].decode() if isinstance(row[2][0], bytes) else row[2][0]
                addr = (host or "127.0.0.1", int(row[2][1]))
                for s in range(int(row[0]), int(row[1]) + 1):
                    slots[s] = addr
            self._slots = slots
            return
        raise rexc.ConnectionError(f"no cluster node answered CLUSTER SLOTS: {last}")

    def _client_for(self, key: str, lane: str = MAIN) -> aioredis.Redis:
        if not self._cluster:
            if lane == MAIN:
                return self._seed
            if self._seed_global is None:
                self._seed_global = self._new_client(GLOBAL_LANE, url=self._url)
            return self._seed_global
        addr = self._slots[key_slot(key.encode())]
        client = self._nodes.get((addr, lane))
        if client is None:
            kwargs = dict(self._seed.connection_pool.connection_kwargs)
            kwargs.update(host=addr[0], port=addr[1], db=0)
            allowed = (
                "host",
                "port",
                "db",
                "username",
                "password",
                "socket_timeout",
                "socket_connect_timeout",
            )
            client = self._new_client(lane, **{k: v for k, v in kwargs.items() if k in allowed})
            self._nodes[(addr, lane)] = client
        return client

    async def _guard(self, op: Awaitable[T]) -> T:
        try:
            return await op
        except rexc.RedisError as exc:
            raise redis_error(exc) from exc

    async def _on(
        self, key: str, fn: Callable[[aioredis.Redis], Awaitable[T]], lane: str = MAIN
    ) -> T:
        """Run `fn` on the client serving `key`, following MOVED and reloading scripts."""
        for attempt in range(_MAX_REDIRECTS + 1):
            client = self._client_for(key, lane)
            try:
                if id(client) not in self._loaded:
                    for name in _SCRIPTS:
                        await client.script_load(self._src[name])
                    self._loaded.add(id(client))
                return await fn(client)
            except (rexc.MovedError, rexc.AskError, rexc.ConnectionError) as exc:
                self._loaded.discard(id(client))
                if not self._cluster or attempt == _MAX_REDIRECTS:
                    raise Unavailable("redis", f"{type(exc).__name__}: {exc}") from exc
                await self._guard(self._refresh())
            except rexc.NoScriptError:
                # A failover or restart emptied the script cache; nothing ran, so retry.
                self._loaded.discard(id(client))
            except rexc.RedisError as exc:
                raise redis_error(exc) from exc
        raise Unavailable("redis", f"no stable node for key {key!r}")

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        sha = self._sha[name]
        return await self._on(keys[0], lambda c: c.evalsha(sha, len(keys), *keys, *args))

    # --- enqueue -------------------------------------------------------------------------

    async def enqueue(
        self,
        pk: PartitionKeys,
        task_ids: Sequence[str],
        task_args: Sequence[Any],
        *,
        epoch: int,
        dedup_window_ms: int,
        wait_replicas: int,
        wait_timeout_ms: int,
        cross_region: bool = False,
    ) -> tuple[list[EnqueueReply], int]:
        """Run enqueue.lua for a batch of one partition, then WAIT on the same connection.

        Returns the per-task replies and the replica count WAIT reported (or
        `wait_replicas` itself when no WAIT was needed). Raises `Fenced`.
        `cross_region` (GLOBAL durability) sends it through a pool of its own: a WAIT for
        the standby region holds its connection up to a second when the mirror lags, and
        many of them must not leave LOCAL and REGION submits without a connection.
        """
        keys = [pk.stream, pk.delayed, pk.delayed_data, pk.epoch]
        keys.extend(pk.dedup(t) for t in task_ids)
        args = [epoch, dedup_window_ms, *task_args]
        sha = self._sha["enqueue"]

        async def run(client: aioredis.Redis) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.evalsha(sha, len(keys), *keys, *args)
                if wait_replicas > 0:
                    pipe.execute_command("WAIT", wait_replicas, wait_timeout_ms)
                return list(await pipe.execute())

        out = await self._on(pk.stream, run, GLOBAL_LANE if cross_region else MAIN)
        reply = out[0]
        if reply and reply[0] == b"FENCED":
            raise Fenced(pk.name, epoch, int(reply[1]))
        acked = int(out[1]) if wait_replicas > 0 else wait_replicas
        replies = [
            EnqueueReply(int(reply[i]), _text(reply[i + 1])) for i in range(0, len(reply), 2)
        ]
        return replies, acked

    async def set_epoch(self, pk: PartitionKeys, epoch: int) -> int:
        """Raise the partition's epoch (fencing older writers); returns the epoch now."""
        return int(await self._script("fence", [pk.epoch], [epoch]))

    async def role(self) -> str:
        """The seed node's replication role: `master` or `slave`."""
        reply = await self._guard(self._seed.execute_command("ROLE"))  # type: ignore[no-untyped-call]
        return _text(reply[0])

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
            counts = {_text(r["message_id"]): int(r["times_delivered"]) for r in rows}
            # Entries this very process had (it lost the lease, say, and got it back) did
            # not crash a worker: they are no suspects, whatever their begin count says.
            ours = {_text(r["message_id"]) for r in rows if _text(r["consumer"]) == consumer}
            ids = list(counts)
            got = await self._on(
                pk.stream,
                lambda c, ids=ids: c.xclaim(pk.stream, GROUP, consumer, 0, ids),  # type: ignore[misc]
            )
            found = _split(
                [Delivery.parse(eid, f, counts[_text(eid)] + 1) for eid, f in got if f], bad
            )
            if found:
                tids = [d.task_id for d in found]
                marks: list[Any] = await self._on(
                    pk.started,
                    lambda c, t=tids: c.hmget(pk.started, t),  # type: ignore[misc]
                )
                for d, mark in zip(found, marks, strict=True):
                    entry, _, n = _text(mark).rpartition("|") if mark else ("", "", "0")
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
    ) -> list[int]:
        """Run step.lua: finish entries, then begin others. Raises `Fenced`."""
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
        reply = await self._script("step", keys, args)
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

    async def acquire_many(
        self, leases: Sequence[tuple[str, str]], owner: str, ttl_ms: int
    ) -> list[int]:
        """`acquire` of many (lease key, fence key) pairs, pipelined per node."""
        got = await self._script_many("lease", [([lk, fk], [owner, ttl_ms]) for lk, fk in leases])
        return [int(v) for v in got]

    async def _script_many(
        self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """Run one script many times, one pipeline per node; results in call order.

        Only for scripts that are safe to run twice (a pipeline is retried whole after
        NOSCRIPT or MOVED): forward.lua, lease.lua and release.lua are.
        """
        groups: dict[int, list[int]] = {}
        for i, (keys, _) in enumerate(calls):
            groups.setdefault(id(self._client_for(keys[0])), []).append(i)
        out: list[Any] = [None] * len(calls)
        sha = self._sha[name]

        async def one(idx: list[int]) -> None:
            async def run(client: aioredis.Redis) -> list[Any]:
                async with client.pipeline(transaction=False) as pipe:
                    for i in idx:
                        keys, args = calls[i]
                        pipe.evalsha(sha, len(keys), *keys, *args)
                    return list(await pipe.execute())

            for i, v in zip(idx, await self._on(calls[idx[0]][0][0], run), strict=True):
                out[i] = v

        await asyncio.gather(*(one(idx) for idx in groups.values()))
        return out

    async def cancelled_ids(self, pk: PartitionKeys) -> set[str]:
        got = await self._on(pk.cancelled, lambda c: c.zrange(pk.cancelled, 0, -1))
        return {_text(v) for v in got}

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
            group = next((g for g in groups if _text(g["name"]) == GROUP), None)
            if group is None:
                return 0
            bound = _next_id(_text(group["last-delivered-id"]))
            if summary["pending"]:
                bound = min(bound, _text(summary["min"]), key=_id_tuple)
            return int(await client.xtrim(pk.stream, minid=bound, approximate=False))

        return await self._on(pk.stream, run)

    async def depth(self, pk: PartitionKeys, now_ms: int) -> PartitionDepth:
        async def run(client: aioredis.Redis) -> PartitionDepth:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xinfo_groups(pk.stream)
                pipe.xpending(pk.stream, GROUP)
                pipe.zcard(pk.delayed)
                groups, summary, delayed = await pipe.execute(raise_on_error=False)
            if isinstance(groups, Exception) or isinstance(summary, Exception):
                return PartitionDepth(0, 0, int(delayed) if isinstance(delayed, int) else 0, 0)
            group = next((g for g in groups if _text(g["name"]) == GROUP), None)
            ready = int(group.get("lag") or 0) if group else 0
            oldest = 0
            if summary["pending"]:
                oldest = max(0, now_ms - _id_tuple(_text(summary["min"]))[0])
            waiting = 0
            # Lag is None when Redis cannot count it (after XDEL): look then too. The
            # first entry past the group's last-delivered id is the oldest undelivered
            # one; its id is its enqueue (or due) time. One extra read, only with a backlog.
            if group is not None and (ready or group.get("lag") is None):
                first = await client.xrange(
                    pk.stream, "(" + _text(group["last-delivered-id"]), "+", count=1
                )
                if first:
                    waiting = max(0, now_ms - _id_tuple(_text(first[0][0]))[0])
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
            group = next((g for g in groups if _text(g["name"]) == GROUP), None)
            if group is None:
                return stream["length"] == 0 and int(delayed) == 0
            return (
                int(group["pending"]) == 0
                and _text(group["last-delivered-id"]) == _text(stream["last-generated-id"])
                and int(delayed) == 0
            )

        return await self._on(pk.stream, run)

    # --- dead letters and cancellation --------------------------------------------------

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
            fields = {_text(k): v for k, v in f.items()}
            d = Delivery.decode(eid, f)
            if d is not None:
                fields.update(
                    id=d.task_id.encode(), k=d.key.encode(), n=d.kind.encode(), p=d.payload
                )
            out.append((_text(eid), fields))
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
                out[i] = _text(v) if v else None
        return out

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
        if task is None and ref is not None and not _text(ref).startswith("delayed:"):
            entry = _text(ref)
            rows: Any = await self._on(pk.stream, lambda c: c.xrange(pk.stream, entry, entry))
            task = Delivery.decode(rows[0][0], rows[0][1]) if rows else None
        if cancelled is not None:
            return Waiting("cancelled", 0, task)
        if due is not None:
            return Waiting("scheduled", int(due), task)
        return Waiting("enqueued", 0, task)

    async def cancel(self, pk: PartitionKeys, task_id: str, now_ms: int) -> str:
        """ "removed" (it was delayed), "running" (a handler started: it gets a cooperative
        cancel signal) or "pending" (the worker acks it without running it).

        How the race with a worker starting the task ends: the worker's step script reads
        the cancelled zset and writes the started hash in one go, and the read of the
        started hash here comes after the task entered the cancelled zset. So either the
        worker started it before (the read sees it: "running") or it sees the
        cancellation and skips it ("pending")."""
        keys = [pk.cancelled, pk.delayed, pk.delayed_data]
        if _text(await self._script("cancel", keys, [task_id, now_ms])) == "removed":
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
        return {_text(k) for k in await self._on(rk.kinds, lambda c: c.hkeys(rk.kinds))}

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

        return sorted(_text(w) for w in (await self._on(rk.workers, run))[1])

    async def assignment(self, rk: RegionKeys) -> dict[int, str]:
        got = await self._on(rk.assignment, lambda c: c.hgetall(rk.assignment))
        return {int(k): _text(v) for k, v in got.items()}

    async def set_assignment(self, rk: RegionKeys, changes: dict[int, str]) -> None:
        if changes:
            mapping: dict[Any, Any] = {str(k): v for k, v in changes.items()}
            await self._on(rk.assignment, lambda c: c.hset(rk.assignment, mapping=mapping))

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

    async def _on_addr(
        self, addr: tuple[str, int], fn: Callable[[aioredis.Redis], Awaitable[T]]
    ) -> T:
        slot = self._slots.index(addr)
        key = _key_for_slot(slot)
        return await self._on(key, fn)

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
            group = next((g for g in groups or [] if _text(g["name"]) == GROUP), None)
            pending = oldest_pending = 0
            if summary and summary["pending"]:
                pending = int(summary["pending"])
                oldest_pending = max(0, now_ms - _id_tuple(_text(summary["min"]))[0])
            length = int(stream["length"]) if stream else 0
            ready = length if group is None else int(group.get("lag") or 0)
            oldest_ready = 0
            if ready:
                after = "-" if group is None else "(" + _text(group["last-delivered-id"])
                first = await client.xrange(pk.stream, min=after, max="+", count=1)
                if first:
                    oldest_ready = max(0, now_ms - _id_tuple(_text(first[0][0]))[0])
            return QueueStats(
                length, ready, pending, int(delayed or 0), oldest_ready, oldest_pending,
                int(stream.get("entries-added") or 0) if stream else 0,
                int(group.get("entries-read") or 0) if group else 0,
                int(dead["length"]) if dead else 0,
                int(dead.get("entries-added") or 0) if dead else 0,
                _text(owner) if owner else "",
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

    # --- raw access for the benchmark's baseline ---------------------------------------

    async def raw(self, key: str, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run `fn` on the client serving `key`. For the raw baseline of `bench` only."""
        return await self._on(key, fn)


def _split(parsed: list[Delivery | Undecodable], bad: list[Undecodable] | None) -> list[Delivery]:
    out = []
    for d in parsed:
        if isinstance(d, Delivery):
            out.append(d)
        elif bad is not None:
            bad.append(d)
    return out


def _key_for_slot(slot: int) -> str:
    i = 0
    while key_slot(f"hp:slot:{{{i}}}".encode()) != slot:
        i += 1
    return f"hp:slot:{{{i}}}"


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_tuple(entry_id)
    return f"{ms}-{seq + 1}"


def _now_ms() -> int:
    return int(time.time() * 1000)
