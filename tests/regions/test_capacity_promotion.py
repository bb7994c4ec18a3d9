"""Capacity-checked promotion on a real cluster (etcd, Redis, killed processes): the
controller asks the capacity model before promoting, promotes anyway when the standby is
undersized, raises the metric, orders the standby's agent to scale up, and keeps the
decision in the failover history that `homeport region status` shows."""

from __future__ import annotations

import bisect
import itertools
import json
import os
import random
import signal
import statistics
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aetcd
import pytest
from homeport.regions import capacity, history
from homeport.regions.capacity import AbsorbQuestion, LoadReport
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.health import read_all_verdicts
from homeport.regions.statusview import _capacity_cell, _history_table
from homeport.regions.topology import CapacityPolicy
from homeport.simulation.absorb import answer
from rich.console import Console

from tests.conftest import _start
from tests.regions.failover_loops import failover_loops, wait_until


@pytest.fixture(scope="module")
def cap_cluster(state_dir_factory: list[Path]) -> Iterator[DevCluster]:
    yield from _start(ClusterSpec.default(3, partitions=4), "cap", state_dir_factory)


def _report(home: str, region: str, rate: float, workers: int, parked: bool) -> LoadReport:
    return LoadReport(home, region, rate, 0.05, workers, 4, parked, 30.0, time.time())


async def test_decide_reads_the_reports_and_asks_the_model(cap_cluster: DevCluster) -> None:
    topo = cap_cluster.topology
    cp = await ControlPlane.open(topo, "eu-west")
    try:
        prefix = topo.etcd_prefix
        missing = await capacity.decide(cp.etcd, topo, "ap-south", "us-east", answer)
        assert missing.verdict == "unknown" and "no recent load report" in missing.reason
        # 40 tasks/s of 50 ms on two standby workers of 4 slots: at most 50% busy.
        await capacity.publish_report(
            cp.etcd, prefix, _report("ap-south", "ap-south", 40, 2, False)
        )
        await capacity.publish_report(cp.etcd, prefix, _report("ap-south", "us-east", 0, 2, True))
        roomy = await capacity.decide(cp.etcd, topo, "ap-south", "us-east", answer)
        assert roomy.verdict == "ok" and roomy.workers == 2 and roomy.workers_ordered == 0
        assert _capacity_cell(roomy.describe()).startswith("ok: 40/s on 2 workers of us-east")

        def broken(_q: capacity.AbsorbQuestion) -> capacity.AbsorbAnswer:
            raise ZeroDivisionError("model bug")

        failed = await capacity.decide(cp.etcd, topo, "ap-south", "us-east", broken)
        assert failed.verdict == "unknown" and "model bug" in failed.reason
    finally:
        await cp.etcd.delete_prefix(f"{topo.etcd_prefix}/load/".encode())
        await cp.close()


