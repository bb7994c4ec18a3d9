"""Re-protection (regions.protection) on the whole system: real Redis, etcd, Toxiproxy,
gateways, agents and workers.

After every process of us-east is killed, GLOBAL submits of us-east (failed over to
eu-west) and of ap-south (whose mirror lived in us-east) must be acknowledged again
without failback, because the controller lends each a spare of a surviving region; after
us-east returns and fails back, the spares are free again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aredis
from homeport.loadtest.demo import (
    DURABILITIES,
    Op,
    _drive,
    _failback_when_back,
    _records,
    _wait_ready,
)
from homeport.regions import protection, servers, stores
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.placement import home_region
from homeport.regions.promotion import promote
from homeport.regions.protection import Protector, candidates, needs_protection
from homeport.regions.routing import Route, next_standby, store_address
from homeport.regions.statusview import region_rows as _status
from homeport.regions.topology import Topology, split_address
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.errors import GatewayError
from homeport.router.etcd_routing import EtcdRoutingTable

from tests.conftest import _start, record_statuses, sdk_for, start_services, wait_for

LOST, SURVIVOR, THIRD = "us-east", "eu-west", "ap-south"
BOUND_S = 60.0  # issue 13: region loss -> GLOBAL acknowledged again, every home
RPO_S = 1.0  # LOCAL tasks acknowledged this long before their primary died may be lost


# ---- the choice of home and spare, on the local cluster's topology (no servers) --------


@pytest.fixture(scope="module")
def ring() -> Topology:
    from homeport.chaos.catalog import _dry_topology

    return _dry_topology(3)


def test_homes_that_lost_their_cross_region_replica_need_protection(ring: Topology) -> None:
    down = {LOST}
    failed_over = Route(LOST, SURVIVOR, 2, copy="mirror", state="failed-over")
    assert needs_protection(ring, failed_over, down)
    # ap-south's mirror lived in us-east.
    assert needs_protection(ring, Route(THIRD, THIRD, 1), down)
    # eu-west's mirror lives in ap-south: untouched.
    assert not needs_protection(ring, Route(SURVIVOR, SURVIVOR, 1), down)
    # A manual promotion with the home healthy keeps the old primary for failback.
    assert not needs_protection(ring, failed_over, set())
    # A serving copy that is down needs a promotion first, not a replica.
    assert not needs_protection(ring, Route(LOST, LOST, 1), {LOST, SURVIVOR})


def test_spare_is_never_taken_from_the_serving_or_a_lost_region_nor_twice(ring: Topology) -> None:
    down = {LOST}
    assert candidates(ring, Route(LOST, SURVIVOR, 2, copy="mirror"), down, set()) == [THIRD]
    assert candidates(ring, Route(THIRD, THIRD, 1), down, set()) == [SURVIVOR]
    assert candidates(ring, Route(THIRD, THIRD, 1), down, {SURVIVOR}) == []


def test_the_next_failover_promotes_the_spare_the_route_names(ring: Topology) -> None:
    home = Route(LOST, LOST, 1)
    assert next_standby(ring, home) == (SURVIVOR, "mirror")
    assert next_standby(ring, replace(home, standby=THIRD)) == (THIRD, "spare")
    failed_over = Route(LOST, SURVIVOR, 2, copy="mirror", state="failed-over")
    assert next_standby(ring, failed_over) is None, "nothing left to promote"
    assert next_standby(ring, replace(failed_over, standby=THIRD)) == (THIRD, "spare")
    # A promoted spare is dialled directly, from any region.
    on_spare = Route(LOST, THIRD, 3, copy="spare", state="failed-over")
    spare = ring.region(THIRD).redis.spare or ""
    assert store_address(ring, on_spare, LOST) == split_address(spare)


# ---- one protector step at a time, on real servers (no agents) --------------------------


@pytest.fixture(scope="module")
def bare(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    yield from _start(ClusterSpec.default(3, partitions=4), "protect", state_dir_factory)


async def _replicates(cp: ControlPlane, region: str, key: str) -> bool:
    return await cp.spare(region).get(key) == b"1"


async def test_protector_drops_a_lost_spare_frees_strays_and_releases_when_restored(
    bare: DevCluster,
) -> None:
    """`down` is given by hand here (the controller takes it from the quorum): us-east
    lost, then eu-west too, then both back. Replication and etcd are real."""
    topo = bare.topology
    cp = await ControlPlane.open(topo, SURVIVOR)
    events: list[tuple[str, str]] = []
    protector = Protector(cp, event=lambda k, h, _d: events.append((k, h)), check_s=0)
    try:
        table = await cp.routing.bootstrap(topo)
        await protector.run_once(table, {LOST})
        lent = await protection.load(cp)
        assert {h: (p.region, p.state) for h, p in lent.items()} == {THIRD: (SURVIVOR, "in-sync")}
        key = "hp:{ap-south}:protection-probe"
        await cp.primary(THIRD).set(key, "1")
        await wait_for(lambda: _replicates(cp, SURVIVOR, key), 10, "the spare to replicate")

        # The spare's region is lost as well: dropped, and no other spare is free.
        await protector.run_once(table, {LOST, SURVIVOR})
        assert await protection.load(cp) == {}
        assert [e for e in events if e[0] in ("dropped", "unprotected")] == [
            ("dropped", THIRD), ("unprotected", THIRD),
        ]  # fmt: skip
        assert await stores.upstream(cp.spare(SURVIVOR)) is not None, "a stray now"

        # eu-west is back: its stray spare is freed, then lent again (us-east still down).
        await protector.run_once(table, {LOST})
        assert ("released", "-") in events
        assert {h: p.region for h, p in (await protection.load(cp)).items()} == {THIRD: SURVIVOR}
        await wait_for(lambda: _replicates(cp, SURVIVOR, key), 10, "the spare to resync")

        # us-east is back and ap-south's mirror never stopped: the spare is released.
        await protector.run_once(table, set())
        assert await protection.load(cp) == {}
        assert events[-1] == ("released", THIRD)
        assert await _free(topo, SURVIVOR)
    finally:
        await cp.close()


# ---- the whole system ------------------------------------------------------------------


@pytest.fixture(scope="module")
def system(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    yield from start_services("reprotect", state_dir_factory, workers=1)


@pytest.fixture
async def client(system: DevCluster) -> AsyncIterator[AsyncClient]:
    async with sdk_for(system) as client:
        yield client


def _spare(topo: Topology, region: str) -> aredis.Redis:
    host, port = split_address(topo.region(region).redis.spare or "")
    return stores.client(host, port)


async def _free(topo: Topology, region: str) -> bool:
    spare = _spare(topo, region)
    try:
        return await stores.upstream(spare) is None and await stores.dbsize(spare) == 0
    finally:
        await spare.aclose()


def _acked_since(ops: list[Op], since: float) -> int:
    return sum(1 for o in ops if o.acked is not None and o.sent > since)


def _global_back(ops: list[Op], home: str, since: float) -> float | None:
    """Seconds from `since` to the ack of the first GLOBAL submit of `home` sent after
    `since` and after every failed GLOBAL submit of `home` (None: not acknowledged again
    yet). A submit fails only once the SDK's retries are spent."""
    mine = [o for o in ops if o.home == home and o.durability == "GLOBAL"]
    mark = max([since] + [o.sent for o in mine if o.error is not None])
    acked = [o.acked for o in mine if o.sent >= mark and o.acked is not None]
    return min(acked) - since if acked else None


