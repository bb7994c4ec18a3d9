"""The Redis nodes of one region store, as the broker reaches them.

`Nodes` is the connection half of `core.broker.Broker` (which adds every command the
engine sends): one bounded pool per node and lane, the cluster slot map (from CLUSTER
SLOTS, refreshed on MOVED or a connection error), routing of a key to the client of the
node serving it, loading the Lua scripts, and the one table that turns redis-py's
exceptions into domain errors (`redis_error`). See core/broker.py's docstring for why
homeport keeps its own slot map rather than redis-py's `RedisCluster`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
from homeport.core.errors import BackendFailed, HomeportError, ResourceExhausted, Unavailable
from homeport.core.security import Identity
from redis import exceptions as rexc
from redis.crc import key_slot
from redis.maint_notifications import MaintNotificationsConfig

T = TypeVar("T")
_SCRIPT_DIR = Path(__file__).parent / "scripts"
# Connection pools per Redis node: the main lane, and one for GLOBAL submits' cross-region
# WAITs. A caller waits up to POOL_WAIT_S for a free connection, then gets Unavailable.
MAIN, GLOBAL_LANE = "main", "global"
POOL_SIZE = 128
GLOBAL_POOL_SIZE = 256
POOL_WAIT_S = 2.0
_SCRIPTS = ("enqueue", "step", "take", "forward", "lease", "release", "cancel", "requeue", "fence")
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


class Nodes:
    """Pools, slot map and script loading of one region store (see the module docstring)."""

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
        # Script loads under way, per client: the callers that meet an unloaded client at
        # once (a worker's partitions, at start) share one load.
        self._loading: dict[int, asyncio.Task[None]] = {}
        self._src = {n: script_source(n) for n in _SCRIPTS}
        self._sha = {n: hashlib.sha1(s.encode()).hexdigest() for n, s in self._src.items()}

    def _new_client(self, lane: str, *, url: str | None = None, **kwargs: Any) -> aioredis.Redis:
        """A client of its own bounded pool: a caller waits up to `pool_wait_s` for a free
        connection (redis-py's default pool raises at once when all are busy).

        Without redis-py 8's maintenance notifications: its handshake (CLIENT
        MAINT_NOTIFICATIONS, for Redis Enterprise's endpoint moves) is one more round trip
        per new connection, refused by open-source Redis."""
        size, wait = self._pool_size[lane], self._pool_wait_s
        quiet = MaintNotificationsConfig(enabled=False)
        if url is not None:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=size,
                timeout=wait,
                maint_notifications_config=quiet,
                **self._auth,
            )
        else:
            pool = aioredis.BlockingConnectionPool(
                max_connections=size,
                timeout=wait,
                maint_notifications_config=quiet,
                **kwargs,
                **self._auth,
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
                    await self._load_scripts(client)
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

    async def _load_scripts(self, client: aioredis.Redis) -> None:
        """Load every script into `client`'s node: one pipeline, so one round trip, and one
        load however many callers wait for it (each would otherwise load them all, on a
        connection of its own). A failed load is retried by the next caller."""
        key = id(client)
        load = self._loading.get(key)
        if load is None:

            async def run() -> None:
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        for name in _SCRIPTS:
                            pipe.script_load(self._src[name])
                        await pipe.execute()
                    self._loaded.add(key)
                finally:
                    self._loading.pop(key, None)

            load = self._loading[key] = asyncio.create_task(run(), name="load scripts")
            load.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
        await asyncio.shield(load)  # a waiter cancelled leaves the load to the others

    async def _script(
        self, name: str, keys: Sequence[str], args: Sequence[Any], conn: Held | None = None
    ) -> Any:
        """Run a script on the node serving `keys[0]`; on `conn`, the caller's own
        connection to that node, if given (the hot path's calls: `Held`)."""
        sha = self._sha[name]
        if conn is not None:
            return await self._on(
                keys[0], lambda c: conn.call(c, "EVALSHA", sha, len(keys), *keys, *args)
            )
        return await self._on(keys[0], lambda c: c.evalsha(sha, len(keys), *keys, *args))

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

    async def _on_addr(
        self, addr: tuple[str, int], fn: Callable[[aioredis.Redis], Awaitable[T]]
    ) -> T:
        slot = self._slots.index(addr)
        key = key_for_slot(slot)
        return await self._on(key, fn)

    async def raw(self, key: str, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run `fn` on the client serving `key`. For the raw baseline of `bench` only."""
        return await self._on(key, fn)


class Held:
    """One connection that a single caller keeps for its own calls, one at a time: a
    partition's reader (take.lua) and its stepper (step.lua), the worker's hot path.

    Outside the pool: no checkout, no retry wrapper and no response-callback lookup per
    call, which halves redis-py's CPU per call (110–117 µs through the client, 57–64 µs
    on a held connection; docs/benchmarks.md). The connection is redis-py's own, made by
    the pool of the client serving the key (same address, credentials, TLS, timeouts):
    it connects on first use, disconnects itself on any error or cancellation mid-call,
    and connects again on the next call. A call on another node's client (a cluster's
    slot moved) reconnects there. `Nodes._on` still maps errors, follows MOVED and
    reloads scripts."""

    __slots__ = ("_client", "_conn")

    def __init__(self) -> None:
        self._client: aioredis.Redis | None = None
        self._conn: Any = None

    async def call(self, client: aioredis.Redis, *args: Any) -> Any:
        conn = self._conn
        if conn is None or self._client is not client:
            await self.close()
            conn = self._conn = client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
            self._client = client
        await conn.send_packed_command(conn.pack_command(*args), check_health=False)
        return await conn.read_response()

    async def close(self) -> None:
        conn, self._conn, self._client = self._conn, None, None
        if conn is not None:
            await conn.disconnect()


def script_source(name: str) -> str:
    """A Lua script's text, with each `--#include <part>` line replaced by the text of
    scripts/<part>.lua: scripts share code (step.lua's and take.lua's begin) this way, as
    EVALSHA scripts cannot call each other."""
    lines = (_SCRIPT_DIR / f"{name}.lua").read_text().splitlines(keepends=True)
    return "".join(
        (_SCRIPT_DIR / f"{ln.split()[1]}.lua").read_text() if ln.startswith("--#include ") else ln
        for ln in lines
    )


def key_for_slot(slot: int) -> str:
    i = 0
    while key_slot(f"hp:slot:{{{i}}}".encode()) != slot:
        i += 1
    return f"hp:slot:{{{i}}}"


def text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
