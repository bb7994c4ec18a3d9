"""The store steps of promotion and failback for a Cluster-mode home, which
`regions.promotion` runs where a single-mode home gets `REPLICAOF` (the etcd steps, the
route, the epoch and the history are the same for both; docs/multi-region.md).

Promote (the route already names the mirrors, at the new epoch):

1. fence the home's masters when they answer (a manual promotion), and let the mirrors
   catch up with them;
2. read the promotion point from the mirrors, still replicas (READONLY): nothing can
   write to them yet, so the point is exact;
3. every mirror takes over its shard (`regions.clustercopy`): a lossless `CLUSTER
   FAILOVER` when the masters were fenced, `CLUSTER FAILOVER TAKEOVER` when they are
   lost; wait until the mirrors serve all 16384 slots;
4. break the replicated leases, then raise the epochs on the new masters (the raised
   epoch wakes the standby's workers, as for a single primary).

Failback: the home's nodes came back as replicas of the mirrors (Redis Cluster turns an
old master into a replica when it sees its slots claimed under a higher config epoch);
orphans are looked for on them shard by shard, re-enqueued, and once they are in sync a
lossless `CLUSTER FAILOVER` on each home node moves the shards home.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeport.core.security import Identity
from homeport.regions import stores
from homeport.regions.clustercopy import ClusterCopy, ClusterFailoverError
from homeport.regions.control import ControlPlane
from homeport.regions.errors import RegionsError
from homeport.regions.routing import Route
from redis.exceptions import RedisError

Say = Callable[[str], None]
TAKEOVER_S = 10.0  # seconds the mirrors may take to serve every slot after FAILOVER
GRACEFUL_S = 5.0  # a lossless FAILOVER not done by then falls back to TAKEOVER
SYNC_S = 30.0  # seconds the home nodes may take to resync from the mirrors at failback


def copies(cp: ControlPlane, home: str) -> tuple[ClusterCopy, ClusterCopy]:
    """(the home's own nodes, its mirrors in the standby): the two sides of a failover."""
    redis = cp.topology.region(home).redis
    identity = Identity.of(cp.topology.security)
    return ClusterCopy(redis.nodes, identity), ClusterCopy(redis.mirrors, identity)


async def _fence_home(
    masters: ClusterCopy, home: str, partitions: int, epoch: int, step: Say
) -> bool:
    if not await masters.reachable():
        step(f"2. {home}'s masters unreachable: its gateways stopped writing when their "
             "leases lapsed, and the new epoch fences them when they return")  # fmt: skip
        return False
    try:
        await masters.refresh()
        await stores.fence(masters, home, partitions, epoch)
    except (RedisError, OSError, ClusterFailoverError) as exc:
        step(f"2. could not fence {home}'s masters ({exc}); gateway leases fence them")
        return False
    step(f"2. fenced {home}'s masters: epoch < {epoch} is refused")
    return True


async def _take_over(mirrors: ClusterCopy, graceful: bool) -> list[str]:
    if graceful:
        try:
            return await mirrors.take_over(force=False, timeout=GRACEFUL_S)
        except ClusterFailoverError:
            pass  # the masters stopped answering meanwhile: take over without them
    return await mirrors.take_over(force=True, timeout=TAKEOVER_S)


async def promote_mirrors(
    cp: ControlPlane,
    home: str,
    epoch: int,
    step: Say,
    keep_point: Callable[[dict[int, str]], Awaitable[None]],
) -> tuple[bool, bool | None, dict[int, str]]:
    """Make `home`'s mirrors its masters at `epoch`. Returns (old masters fenced, mirrors
    caught up with them (None: not reachable), promotion point)."""
    region = cp.topology.region(home)
    masters, mirrors = copies(cp, home)
    try:
        fenced = await _fence_home(masters, home, region.partitions, epoch, step)
        await mirrors.refresh()
        caught_up: bool | None = None
        if fenced:
            caught_up = await mirrors.wait_in_sync(masters, GRACEFUL_S)
            step(f"3a. {home}'s mirrors caught up with its masters: {caught_up}")
        async with mirrors.readable_while_down():
            point = await stores.stream_tails(mirrors, home, region.partitions)
        await keep_point(point)
        told = await _take_over(mirrors, graceful=fenced)
        # Leases broken before the epoch is raised, as for a single primary (promotion.py).
        await stores.reset_ownership(mirrors, home, region.partitions)
        await stores.fence(mirrors, home, region.partitions, epoch)
        step(
            f"3. promoted {home}'s mirrors in {region.standby}: {'; '.join(told) or 'masters'}"
            f"; they serve all slots, epochs set to {epoch}, the old owners' leases broken"
        )
        return fenced, caught_up, point
    finally:
        await masters.close()
        await mirrors.close()


async def complete(cp: ControlPlane, route: Route) -> bool:
    """Finish a promotion of a Cluster-mode home whose controller died after moving the
    route: the mirrors take over (the old masters are judged lost) and get the route's
    epoch. False when there was nothing to finish."""
    region = cp.topology.region(route.home)
    _, mirrors = copies(cp, route.home)
    try:
        if await mirrors.masters_of_all_slots():
            return False
        await mirrors.refresh()
        await mirrors.take_over(force=True, timeout=TAKEOVER_S)
        await stores.reset_ownership(mirrors, route.home, region.partitions)
        await stores.fence(mirrors, route.home, region.partitions, route.epoch)
        return True
    finally:
        await mirrors.close()


async def rejoined(cp: ControlPlane, home: str, step: Say) -> bool:
    """Wait until every home node replicates a mirror and has caught up (they rejoin on
    their own); the failback's step 3."""
    masters, mirrors = copies(cp, home)
    try:
        in_sync = await masters.wait_in_sync(mirrors, SYNC_S)
        step(f"3. {home}'s nodes replicate its mirrors (Redis Cluster); in sync: {in_sync}")
        return in_sync
    finally:
        await masters.close()
        await mirrors.close()


async def switch_home(cp: ControlPlane, home: str, epoch: int, step: Say) -> None:
    """Move every shard back to the home's nodes at `epoch`: fence the mirrors, a
    lossless CLUSTER FAILOVER on each home node, then the new masters' epochs."""
    region = cp.topology.region(home)
    masters, mirrors = copies(cp, home)
    try:
        await mirrors.refresh()
        await stores.fence(mirrors, home, region.partitions, epoch)
        await masters.refresh()
        try:
            told = await masters.take_over(force=False, timeout=TAKEOVER_S)
        except ClusterFailoverError as exc:
            raise RegionsError(
                f"{home}'s nodes did not take their shards back ({exc}); the route already "
                f"names {home} at epoch {epoch}: run the failback again"
            ) from exc
        await stores.reset_ownership(masters, home, region.partitions)
        await stores.fence(masters, home, region.partitions, epoch)
        done = "; ".join(told) or "already"
        step(f"5. fenced the mirrors in {region.standby}, {home}'s nodes are masters again: "
             f"{done}; the mirrors replicate them (Redis Cluster)")  # fmt: skip
    finally:
        await masters.close()
        await mirrors.close()