async def _assert_spares_replicate_serving_copies(
    topo: Topology, lent: dict[str, protection.Protection]
) -> None:
    """The fault path ran: each lent spare is a replica of its home's serving copy,
    linked up, dialled through the link from the spare's region."""
    for home, p in lent.items():
        spare = _spare(topo, p.region)
        try:
            info = await spare.info("replication")
        finally:
            await spare.aclose()
        assert info["role"] == "slave" and info["master_link_status"] == "up", info
        via = f"{info['master_host']}:{info['master_port']}"
        service = "mirror" if p.copy == "mirror" else "redis"
        link = topo.link(f"{p.region}->{p.serving}:{service}")
        assert link is not None and link.listen == via
        region = topo.region(home).redis
        assert link.upstream == (region.mirror if p.copy == "mirror" else region.primary)


async def _return_and_fail_back(system: DevCluster, plane: ControlPlane, names: list[str]) -> None:
    """Restart the lost region's processes (Redis empty) and, once its gateway listens
    again (as an operator would wait for), fail it back with the switch."""
    topo = system.topology
    system.restart(names)

    async def gateway_back() -> bool:
        with contextlib.suppress(OSError):
            return servers.tcp_probe(split_address(topo.region(LOST).gateway or "")[1])
        return False

    await wait_for(gateway_back, 90, f"{LOST}'s gateway to listen again")
    report = await _failback_when_back(plane, LOST, lambda _m: None)
    assert report.switched and report.in_sync


