"""Failover and failback of a home region, step by step.

**Promote** `home` to its standby `to` (docs/multi-region.md, "Promotion"):

1. bump `home`'s epoch in etcd and point its route at `to` (one guarded transaction);
2. write the new epoch into every partition of the old home's primary, when it can still
   be reached: from then on its enqueue script refuses the old epoch (FENCED);
3. promote the mirror (`REPLICAOF NO ONE`), after letting it catch up when the old home
   is still reachable (a manual promotion loses nothing), raise its epochs too, and
   break the leases it replicated (their owners are dead or fenced), so the standby's
   workers own the partitions at their first step;
   the stream tail of every partition at that moment is the *promotion point*, kept in
   etcd for failback;
4. gateways and agents watching the routing table now send `home`'s keys to `to`, whose
   agent runs `home`'s partitions from the promoted mirror; pending entries came with
   the replica and run first, in order (the engine's lease takeover).

**Failback** of `home` once it is reachable again:

1. find its *orphans*: stream entries beyond the promotion point on the old primary that
   the serving copy never received (checked by task id against the serving copy's dedup
   keys) and the old primary's workers did not finish (not acked in its consumer group);
2. re-enqueue them into the serving copy, under the current epoch, recorded in etcd as
   recovered and reported;
3. only then make the old primary a replica of the serving copy and wait until in sync;
4. switch back (`switch=True`): a new epoch routes `home` to itself, the mirror is fenced,
   the old primary is promoted after catching up, and the mirror replicates it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, cast

from homeport.core.entry import Delivery
from homeport.core.keys import GROUP, PartitionKeys
from homeport.core.security import Identity
from homeport.regions import clusterorphans, clusterpromotion, history, stores
from homeport.regions.control import ControlPlane
from homeport.regions.errors import RegionsError
from homeport.regions.routing import Route, next_standby, store_address
from redis.exceptions import RedisError

Say = Callable[[str], None]
CATCH_UP_S = 5.0


class PromotionError(RegionsError):
    """A promotion or failback cannot proceed; the message says why and what to do."""


@dataclass
class PromotionReport:
    home: str
    to: str
    old_epoch: int
    new_epoch: int
    old_home_fenced: bool
    mirror_caught_up: bool | None
    promotion_point: dict[int, str]
    seconds: float
    steps: list[str] = field(default_factory=list)


@dataclass
class Orphan:
    """A write only the old home holds: a stream entry (`entry_id`), or a scheduled task
    still in its delayed set (`entry_id` = "delayed")."""

    partition: int
    entry_id: str
    task_id: str
    key: str
    kind: str
    delivery: Delivery = field(repr=False, compare=False)

    def describe(self) -> dict[str, object]:
        return {
            "partition": self.partition, "entry_id": self.entry_id, "task_id": self.task_id,
            "key": self.key, "kind": self.kind,
        }  # fmt: skip


@dataclass
class FailbackReport:
    home: str
    orphans: list[Orphan]
    requeued: int
    in_sync: bool
    switched: bool
    epoch: int
    steps: list[str] = field(default_factory=list)


def _stepper(say: Say, steps: list[str]) -> Say:
    def step(message: str) -> None:
        steps.append(message)
        say(message)

    return step


async def _guards(guard: Callable[[], object] | None) -> list[object]:
    return [guard()] if guard is not None else []


async def promote(
    cp: ControlPlane,
    home: str,
    to: str | None = None,
    *,
    reason: str = "manual",
    say: Say = lambda _m: None,
    guard: Callable[[], object] | None = None,
    capacity: dict[str, Any] | None = None,
) -> PromotionReport:
    """Fail `home` over to the copy its route names next (`routing.next_standby`): its
    mirror while it serves itself, or the spare re-protection made its standby, also
    when it is failed over already and the serving copy is lost in turn. `capacity`:
    the controller's capacity decision, kept in the failover history record."""
    started = time.monotonic()
    region = cp.topology.region(home)
    route = (await cp.routing.load()).route(home)
    target = next_standby(cp.topology, route)
    if target is None:
        raise PromotionError(
            f"{home} is already served by {route.serving} (epoch {route.epoch}, {route.state}) "
            f"and no spare protects that copy; run `homeport region failback {home}` first"
        )
    to_region, copy = target
    if to is not None and to != to_region:
        raise PromotionError(
            f"{home}'s data is replicated to {to_region!r} ({copy}) only; promote it --to "
            f"{to_region}, not {to!r}"
        )
    steps: list[str] = []
    step = _stepper(say, steps)
    new = await cp.routing.move(
        route, serving=to_region, copy=copy, state="failed-over", reason=reason,
        guards=await _guards(guard),
    )  # fmt: skip
    step(f"1. etcd: {home} epoch {route.epoch} -> {new.epoch}, now served by {to_region} ({copy})")
    if region.redis.mode == "cluster":
        fenced, caught_up, point = await clusterpromotion.promote_mirrors(
            cp, home, new.epoch, step, lambda tails: _keep_point(cp, home, new, to_region, tails)
        )
    else:
        fenced, caught_up, point = await _promote_single(cp, home, route, new, step)
    step(f"4. clients redirected: {to_region}'s gateways accept {home}'s keys at epoch {new.epoch}")
    seconds = time.monotonic() - started
    await history.record(cp.etcd, cp.topology.etcd_prefix, history.FailoverEvent(
        "promote", home, route.serving, to_region, route.epoch, new.epoch, time.time() - seconds,
        seconds, reason, 0, steps, capacity,
    ))  # fmt: skip
    return PromotionReport(
        home, to_region, route.epoch, new.epoch, fenced, caught_up, point, seconds, steps
    )


