"""The failover controller: quorum judgement, and automatic promotion after a region loss."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aetcd
import pytest
from homeport.core.metrics import Metrics
from homeport.core.security import Identity
from homeport.regions import stores
from homeport.regions.control import ControlPlane
from homeport.regions.controller import Controller
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.health import (
    OK_REFRESH_S,
    Observer,
    Verdict,
    judge,
    read_all_verdicts,
    timed_probe,
)
from homeport.regions.metrics import RegionsMetrics
from homeport.regions.processes import is_alive
from homeport.regions.topology import Topology
from prometheus_client import CollectorRegistry

from tests.conftest import _start, wait_for


def _v(observer: str, ok: bool, since: float, at: float = 1000.0) -> Verdict:
    return Verdict(observer, "us-east", ok, since, at)


def test_one_observer_alone_never_declares_a_region_down() -> None:
    now = 1000.0
    verdicts = [_v("eu-west", False, now - 60), _v("ap-south", True, now - 60)]
    assert not judge("us-east", verdicts, 3, confirm_s=3, now=now).down


def test_votes_must_hold_for_the_confirmation_time() -> None:
    now = 1000.0
    fresh = [_v("eu-west", False, now - 5), _v("ap-south", False, now - 1)]
    assert not judge("us-east", fresh, 3, confirm_s=3, now=now).down
    held = [_v("eu-west", False, now - 5), _v("ap-south", False, now - 3)]
    verdict = judge("us-east", held, 3, confirm_s=3, now=now)
    assert verdict.down and verdict.voters == ["ap-south", "eu-west"]


def test_the_judgement_dates_the_loss_from_the_earliest_vote() -> None:
    """The capacity check's outage starts at the earliest 'unreachable' window of the
    verdicts that vote; a verdict that does not vote (too brief) does not date it."""
    now = 1000.0
    verdicts = [_v("eu-west", False, now - 5), _v("ap-south", False, now - 4),
                _v("sa-east", False, now - 9, at=now - 8.5)]  # fmt: skip
    judged = judge("us-east", verdicts, 3, confirm_s=3, now=now)
    assert judged.down and judged.since == now - 5


def test_a_stale_verdict_does_not_vote() -> None:
    """An observer that probed 'unreachable' once and then stalled (its lease still kept
    alive) has not seen the region down for the confirmation time: its vote ages but
    does not count, nor does a failure it saw long ago and has not probed since."""
    now = 1000.0
    stalled = [_v("eu-west", False, now - 60), _v("ap-south", False, now - 60, at=now - 60)]
    assert not judge("us-east", stalled, 3, confirm_s=3, now=now).down
    brief = [_v("eu-west", False, now - 60), _v("ap-south", False, now - 5, at=now - 4)]
    assert not judge("us-east", brief, 3, confirm_s=3, now=now).down
    lagging = [_v("eu-west", False, now - 60), _v("ap-south", False, now - 9, at=now - 4)]
    assert not judge("us-east", lagging, 3, confirm_s=3, now=now).down
    current = [_v("eu-west", False, now - 60), _v("ap-south", False, now - 9, at=now - 2)]
    assert judge("us-east", current, 3, confirm_s=3, now=now).down


async def test_a_starved_observer_gives_no_evidence() -> None:
    """A real listener that accepts TCP and never answers (as a paused Redis): a probe
    that times out on time says 'unreachable'; one whose process is blocked past twice
    its timeout says nothing; a refused connection says 'unreachable' at once."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
    anonymous = Identity(None, "operator")
    try:
        store = stores.client("127.0.0.1", silent.getsockname()[1], 0.3, anonymous)
        assert await timed_probe(store, 0.3) is False

        async def starve() -> None:
            await asyncio.sleep(0.05)
            time.sleep(0.8)  # blocks the loop, as a starved or busy agent

        blocked = asyncio.ensure_future(starve())
        assert await timed_probe(store, 0.3) is None
        await blocked
        refused = stores.client("127.0.0.1", closed.getsockname()[1], 0.3, anonymous)
        assert await timed_probe(refused, 0.3) is False
        await store.aclose()
        await refused.aclose()
    finally:
        silent.close()
        closed.close()


def test_a_region_cannot_vote_on_itself() -> None:
    now = 1000.0
    votes = [_v("us-east", False, now - 60), _v("eu-west", False, now - 60)]
    assert not judge("us-east", votes, 3, confirm_s=3, now=now).down


