"""Promotion and failback on real processes: epochs, fencing, orphans, election."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis
from homeport.core.app import App, TaskContext
from homeport.core.broker import Broker
from homeport.core.entry import Delivery
from homeport.core.keys import PartitionKeys
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.task import Durability, new_task
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.election import Election
from homeport.regions.promotion import PromotionError, failback, promote
from homeport.regions.routing import NotLeader
from homeport.regions.topology import Topology
from homeport.regions.toxiproxy import ToxiproxyClient

from tests.conftest import _start, control_plane, running_worker, wait_for

HOME, STANDBY, THIRD = "us-east", "eu-west", "ap-south"
PARTITIONS = 4


@pytest.fixture(scope="module")
def failover_cluster(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    """A cluster of its own: these tests promote and demote its Redis servers."""
    yield from _start(ClusterSpec.default(3, partitions=PARTITIONS), "failover", state_dir_factory)


@pytest.fixture
async def cp(failover_cluster: DevCluster) -> AsyncIterator[ControlPlane]:
    async for plane in control_plane(failover_cluster, THIRD):
        yield plane


async def _producer(address: str) -> tuple[Broker, Producer]:
    broker = Broker(f"redis://{address}/0")
    await broker.connect()
    return broker, Producer(broker, Settings(region=HOME, partitions=PARTITIONS))


def _tasks(n: int, durability: Durability, tag: str) -> list:  # type: ignore[type-arg]
    return [
        new_task(
            partition_key=f"acct-{i % 17}", kind="noop", id=f"{tag}-{i}", durability=durability
        )
        for i in range(n)
    ]


async def _at_home(topo: Topology) -> tuple[ToxiproxyClient, str, Broker, Producer]:
    """Toxiproxy, the home primary's address as the home dials it, and a producer there."""
    assert topo.toxiproxy is not None
    primary_addr = topo.dial(HOME, HOME, "redis", topo.region(HOME).redis.primary or "")
    broker, producer = await _producer(primary_addr)
    return ToxiproxyClient(topo.toxiproxy.api), primary_addr, broker, producer


async def _task_ids(store: aredis.Redis) -> set[str]:
    ids: set[str] = set()
    for p in range(PARTITIONS):
        for entry_id, fields in await store.xrange(PartitionKeys(HOME, p).stream) or []:
            delivery = Delivery.decode(entry_id, fields)
            assert delivery is not None
            ids.add(delivery.task_id)
    return ids


async def test_manual_promote_and_failback_round_trip_recovers_orphans(
    cp: ControlPlane, failover_cluster: DevCluster
) -> None:
    topo: Topology = cp.topology
    home = topo.region(HOME)
    tox, primary_addr, broker, producer = await _at_home(topo)
    tag = uuid.uuid4().hex[:6]
    acked: set[str] = set()

    results = await producer.submit_many(_tasks(300, Durability.GLOBAL, f"g{tag}"), epoch=1)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    acked |= {r.task_id for r in results}

    # Cut the mirror's replication: LOCAL writes now reach the home primary only.
    tox.set_enabled(f"{STANDBY}->{HOME}:redis", False)
    try:
        local = await producer.submit_many(_tasks(50, Durability.LOCAL, f"l{tag}"), epoch=1)
        assert all(r.ok for r in local)
        acked |= {r.task_id for r in local}
        refused = await producer.submit_many(_tasks(5, Durability.GLOBAL, f"x{tag}"), epoch=1)
        assert all(r.error is not None and r.error.code == "NOT_REPLICATED" for r in refused)

        steps: list[str] = []
        report = await promote(cp, HOME, STANDBY, say=steps.append)
        assert report.new_epoch == report.old_epoch + 1
        assert report.old_home_fenced and report.mirror_caught_up is False
        assert len(steps) == 5 and steps[0].startswith("1. etcd")
        route = (await cp.routing.load()).route(HOME)
        assert (route.serving, route.copy, route.epoch) == (STANDBY, "mirror", report.new_epoch)

        # The old home refuses the old epoch: nothing more is written there.
        stale = await producer.submit_many(_tasks(3, Durability.LOCAL, f"s{tag}"), epoch=1)
        assert all(r.error is not None and r.error.code == "FENCED" for r in stale)
        with pytest.raises(PromotionError, match="already served by"):
            await promote(cp, HOME, STANDBY)

        # The promoted mirror takes writes at the new epoch.
        mirror_broker, mirror_producer = await _producer(home.redis.mirror or "")
        after = await mirror_producer.submit_many(
            _tasks(40, Durability.LOCAL, f"a{tag}"), epoch=report.new_epoch
        )
        assert all(r.ok for r in after)
        acked |= {r.task_id for r in after}
        mirror_ids = await _task_ids(cp.mirror(HOME))
        assert {f"g{tag}-{i}" for i in range(300)} <= mirror_ids, "GLOBAL tasks all mirrored"
        assert not ({f"l{tag}-{i}" for i in range(50)} & mirror_ids), "LOCAL ones are orphans"
    finally:
        tox.set_enabled(f"{STANDBY}->{HOME}:redis", True)

    report_fb = await failback(cp, HOME, switch=True)
    # Orphans: the acknowledged LOCAL tasks, and the GLOBAL ones that were written but
    # refused (not replicated): recovering an unacknowledged write is harmless, its id dedups.
    expected = {f"l{tag}-{i}" for i in range(50)} | {f"x{tag}-{i}" for i in range(5)}
    assert sorted(o.task_id for o in report_fb.orphans) == sorted(expected)
    assert report_fb.requeued == 55 and report_fb.in_sync and report_fb.switched
    route = (await cp.routing.load()).route(HOME)
    assert (route.serving, route.copy, route.state) == (HOME, "primary", "normal")
    assert route.epoch == report.new_epoch + 1

    # Back home: the primary holds every acknowledged task, and takes new writes.
    final = await _task_ids(cp.primary(HOME))
    assert acked <= final, f"lost: {sorted(acked - final)[:5]}"
    broker2, producer2 = await _producer(primary_addr)
    again = await producer2.submit_many(_tasks(5, Durability.GLOBAL, f"z{tag}"), epoch=route.epoch)
    assert all(r.ok for r in again), [r.error for r in again]
    for b in (broker, mirror_broker, broker2):
        await b.close()
    tox.close()