async def _keep_point(
    cp: ControlPlane, home: str, new: Route, to: str, tails: dict[int, str]
) -> None:
    """Keep the promotion point in etcd for failback (`find_orphans`)."""
    await cp.etcd.put(
        cp.prefix("promotions", home, str(new.epoch)),
        json.dumps({"to": to, "at": time.time(), "tails": tails}).encode(),
    )


async def _promote_single(
    cp: ControlPlane, home: str, route: Route, new: Route, step: Say
) -> tuple[bool, bool | None, dict[int, str]]:
    """Steps 2-3 for a single primary; (old home fenced, mirror caught up, point)."""
    region = cp.topology.region(home)
    copy, to_region = new.copy, new.serving
    old, standby = cp.store(route), cp.store(new)
    fenced = False
    if await stores.reachable(old):
        try:
            await stores.fence(old, home, region.partitions, new.epoch)
            fenced = True
            step(f"2. fenced the copy that served {home}: epoch < {new.epoch} is refused")
        except (RedisError, OSError) as exc:
            step(f"2. could not fence the serving copy ({exc}); gateway leases fence it")
    else:
        step("2. serving copy unreachable: its gateways stopped writing when their leases lapsed")
    caught_up: bool | None = None
    if fenced:
        caught_up = await stores.wait_caught_up(standby, old, CATCH_UP_S)
        step(f"3a. {copy} caught up with the copy that served {home}: {caught_up}")
    point = await stores.stream_tails(standby, home, region.partitions)
    await _keep_point(cp, home, new, to_region, point)
    await stores.make_primary(standby)
    # Leases broken before the epoch is raised: the raised epoch is what wakes the parked
    # workers (core.worker.wait_for_promotion), and they must find no dead owner's lease,
    # and keep the registrations they make at once.
    await stores.reset_ownership(standby, home, region.partitions)
    await stores.fence(standby, home, region.partitions, new.epoch)
    step(
        f"3. promoted {home}'s {copy} in {to_region}: REPLICAOF NO ONE, epochs set to "
        f"{new.epoch}, the old owners' leases broken"
    )
    return fenced, caught_up, point


