"""The agent's load meter and scale-up, on real worker processes started by a
`Workforce`, real Redis and PostgreSQL, and the cluster's etcd."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from pathlib import Path

from homeport.core.broker import Broker
from homeport.core.keys import RegionKeys
from homeport.core.metrics import Metrics
from homeport.core.producer import Producer
from homeport.core.settings import Settings
from homeport.core.store import RecordStore
from homeport.core.task import new_task
from homeport.regions import capacity
from homeport.regions.agent import Agent, AgentSettings
from homeport.regions.control import ControlPlane
from homeport.regions.loadmeter import LoadMeter, parse_worker_metrics
from homeport.regions.topology import Topology
from homeport.regions.workforce import Wanted, Workforce

from tests.conftest import insecure_flag

TASKS = 200
HANDLER_S = 0.02  # the `sleep` handler's time with payload b"20"


def _worker_argv(redis_url: str, pg_dsn: str) -> list[str]:
    return [
        sys.executable, "-m", "homeport", "worker", "--app", "homeport.loadtest.apps:app",
        "--region", "us-east", "--partitions", "4", "--redis-url", redis_url,
        "--pg-dsn", pg_dsn, "--manager", "--admin-port", "0", *insecure_flag(),
    ]  # fmt: skip


async def test_meter_measures_rate_and_hold_of_its_workers_and_a_scale_order_adds_workers(
    redis_url: str, pg_dsn: str, topology: Topology, tmp_path: Path
) -> None:
    argv = _worker_argv(redis_url, pg_dsn)
    # The schema: without it no record is written, so no task is acked and the fetch
    # budget is never given back.
    store = await RecordStore.connect(pg_dsn)
    await store.migrate()
    await store.close()
    workforce = Workforce("eu-west", tmp_path, 1)
    cp = await ControlPlane.open(topology, "eu-west")
    # Under the deployment's prefix: the operator's etcd login may write only there.
    prefix = f"{topology.etcd_prefix}/test-{uuid.uuid4().hex[:8]}"
    orders: list[dict[str, capacity.ScaleOrder]] = []
    meter = LoadMeter(
        cp.etcd, prefix, "eu-west", workforce.rows, Metrics(),
        concurrency=7, on_orders=orders.append, window_s=300, heartbeat_s=0.5,
    )  # fmt: skip
    broker = Broker(redis_url)
    await broker.connect()
    try:
        workforce.converge({"us-east": Wanted(argv, redis_url, 4)}, fenced=False, routes_fresh=True)
        first = workforce.groups["us-east"].procs[0].pid
        # A scale order's count: the group grows, its running worker is kept.
        workforce.converge(
            {"us-east": Wanted(argv, redis_url, 4, count=2)}, fenced=False, routes_fresh=True
        )
        group = workforce.groups["us-east"]
        assert len(group.procs) == 2 and group.procs[0].pid == first
        assert all(p.poll() is None for p in group.procs)

        # Bounds, not sleeps: two Python processes starting on a shared, loaded machine.
        deadline = time.monotonic() + 180
        while not all(meter._port(r["id"], r["log"]) for r in workforce.rows()):
            assert time.monotonic() < deadline, "workers never printed their admin port"
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 180
        (idle,) = await meter.measure(time.time())
        assert idle.workers == 2 and idle.rate_per_s == 0 and idle.hold_mean_s == 0
        assert idle.concurrency == Settings().concurrency  # read from the workers' gauge
        # Each worker measured its boot from the spawn the workforce stamped: the report
        # carries their median, and the heartbeat the scale-up delay adds to it.
        boots = []
        for row in workforce.rows():
            got = parse_worker_metrics(await meter._scrape(meter._port(row["id"], row["log"]) or 0))
            assert got.boot is not None, f"{row['id']} exported no boot"
            boots.append(got.boot)
            # Its CPU seconds: some, and no more than the wall time plus the clocks' steps.
            assert 0 < got.start_cpu <= got.boot[1] + 0.05, got
        # The start is a part of the boot (the boot runs from the spawn to its end).
        assert all(0 < start < boot < 180 for boot, start in boots), boots
        assert idle.boot_s == statistics.median(b for b, _ in boots)
        assert idle.start_s == statistics.median(s for _, s in boots)
        assert 0 < idle.start_cpu_s <= max(s for _, s in boots) + 0.05
        assert idle.heartbeat_s == 0.5 and idle.reserves == 0
        log = Path(workforce.rows()[0]["log"]).read_text()
        assert f"booted in {boots[0][0]:.2f}s" in log and "started in" in log

        producer = Producer(broker, Settings(region="us-east", partitions=4, redis_url=redis_url))
        tasks = [new_task(f"k{i}", "sleep", b"20") for i in range(TASKS)]
        assert all(r.ok for r in await producer.submit_many(tasks, epoch=0))
        while True:
            (report,) = await meter.measure(time.time())
            if report.rate_per_s * report.window_s >= TASKS - 0.5:
                break
            assert time.monotonic() < deadline, f"only {report} after the submit"
            await asyncio.sleep(0.2)
        assert report.rate_per_s * report.window_s < TASKS + 0.5
        # The hold covers the begin step and the 20 ms handler; on a loaded machine
        # the begin round trip can add a lot, but never take anything away.
        assert HANDLER_S <= report.hold_mean_s < 1.0, report
        # The fetch hold runs from the read to the release, after the record write: it
        # holds the slot hold and more. The budget is the slots plus the prefetch (read
        # from the workers' gauge), and a saturated worker's slot costs a task the fetch
        # hold per slot of budget, or its slot hold if that is longer (`service_hold_s`).
        defaults = Settings()
        assert report.concurrency == defaults.concurrency
        assert report.fetch_budget == defaults.concurrency + defaults.prefetch
        assert report.hold_mean_s < report.fetch_hold_s < 1.0, report
        per_slot = report.fetch_hold_s * report.concurrency / report.fetch_budget
        assert report.service_hold_s == max(report.hold_mean_s, per_slot)

        order = capacity.ScaleOrder("us-east", "eu-west", 3, 2, "test", time.time())
        await capacity.write_order(cp.etcd, prefix, order)
        await meter.run_once()
        assert orders[-1] == {"us-east": order}
        published = await capacity.read_reports(cp.etcd, prefix, "us-east")
        assert published["eu-west"].workers == 2 and published["eu-west"].rate_per_s > 0
    finally:
        await meter.stop()
        await workforce.stop()
        await cp.etcd.delete_prefix(prefix.encode())
        await cp.close()
        await broker.close()


async def test_a_scale_order_reaches_the_agent_through_its_watch_at_once(
    topology: Topology, tmp_path: Path
) -> None:
    """The agent takes a scale order the moment the controller writes it (and runs its
    supervisor pass at once), not at the load meter's next read."""
    cp = await ControlPlane.open(topology, "eu-west")
    prefix = f"{topology.etcd_prefix}/test-{uuid.uuid4().hex[:8]}"
    agent = Agent(
        topology.model_copy(update={"etcd_prefix": prefix}), "eu-west",
        AgentSettings(app="homeport.loadtest.apps:app", log_dir=tmp_path),
    )  # fmt: skip
    watching = asyncio.create_task(agent._watch_orders(cp))
    try:
        assert agent.scale_orders == {} and not agent._nudge.is_set()
        order = capacity.ScaleOrder("us-east", "eu-west", 3, 2, "test", time.time())
        # Written again until seen: a write before the watch is open is not an event.
        deadline = time.monotonic() + 10
        while not agent._nudge.is_set():
            assert time.monotonic() < deadline, "the watch never delivered the order"
            await capacity.write_order(cp.etcd, prefix, order)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(agent._nudge.wait(), 0.5)
        assert agent.scale_orders == {"us-east": order}
        # A later order replaces the home's earlier one; other homes' orders are kept.
        other = capacity.ScaleOrder("ap-south", "eu-west", 2, 3, "test", time.time())
        again = capacity.ScaleOrder("us-east", "eu-west", 4, 2, "test", time.time())
        agent._nudge.clear()
        await capacity.write_order(cp.etcd, prefix, other)
        await capacity.write_order(cp.etcd, prefix, again)
        deadline = time.monotonic() + 10
        while agent.scale_orders != {"us-east": again, "ap-south": other}:
            assert time.monotonic() < deadline, agent.scale_orders
            await asyncio.sleep(0.05)
    finally:
        watching.cancel()  # as the agent's run does when it stops
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await cp.etcd.delete_prefix(prefix.encode())
        await cp.close()


