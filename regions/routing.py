"""The routing table in etcd: which region serves each home region's partitions, and at
which epoch.

One key per home region, `<prefix>/routing/<home>`, holding JSON:

    {"home": "us-east", "serving": "eu-west", "epoch": 4, "state": "failed-over",
     "copy": "mirror", "changed_at": 1795890000.1, "reason": "..."}

`copy` names which copy of the home's data is written: `primary` (the home's own
primary), `mirror` (its mirror in the standby region, promoted) or `spare` (the spare
Redis of the `serving` region, lent by re-protection and then promoted).
`store_address` turns it into the address a given region's process must dial.

`standby` is the region whose copy the next failover promotes: empty for the topology's
standby (the home's mirror); the name of a region when re-protection
(`regions.protection`) made that region's spare the home's cross-region replica, because
the mirror's region was lost. Changing it does not change the epoch: writes are not
redirected, only the next promotion's target; failback restores it to empty. Every change goes
through `move`, an etcd transaction that compares the whole current value, so two
controllers racing to change a route cannot both win, and the epoch only ever grows.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from typing import Literal

import aetcd
from homeport.regions.errors import RegionsError
from homeport.regions.topology import Topology, split_address

RouteState = Literal["normal", "failed-over", "failing-back"]
Copy = Literal["primary", "mirror", "spare"]


class StaleRoute(RegionsError):
    """A route changed between reading it and trying to change it."""

    def __init__(self, home: str, expected_epoch: int, current_epoch: int) -> None:
        self.home, self.expected_epoch, self.current_epoch = home, expected_epoch, current_epoch
        super().__init__(
            f"route of {home!r} is at epoch {current_epoch}, not {expected_epoch}: another "
            "controller changed it first; re-read the routing table and retry"
        )


class NotLeader(RegionsError):
    """A guarded route change failed although the route had not moved: the caller is no
    longer the elected controller."""

    def __init__(self, home: str) -> None:
        super().__init__(f"not the elected controller any more; route of {home!r} unchanged")


@dataclass(frozen=True)
class Route:
    home: str
    serving: str
    epoch: int
    copy: Copy = "primary"
    state: RouteState = "normal"
    changed_at: float = 0.0
    reason: str = ""
    standby: str = ""  # "" = the topology's standby (the mirror); else a region's spare

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Route:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class RouteSnapshot:
    """A snapshot of every route, as read at one etcd revision."""

    routes: dict[str, Route]
    revision: int = 0

    def route(self, home: str) -> Route:
        try:
            return self.routes[home]
        except KeyError:
            raise RegionsError(
                f"no route for home region {home!r}; known: {sorted(self.routes)}"
            ) from None

    def served_by(self, region: str) -> list[Route]:
        return [r for r in self.routes.values() if r.serving == region]


class RoutingStore:
    def __init__(self, client: aetcd.Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix.rstrip("/") + "/routing/"

    def _key(self, home: str) -> bytes:
        return (self.prefix + home).encode()

    async def bootstrap(self, topology: Topology) -> RouteSnapshot:
        """Create the route of every home region that has none (epoch 1, served at home).
        Existing routes are left alone, so restarting a process never undoes a failover.
        Routes that exist are not written at all: a gateway may only read them."""
        table = await self.load()
        missing = [r for r in topology.regions if r.name not in table.routes]
        if not missing:
            return table
        for region in missing:
            route = Route(
                region.name, region.name, 1, "primary", "normal", time.time(), "bootstrap"
            )
            key = self._key(region.name)
            tx = self.client.transactions
            await self.client.transaction(
                compare=[tx.version(key) == 0], success=[tx.put(key, route.encode())], failure=[]
            )
        return await self.load()

    async def load(self) -> RouteSnapshot:
        found = await self.client.get_prefix(self.prefix.encode())
        routes = {}
        revision = 0
        for kv in found:
            route = Route.decode(kv.value)
            routes[route.home] = route
            revision = max(revision, kv.mod_revision)
        return RouteSnapshot(routes, revision)

    async def move(
        self,
        current: Route,
        *,
        serving: str,
        copy: Copy,
        state: RouteState,
        reason: str,
        guards: list[object] | None = None,
        standby: str = "",
    ) -> Route:
        """Replace `current` with a route at epoch + 1, only if `current` is still what
        etcd holds. Raises StaleRoute otherwise. A move names the next failover target
        afresh (`standby`, default the topology's)."""
        new = replace(
            current,
            serving=serving,
            copy=copy,
            state=state,
            epoch=current.epoch + 1,
            changed_at=time.time(),
            reason=reason,
            standby=standby,
        )
        await self._swap(current, new, guards)
        return new

    async def restandby(
        self, current: Route, standby: str, guards: list[object] | None = None
    ) -> Route:
        """Replace `current` with the same route whose failover target is `standby` ("":
        the topology's), only if `current` is still what etcd holds. The epoch stays:
        nothing is redirected. Raises StaleRoute or NotLeader like `move`."""
        new = replace(current, standby=standby)
        if new == current:
            return current
        await self._swap(current, new, guards)
        return new

    async def _swap(self, current: Route, new: Route, guards: list[object] | None) -> None:
        key = self._key(current.home)
        tx = self.client.transactions
        ok, _ = await self.client.transaction(
            compare=[tx.value(key) == current.encode(), *(guards or [])],
            success=[tx.put(key, new.encode())],
            failure=[],
        )
        if not ok:
            latest = (await self.load()).route(current.home)
            if latest == current:
                raise NotLeader(current.home)
            raise StaleRoute(current.home, current.epoch, latest.epoch)

    async def changes(self) -> AsyncIterator[Route]:
        """Every route as it changes (puts only), until the caller stops iterating."""
        watch = await self.client.watch_prefix(self.prefix.encode())
        try:
            async for event in watch:
                if event.kind == aetcd.EventKind.PUT:
                    yield Route.decode(event.kv.value)
        finally:
            await watch.cancel()


def next_standby(topology: Topology, route: Route) -> tuple[str, Copy] | None:
    """(region, copy) the next failover of `route.home` promotes: the spare the route's
    `standby` names, else the home's mirror while the home serves itself. None when there
    is nothing left to promote (failed over, and no spare protects the serving copy)."""
    if route.standby:
        return route.standby, "spare"
    standby = topology.region(route.home).standby
    if route.copy == "primary" and standby is not None:
        return standby, "mirror"
    return None


def spare_address(topology: Topology, region: str) -> str:
    address = topology.region(region).redis.spare
    if address is None:
        raise RegionsError(f"region {region!r} has no spare Redis in the topology")
    return address


def store_address(topology: Topology, route: Route, src: str) -> tuple[str, int]:
    """(host, port) a process in region `src` dials to write `route.home`'s data.

    The primary lives in the home region; the mirror lives in the home's standby region.
    Cluster-mode regions are reached through their seed nodes directly, and so are
    spares: no link carries traffic to a spare from outside its region.
    """
    home = topology.region(route.home)
    if route.copy == "spare":
        return split_address(spare_address(topology, route.serving))
    if home.redis.mode == "cluster":
        nodes = home.redis.mirrors if route.copy == "mirror" else home.redis.nodes
        return split_address(nodes[0])
    if route.copy == "primary":
        return split_address(topology.dial(src, home.name, "redis", home.redis.primary or ""))
    host_region = home.standby or home.name
    address = home.redis.mirror or ""
    if src != host_region:
        address = topology.dial(src, host_region, "mirror", address)
    return split_address(address)