async def test_failback_does_not_requeue_what_the_old_home_finished(
    cp: ControlPlane, failover_cluster: DevCluster
) -> None:
    """An isolated home's workers keep running what its gateway accepted until their
    leases lapse. At failback, the entries they finished (acked in the consumer group,
    not trimmed yet) are done, not orphans: only what they never finished is re-enqueued,
    so nothing runs twice."""
    topo: Topology = cp.topology
    tox, primary_addr, broker, producer = await _at_home(topo)
    tag = uuid.uuid4().hex[:6]
    ran: list[str] = []
    app = App("old-home")

    @app.task("noop")
    async def noop(ctx: TaskContext) -> None:
        ran.append(ctx.task_id)

    epoch = (await cp.routing.load()).route(HOME).epoch
    tox.set_enabled(f"{STANDBY}->{HOME}:redis", False)  # LOCAL writes stay on the home
    try:
        done_ids = {f"r{tag}-{i}" for i in range(40)}
        results = await producer.submit_many(_tasks(40, Durability.LOCAL, f"r{tag}"), epoch)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        # The home's own worker runs them; its trimmer is idle, so they stay in the streams.
        settings = Settings(
            region=HOME, partitions=PARTITIONS, redis_url=f"redis://{primary_addr}/0",
            admin_port=-1, lease_ttl_s=1.5, heartbeat_s=0.1, trim_interval_s=3600,
        )  # fmt: skip
        async with running_worker(app, settings):
            await wait_for(lambda: done_ids <= set(ran), 20, "the home's worker to run them")
        left = {f"u{tag}-{i}" for i in range(20)}
        results = await producer.submit_many(_tasks(20, Durability.LOCAL, f"u{tag}"), epoch)
        assert all(r.ok for r in results)
        # The fault path: the finished entries are still in the old home's streams.
        assert done_ids <= await _task_ids(cp.primary(HOME)), "trimmed: nothing to tell apart"
        report = await promote(cp, HOME, STANDBY)
        assert report.mirror_caught_up is False
    finally:
        tox.set_enabled(f"{STANDBY}->{HOME}:redis", True)
    report_fb = await failback(cp, HOME, switch=True)
    assert sorted(o.task_id for o in report_fb.orphans) == sorted(left)
    assert report_fb.requeued == 20 and report_fb.switched
    await broker.close()
    tox.close()


async def test_two_live_controllers_cannot_both_promote(cp: ControlPlane) -> None:
    other = await ControlPlane.open(cp.topology, STANDBY)
    one = Election(cp.etcd, cp.topology.etcd_prefix, "controller-1")
    two = Election(other.etcd, cp.topology.etcd_prefix, "controller-2")
    try:
        wins = await asyncio.gather(one.campaign(), two.campaign())
        assert sorted(wins) == [False, True], "exactly one leader"
        leader, loser = (one, two) if wins[0] else (two, one)
        assert await loser.leader() == leader.candidate
        loser_cp = cp if loser is one else other
        with pytest.raises(NotLeader):
            await promote(loser_cp, THIRD, guard=loser.guard)
        route = (await cp.routing.load()).route(THIRD)
        assert (route.serving, route.epoch) == (THIRD, 1), "the loser changed nothing"
        await leader.resign()
        assert await loser.campaign(), "the other takes over once the leader resigns"
    finally:
        await one.resign()
        await two.resign()
        await other.close()