async def test_a_prepared_worker_boots_idle_and_a_scale_order_starts_it_without_a_spawn(
    redis_url: str, pg_dsn: str, tmp_path: Path
) -> None:
    """A reserve (`--reserve`) boots and holds nothing; a scale-up sends it `go` instead of
    spawning a process; its boot excludes the wait; stopping the group ends it too."""
    argv = _worker_argv(redis_url, pg_dsn)
    workforce = Workforce("eu-west", tmp_path, 1)
    meter = LoadMeter(
        None, "", "eu-west", workforce.rows, Metrics(), concurrency=7,  # type: ignore[arg-type]
        on_orders=lambda orders: None, reserves=workforce.reserves,
    )  # fmt: skip
    broker = Broker(redis_url)
    await broker.connect()
    rk = RegionKeys("us-east")
    try:
        want = Wanted(argv, redis_url, 4, reserves=1)
        workforce.converge({"us-east": want}, fenced=False, routes_fresh=True)
        group = workforce.groups["us-east"]
        (reserve,) = group.reserves
        log = tmp_path / "worker-eu-west-us-east-1.log"
        deadline = time.monotonic() + 180
        while "reserve: booted" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the reserve never booted"
            assert reserve.poll() is None
            await asyncio.sleep(0.1)
        while not all(meter._port(r["id"], r["log"]) for r in workforce.rows()):
            assert time.monotonic() < deadline, "the worker never printed its admin port"
            await asyncio.sleep(0.1)
        (report,) = await meter.measure(time.time())
        assert report.workers == 1 and report.reserves == 1
        assert await broker.live_workers(rk) == [group.ids[0]]  # the reserve holds nothing
        await asyncio.sleep(1.0)  # idle time its boot must not count

        workforce.converge(
            {"us-east": Wanted(argv, redis_url, 4, count=2, reserves=1)},
            fenced=False, routes_fresh=True,
        )  # fmt: skip
        assert [p.pid for p in group.procs][1] == reserve.pid and group.reserves == []
        assert workforce.reserves("us-east") == 0
        while sorted(await broker.live_workers(rk)) != sorted(group.ids):
            assert time.monotonic() < deadline, "the started reserve never registered"
            await asyncio.sleep(0.1)
        # It registers inside `start()` and logs its boot when `start()` has returned.
        while "booted in " not in (text := log.read_text()):
            assert time.monotonic() < deadline, "the started reserve never logged its boot"
            await asyncio.sleep(0.1)
        assert "reserve: go after" in text
        booted = float(text.split("booted in ", 1)[1].split("s", 1)[0])
        waited = float(text.split("reserve: go after ", 1)[1].split("s", 1)[0])
        assert waited >= 1.0 and 0 < booted < 180
    finally:
        await workforce.stop()
        await meter.stop()
        await broker.close()
    assert reserve.poll() is not None
