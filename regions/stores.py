"""Control-plane Redis operations of the multi-region layer, all in one place: fencing a
copy's partitions, promoting and demoting copies, reading promotion points, comparing
replication offsets, measuring mirror lag, lending spares.

This is homeport's second Redis boundary, on purpose. `core.broker.Broker` owns the data
path (enqueue, consume, leases), with pooled connections, scripts and retries tuned for
throughput. The control plane needs the opposite: one short-timeout connection per
server and no retries (redis-py retries ten times with backoff by default, which would
turn one probe of a dead region into seconds), on copies the broker never talks to
(mirrors, spares, a dead home's primary). Nothing outside `core.broker` and this module
talks to Redis; the rules both sides share (the fence) are one Lua script,
`core/scripts/fence.lua`, run by both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import homeport.core
import redis.asyncio as aredis
from homeport.core.keys import PartitionKeys, RegionKeys
from homeport.core.security import Identity
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.utils import str_if_bytes

log = logging.getLogger(__name__)

_FENCE_LUA = (Path(homeport.core.__file__).parent / "scripts" / "fence.lua").read_text()


class KeyRouter(Protocol):
    """A copy spread over several nodes (a Redis Cluster, `regions.clustercopy`): the
    client of the node that holds `key`'s slot."""

    def at(self, key: str) -> aredis.Redis: ...


Store = aredis.Redis | KeyRouter


def node_for(store: Store, key: str) -> aredis.Redis:
    """The client that serves `key` on `store`: the store itself for a single server."""
    return store if isinstance(store, aredis.Redis) else store.at(key)


def client(
    host: str,
    port: int,
    timeout: float = 1.0,
    identity: Identity | None = None,
    readonly: bool = False,
) -> aredis.Redis:
    """A control-plane client: no retries (redis-py retries 10 times with backoff by
    default, which would turn one probe of a dead region into seconds). `identity`:
    whose credentials (`core.security`); default this process's role.
    `readonly`: every connection sends READONLY first, so a Redis Cluster replica
    answers reads of its master's slots instead of redirecting them."""
    return aredis.Redis(
        host=host,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        redis_connect_func=_readonly if readonly else None,
        **(identity or Identity.from_env()).redis_kwargs(),
    )


async def _readonly(connection: AbstractConnection) -> None:
    await connection.on_connect()
    await connection.send_command("READONLY")
    if str_if_bytes(await connection.read_response()) != "OK":
        raise RedisError("READONLY refused: the node is not a Redis Cluster node")


async def reachable(store: aredis.Redis) -> bool:
    """One PING, retried once on a fresh connection: a pooled connection may be a dead
    one from before the server restarted."""
    for attempt in range(2):
        try:
            return bool(await store.ping())
        except (TimeoutError, RedisError, OSError):
            if attempt == 0:
                await store.connection_pool.disconnect()
    return False


async def fence(store: Store, home: str, partitions: int, epoch: int) -> None:
    """Raise every partition's epoch on `store` to `epoch` (never lower it), with the
    broker's own fence.lua. From then on the enqueue script refuses writers that carry an
    older epoch."""
    keys = [PartitionKeys(home, p).epoch for p in range(partitions)]
    # One call per partition keeps the script valid in cluster mode (one slot per call).
    for key in keys:
        await node_for(store, key).eval(_FENCE_LUA, 1, key, epoch)
    # Wakes the parked workers of a promoted copy (`core.worker.wait_for_promotion`); they
    # also look every second, so a notice that cannot be sent costs no more than that.
    channel = RegionKeys(home).fenced
    try:
        await node_for(store, channel).publish(channel, str(epoch))
    except RedisError as exc:
        log.warning("fenced %s at epoch %d, but could not announce it: %s", home, epoch, exc)


async def mirror_lag(
    primary: aredis.Redis, mirror: aredis.Redis, heartbeat: str, now: float
) -> tuple[int, float, bool]:
    """(bytes the mirror has not applied, seconds since the heartbeat it last saw, link
    up): writes `now` to the `heartbeat` key on the primary, then reads both sides."""
    await primary.set(heartbeat, repr(now))
    p_info = await primary.info("replication")
    m_info = await mirror.info("replication")
    seen = await mirror.get(heartbeat)
    gap = max(0, int(p_info.get("master_repl_offset", 0)) - int(m_info.get("slave_repl_offset", 0)))
    seconds = max(0.0, now - float(seen)) if seen is not None else float("inf")
    return gap, seconds, m_info.get("master_link_status") == "up"