async def _global_acked(topo: Topology, keys: dict[str, str]) -> bool:
    """One GLOBAL submit per home (`keys`: home -> a key of it), through a fresh client."""
    table = await EtcdRoutingTable.open(topo)
    fresh = AsyncClient(table, timeout=2.0, retry=RetryPolicy(attempts=3))
    try:
        for key in keys.values():
            await fresh.submit("noop", key, durability="GLOBAL")
        return True
    except GatewayError as exc:
        print(f"GLOBAL after failback not yet: {exc}")
        return False
    finally:
        await fresh.close()
        await table.close()


@pytest.mark.timeout(420)
async def test_region_loss_reprotects_every_home_and_failback_frees_the_spares(
    system: DevCluster, client: AsyncClient
) -> None:
    topo = system.topology
    keys = [f"account-{i}" for i in range(36)]  # the demo's load: 36 keys, 50 ms apart
    homes = {k: home_region(k, topo) for k in keys}
    assert {homes[k] for k in keys} == {LOST, SURVIVOR, THIRD}
    assert {homes[k] for i, k in enumerate(keys) if DURABILITIES[i % 3] == "GLOBAL"} >= {
        LOST, THIRD
    }  # fmt: skip
    await _wait_ready(client, topo, keys)  # a probe task per region has run
    for region in topo.region_names():
        assert await _free(topo, region), f"{region}'s spare is in use before any fault"

    ops: list[Op] = []
    stop = asyncio.Event()
    drivers = [
        asyncio.create_task(_drive(client, k, DURABILITIES[i % 3], homes[k], ops, stop, 0.05))
        for i, k in enumerate(keys)
    ]
    plane = await ControlPlane.open(topo, SURVIVOR)
    try:
        t0 = time.monotonic()
        await wait_for(lambda: _acked_since(ops, t0) >= 100, 30, "load acknowledged")
        victims = [r for r in system.records() if r.region == LOST]
        assert f"redis-{LOST}-spare" in {r.name for r in victims}
        killed_at = time.monotonic()
        for record in victims:
            os.killpg(record.pid, signal.SIGKILL)

        # GLOBAL acknowledged again for both homes that lost their cross-region replica.
        async def global_back() -> bool:
            return all(_global_back(ops, h, killed_at) is not None for h in (LOST, THIRD))

        await wait_for(global_back, BOUND_S + 30, "GLOBAL submits of us-east and ap-south")
        await asyncio.sleep(5)  # and they stay acknowledged: a later refusal moves the mark
        back = {h: _global_back(ops, h, killed_at) for h in (LOST, SURVIVOR, THIRD)}
        print(f"\nregion loss -> GLOBAL acknowledged again: {back}")
        for home in (LOST, THIRD):
            seconds = back[home]
            assert seconds is not None and seconds <= BOUND_S, (home, seconds)

        # The fault path ran: each spare replicates the serving copy through its link.
        lent = await protection.load(plane)
        assert {h: (p.region, p.serving, p.copy) for h, p in lent.items()} == {
            LOST: (THIRD, SURVIVOR, "mirror"),
            THIRD: (SURVIVOR, THIRD, "primary"),
        }
        await _assert_spares_replicate_serving_copies(topo, lent)
        rows = {r["home"]: r for r in await _status(topo)}
        assert rows[LOST]["protection"]["region"] == THIRD
        assert rows[THIRD]["protection"]["region"] == SURVIVOR
        assert rows[SURVIVOR]["protection"] is None

        # The region returns; failback restores the original placement and frees both.
        await _return_and_fail_back(system, plane, [r.name for r in victims])

        async def spares_free() -> bool:
            if await protection.load(plane):
                return False
            return all([await _free(topo, r) for r in (THIRD, SURVIVOR)])

        await wait_for(spares_free, 60, "both spares released after failback")
        t1 = time.monotonic()
        await wait_for(lambda: _acked_since(ops, t1) >= 50, 30, "load acknowledged after release")
        stop.set()
        await asyncio.gather(*drivers)
    finally:
        stop.set()
        await plane.close()

    # GLOBAL works on the original placement, for every home, with the spares free. A
    # fresh client per try, bounded: right after the failback the driving client's gRPC
    # channel to us-east's restarted gateway may still sit in gRPC's reconnect backoff
    # from the outage, and that gateway was seen refusing connections for some seconds
    # after its restart; neither says anything about the placement (reported apart).
    one_key = {h: next(k for k in keys if homes[k] == h) for h in (LOST, SURVIVOR, THIRD)}
    await wait_for(
        lambda: _global_acked(topo, one_key), 60, "GLOBAL submits of every home after failback"
    )
    assert await spares_free()

    # Nothing acknowledged GLOBAL was lost, the spares' stretch included.
    acked_global = [o for o in ops if o.durability == "GLOBAL" and o.acked is not None]

    async def global_ran() -> bool:
        status, _ = await _records(topo)
        return all(status.get(o.task_id) == "succeeded" for o in acked_global)

    await wait_for(global_ran, 120, "every acknowledged GLOBAL task to run")


