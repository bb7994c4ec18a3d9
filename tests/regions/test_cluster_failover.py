"""Promotion and failback of a Cluster-mode home on real Redis Cluster nodes: us-east is
one Redis Cluster of three masters and their in-region replicas, with one replica of
every master (the mirrors) running in eu-west (regions.clusterpromotion)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from homeport.core.broker import Broker
from homeport.core.entry import Delivery
from homeport.core.keys import PartitionKeys
from homeport.core.producer import Producer, SubmitResult
from homeport.core.security import Identity
from homeport.core.settings import Settings
from homeport.core.task import Durability, new_task
from homeport.regions import stores
from homeport.regions.clustercopy import ClusterCopy
from homeport.regions.clusterpromotion import complete
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.processes import is_alive
from homeport.regions.promotion import PromotionError, failback, promote
from redis.exceptions import RedisError

from tests.conftest import _start, control_plane, wait_for

HOME, STANDBY, THIRD = "us-east", "eu-west", "ap-south"
PARTITIONS = 4


@pytest.fixture(scope="module")
def cluster_home(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    """Three regions, us-east in Cluster mode; these tests fail it over and back."""
    spec = ClusterSpec.default(3, partitions=PARTITIONS, cluster_regions=(HOME,))
    yield from _start(spec, "cfailover", state_dir_factory)


@pytest.fixture
async def cp(cluster_home: DevCluster) -> AsyncIterator[ControlPlane]:
    async for plane in control_plane(cluster_home, THIRD):
        yield plane


class _Writer:
    """A gateway's view of us-east's store: a cluster-mode producer seeded at `seed`."""

    def __init__(self, seed: str, replicas_for_global: int) -> None:
        self.broker = Broker(f"redis://{seed}/0", cluster=True)
        settings = Settings(
            region=HOME, partitions=PARTITIONS, redis_cluster=True,
            global_replicas=replicas_for_global,
        )  # fmt: skip
        self.producer = Producer(self.broker, settings)

    async def submit(
        self, n: int, durability: Durability, tag: str, epoch: int
    ) -> list[SubmitResult]:
        await self.broker.connect()
        tasks = [
            new_task(partition_key=f"acct-{i % 13}", kind="noop", id=f"{tag}-{i}",
                     durability=durability)
            for i in range(n)
        ]  # fmt: skip
        return await self.producer.submit_many(tasks, epoch)


async def _task_ids(copy: ClusterCopy) -> set[str]:
    """Every task id in us-east's partition streams, read from `copy`'s nodes."""
    await copy.refresh()
    ids: set[str] = set()
    for p in range(PARTITIONS):
        stream = PartitionKeys(HOME, p).stream
        for entry_id, fields in await copy.at(stream).xrange(stream) or []:
            delivery = Delivery.decode(entry_id, fields)
            assert delivery is not None
            ids.add(delivery.task_id)
    return ids


async def _all_replicas(copy: ClusterCopy) -> bool:
    """Every node of `copy` is a replica (a node still restarting is not yet)."""
    try:
        return set((await copy.roles()).values()) == {"slave"}
    except (RedisError, OSError):
        await copy.close()  # reconnect at the next ask
        return False


async def _replicas_online(home_nodes: ClusterCopy) -> bool:
    """Every home master has its two replicas (in us-east and the mirror) online: GLOBAL
    waits for both."""
    for address in home_nodes.nodes:
        followers = await stores.followers(home_nodes.node(address))
        if [f.state for f in followers] != ["online", "online"]:
            return False
    return True


def _codes(results: list[SubmitResult]) -> set[str | None]:
    return {r.error.code if r.error else None for r in results}


@pytest.mark.timeout(240)
async def test_cluster_home_lost_promotes_mirrors_by_takeover_fences_and_fails_back(
    cp: ControlPlane, cluster_home: DevCluster
) -> None:
    redis = cp.topology.region(HOME).redis
    identity = Identity.of(cp.topology.security)
    home_nodes, mirrors = ClusterCopy(redis.nodes, identity), ClusterCopy(redis.mirrors, identity)

    # GLOBAL waits for both replicas of a shard: the one in us-east and the mirror.
    await wait_for(lambda: _replicas_online(home_nodes), 30, "every master's two replicas online")
    tag = uuid.uuid4().hex[:6]
    epoch = (await cp.routing.load()).route(HOME).epoch
    writer = _Writer(redis.nodes[0], redis.replicas_for_global)
    acked = await writer.submit(300, Durability.GLOBAL, f"g{tag}", epoch)
    assert _codes(acked) == {None}, [r.error for r in acked if r.error][:3]

    # Lose the home: every Redis node of us-east (masters and in-region replicas).
    victims = [
        r for r in cluster_home.records()
        if r.kind == "redis" and r.region == HOME and r.name.startswith(f"redis-{HOME}-")
    ]  # fmt: skip
    assert sorted(r.address for r in victims) == sorted([*redis.nodes, *redis.replicas])
    for record in victims:
        os.kill(record.pid, signal.SIGKILL)
    await wait_for(lambda: not any(is_alive(r) for r in victims), 10, "the home's nodes dead")
    await home_nodes.close()  # its connections died with the nodes

    steps: list[str] = []
    report = await promote(cp, HOME, STANDBY, say=steps.append)
    assert (report.new_epoch, report.old_home_fenced) == (epoch + 1, False)
    assert steps[2].count("CLUSTER FAILOVER TAKEOVER") == 3, steps
    # The promotion point (kept for failback) was read from the mirrors, cluster down.
    assert len(report.promotion_point) == PARTITIONS
    assert "0-0" not in report.promotion_point.values(), report.promotion_point
    route = (await cp.routing.load()).route(HOME)
    assert (route.serving, route.copy, route.epoch) == (STANDBY, "mirror", report.new_epoch)
    assert await mirrors.masters_of_all_slots(), "the mirrors serve every slot"
    with pytest.raises(PromotionError, match="already served by"):
        await promote(cp, HOME, STANDBY)

    # Every acknowledged GLOBAL task is on the new masters; they take writes at the new
    # epoch (LOCAL: with the home lost, no replica is left to WAIT for), refuse the old.
    on_mirrors = await _task_ids(mirrors)
    assert {r.task_id for r in acked} <= on_mirrors
    standby_writer = _Writer(redis.mirrors[0], redis.replicas_for_global)
    after = await standby_writer.submit(40, Durability.LOCAL, f"a{tag}", report.new_epoch)
    assert _codes(after) == {None}, [r.error for r in after if r.error][:3]
    regional = await standby_writer.submit(2, Durability.REGION, f"r{tag}", report.new_epoch)
    assert _codes(regional) == {"NOT_REPLICATED"}
    stale = await standby_writer.submit(5, Durability.LOCAL, f"s{tag}", epoch)
    assert _codes(stale) == {"FENCED"}

    # The old masters come back (empty: the dev cluster keeps no files). Their slots are
    # claimed under a higher config epoch, so Redis Cluster makes them replicas of the
    # mirrors; a writer that still dials them with the old epoch is redirected and fenced.
    cluster_home.restart([r.name for r in victims])

    await wait_for(lambda: _all_replicas(home_nodes), 30, "the old masters to rejoin as replicas")
    old_writer = _Writer(redis.nodes[0], redis.replicas_for_global)
    fenced = await old_writer.submit(5, Durability.LOCAL, f"o{tag}", epoch)
    assert _codes(fenced) == {"FENCED"}

    fb_steps: list[str] = []
    back = await failback(cp, HOME, switch=True, say=fb_steps.append)
    assert back.orphans == [] and back.in_sync and back.switched, fb_steps
    assert back.epoch == report.new_epoch + 1
    assert "CLUSTER FAILOVER" in fb_steps[-1] and "TAKEOVER" not in fb_steps[-1], fb_steps
    route = (await cp.routing.load()).route(HOME)
    assert (route.serving, route.copy, route.state) == (HOME, "primary", "normal")
    await home_nodes.refresh()
    assert await home_nodes.masters_of_all_slots(), "the home nodes serve every slot again"

    await wait_for(
        lambda: _all_replicas(mirrors), 30, "the mirrors to replicate the home nodes again"
    )
    # The in-region replicas follow the home nodes too: GLOBAL is accepted again.
    await wait_for(lambda: _replicas_online(home_nodes), 30, "every master's two replicas online")
    assert {r.task_id for r in [*acked, *after]} <= await _task_ids(home_nodes)
    again = await old_writer.submit(5, Durability.GLOBAL, f"z{tag}", route.epoch)
    assert _codes(again) == {None}, [r.error for r in again if r.error]
    late = await standby_writer.submit(3, Durability.LOCAL, f"l{tag}", report.new_epoch)
    assert _codes(late) == {"FENCED"}, "the promotion's epoch is fenced after the failback"
    for w in (writer, standby_writer, old_writer):
        await w.broker.close()
    await home_nodes.close()
    await mirrors.close()


@pytest.mark.timeout(180)
async def test_controller_completes_a_cluster_promotion_interrupted_after_the_route_moved(
    cp: ControlPlane, cluster_home: DevCluster
) -> None:
    """A controller that died between moving the route and the takeover: the next
    leader's `_complete` (clusterpromotion.complete) makes the mirrors take over."""
    redis = cp.topology.region(HOME).redis
    mirrors = ClusterCopy(redis.mirrors, Identity.of(cp.topology.security))
    route = (await cp.routing.load()).route(HOME)
    assert route.copy == "primary", "the previous test failed the home back"
    victims = [
        r for r in cluster_home.records()
        if r.kind == "redis" and r.name.startswith(f"redis-{HOME}-") and r.region == HOME
    ]  # fmt: skip
    for record in victims:
        os.kill(record.pid, signal.SIGKILL)
    moved = await cp.routing.move(
        route, serving=STANDBY, copy="mirror", state="failed-over", reason="test: interrupted"
    )
    assert not await mirrors.masters_of_all_slots(), "the route moved, the mirrors did not"
    assert await complete(cp, moved), "the completion took over"
    assert await mirrors.masters_of_all_slots()
    assert not await complete(cp, moved), "done once: nothing left to finish"
    writer = _Writer(redis.mirrors[0], redis.replicas_for_global)
    stale = await writer.submit(3, Durability.LOCAL, f"c{uuid.uuid4().hex[:6]}", route.epoch)
    assert _codes(stale) == {"FENCED"}, "the completion raised the epochs to the route's"
    await writer.broker.close()

    # Leave the module's cluster as it found it: home nodes back, failed back.
    cluster_home.restart([r.name for r in victims])
    home_nodes = ClusterCopy(redis.nodes, Identity.of(cp.topology.security))
    await wait_for(lambda: _all_replicas(home_nodes), 30, "the old masters to rejoin as replicas")
    await home_nodes.close()
    back = await failback(cp, HOME, switch=True)
    assert back.switched
    await mirrors.close()