async def reset_ownership(store: Store, home: str, partitions: int) -> None:
    """Break every lease and worker registration of `home` on `store`, a copy that was
    just promoted: the leases it holds belong to workers of the copy it replicated, dead
    or fenced, and waiting out their TTL would keep the promoted partitions idle for
    seconds. The fence counters stay, so every new lease token is higher than any the
    old owners held, and the new epoch already refuses their writes."""
    rk = RegionKeys(home)
    # One DEL per hash slot keeps this valid for a Redis Cluster copy too.
    await node_for(store, rk.leader).delete(rk.leader, rk.workers, rk.assignment)
    for p in range(partitions):
        lease = rk.partition(p).lease
        await node_for(store, lease).delete(lease)


async def stream_tails(store: Store, home: str, partitions: int) -> dict[int, str]:
    """The last entry id each partition stream has generated on `store` (0-0 if none)."""
    tails: dict[int, str] = {}
    for p in range(partitions):
        key = PartitionKeys(home, p).stream
        try:
            info = await node_for(store, key).xinfo_stream(key)
            last = info["last-generated-id"]
            tails[p] = last.decode() if isinstance(last, bytes) else str(last)
        except RedisError:
            tails[p] = "0-0"
    return tails


def _entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id (`<ms>-<seq>`) as a tuple that sorts as Redis orders entries."""
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


async def finished(store: Store, key: str, group: str) -> Callable[[str], bool]:
    """Which entries of stream `key` on `store` its consumer group `group` has acked:
    delivered (at or below the group's last-delivered id) and no longer pending. A
    worker acks an entry only once it finished it (its record written first), cancelled
    it, dead-lettered it, or moved its retry into the delayed set."""
    node = node_for(store, key)
    try:
        groups = await node.xinfo_groups(key)
    except RedisError:  # no stream, so no group
        return lambda _entry: False
    info = next((g for g in groups if str_if_bytes(g["name"]) == group), None)
    if info is None:
        return lambda _entry: False
    last = _entry_order(str_if_bytes(info["last-delivered-id"]))
    pending: set[str] = set()
    if int(info["pending"]):
        rows = await node.xpending_range(key, group, "-", "+", int(info["pending"]))
        pending = {str_if_bytes(cast(bytes, r["message_id"])) for r in rows}
    return lambda entry: _entry_order(entry) <= last and entry not in pending


@dataclass(frozen=True)
class ReplicationState:
    role: str
    offset: int
    link_up: bool


async def replication(store: aredis.Redis) -> ReplicationState:
    info = await store.info("replication")
    role = str(info.get("role"))
    if role == "master":
        return ReplicationState(role, int(info.get("master_repl_offset", 0)), True)
    return ReplicationState(
        role, int(info.get("slave_repl_offset", 0)), info.get("master_link_status") == "up"
    )


async def make_primary(store: aredis.Redis) -> None:
    await store.replicaof("NO", "ONE")


async def make_replica(store: aredis.Redis, host: str, port: int) -> None:
    await store.replicaof(host, str(port))


async def wait_caught_up(replica: aredis.Redis, primary: aredis.Redis, timeout: float) -> bool:
    """Wait until `replica` has applied everything `primary` has written so far."""
    target = (await replication(primary)).offset
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        state = await replication(replica)
        if state.link_up and state.offset >= target:
            return True
        await asyncio.sleep(0.02)
    return False


@dataclass(frozen=True)
class Follower:
    """A replica as its primary lists it: the port it announced (its own listening port,
    whatever proxy it connects through), its state (`online` once synced) and the
    offset it has acknowledged."""

    port: int
    state: str
    offset: int


async def followers(store: aredis.Redis) -> list[Follower]:
    """The replicas connected to `store` (INFO replication's `slaveN` lines)."""
    info = await store.info("replication")
    out = []
    for i in range(int(info.get("connected_slaves", 0))):
        line = info.get(f"slave{i}")
        if isinstance(line, dict):
            out.append(Follower(int(line["port"]), str(line["state"]), int(line["offset"])))
    return out


async def upstream(store: aredis.Redis) -> tuple[str, int] | None:
    """The (host, port) `store` replicates from, as it dials it; None for a primary."""
    info = await store.info("replication")
    if info.get("role") != "slave":
        return None
    return str(info["master_host"]), int(info["master_port"])


async def dbsize(store: aredis.Redis) -> int:
    return int(await store.dbsize())


async def release_spare(spare: aredis.Redis) -> None:
    """Make a spare free again: stop replicating and drop the copy it held. Only ever
    called on a spare's address (`ControlPlane.spare`): FLUSHALL anywhere else would
    destroy a home's data."""
    await spare.replicaof("NO", "ONE")
    await spare.flushall()