async def test_undersized_standby_is_promoted_with_alert_scale_order_and_history(
    cap_cluster: DevCluster,
) -> None:
    topo = cap_cluster.topology
    loops = await failover_loops(topo, ("eu-west", "ap-south"), answer)
    planes, controllers, rm = loops.planes, loops.controllers, loops.rm
    reader = planes["eu-west"]
    prefix = topo.etcd_prefix
    # us-east ran 300 tasks/s of 50 ms on its own workers; eu-west parks one worker of 4
    # slots for it (80 tasks/s at most): undersized.
    await capacity.publish_report(reader.etcd, prefix, _report("us-east", "us-east", 300, 6, False))
    await capacity.publish_report(reader.etcd, prefix, _report("us-east", "eu-west", 0, 1, True))
    loops.start()
    try:

        async def all_reported() -> bool:
            votes = (await read_all_verdicts(reader.etcd, prefix)).get("us-east", [])
            return {v.observer for v in votes if v.ok} == {"eu-west", "ap-south"}

        await wait_until(all_reported, 20, "both observers to report us-east healthy")
        for record in cap_cluster.records():
            if record.region == "us-east":
                os.kill(record.pid, signal.SIGKILL)

        async def promoted() -> bool:
            return any(e.kind == "promoted" for c in controllers for e in c.events)

        await wait_until(promoted, 30, "the promotion of us-east")

        async def recorded() -> list[history.FailoverEvent]:
            try:
                return [e for e in await history.events(reader.etcd, prefix) if e.home == "us-east"]
            except aetcd.ClientError:  # etcd may still be electing a leader
                return []

        await wait_until(recorded, 20, "the failover history record")
        event = (await recorded())[0]
        assert event.capacity is not None, event
        decided = event.capacity
        assert decided["verdict"] == "undersized" and decided["standby"] == "eu-west"
        assert decided["rate_per_s"] == 300 and decided["workers"] == 1
        assert decided["reason"].startswith("overloaded")
        assert decided["outage_s"] > 0  # the backlog of the detection time is counted
        needed = decided["workers_ordered"]
        # The model's answer for the outage it saw: 300/s of 50 ms on 4 slots per worker
        # needs at least 4 workers (3.75 busy); 4 partitions make 4 the most that helps.
        asked = AbsorbQuestion(
            "us-east", "eu-west", 300, 0.05, 1, 4, 4, decided["outage_s"],
            topo.capacity_policy.p99_wait_s, topo.capacity_policy.max_drain_s,
            topo.capacity_policy.max_workers,
        )  # fmt: skip
        assert needed == answer(asked).workers_needed == 4
        orders = await capacity.read_orders(reader.etcd, prefix)
        assert orders["us-east"].region == "eu-west"
        assert orders["us-east"].workers == needed
        assert orders["us-east"].epoch == event.epoch
        assert rm.undersized.labels("us-east", "eu-west")._value.get() == 1
        assert rm.workers_ordered.labels("us-east", "eu-west")._value.get() == needed
        kinds = [e.kind for c in controllers for e in c.events]
        assert "capacity-undersized" in kinds and "scale-ordered" in kinds
        console = Console(record=True, width=240)
        console.print(_history_table([event.__dict__]))
        shown = console.export_text()
        assert "undersized: 300/s on 1 workers of eu-west" in shown
        assert f"ordered {needed} workers" in shown
    finally:
        await loops.stop()


def test_the_scale_delay_is_the_standbys_measured_boot_plus_its_take_over(
    cap_cluster: DevCluster,
) -> None:
    """`capacity.scale_delay`: measured once the standby's agent reports a worker boot;
    the topology's `scale_delay_s` until then. The question carries it to the model.
    Take-over: half a heartbeat (the manager's next rebalance) and the joiner's quick
    look (`core.membership.FRESH_POLL_S`, 0.1 s)."""
    policy = CapacityPolicy(scale_delay_s=3.0)
    parked = _report("us-east", "eu-west", 0, 1, True)
    assert capacity.scale_delay(parked, policy) == 3.0
    booted = replace(parked, boot_s=1.25, start_s=0.25, heartbeat_s=0.5, reserves=2)
    assert capacity.take_over_s(booted) == pytest.approx(0.35)
    assert capacity.scale_delay(booted, policy) == pytest.approx(1.6)
    assert capacity.prepared_delay(booted) == pytest.approx(0.6)  # a prepared worker only starts
    topo = cap_cluster.topology.model_copy(update={"capacity": policy})
    home = _report("us-east", "us-east", 40, 1, False)
    asked = capacity.question(
        topo, "us-east", "eu-west", {"us-east": home, "eu-west": booted}, time.time()
    )
    assert isinstance(asked, AbsorbQuestion) and asked.scale_delay_s == pytest.approx(1.6)
    assert asked.prepared_workers == 2 and asked.prepared_delay_s == pytest.approx(0.6)
    # With the start's CPU seconds measured, the start counts those (a cluster's
    # start-up inflates every process's wall time; a prepared worker starts alone).
    assert capacity.prepared_delay(replace(booted, start_cpu_s=0.125)) == pytest.approx(0.475)