async def find_orphans(
    old: stores.Store,
    serving: stores.Store,
    home: str,
    partitions: int,
    point: dict[int, str],
    only: Collection[int] | None = None,
) -> list[Orphan]:
    """Writes on the old primary that the serving copy has never seen (no dedup key there):
    stream entries past the promotion point, and scheduled tasks in the delayed set.
    Entries the old home's workers already ran are done, not orphans: trimmed, or acked
    in the consumer group and not trimmed yet (an isolated home's workers keep running
    what its gateway accepted until their leases lapse); a begun, unfinished entry is
    still pending there and is an orphan.
    `only`: the partitions `old` holds (a held cluster node holds its own shard's)."""
    orphans: list[Orphan] = []
    for p in range(partitions):
        if only is not None and p not in only:
            continue
        pk = PartitionKeys(home, p)
        start = point.get(p, "0-0")
        found: list[tuple[str, Delivery | None]] = []
        at_old = stores.node_for(old, pk.stream)  # a partition's keys share one slot
        done = await stores.finished(old, pk.stream, GROUP)
        for entry_id, fields in await at_old.xrange(pk.stream, min=f"({start}", max="+") or []:
            d = Delivery.decode(cast(bytes, entry_id), cast(dict[bytes, bytes], fields))
            found.append((d.entry_id if d else "", d))
        for blob in (await at_old.hgetall(pk.delayed_data)).values():
            found.append(("delayed", Delivery.decode("0-0", {b"t": cast(bytes, blob)})))
        for entry_id, d in found:
            if d is None:  # stream entries are past `start` already (XRANGE from "(start")
                continue
            if entry_id != "delayed" and done(entry_id):
                continue  # the old home's workers finished it: running it again is a duplicate
            if await stores.node_for(serving, pk.stream).exists(pk.dedup(d.task_id)):
                continue
            orphans.append(Orphan(p, entry_id, d.task_id, d.key, d.kind, d))
    return orphans


async def _requeue(cp: ControlPlane, route: Route, orphans: list[Orphan]) -> int:
    """Enqueue `orphans` into the serving copy, under the route's epoch, keeping their
    schedule. The enqueue script's dedup makes a repeated failback harmless."""
    from homeport.core.broker import Broker
    from homeport.core.producer import Producer
    from homeport.core.settings import Settings
    from homeport.core.task import Durability, Task

    if not orphans:
        return 0
    region = cp.topology.region(route.home)
    host, port = (cp.store(route).connection_pool.connection_kwargs[k] for k in ("host", "port"))
    broker = Broker(
        f"redis://{host}:{port}/0",
        cluster=region.redis.mode == "cluster",
        identity=Identity.of(cp.topology.security),
    )
    await broker.connect()
    try:
        producer = Producer(broker, Settings(region=route.home, partitions=region.partitions))
        tasks = []
        for orphan in orphans:
            d = orphan.delivery
            tasks.append(
                Task(
                    id=d.task_id, partition_key=d.key, kind=d.kind, payload=d.payload,
                    scheduled_at=d.scheduled_ms / 1000 if d.scheduled_ms else None,
                    durability=Durability.LOCAL, max_attempts=d.max_attempts,
                    deadline=d.deadline_ms / 1000 if d.deadline_ms else None,
                )
            )  # fmt: skip
        results = await producer.submit_many(tasks, route.epoch)
        failed = [r for r in results if not r.ok]
        if failed:
            raise PromotionError(
                f"{len(failed)} orphans could not be re-enqueued (first: {failed[0].error}); "
                "nothing was switched, run failback again"
            )
        return len(results)
    finally:
        await broker.close()


async def _recover(
    cp: ControlPlane,
    route: Route,
    old: stores.Store,
    serving: stores.Store,
    step: Say,
    only: Collection[int] | None = None,
) -> tuple[list[Orphan], int]:
    """Failback steps 1-2: find the orphans on the old home's copy, re-enqueue them into
    the serving copy and record them in etcd."""
    home = route.home
    raw = await cp.etcd.get(cp.prefix("promotions", home, str(route.epoch)))
    point = {int(k): v for k, v in json.loads(raw.value)["tails"].items()} if raw else {}
    partitions = cp.topology.region(home).partitions
    orphans = await find_orphans(old, serving, home, partitions, point, only)
    step(f"1. {len(orphans)} orphans on {home}'s old primary (entries the {route.copy} never got)")
    requeued = await _requeue(cp, route, orphans)
    if orphans:
        await cp.etcd.put(
            cp.prefix("orphans", home, str(route.epoch)),
            json.dumps([o.describe() for o in orphans]).encode(),
        )
    step(f"2. re-enqueued {requeued} recovered orphans into {route.serving} at epoch {route.epoch}")
    return orphans, requeued