# ---- a second failover, onto the spare: the standby assignment moves with protection ----


async def _parked_on(system: DevCluster, region: str, home: str) -> bool:
    """Does `region`'s agent run a worker of `home` parked (a warm standby), started and
    waiting for its promotion?"""
    path = system.logs / f"workers-{region}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    return any(
        r["home"] == home and r["parked"] and r["alive"]
        and "parked: waiting" in Path(r["log"]).read_text()
        for r in rows
    )  # fmt: skip


@pytest.mark.timeout(420)
async def test_a_reprotected_home_fails_over_to_its_spare_and_fails_back_home(
    system: DevCluster, client: AsyncClient
) -> None:
    """eu-west, which hosts us-east's mirror, is lost: us-east keeps its primary, and the
    controller makes ap-south's spare its cross-region replica *and* its standby in the
    routing table. Then us-east's primary dies too. With one region lost, the two left
    cannot reach a quorum of three (docs/recovery.md), so the operator promotes, as
    `region promote` is run: the spare, not the lost mirror, is promoted, and its parked
    workers run us-east's tasks. Failback restores the original placement."""
    topo = system.topology
    keys = [f"spare-{i}" for i in range(200)]
    mine = [k for k in keys if home_region(k, topo) == LOST][:12]
    assert len(mine) >= 6
    await _wait_ready(client, topo, mine)
    ops: list[Op] = []
    stop = asyncio.Event()
    # Half the keys LOCAL, half GLOBAL: the two ends of what an acknowledgement promises.
    durability = {k: ("GLOBAL" if i % 2 else "LOCAL") for i, k in enumerate(mine)}
    drivers = [
        asyncio.create_task(_drive(client, k, durability[k], LOST, ops, stop, 0.05)) for k in mine
    ]
    plane = await ControlPlane.open(topo, THIRD)
    try:
        t0 = time.monotonic()
        await wait_for(lambda: _acked_since(ops, t0) >= 40, 30, f"{LOST}'s load acknowledged")
        lost = [r for r in system.records() if r.region == SURVIVOR]
        for record in lost:
            os.killpg(record.pid, signal.SIGKILL)

        async def spare_is_standby() -> bool:
            with contextlib.suppress(Exception):  # etcd re-elects without eu-west's member
                route = (await plane.routing.load()).route(LOST)
                lent = (await protection.load(plane)).get(LOST)
                return route.standby == THIRD and lent is not None and lent.state == "in-sync"
            return False

        await wait_for(spare_is_standby, 90, f"{THIRD}'s spare to become {LOST}'s standby")
        assert {r["home"]: r["next_failover"] for r in await _status(topo)}[LOST] == (
            f"{THIRD} (spare)"
        )
        await wait_for(lambda: _parked_on(system, THIRD, LOST), 30, "workers parked on the spare")

        # us-east's primary dies as well; the operator promotes (no quorum is left).
        primary = next(r for r in system.records() if r.name == f"redis-{LOST}-primary")
        os.killpg(primary.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        report = await promote(plane, LOST, reason="operator: second failover")
        promoted_at = time.monotonic()
        assert report.to == THIRD
        route = (await plane.routing.load()).route(LOST)
        assert (route.serving, route.copy, route.epoch) == (THIRD, "spare", report.new_epoch)
        assert (await stores.replication(plane.spare(THIRD))).role == "master"

        async def ran_after_promotion() -> bool:
            fresh = [o for o in ops if o.acked is not None and o.sent > promoted_at]
            status = await record_statuses(topo, LOST)
            return any(status.get(o.task_id) == "succeeded" for o in fresh)

        first_run = await wait_for(ran_after_promotion, 30, f"{LOST}'s tasks to run on the spare")
        acks = [o.acked for o in ops if o.acked is not None and o.sent > promoted_at]
        print(
            f"\nprimary killed -> promoted {promoted_at - killed_at:.2f}s "
            f"(promotion {report.seconds:.2f}s), first ack {min(acks) - killed_at:.2f}s, "
            f"first run seen {first_run - killed_at:.2f}s"
        )

        # Both come back; failback restores the original placement and the mirror.
        system.restart([r.name for r in lost] + [primary.name])
        failed_back = await _failback_when_back(plane, LOST, lambda _m: None)
        assert failed_back.switched and failed_back.in_sync

        async def original_placement() -> bool:
            route = (await plane.routing.load()).route(LOST)
            lent = await protection.load(plane)
            placed = (route.serving, route.copy, route.standby) == (LOST, "primary", "")
            return placed and LOST not in lent

        await wait_for(original_placement, 90, f"{LOST} back home with its mirror as standby")
        t1 = time.monotonic()
        await wait_for(lambda: _acked_since(ops, t1) >= 20, 30, f"{LOST} served at home again")
        stop.set()
        await asyncio.gather(*drivers)
    finally:
        stop.set()
        await plane.close()

    # What each acknowledgement promised held across both failovers and the failback
    # (docs/multi-region.md, "Durability"): a GLOBAL task survives the loss of its primary,
    # and so does every task acknowledged after the primary died (the spare took it); a
    # LOCAL task promises nothing beyond the primary, so those acknowledged inside the
    # spare's replication lag before the kill may be lost -- and only those.
    acked = [o for o in ops if o.acked is not None]
    assert len([o for o in acked if o.sent > promoted_at]) > 0
    assert {o.durability for o in acked if o.sent > promoted_at} == {"LOCAL", "GLOBAL"}

    def promised(o: Op) -> bool:
        assert o.acked is not None
        in_lag = killed_at - RPO_S <= o.acked <= killed_at
        return o.durability == "GLOBAL" or not in_lag

    missing: list[Op] = []

    async def all_ran() -> bool:
        status = await record_statuses(topo, LOST)
        missing[:] = [o for o in acked if status.get(o.task_id) != "succeeded"]
        return not any(promised(o) for o in missing)

    try:
        await wait_for(all_ran, 120, "every acknowledged task its durability promised to run")
    finally:
        for o in missing:
            assert o.acked is not None
            lag = o.acked - killed_at
            print(f"not run: {o.task_id} {o.durability} acked {lag:+.3f}s from the kill")
    assert len(missing) <= 12, "LOCAL losses are the few tasks per key inside the lag, not a stream"