def test_a_load_report_decodes_with_fields_it_does_not_know_or_lacks() -> None:
    """Agents of two versions may share etcd during an upgrade."""
    report = _report("us-east", "eu-west", 0, 1, True)
    newer = json.loads(report.encode()) | {"a_later_field": 1}
    assert LoadReport.decode(json.dumps(newer).encode()) == report
    older = {k: v for k, v in json.loads(report.encode()).items() if k != "boot_s"}
    assert LoadReport.decode(json.dumps(older).encode()).boot_s == 0.0


def test_the_model_is_asked_with_the_fetch_hold_per_slot_when_the_budget_binds(
    cap_cluster: DevCluster,
) -> None:
    """`LoadReport.service_hold_s`: a worker completes at most slots / slot hold and
    budget / fetch hold tasks a second; the question carries the binding one as a slot
    hold. With no prefetch (budget = slots) the fetch hold binds, as it holds the slot
    hold and the record write after it; with a budget twice the slots, the slot hold."""
    home = _report("us-east", "us-east", 40, 1, False)  # 4 slots, 50 ms slot hold
    assert home.service_hold_s == 0.05  # no fetch figures (an older agent): the slot hold
    no_prefetch = replace(home, fetch_hold_s=0.07, fetch_budget=4)
    assert no_prefetch.service_hold_s == 0.07
    prefetch = replace(home, fetch_hold_s=0.07, fetch_budget=8)
    assert prefetch.service_hold_s == 0.05
    saturated = replace(home, fetch_hold_s=0.16, fetch_budget=8)  # queued behind slots
    assert saturated.service_hold_s == 0.08
    standby = _report("us-east", "eu-west", 0, 1, True)
    asked = capacity.question(
        cap_cluster.topology, "us-east", "eu-west",
        {"us-east": no_prefetch, "eu-west": standby}, time.time(),
    )  # fmt: skip
    assert isinstance(asked, AbsorbQuestion) and asked.hold_mean_s == 0.07


def test_the_clients_return_is_seven_eighteenths_of_their_backoff_cap(
    cap_cluster: DevCluster,
) -> None:
    """The residual of a sleep uniform in [cap/2, cap), picked in proportion to its
    length: checked against a sampled one, then carried by the question."""
    rng = random.Random(7)
    cap = 1.0
    sleeps = [cap * (0.5 + rng.random() / 2) for _ in range(20_000)]
    points = [rng.uniform(0, sum(sleeps)) for _ in range(20_000)]
    ends = list(itertools.accumulate(sleeps))
    residual = statistics.mean(ends[bisect.bisect(ends, p)] - p for p in points)
    policy = CapacityPolicy(client_backoff_cap_s=cap)
    assert capacity.client_return(policy) == pytest.approx(residual, rel=0.03)
    home = _report("us-east", "us-east", 40, 1, False)
    asked = capacity.question(
        cap_cluster.topology.model_copy(update={"capacity": policy}), "us-east", "eu-west",
        {"us-east": home, "eu-west": _report("us-east", "eu-west", 0, 1, True)}, time.time(),
    )  # fmt: skip
    assert isinstance(asked, AbsorbQuestion) and asked.client_return_s == 7 / 18


def test_the_outage_runs_from_the_loss_not_from_the_last_report(
    cap_cluster: DevCluster,
) -> None:
    """The home's last load report is up to a report interval older than its loss: the
    outage (and so the backlog) counts from the judgement's first 'unreachable' probe,
    and never from before the last report."""
    now = time.time()
    home = replace(_report("us-east", "us-east", 40, 1, False), at=now - 5.0)
    reports = {"us-east": home, "eu-west": _report("us-east", "eu-west", 0, 1, True)}
    topo = cap_cluster.topology
    old = capacity.question(topo, "us-east", "eu-west", reports, now)
    dated = capacity.question(topo, "us-east", "eu-west", reports, now, down_since=now - 3.5)
    early = capacity.question(topo, "us-east", "eu-west", reports, now, down_since=now - 9.0)
    assert isinstance(old, AbsorbQuestion) and old.outage_s == pytest.approx(5.0)
    assert isinstance(dated, AbsorbQuestion) and dated.outage_s == pytest.approx(3.5)
    assert isinstance(early, AbsorbQuestion) and early.outage_s == pytest.approx(5.0)