def test_confirmation_shorter_than_the_lease_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than the gateways' lease TTL"):
        Controller(None, "c", Metrics(), RegionsMetrics(CollectorRegistry()), confirm_s=1)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def loss_cluster(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    yield from _start(ClusterSpec.default(3, partitions=4), "loss", state_dir_factory)


def _failover_loops(
    topo: Topology, planes: dict[str, ControlPlane]
) -> tuple[list[Observer], list[Controller], RegionsMetrics]:
    """An observer per region and controller candidates in eu-west and ap-south, started."""
    registry = CollectorRegistry()
    metrics, rm = Metrics(registry), RegionsMetrics(registry)
    observers = [Observer(topo, r, planes[r].etcd, metrics, rm) for r in topo.region_names()]
    controllers = [
        Controller(planes[r], f"controller-{r}", metrics, rm, confirm_s=3.0)
        for r in ("eu-west", "ap-south")
    ]
    for loop in [*observers, *controllers]:
        loop.start()
    return observers, controllers, rm


async def test_a_healthy_cluster_commits_little_to_etcd(loss_cluster: DevCluster) -> None:
    """Three observers probing at 4 Hz and two controller candidates campaigning at 4 Hz
    commit to etcd only what changes: a 'reachable' verdict about once a second per
    target, and no campaign while a leader holds the key. Writing each probe's verdict
    and campaigning by transaction committed about 32 raft entries a second here."""
    topo = loss_cluster.topology
    planes = {r: await ControlPlane.open(topo, r) for r in topo.region_names()}
    observers, controllers, _ = _failover_loops(topo, planes)
    try:
        await wait_for(lambda: sum(c.is_leader for c in controllers) == 1, 10, "a leader")
        etcd = planes["eu-west"].etcd
        start, t0 = (await etcd.status()).raft_index, time.monotonic()
        await asyncio.sleep(3.0)
        commits = (await etcd.status()).raft_index - start
        rate = commits / (time.monotonic() - t0)
        # 3 observers x 2 targets x ~1/s = 6/s, plus lease and leader bookkeeping.
        assert rate < 12, f"{commits} raft entries in 3 s ({rate:.1f}/s) from a healthy cluster"
        verdicts = (await read_all_verdicts(etcd, topo.etcd_prefix)).get("us-east", [])
        assert {v.observer for v in verdicts if v.ok} == {"eu-west", "ap-south"}
        assert all(time.time() - v.at < 2 * OK_REFRESH_S + 1 for v in verdicts)
    finally:
        for loop in [*controllers, *observers]:
            await loop.stop()
        for plane in planes.values():
            await plane.close()


async def test_region_loss_is_promoted_by_quorum_within_ten_seconds(
    loss_cluster: DevCluster,
) -> None:
    topo = loss_cluster.topology
    planes = {r: await ControlPlane.open(topo, r) for r in topo.region_names()}
    client = await ControlPlane.open(topo, "client")
    await client.routing.bootstrap(topo)
    observers, controllers, rm = _failover_loops(topo, planes)
    try:

        async def all_reported() -> bool:
            votes = (await read_all_verdicts(client.etcd, topo.etcd_prefix)).get("us-east", [])
            return {v.observer for v in votes if v.ok} == {"eu-west", "ap-south"}

        await wait_for(all_reported, 10, "both observers to report us-east healthy")
        assert sum(c.is_leader for c in controllers) == 1

        victims = [r for r in loss_cluster.records() if r.region == "us-east"]
        assert {r.name for r in victims} == {
            "redis-us-east-primary", "redis-us-east-replica0", "redis-ap-south-mirror",
            "redis-ap-south-mirror-replica0", "redis-us-east-spare", "etcd-us-east",
        }  # fmt: skip
        killed_at = time.monotonic()
        for record in victims:
            os.kill(record.pid, signal.SIGKILL)

        # The client plane talked to us-east's member, which is gone; read from eu-west's.
        reader = planes["eu-west"]

        async def moved() -> bool:
            try:  # etcd elects a new Raft leader after losing us-east's member
                route = (await reader.routing.load()).route("us-east")
            except aetcd.ClientError:
                return False
            return route.serving == "eu-west"

        await wait_for(moved, 20, "us-east's route to move to eu-west")

        async def promoted() -> bool:
            return any(e.kind == "promoted" for c in controllers for e in c.events)

        done_at = await wait_for(promoted, 20, "the promotion to complete")
        assert not any(is_alive(r) for r in victims)
        assert done_at - killed_at < 10.0, f"promotion took {done_at - killed_at:.1f}s"
        route = (await reader.routing.load()).route("us-east")
        assert (route.copy, route.state, route.epoch) == ("mirror", "failed-over", 2)
        assert "2 of 3 regions" in route.reason
        promoted = [e for c in controllers for e in c.events if e.kind == "promoted"]
        events = [(e.kind, e.home, e.detail) for c in controllers for e in c.events]
        assert len(promoted) == 1, f"exactly one controller promoted: {events}"
        assert rm.promotions.labels("us-east", "eu-west")._value.get() == 1
        # The other regions were not touched.
        for home in ("eu-west", "ap-south"):
            assert (await reader.routing.load()).route(home).epoch == 1
    finally:
        for loop in [*controllers, *observers]:
            await loop.stop()
        for plane in [*planes.values(), client]:
            await plane.close()
