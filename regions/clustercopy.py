"""A Cluster-mode home's Redis Cluster, as the control plane drives it at failover and
failback.

A Cluster-mode home is *one* Redis Cluster: its masters (`RegionRedis.nodes`) and their
in-region replicas run in the home region, and one replica of every master (`mirrors`)
runs in the standby region (`servers.create_redis_cluster` places them exactly).
Promotion makes the mirrors the masters; failback makes the home nodes masters again.
Both are Redis Cluster's own per-shard failover, sent to the replica that is to take over:

- `CLUSTER FAILOVER TAKEOVER` when the home is lost: the replica raises its config epoch
  by itself and claims its master's slots, without the votes of a majority of masters
  (they are all in the lost region). When the old masters come back they find their
  slots claimed under a higher config epoch and turn into replicas of the new masters
  ("last failover wins"), resynchronising from them: whatever they held that the mirror
  never received is dropped by Redis at that moment (docs/multi-region.md, RPO).
- a plain `CLUSTER FAILOVER` when the masters answer: the master pauses its clients, the
  replica catches up to its offset, then takes over with the masters' votes, losing
  nothing. Failback uses it; a promotion does when the old masters are reachable.

`ClusterCopy` routes a key to the member of `nodes` in the key's shard, master or
replica, with clients that send READONLY first, so `regions.stores`' fence, lease reset
and stream tails run unchanged on it, and the promotion point can be read from the
mirrors before they take over (while nothing can write to them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aredis
from homeport.core.security import Identity
from homeport.regions import stores
from homeport.regions.errors import RegionsError
from homeport.regions.topology import split_address
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError

SLOTS = 16384  # hash slots of every Redis Cluster
ELECTION_S = 3.0  # seconds a replica told CLUSTER FAILOVER may take before it is asked again
STABLE_S = 0.5  # seconds a newly elected master must stay master to count as elected


class ClusterFailoverError(RegionsError):
    """A Redis Cluster failover did not complete; the message names the shard."""


def _address(row: list[Any]) -> str:
    host = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
    return f"{host or '127.0.0.1'}:{int(row[1])}"


class ClusterCopy:
    """The nodes of a home's Redis Cluster on one side of a failover: the home's
    masters, or the mirrors in its standby. A slot maps to the member of `nodes` in the
    slot's shard (`at`), whatever its role."""

    def __init__(self, nodes: list[str], identity: Identity, timeout: float = 1.0) -> None:
        self.nodes = list(nodes)
        self._identity = identity
        self._timeout = timeout
        self._clients: dict[str, aredis.Redis] = {}
        self._slots: list[str | None] = [None] * SLOTS

    def node(self, address: str) -> aredis.Redis:
        if address not in self._clients:
            host, port = split_address(address)
            self._clients[address] = stores.client(
                host, port, self._timeout, self._identity, readonly=True
            )
        return self._clients[address]

    def at(self, key: str) -> aredis.Redis:
        address = self._slots[key_slot(key.encode())]
        if address is None:
            raise ClusterFailoverError(
                f"no node of {self.nodes} is in the shard of {key!r}; is the cluster formed?"
            )
        return self.node(address)

    def owner(self, slot: int) -> str | None:
        """The member of `nodes` in `slot`'s shard, if any (as last learnt by `refresh`)."""
        return self._slots[slot]

    def shard_of(self, key: str) -> str | None:
        return self.owner(key_slot(key.encode()))

    async def close(self) -> None:
        """Close every client. A node that died meanwhile cannot answer the goodbye (its
        close times out or fails): that is no error here, and the other clients must be
        closed all the same, or they are left to the garbage collector."""
        for client in self._clients.values():
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()
        self._clients.clear()

    async def slot_rows(self, address: str) -> list[tuple[int, int, list[str]]]:
        """CLUSTER SLOTS as `address` sees it: (first, last, [master, replicas...])."""
        rows = await self.node(address).execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
        return [(int(r[0]), int(r[1]), [_address(n) for n in r[2:]]) for r in rows]

    async def refresh(self) -> None:
        """Learn which member of `nodes` serves each slot. Every node that answers is
        asked and their views merged: gossip may not have told one node yet where
        another stands, but each node knows its own shard."""
        slots: list[str | None] = [None] * SLOTS
        last: Exception | None = None
        answered = False
        for address in self.nodes:
            try:
                rows = await self.slot_rows(address)
            except (RedisError, OSError) as exc:
                last = exc
                continue
            answered = True
            for first, end, members in rows:
                own = address in members  # a node's word on its own shard wins
                mine = address if own else next((m for m in members if m in self.nodes), None)
                if mine is None:
                    continue
                for slot in range(first, end + 1):
                    if own or slots[slot] is None:
                        slots[slot] = mine
        if not answered:
            raise ClusterFailoverError(f"no node of {self.nodes} answered CLUSTER SLOTS: {last}")
        self._slots = slots

    async def reachable(self) -> bool:
        """Every node answers (one PING each)."""
        for address in self.nodes:
            if not await stores.reachable(self.node(address)):
                return False
        return True

    async def roles(self) -> dict[str, str]:
        return {a: (await stores.replication(self.node(a))).role for a in self.nodes}

    async def masters_of_all_slots(self) -> bool:
        """True when every node of the copy is a master and, as each of them sees the
        cluster, every one of the 16384 slots is served by one of them."""
        for address in self.nodes:
            covered = 0
            for first, end, members in await self.slot_rows(address):
                if members and members[0] in self.nodes:
                    covered += end - first + 1
            if covered != SLOTS:
                return False
        if set((await self.roles()).values()) != {"master"}:
            return False
        # A new master refuses writes (CLUSTERDOWN) until its own view of the cluster is ok.
        for address in self.nodes:
            info = await self.node(address).cluster("INFO")
            if not isinstance(info, dict) or info.get("cluster_state") != "ok":
                return False
        return True

    @contextlib.asynccontextmanager
    async def readable_while_down(self) -> AsyncIterator[None]:
        """Let the nodes answer reads while their cluster is down (its masters lost):
        the promotion point is read from the mirrors before they take over. The
        nodes' own setting is restored after."""
        option = "cluster-allow-reads-when-down"
        before = {}
        for address in self.nodes:
            got = await self.node(address).config_get(option)
            before[address] = str(got.get(option, "no"))
            await self.node(address).config_set(option, "yes")
        try:
            yield
        finally:
            for address, value in before.items():
                await self.node(address).config_set(option, value)

    async def take_over(self, *, force: bool, timeout: float) -> list[str]:
        """Make every node of the copy the master of its shard: `CLUSTER FAILOVER
        TAKEOVER` when `force` (the masters are lost), else a plain, lossless `CLUSTER
        FAILOVER`. Waits until every node is a master and every slot is served by one
        of them. Returns what each node was told."""
        told = []
        mode = ["TAKEOVER"] if force else []
        for address, role in (await self.roles()).items():
            if role == "master":
                continue
            await self.node(address).execute_command("CLUSTER", "FAILOVER", *mode)  # type: ignore[no-untyped-call]
            told.append(f"{address}: CLUSTER FAILOVER {' '.join(mode)}".rstrip())
            # One election at a time: a master votes once per epoch, so replicas elected
            # together may split the votes and all fail. TAKEOVER needs no votes.
            if not force and not await self._elected(address, timeout):
                raise ClusterFailoverError(
                    f"{address} did not become master within {timeout:.0f}s of CLUSTER FAILOVER"
                )
        if not await self.wait_masters(timeout):
            raise ClusterFailoverError(
                f"{self.nodes} are not the masters of all {SLOTS} slots after {timeout:.0f}s "
                f"(roles {await self.roles()}); see the nodes' logs"
            )
        await self.refresh()
        return told

    async def _elected(self, address: str, timeout: float) -> bool:
        """Wait until `address`, told CLUSTER FAILOVER, is master and stays so for
        `STABLE_S`; ask again when it lost the election, or won it and was demoted at
        once (seen with Redis 7.0 when two manual failovers of one shard follow each
        other within a node timeout: the second one "wins" on the first one's votes
        without a new config epoch, and the old master keeps its slots)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if await self._wait_master(address, min(left, ELECTION_S)) and await self._stays_master(
                address
            ):
                return True
            if loop.time() >= deadline:
                return False
            with contextlib.suppress(ResponseError):  # a master already: checked above
                await self.node(address).execute_command("CLUSTER", "FAILOVER")  # type: ignore[no-untyped-call]

    async def _stays_master(self, address: str) -> bool:
        loop = asyncio.get_running_loop()
        until = loop.time() + STABLE_S
        while loop.time() < until:
            try:
                if (await stores.replication(self.node(address))).role != "master":
                    return False
            except (RedisError, OSError):
                pass  # a slow answer on a loaded host is no demotion: ask again
            await asyncio.sleep(0.05)
        return True

    async def _wait_master(self, address: str, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                if (await stores.replication(self.node(address))).role == "master":
                    return True
            except (RedisError, OSError):
                pass  # mid-failover: ask again
            await asyncio.sleep(0.05)
        return False

    async def wait_masters(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                if await self.masters_of_all_slots():
                    return True
            except (RedisError, OSError):
                pass  # a node mid-failover: ask again
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def wait_in_sync(self, masters: ClusterCopy, timeout: float) -> bool:
        """Every node of this copy replicates a node of `masters`, link up, and has
        applied everything its master had written when asked."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for address in self.nodes:
            while True:
                try:
                    upstream = await stores.upstream(self.node(address))
                    if upstream is not None:
                        master = self._member(masters, upstream)
                        if master is not None and await stores.wait_caught_up(
                            self.node(address), masters.node(master), 0.5
                        ):
                            break
                except (RedisError, OSError):
                    pass
                if loop.time() >= deadline:
                    return False
                await asyncio.sleep(0.05)
        return True

    @staticmethod
    def _member(copy: ClusterCopy, upstream: tuple[str, int]) -> str | None:
        address = f"{upstream[0]}:{upstream[1]}"
        return address if address in copy.nodes else None
