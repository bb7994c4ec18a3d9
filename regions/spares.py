"""The links that carry a region's Redis traffic in the local cluster, spares included.

Each region runs one **spare**: an empty redis-server (`redis-<region>-spare`, recorded
as `RegionRedis.spare`) that the failover controller lends to another home whose
cross-region replica was lost with a region (re-protection, see `regions.protection`).
A spare in region R then replicates that home's *serving copy*, which is either

- a home's own primary, in its home region H: reached through `R->H:redis`, the link
  every region already has to every primary (health probes, fencing, replication); or
- a promoted mirror, hosted in the home's standby S: reached through `R->S:mirror`.

So that any spare can replicate any serving copy, and chaos can cut any of these paths,
the plan gives every other region a link to each mirror, not only the mirror's home
(which uses `H->S:mirror` to resync from it at failback).

In production a spare is a StatefulSet replica slot per region (docs/multi-region.md):
capacity kept free so that re-protection never waits for a node to be provisioned.
"""

from __future__ import annotations

from collections.abc import Callable

from homeport.regions.topology import RegionRedis

LinkMaker = Callable[[str, str], str]  # (link name, upstream address) -> listen address


def plan_links(
    region: str, standby: str | None, redis: RegionRedis, names: list[str], link: LinkMaker
) -> None:
    """Add the cross-region Redis links of `region`'s data to the plan through `link`."""
    if redis.primary is None:
        return  # a Redis Cluster region is reached through its nodes directly
    # Every region reaches every primary through a link of its own (health probes,
    # fencing writes, replication by the standby or by a spare), so any pair can be cut.
    for src in names:
        link(f"{src}->{region}:redis", redis.primary)
    if standby is None or redis.mirror is None:
        return
    # The mirror, once promoted, is a serving copy: the old home replicates from it at
    # failback, a spare of any third region replicates from it while re-protecting it.
    for src in names:
        if src != standby:
            link(f"{src}->{standby}:mirror", redis.mirror)