async def _fail_back_cluster(
    cp: ControlPlane, route: Route, step: Say
) -> tuple[list[Orphan], int, bool]:
    """Failback steps 1-3 for a Cluster-mode home (`regions.clusterpromotion`): orphans
    looked for shard by shard on the home's nodes, which rejoin as replicas on their own."""
    old, serving = clusterpromotion.copies(cp, route.home)
    try:
        if not await old.reachable():
            raise PromotionError(
                f"{route.home}'s nodes are not all reachable yet; fail back once they are"
            )
        await serving.refresh()
        held = await clusterorphans.held(old)
        if held:  # read their shards before they may rejoin (regions.clusterorphans)
            async with old.readable_while_down():
                await old.refresh()
                only = clusterorphans.partitions_held(
                    old, route.home, cp.topology.region(route.home).partitions, held
                )
                orphans, requeued = await _recover(cp, route, old, serving, step, only)
            await clusterorphans.release(cp, route.home, old, serving, held, step)
        else:
            await old.refresh()
            orphans, requeued = await _recover(cp, route, old, serving, step)
    finally:
        await old.close()
        await serving.close()
    return orphans, requeued, await clusterpromotion.rejoined(cp, route.home, step)


async def failback(
    cp: ControlPlane,
    home: str,
    *,
    switch: bool = False,
    say: Say = lambda _m: None,
    guard: Callable[[], object] | None = None,
) -> FailbackReport:
    started = time.monotonic()
    region = cp.topology.region(home)
    route = (await cp.routing.load()).route(home)
    if route.copy == "primary":
        raise PromotionError(
            f"{home} is served from its own primary (epoch {route.epoch}); nothing to fail back"
        )
    steps: list[str] = []
    step = _stepper(say, steps)
    if region.redis.mode == "cluster":
        orphans, requeued, in_sync = await _fail_back_cluster(cp, route, step)
    else:
        old = cp.primary(home)
        if not await stores.reachable(old):
            raise PromotionError(f"{home}'s old primary is not reachable yet; fail back once it is")
        serving = cp.store(route)
        orphans, requeued = await _recover(cp, route, old, serving, step)
        await stores.make_replica(old, *store_address(cp.topology, route, home))
        in_sync = await stores.wait_caught_up(old, serving, 30.0)
        step(f"3. {home}'s old primary now replicates the serving copy; in sync: {in_sync}")
    epoch = route.epoch
    if switch:
        if not in_sync:
            raise PromotionError(
                f"{home} is not in sync with the serving copy yet; retry the switch"
            )
        epoch = await switch_back(cp, home, step, guard)
        seconds = time.monotonic() - started
        await history.record(cp.etcd, cp.topology.etcd_prefix, history.FailoverEvent(
            "failback", home, route.serving, home, route.epoch, epoch, time.time() - seconds,
            seconds, "failback", len(orphans), steps,
        ))  # fmt: skip
    return FailbackReport(home, orphans, requeued, in_sync, switch, epoch, steps)


async def switch_back(
    cp: ControlPlane, home: str, step: Say, guard: Callable[[], object] | None = None
) -> int:
    region = cp.topology.region(home)
    route = (await cp.routing.load()).route(home)
    new = await cp.routing.move(
        route, serving=home, copy="primary", state="normal", reason="failback",
        guards=await _guards(guard),
    )  # fmt: skip
    step(f"4. etcd: {home} epoch {route.epoch} -> {new.epoch}, served by {home} again")
    if region.redis.mode == "cluster":
        await clusterpromotion.switch_home(cp, home, new.epoch, step)
        return new.epoch
    old, serving = cp.primary(home), cp.store(route)
    await stores.fence(serving, home, region.partitions, new.epoch)
    caught_up = await stores.wait_caught_up(old, serving, CATCH_UP_S)
    await stores.make_primary(old)
    await stores.reset_ownership(old, home, region.partitions)  # before the wake-up fence
    await stores.fence(old, home, region.partitions, new.epoch)
    step(f"5. fenced the {route.copy} in {route.serving}, promoted {home}'s primary "
         f"(caught up: {caught_up})")  # fmt: skip
    primary_at = cp.topology.dial(region.standby or home, home, "redis", region.redis.primary or "")
    host, _, port = primary_at.rpartition(":")
    mirror = cp.mirror(home)
    try:
        await stores.make_replica(mirror, host, int(port))
        step(f"6. the mirror in {region.standby} replicates {home}'s primary again")
    except (RedisError, OSError) as exc:
        if route.copy == "mirror":
            raise  # the mirror served: it is up, and must follow the primary now
        step(f"6. the mirror in {region.standby} is not reachable yet ({exc}); the "
             "controller's re-protection covers the primary until it is")  # fmt: skip
    return new.epoch
