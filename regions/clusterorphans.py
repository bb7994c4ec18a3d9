"""Orphans of a Cluster-mode home, found at failback on its old masters *held* out of the
cluster (docs/multi-region.md, "Cluster-mode homes").

Why a hold. A single primary that comes back stays a primary until failback makes it a
replica, so its orphans (the writes it acknowledged that its mirror never got) are read
first. An old Redis Cluster master cannot wait like that: as soon as it reaches the
cluster bus it sees its slots claimed under a higher config epoch, turns into a replica
of the mirror that took them over and resyncs from it, within a node timeout, dropping
its orphans before any failback could read them.

So a failed-over home's master restarts held: with its data (cluster nodes keep an AOF)
but with its cluster config file set aside (`servers.hold_cluster_node`), under a new node
id that no other node knows. The others ignore a node they never met; it claims only the
slots it holds keys of, so its own cluster is down and it refuses every write (CLUSTERDOWN)
while it still answers reads. Failback then:

1. finds the held nodes (`held`: a node that knows no other node) and reads the orphans of
   their shards (`partitions_held`), re-enqueued by `regions.promotion` as for a single
   primary;
2. lets each held node rejoin (`release`): the stale node ids the cluster still lists for
   the old masters are forgotten, the held node's copy is dropped (`FLUSHALL`, `CLUSTER
   RESET HARD`), it meets the cluster again and replicates the mirror that serves its
   shard, which resyncs it; the failback's switch then moves the shard home as usual.

A home node that restarted without a hold has rejoined and resynced already: its orphans
are gone, and failback says so by finding none (the RPO of the mirror lag).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from homeport.core.keys import PartitionKeys
from homeport.core.security import Identity
from homeport.regions.clustercopy import SLOTS, ClusterCopy, ClusterFailoverError
from homeport.regions.control import ControlPlane
from homeport.regions.topology import split_address
from redis.exceptions import RedisError

Say = Callable[[str], None]
MEET_S = 10.0  # seconds a released node may take to learn its mirror after CLUSTER MEET


def _text(reply: object) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


async def held(masters: ClusterCopy) -> dict[str, str]:
    """The home nodes that are held, each with its node id: a node that knows no other
    node of its cluster (`cluster_known_nodes` 1)."""
    found: dict[str, str] = {}
    for address in masters.nodes:
        node = masters.node(address)
        info = await node.cluster("INFO")
        if isinstance(info, dict) and int(info.get("cluster_known_nodes", 0)) == 1:
            found[address] = _text(await node.execute_command("CLUSTER", "MYID"))  # type: ignore[no-untyped-call]
    return found


def partitions_held(
    masters: ClusterCopy, home: str, partitions: int, held_nodes: dict[str, str]
) -> set[int]:
    """The partitions of `home` whose keys a held node holds (after `masters.refresh`)."""
    return {
        p for p in range(partitions)
        if masters.shard_of(PartitionKeys(home, p).stream) in held_nodes
    }  # fmt: skip


async def _known_ids(node: ClusterCopy, address: str) -> dict[str, str]:
    """CLUSTER NODES as `address` sees it: node id -> flags."""
    text = _text(await node.node(address).execute_command("CLUSTER", "NODES"))  # type: ignore[no-untyped-call]
    rows = (line.split() for line in text.splitlines() if line.strip())
    return {row[0]: row[2] for row in rows if len(row) > 2}


async def _live_id(copy: ClusterCopy, address: str) -> str | None:
    try:
        return _text(await copy.node(address).execute_command("CLUSTER", "MYID"))  # type: ignore[no-untyped-call]
    except (RedisError, OSError):
        return None


async def release(
    cp: ControlPlane,
    home: str,
    masters: ClusterCopy,
    mirrors: ClusterCopy,
    held_nodes: dict[str, str],
    step: Say,
) -> None:
    """Let every held node rejoin its cluster as a replica of the mirror serving its shard
    (call it after its orphans were re-enqueued: its own copy is dropped here)."""
    redis = cp.topology.region(home).redis
    others = ClusterCopy(redis.replicas, Identity.of(cp.topology.security))
    try:
        shard = {a: _mirror_of(masters, mirrors, a) for a in held_nodes}
        await _forget_stale(masters, mirrors, others)
        for address, mirror in shard.items():
            node = masters.node(address)
            await node.flushall()
            await node.execute_command("CLUSTER", "RESET", "HARD")  # type: ignore[no-untyped-call]
            host, port = split_address(mirror)
            await node.execute_command("CLUSTER", "MEET", host, port)  # type: ignore[no-untyped-call]
            mirror_id = _text(await mirrors.node(mirror).execute_command("CLUSTER", "MYID"))  # type: ignore[no-untyped-call]
            await _wait_known(masters, address, mirror_id)
            await node.execute_command("CLUSTER", "REPLICATE", mirror_id)  # type: ignore[no-untyped-call]
        step(
            f"2b. released {home}'s held nodes into the cluster: "
            + "; ".join(f"{a} replicates {m}" for a, m in shard.items())
        )
    finally:
        await others.close()


def _mirror_of(masters: ClusterCopy, mirrors: ClusterCopy, address: str) -> str:
    """The mirror that took over `address`'s shard: the one serving the slots `address`
    still holds keys of, else the mirror placed with it (`servers.create_redis_cluster`
    pairs `nodes[i]` with `mirrors[i]`)."""
    for slot in range(SLOTS):
        if masters.owner(slot) == address:
            mirror = mirrors.owner(slot)
            if mirror is not None:
                return mirror
            break
    return mirrors.nodes[masters.nodes.index(address)]


async def _forget_stale(masters: ClusterCopy, mirrors: ClusterCopy, others: ClusterCopy) -> None:
    """Make every live node forget the node ids no live node answers to (the old masters,
    before their hold): one of them would otherwise linger as a failed node. Best effort:
    a node that still follows one (`Can't forget my master`) keeps it listed, harmlessly
    (it holds no slot)."""
    copies = [(c, a) for c in (mirrors, others, masters) for a in c.nodes]
    live = {i for i in [await _live_id(c, a) for c, a in copies] if i is not None}
    known: set[str] = set()
    for address in mirrors.nodes:
        known |= set(await _known_ids(mirrors, address))
    for stale in sorted(known - live):
        for copy, address in copies:
            with contextlib.suppress(RedisError, OSError):
                await copy.node(address).execute_command("CLUSTER", "FORGET", stale)  # type: ignore[no-untyped-call]


async def _wait_known(masters: ClusterCopy, address: str, node_id: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MEET_S
    while loop.time() < deadline:
        flags = (await _known_ids(masters, address)).get(node_id, "handshake")
        if "handshake" not in flags:
            return
        await asyncio.sleep(0.05)
    raise ClusterFailoverError(
        f"{address} did not meet its mirror ({node_id}) within {MEET_S:.0f}s of CLUSTER MEET"
    )
