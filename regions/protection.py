"""Re-protection: after a region loss, a spare Redis in a surviving region becomes the
cross-region replica a home lost, so its GLOBAL submits are acknowledged again without
waiting for failback.

GLOBAL durability makes `WAIT` count `global_replicas` acknowledgements: the in-region
replica and the cross-region one. Losing a region of a ring takes the cross-region one
away from two homes:

- the lost region's own home, failed over to its standby: the promoted mirror keeps
  only its in-region replica;
- the home whose mirror the lost region hosted: its primary keeps only its in-region
  replica.

Both would refuse GLOBAL submits with NOT_REPLICATED until failback. A **protection**
lends such a home the **spare** of a third region (`regions.spares`): an empty Redis made
a replica of the home's serving copy, through the link from the spare's region. `WAIT`
counts it like any replica, so the data path does not change at all.

A home **needs** a protection while it is served by its own primary and its standby
region is judged down, or while it is failed over and its home region is judged down
(`health.judge`: the quorum verdict promotions rest on). The elected failover controller
runs `Protector.run_once` right after its promotions, and at least every `check_s`:

1. **drop** a protection whose spare's region is now judged down, or whose spare does
   not answer: the home gets another in step 3;
2. **release** a protection once the original placement is back (the home is served by
   its own primary and its mirror is an online replica of it, caught up): after a
   failback, or after the standby region returned and its mirror resynced. REPLICAOF NO
   ONE and FLUSHALL on the spare, then the record is deleted; a spare that replicates
   with no record (its protection was dropped while its region was cut off) is released
   the same way once its region is back;
3. **protect** every home that needs it and has none: the first region in ring order
   after the serving one that is neither serving nor down and whose spare is free and
   reachable — or, when several are and the controller has a capacity model, the first
   of them whose parked workers can absorb the home (`regions.capacity.decide`: the
   spare becomes the home's next standby, so the next failover lands where the load
   fits; when none can or none was measured, ring order stands); record it
   in etcd (`syncing`), REPLICAOF the spare to the serving copy,
   wait at most `sync_s` until it has caught up, record `in-sync`. A lent spare that
   replicates nothing (it restarted) or lost its link to a copy the route no longer
   names is pointed at the serving copy again.

The record, `<prefix>/protection/<home>` (JSON, `Protection`), is written before the
spare is touched and deleted only after the spare is released, so a controller that dies
midway leaves a record its successor completes or releases. Every record change is one
etcd transaction guarded by the controller's election key, and a leader sees every record
before it lends a spare, so no two homes take one spare.

An in-sync protection also becomes the home's **standby** in the routing table
(`Route.standby`): if the copy serving the home is lost in turn, the controller promotes
the spare (`promotion.promote`), with parked workers waiting on it in its region. A spare
that serves is neither repaired nor dropped; failback fences it, and the release that
follows the restored placement gives the route its mirror back as standby.

Failback is not confused by a spare: its orphans are entries of the old primary that the
serving copy lacks, and a spare is neither. During the switch the spare keeps replicating
the mirror (it is the mirror's replica, and the mirror becomes the primary's), and it is
released only once that mirror is in sync again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, asdict, dataclass, replace
from typing import Literal

from homeport.regions import capacity, stores
from homeport.regions.control import ControlPlane
from homeport.regions.errors import RegionsError
from homeport.regions.routing import Route, RouteSnapshot, store_address
from homeport.regions.topology import Topology, split_address
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SYNC_S = 15.0  # seconds a protect step waits for the spare's first sync; then checks go on
CHECK_S = 1.0  # seconds between two checks when no region is down; 0 = every step
RESTORED_S = 2.0  # seconds a release check waits for the mirror to catch up

ProtectionState = Literal["syncing", "in-sync"]
Event = Callable[[str, str, str], None]  # (kind, home, detail)


class ProtectionError(RegionsError):
    """A protection record could not be changed: another controller changed it first, or
    this one is no longer elected."""


@dataclass(frozen=True)
class Protection:
    """A spare lent to `home`: the spare of `region` (at `spare`), replicating the copy
    that served `home` from `serving` at `epoch`."""

    home: str
    region: str
    spare: str
    serving: str
    copy: str
    epoch: int
    state: ProtectionState
    at: float
    synced_at: float | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Protection:
        return cls(**json.loads(raw))


def needs_protection(topology: Topology, route: Route, down: set[str]) -> bool:
    """Has `route.home`'s serving copy lost its cross-region replica to a region loss?"""
    region = topology.region(route.home)
    if region.redis.mode != "single" or region.standby is None or route.serving in down:
        return False  # a serving copy that is down needs a promotion first, not a replica
    if route.copy == "primary":
        return route.serving == route.home and region.standby in down
    return route.home in down


