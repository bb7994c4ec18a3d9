"""Orphans of a Cluster-mode home are recovered at failback and run (regions.clusterorphans),
on the whole system: gateways, agents, workers and the controller, all real processes.

Real orphans are made the way a region loss makes them: us-east's masters acknowledge
LOCAL tasks while their mirrors in eu-west are paused (SIGSTOP, so they never get them),
then every us-east process is SIGKILLed and the controller promotes the mirrors. us-east's
masters come back *held* (with their AOF, out of the cluster); failback reads their
orphans, re-enqueues them, lets the nodes rejoin and switches home. Judged on the full
history of what the clients had acknowledged and what the workers recorded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aetcd.exceptions import ClientError
from homeport.core.entry import Delivery
from homeport.core.keys import PartitionKeys
from homeport.core.security import Identity
from homeport.loadtest.demo import Op, _records, _wait_ready
from homeport.regions import history
from homeport.regions.clustercopy import ClusterCopy, ClusterFailoverError
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.placement import home_region
from homeport.regions.processes import ProcessRecord, is_alive
from homeport.regions.promotion import FailbackReport, PromotionError, failback
from homeport.regions.topology import Topology
from homeport.router.client import AsyncClient
from homeport.router.errors import GatewayError

from tests.conftest import assert_per_key_order, control_plane, sdk_for, start_services, wait_for

LOST, SURVIVOR, THIRD = "us-east", "eu-west", "ap-south"


@pytest.fixture(scope="module")
def system(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    regions = ClusterSpec.default(3, partitions=8, cluster_regions=(LOST,)).regions
    yield from start_services("corphans", state_dir_factory, workers=1, regions=regions)


@pytest.fixture
async def cp(system: DevCluster) -> AsyncIterator[ControlPlane]:
    async for plane in control_plane(system, THIRD):
        yield plane


class _History:
    """Every submit of the test, in order per key (`loadtest.demo.Op`)."""

    def __init__(self, client: AsyncClient, home: str) -> None:
        self.client, self.home, self.ops = client, home, list[Op]()
        self.seq: dict[str, int] = {}

    async def _key(self, key: str, n: int, durability: str) -> list[Op]:
        done = []
        for _ in range(n):
            seq = self.seq.get(key, 0)
            self.seq[key] = seq + 1
            op = Op(
                key, seq, f"co-{uuid.uuid4().hex[:12]}", durability, self.home, time.monotonic()
            )
            self.ops.append(op)
            try:
                await self.client.submit("noop", key, str(seq).encode(), id=op.task_id,
                                         durability=durability)  # fmt: skip
                op.acked = time.monotonic()
            except GatewayError as exc:
                op.error = exc.reason or exc.status.name
            done.append(op)
        return done

    async def submit(self, keys: list[str], n: int, durability: str) -> list[Op]:
        """`n` tasks per key, one at a time per key, the keys side by side."""
        rounds = await asyncio.gather(*(self._key(k, n, durability) for k in keys))
        return [op for ops in rounds for op in ops]


@pytest.fixture
async def submits(system: DevCluster) -> AsyncIterator[_History]:
    """The test's clients: the region-aware SDK, every submit kept for the history."""
    async with sdk_for(system) as client:
        yield _History(client, LOST)


async def _task_ids(nodes: list[str], topo: Topology) -> set[str]:
    """Every task id in `LOST`'s partition streams, read from `nodes` (held ones too:
    they answer reads of the slots they hold, their own cluster down)."""
    copy = ClusterCopy(nodes, Identity.of(topo.security), timeout=5.0)
    ids: set[str] = set()
    try:
        async with copy.readable_while_down():
            await copy.refresh()
            for p in range(topo.region(LOST).partitions):
                stream = PartitionKeys(LOST, p).stream
                try:
                    node = copy.at(stream)
                except ClusterFailoverError:
                    continue  # no held node has keys of this partition
                for entry_id, fields in await node.xrange(stream) or []:
                    delivery = Delivery.decode(entry_id, fields)
                    ids |= {delivery.task_id} if delivery else set()
    finally:
        await copy.close()
    return ids


def _signal(records: list[ProcessRecord], sig: signal.Signals, group: bool = False) -> None:
    for record in records:
        (os.killpg if group else os.kill)(record.pid, sig)