@pytest.mark.timeout(180)
async def test_manual_promotion_of_a_healthy_cluster_home_is_lossless_and_fenced(
    cp: ControlPlane,
) -> None:
    """The home answers: its masters are fenced first, the mirrors catch up, and a plain
    CLUSTER FAILOVER (no TAKEOVER) moves every shard: even LOCAL tasks survive."""
    redis = cp.topology.region(HOME).redis
    identity = Identity.of(cp.topology.security)
    home_nodes, mirrors = ClusterCopy(redis.nodes, identity), ClusterCopy(redis.mirrors, identity)
    route = (await cp.routing.load()).route(HOME)
    assert route.copy == "primary", "the previous tests failed the home back"
    await wait_for(lambda: _replicas_online(home_nodes), 30, "a healthy home: replicas online")
    tag = uuid.uuid4().hex[:6]
    writer = _Writer(redis.nodes[0], redis.replicas_for_global)
    local = await writer.submit(200, Durability.LOCAL, f"m{tag}", route.epoch)
    assert _codes(local) == {None}

    steps: list[str] = []
    report = await promote(cp, HOME, STANDBY, say=steps.append)
    assert report.old_home_fenced and report.mirror_caught_up, steps
    takeover = next(s for s in steps if s.startswith("3. "))
    assert takeover.count("CLUSTER FAILOVER") == 3 and "TAKEOVER" not in takeover, steps
    assert await mirrors.masters_of_all_slots()
    assert {r.task_id for r in local} <= await _task_ids(mirrors), "nothing lost"

    await wait_for(lambda: _all_replicas(home_nodes), 30, "the old masters to follow the mirrors")
    stale = await writer.submit(3, Durability.LOCAL, f"s{tag}", route.epoch)
    assert _codes(stale) == {"FENCED"}
    back = await failback(cp, HOME, switch=True)
    assert back.orphans == [] and back.switched and back.epoch == report.new_epoch + 1
    await writer.broker.close()
    await home_nodes.close()
    await mirrors.close()