def candidates(topology: Topology, route: Route, down: set[str], taken: set[str]) -> list[str]:
    """Regions that may lend `route.home` their spare, best first: ring order after the
    serving region, skipping the serving region, regions judged down, spares taken."""
    names = topology.region_names()
    i = names.index(route.serving)
    return [
        name
        for name in names[i + 1 :] + names[:i]
        if name not in down and name not in taken and topology.region(name).redis.spare
    ]


async def load(cp: ControlPlane) -> dict[str, Protection]:
    found = await cp.etcd.get_prefix(cp.prefix("protection") + b"/")
    records = (Protection.decode(kv.value) for kv in found)
    return {p.home: p for p in records}


@dataclass(eq=False)
class Protector:
    """Lends spares to homes that lost their cross-region replica, and takes them back
    (see the module docstring). Driven by the elected failover controller."""

    cp: ControlPlane
    guard: Callable[[], object] | None = None  # an etcd compare added to every write
    _: KW_ONLY
    sync_s: float = SYNC_S
    check_s: float = CHECK_S
    event: Event = lambda _k, _h, _d: None
    failed: Callable[[], None] = lambda: None  # called when a step fails (a metric)
    capacity_model: capacity.CapacityModel | None = None

    def __post_init__(self) -> None:
        self.topology = self.cp.topology
        self._next_check = 0.0
        self._unprotected: set[str] = set()

    # ---- etcd records ------------------------------------------------------------------

    def _key(self, home: str) -> bytes:
        return self.cp.prefix("protection", home)

    async def _change(self, home: str, old: Protection | None, new: Protection | None) -> None:
        """Replace `old` with `new` (None: absent) in one guarded transaction."""
        key = self._key(home)
        tx = self.cp.etcd.transactions
        compare = [tx.version(key) == 0] if old is None else [tx.value(key) == old.encode()]
        if self.guard is not None:
            compare.append(self.guard())
        success = [tx.put(key, new.encode())] if new is not None else [tx.delete(key)]
        ok, _ = await self.cp.etcd.transaction(compare=compare, success=success, failure=[])
        if not ok:
            raise ProtectionError(
                f"protection of {home!r} changed under this controller, or it is no longer "
                "elected; the next step re-reads it"
            )

    # ---- one step ----------------------------------------------------------------------

    async def run_once(self, table: RouteSnapshot, down: set[str], force: bool = False) -> None:
        """One pass. Runs at every call while a region is down (or when `force`d, right
        after a promotion), else at most every `check_s` seconds."""
        now = time.monotonic()
        if not down and not force and now < self._next_check:
            return
        self._next_check = now + self.check_s
        records = await load(self.cp)
        kept: dict[str, Protection] = {}
        for home, p in records.items():
            if not await self._guarded(home, self._settle(table.route(home), p, down)):
                kept[home] = p
        await self._free_strays(kept, down)
        taken = {p.region for p in kept.values()}
        for home in self.topology.region_names():
            route = table.route(home)
            if home in kept or not needs_protection(self.topology, route, down):
                continue
            region = await self._pick(route, down, taken)
            if region is None:
                if home not in self._unprotected:  # said once, not at every step
                    self.event("unprotected", home, "no free spare in a healthy region")
                self._unprotected.add(home)
                continue
            self._unprotected.discard(home)
            taken.add(region)
            await self._guarded(home, self.protect(route, region))

    async def _guarded(self, home: str, step: Awaitable[bool]) -> bool:
        """Await `step`; a failure is logged and counted, and the other homes go on."""
        try:
            return await step
        except (RedisError, OSError, TimeoutError, RegionsError) as exc:
            self.failed()
            log.warning("protection of %s: step failed: %s", home, exc)
            return False

    async def _settle(self, route: Route, p: Protection, down: set[str]) -> bool:
        """Drop, release or repair one protection; True when it is gone."""
        if route.copy == "spare" and route.serving == p.region:
            return False  # promoted: the spare serves the home until failback
        if p.region in down or not await stores.reachable(self.cp.spare(p.region)):
            await self._change(p.home, p, None)
            await self._assign(route, "")
            self.event("dropped", p.home, f"the spare of {p.region} is unreachable or down")
            return True
        if await self.restored(route, down):
            await self._assign(route, "")
            await stores.release_spare(self.cp.spare(p.region))
            await self._change(p.home, p, None)
            self.event("released", p.home, f"the spare of {p.region}: the mirror is back in sync")
            return True
        if await self._follow(route, p):
            await self._assign(route, p.region)
        return False

    async def _assign(self, route: Route, region: str) -> None:
        """Make `region`'s spare the standby the route names for the next failover (""
        gives it back to the topology's mirror). Only an in-sync spare is named: a
        promotion must not pick a copy that has not caught up yet."""
        if route.standby != region:
            await self.cp.routing.restandby(route, region, [self.guard()] if self.guard else [])
            self.event(
                "standby", route.home,
                f"next failover promotes the spare of {region}" if region
                else "next failover promotes the mirror again",
            )  # fmt: skip

    async def _follow(self, route: Route, p: Protection) -> bool:
        """Point the spare at the copy the route names when it replicates nothing (it
        restarted empty) or its link is down (the copy it followed is gone), and mark it
        in sync once it is. A spare that is linked up stays put: after a failback's
        switch it replicates the mirror, which replicates the primary, until release."""
        spare = self.cp.spare(p.region)
        want = store_address(self.topology, route, p.region)
        state = await stores.replication(spare)
        if state.role != "slave" or (not state.link_up and await stores.upstream(spare) != want):
            await stores.make_replica(spare, *want)
            p = await self._record(p, replace(p, state="syncing", serving=route.serving,
                                              copy=route.copy, epoch=route.epoch))  # fmt: skip
            self.event("repointed", p.home, f"the spare of {p.region} follows {route.serving}")
        if p.state == "syncing" and await stores.wait_caught_up(
            spare, self.cp.store(route), self.sync_s
        ):
            p = await self._record(p, replace(p, state="in-sync", synced_at=time.time()))
        return p.state == "in-sync"

    async def _record(self, old: Protection, new: Protection) -> Protection:
        await self._change(old.home, old, new)
        return new

    async def _pick(self, route: Route, down: set[str], taken: set[str]) -> str | None:
        reachable = [
            region
            for region in candidates(self.topology, route, down, taken)
            if await stores.reachable(self.cp.spare(region))
        ]
        if len(reachable) < 2 or self.capacity_model is None:
            return reachable[0] if reachable else None
        if not self.topology.capacity_policy.check:
            return reachable[0]
        verdicts = []
        for region in reachable:
            decision = await capacity.decide(
                self.cp.etcd, self.topology, route.home, region, self.capacity_model,
                served_by=route.serving,
            )  # fmt: skip
            verdicts.append(f"{region}: {decision.verdict}")
            if decision.verdict == "ok":
                if region != reachable[0]:
                    self.event(
                        "spare-chosen", route.home,
                        f"{region} can absorb it ({'; '.join(verdicts)}): its spare, not "
                        f"{reachable[0]}'s (ring order)",
                    )  # fmt: skip
                return region
        return reachable[0]

    async def protect(self, route: Route, region: str) -> bool:
        """Lend `region`'s spare to `route.home`; True once it has caught up."""
        home = route.home
        spare_at = self.topology.region(region).redis.spare or ""
        p = Protection(
            home, region, spare_at, route.serving, route.copy, route.epoch, "syncing", time.time()
        )
        await self._change(home, None, p)
        host, port = store_address(self.topology, route, region)
        spare = self.cp.spare(region)
        await stores.make_replica(spare, host, port)
        started = time.monotonic()
        synced = await stores.wait_caught_up(spare, self.cp.store(route), self.sync_s)
        if synced:
            await self._record(p, replace(p, state="in-sync", synced_at=time.time()))
            await self._assign(route, region)
        self.event(
            "protected",
            home,
            f"spare of {region} ({spare_at}) replicates {home}'s {route.copy} in "
            f"{route.serving} via {host}:{port}; "
            + (f"in sync after {time.monotonic() - started:.2f}s" if synced else "still syncing"),
        )
        return synced

    async def restored(self, route: Route, down: set[str]) -> bool:
        """Is `route.home` back on its original placement: served by its own primary,
        whose mirror is an online replica that has caught up?"""
        region = self.topology.region(route.home)
        if route.copy != "primary" or route.serving != route.home or region.standby in down:
            return False
        primary = self.cp.primary(route.home)
        mirror_port = split_address(region.redis.mirror or "")[1]
        online = [f for f in await stores.followers(primary) if f.state == "online"]
        if not any(f.port == mirror_port for f in online):
            return False
        return await stores.wait_caught_up(self.cp.mirror(route.home), primary, RESTORED_S)

    async def _free_strays(self, kept: dict[str, Protection], down: set[str]) -> None:
        """Release spares that replicate with no record (their protection was dropped
        while their region was cut off, and the region is back)."""
        lent = {p.region for p in kept.values()}
        for region in self.topology.regions:
            if region.redis.spare is None or region.name in lent or region.name in down:
                continue
            spare = self.cp.spare(region.name)
            try:
                stray = await stores.upstream(spare) is not None
            except (RedisError, OSError, TimeoutError):
                continue  # unreachable: judged at the next check
            if stray:
                await stores.release_spare(spare)
                self.event("released", "-", f"the spare of {region.name}: replicated unrecorded")