async def _failback_once_reachable(cp: ControlPlane, steps: list[str]) -> FailbackReport:
    """Fail back as an operator does: retried while the restarted nodes load their data."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        try:
            return await failback(cp, LOST, switch=True, say=steps.append)
        except PromotionError as exc:
            if "not all reachable" not in str(exc) or loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.mark.timeout(420)
async def test_cluster_orphans_are_recovered_at_failback_and_run(
    system: DevCluster, submits: _History, cp: ControlPlane
) -> None:
    topo = system.topology
    redis = topo.region(LOST).redis
    keys = [k for k in (f"orph-{i}" for i in range(60)) if home_region(k, topo) == LOST][:8]
    assert len(keys) == 8
    await _wait_ready(submits.client, topo, keys)
    mirrored = await submits.submit(keys, 3, "GLOBAL")  # each ack waits for the mirror
    assert all(o.acked for o in mirrored), [o.error for o in mirrored if o.error][:3]

    records = system.records()
    mirrors = [r for r in records if r.kind == "redis" and r.address in redis.mirrors]
    victims = [r for r in records if r.region == LOST]
    agent = [r for r in victims if r.kind == "agent"]
    assert len(mirrors) == 3 and len(agent) == 1
    # The mirrors miss what follows: paused, and their replication links closed by the
    # masters (a paused process would still find what its kernel buffered). us-east's
    # workers (the agent's group) are paused too, so they do not run it before the loss.
    _signal(mirrors, signal.SIGSTOP)
    _signal(agent, signal.SIGSTOP, group=True)
    home_nodes = ClusterCopy(redis.nodes, Identity.of(topo.security))
    try:
        for address in redis.nodes:  # the in-region replicas reconnect at once; not the mirrors
            await home_nodes.node(address).client_kill_filter(_type="replica")
        orphans = await submits.submit(keys, 4, "LOCAL")
        assert all(o.acked for o in orphans), [o.error for o in orphans if o.error][:3]
        killed_at = time.time()
        for record in victims:
            os.killpg(record.pid, signal.SIGKILL)  # the agent's group takes its workers along
    finally:
        _signal(mirrors, signal.SIGCONT)
        await home_nodes.close()
    await wait_for(lambda: not any(is_alive(r) for r in victims), 10, f"{LOST}'s processes dead")

    async def failed_over() -> bool:
        """The controller's promotion is done (its history record is written last)."""
        try:
            route = (await cp.routing.load()).route(LOST)
            events = await history.events(cp.etcd, topo.etcd_prefix)
        except ClientError:
            return False  # etcd elects a leader: us-east's member may have led
        done = {(e.home, e.kind, e.epoch) for e in events}
        return route.copy == "mirror" and (LOST, "promote", route.epoch) in done

    await wait_for(failed_over, 60, f"the controller to promote {LOST}'s mirrors")
    orphan_ids = {o.task_id for o in orphans}
    assert not orphan_ids & await _task_ids(redis.mirrors, topo), "the mirrors got none of them"
    during = await submits.submit(keys, 2, "LOCAL")  # served by the mirrors in eu-west
    assert all(o.acked for o in during), [o.error for o in during if o.error][:3]

    # us-east comes back: its masters held, with their data; everything else as it was.
    masters = [r.name for r in victims if r.address in redis.nodes]
    assert len(masters) == 3
    system.restart([r.name for r in victims], hold=masters)

    async def answering() -> bool:
        copy = ClusterCopy(redis.nodes, Identity.of(topo.security), timeout=5.0)
        try:
            return await copy.reachable()
        finally:
            await copy.close()

    await wait_for(answering, 60, f"{LOST}'s held masters to load their data")
    kept = await _task_ids(redis.nodes, topo)
    assert orphan_ids <= kept, f"the held masters lack {len(orphan_ids - kept)} orphans"
    failback_at = time.time()
    steps: list[str] = []
    report = await _failback_once_reachable(cp, steps)

    # The fault path ran: exactly the tasks the mirrors never got were found and requeued.
    print("\nfailback:\n" + "\n".join(steps))
    assert {o.task_id for o in report.orphans} == orphan_ids, steps
    assert report.requeued == len(orphan_ids) and report.in_sync and report.switched, steps
    assert any("released" in s for s in steps), steps
    route = (await cp.routing.load()).route(LOST)
    assert (route.serving, route.copy, route.state) == (LOST, "primary", "normal")

    acked = [o for o in submits.ops if o.acked is not None]

    async def settled() -> bool:
        status, _ = await _records(topo)
        return all(status.get(o.task_id) == "succeeded" for o in acked)

    await wait_for(settled, 120, "every acknowledged task, orphans included, to run")
    _, spans = await _records(topo)
    # The orphans ran only after the failback recovered them, not before the loss.
    assert min(spans[t][0] for t in orphan_ids) > failback_at > killed_at
    # Per-key order: what never left the serving copy keeps submission order; orphans
    # come back at failback, after the tasks submitted meanwhile, in their own order;
    # and no task of a key starts before the one run before it has finished.
    assert_per_key_order([o for o in submits.ops if o.task_id not in orphan_ids], spans)
    assert_per_key_order(orphans, spans)
    for key in keys:
        ran = sorted(spans[o.task_id] for o in acked if o.key == key)
        for prev, nxt in zip(ran, ran[1:], strict=False):
            assert nxt[0] >= prev[1] - 1e-3, f"overlapping runs on {key}: {prev} {nxt}"
    print(
        f"\ncluster orphans: {len(acked)} acked, {len(orphan_ids)} orphans recovered and run, "
        f"first orphan ran {min(spans[t][0] for t in orphan_ids) - failback_at:.2f}s after "
        f"the failback began"
    )
