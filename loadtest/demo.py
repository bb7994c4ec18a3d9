"""`homeport demo`: the main job, end to end, on a local cluster it starts and stops.

1. start three regions (Redis, PostgreSQL, etcd, Toxiproxy, gateways, agents, workers);
2. run a keyed workload through the gateways with the region-aware SDK, a mix of LOCAL,
   REGION and GLOBAL durability, one task at a time per key (per-key order is checkable);
3. kill every process of one region; the quorum of the others declares it down and the
   controller promotes its standby; clients are redirected;
4. bring the region back, recover its orphans, resynchronise it and switch back;
5. judge the full history (what was acknowledged, what ran) and print a table:
   acknowledged, run and lost per durability, duplicates, per-key order violations,
   the recovery time (RTO) and the mirror lag; then stop everything it started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import click
from homeport.core.security import Identity, cluster_insecure_option
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.errors import RegionsError
from homeport.regions.mirror import measure
from homeport.regions.placement import home_region
from homeport.regions.processes import is_alive
from homeport.regions.promotion import FailbackReport, PromotionError, failback
from homeport.regions.topology import Topology
from homeport.router.client import AsyncClient, RetryPolicy
from homeport.router.errors import GatewayError
from homeport.router.etcd_routing import EtcdRoutingTable
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
DURABILITIES = ("LOCAL", "REGION", "GLOBAL")


@dataclasses.dataclass
class Op:
    key: str
    seq: int
    task_id: str
    durability: str
    home: str
    sent: float
    acked: float | None = None
    error: str | None = None


@dataclasses.dataclass
class Outcome:
    ops: list[Op]
    killed_at: float
    rto: float | None
    lag_bytes: int
    lag_seconds: float
    orphans: int
    steps: list[str]
    killed_wall: float = 0.0  # the kill on the wall clock (the records' clock)
    victim: str = ""


async def _drive(client: AsyncClient, key: str, durability: str, home: str, ops: list[Op],
                 stop: asyncio.Event, pause_s: float) -> None:  # fmt: skip
    seq = 0
    while not stop.is_set():
        op = Op(key, seq, f"demo-{uuid.uuid4().hex[:12]}", durability, home, time.monotonic())
        ops.append(op)
        try:
            await client.submit(
                "noop", key, str(seq).encode(), id=op.task_id, durability=durability
            )
            op.acked = time.monotonic()
        except GatewayError as exc:
            op.error = exc.reason or exc.status.name
        seq += 1
        await asyncio.sleep(pause_s)


# Per task, its executions as (start, finish), earliest first, from every home's records.
Runs = dict[str, list[tuple[float, float]]]


async def _executions(topo: Topology) -> tuple[dict[str, str], Runs]:
    """status per task, and its executions, all homes."""
    status: dict[str, str] = {}
    runs: Runs = {}
    for region in topo.regions:
        conn = await asyncpg.connect(region.postgres, **Identity.of(topo.security).pg_kwargs())
        try:
            for row in await conn.fetch("SELECT id, status FROM tasks"):
                status[row["id"]] = row["status"]
            for row in await conn.fetch(
                "SELECT task_id, extract(epoch FROM started_at) AS s, "
                "extract(epoch FROM finished_at) AS f FROM attempts"
            ):
                s, f = float(row["s"]), float(row["f"] or row["s"])
                runs.setdefault(row["task_id"], []).append((s, f))
        finally:
            await conn.close()
    for executions in runs.values():
        executions.sort()
    return status, runs


async def _records(topo: Topology) -> tuple[dict[str, str], dict[str, tuple[float, float, int]]]:
    """status per task, and (first start, last finish, executions) per task, all homes:
    the spans the region tests hold to their stricter rule (no run of a key's next task
    before every run of the previous one ended)."""
    status, runs = await _executions(topo)
    return status, {t: (ex[0][0], max(f for _, f in ex), len(ex)) for t, ex in runs.items()}


async def _settle(
    topo: Topology, ops: list[Op], quiet_s: float = 20.0, limit_s: float = 90.0
) -> tuple[dict[str, str], Runs]:
    """Records once every acknowledged task ran, or nothing more ran for `quiet_s` (a
    worker starting after the failback takes a few seconds on a busy machine)."""
    acked = [o.task_id for o in ops if o.acked is not None]
    done, since = -1, time.monotonic()
    deadline = time.monotonic() + limit_s
    while True:
        status, runs = await _executions(topo)
        now_done = sum(status.get(t) == "succeeded" for t in acked)
        if now_done != done:
            done, since = now_done, time.monotonic()
        if done == len(acked) or time.monotonic() - since > quiet_s or time.monotonic() > deadline:
            return status, runs
        await asyncio.sleep(0.5)


async def _wait_ready(client: AsyncClient, topo: Topology, keys: list[str]) -> None:
    probes: dict[str, str] = {}
    for key in keys:
        home = home_region(key, topo)
        if home not in probes:
            probes[home] = (await client.submit("noop", key, durability="LOCAL")).task_id
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, _ = await _records(topo)
        if all(status.get(t) == "succeeded" for t in probes.values()):
            return
        await asyncio.sleep(0.3)
    raise click.ClickException("workers did not start within 120 s; see the agents' logs")


async def _run(cluster: DevCluster, victim: str, keys_n: int, steady_s: float) -> Outcome:
    topo = cluster.topology
    table = await EtcdRoutingTable.open(topo)
    client = AsyncClient(table, timeout=2.0, retry=RetryPolicy(attempts=8, backoff_cap_s=0.5))
    plane = await ControlPlane.open(topo, next(r for r in topo.region_names() if r != victim))
    keys = [f"account-{i}" for i in range(keys_n)]
    homes = {k: home_region(k, topo) for k in keys}
    steps: list[str] = []
    try:
        console.print("waiting for every region's workers ...")
        await _wait_ready(client, topo, keys)
        ops: list[Op] = []
        stop = asyncio.Event()
        drivers = [
            asyncio.create_task(_drive(client, k, DURABILITIES[i % 3], homes[k], ops, stop, 0.05))
            for i, k in enumerate(keys)
        ]
        await asyncio.sleep(steady_s)
        lag = await measure(plane.primary(victim), plane.mirror(victim), victim, "standby")
        console.print(
            f"steady load: {sum(o.acked is not None for o in ops)} tasks acknowledged; "
            f"mirror lag of {victim}: {lag.bytes} B, {lag.seconds * 1000:.0f} ms"
        )
        victims = [r for r in cluster.records() if r.region == victim]
        console.print(f"[red]killing every process of {victim}[/] ({len(victims)} processes)")
        killed_at, killed_wall = time.monotonic(), time.time()
        for record in victims:
            os.killpg(record.pid, signal.SIGKILL)
        rto = await _await_failover(plane, victim, ops, killed_at)
        await asyncio.sleep(3)
        console.print(f"{victim} comes back (its Redis empty, as after a real loss)")
        cluster.restart([r.name for r in victims])
        await asyncio.sleep(3)

        def say(message: str) -> None:
            steps.append(message)
            console.print("  " + message)

        report = await _failback_when_back(plane, victim, say)
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*drivers)
        return Outcome(
            ops, killed_at, rto, lag.bytes, lag.seconds, len(report.orphans), steps, killed_wall,
            victim,
        )  # fmt: skip
    finally:
        await client.close()
        await table.close()
        await plane.close()


async def _failback_when_back(
    plane: ControlPlane, victim: str, say: Callable[[str], None]
) -> FailbackReport:
    deadline = time.monotonic() + 60
    while True:
        try:
            return await failback(plane, victim, switch=True, say=say)
        except PromotionError as exc:
            if "not reachable" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _await_failover(
    plane: ControlPlane, victim: str, ops: list[Op], killed_at: float
) -> float | None:
    moved = False
    deadline = killed_at + 30
    while time.monotonic() < deadline:
        if not moved:
            try:
                route = (await plane.routing.load()).route(victim)
                if route.copy == "mirror":
                    moved = True
                    console.print(
                        f"  controller promoted {victim} -> {route.serving} at epoch "
                        f"{route.epoch} ({route.reason})"
                    )
            except Exception:  # noqa: BLE001 - etcd elects a new leader meanwhile
                pass
        served = [o.acked for o in ops if o.home == victim and o.durability != "GLOBAL"
                  and o.acked is not None and o.sent > killed_at]  # fmt: skip
        if moved and served:
            rto = min(served) - killed_at
            console.print(f"  clients of {victim} served again {rto:.2f} s after the kill")
            return rto
        await asyncio.sleep(0.1)
    return None


def _table(outcome: Outcome, status: dict[str, str], runs: Runs) -> tuple[Table, int]:
    ops = outcome.ops
    table = Table(title="homeport demo: the history judged")
    for col in ("durability", "acknowledged", "ran", "lost", "refused", "duplicates"):
        table.add_column(col, justify="right")
    lost_global = 0
    for d in DURABILITIES:
        acked = [o for o in ops if o.durability == d and o.acked is not None]
        ran = [o for o in acked if status.get(o.task_id) == "succeeded"]
        lost = len(acked) - len(ran)
        lost_global += lost if d == "GLOBAL" else 0
        dups = sum(len(runs[o.task_id]) - 1 for o in ran if o.task_id in runs)
        refused = sum(1 for o in ops if o.durability == d and o.error)
        table.add_row(d, str(len(acked)), str(len(ran)), str(lost), str(refused), str(dups))
    return table, lost_global


def _first_run_after_kill(outcome: Outcome, runs: Runs) -> str:
    """Seconds from the kill to the first start of a task of the lost home (on the
    standby: the home's own workers died with it)."""
    victim = outcome.victim
    starts = [
        runs[o.task_id][0][0]
        for o in outcome.ops
        if o.home == victim and o.task_id in runs and runs[o.task_id][0][0] >= outcome.killed_wall
    ]
    return f"{min(starts) - outcome.killed_wall:.2f} s" if starts else "never"


def _global_again(outcome: Outcome) -> str:
    """Per home, seconds from the kill until GLOBAL submits were acknowledged again: the
    ack of the first GLOBAL submit sent after the home's last refused one (re-protection
    lends a spare replica, docs/multi-region.md), or "never" when refusals lasted to the
    end (until failback)."""
    out = []
    for home in sorted({o.home for o in outcome.ops}):
        ops = [
            o for o in outcome.ops
            if o.home == home and o.durability == "GLOBAL" and o.sent >= outcome.killed_at
        ]  # fmt: skip
        # NOT_REPLICATED: the mirror could not confirm; other refusals (the failover's
        # and the failback's brief switches) are the RTO's business.
        refused = [o.sent for o in ops if o.acked is None and o.error == "NOT_REPLICATED"]
        after = max(refused, default=outcome.killed_at)
        acked = [o.acked for o in ops if o.acked is not None and o.sent > after]
        if refused and not acked:
            out.append(f"{home} never (until failback)")
        else:
            back = min(acked) - outcome.killed_at if acked else 0.0
            out.append(f"{home} {back:.2f} s")
    return ", ".join(out)


def _order_violations(ops: list[Op], runs: Runs) -> int:
    """Keys whose next task's first execution started before the previous task's first
    execution finished: the guarantee as the game-day checker states it
    (chaos/checker.py). A later duplicate of the previous task (re-run after a failover or
    a failback, with the next one re-run after it) is a duplicate, not an order break."""
    violations = 0
    by_key: dict[str, list[Op]] = {}
    for o in ops:
        if o.task_id in runs:
            by_key.setdefault(o.key, []).append(o)
    for group in by_key.values():
        group.sort(key=lambda o: o.seq)
        for prev, nxt in zip(group, group[1:], strict=False):
            if runs[nxt.task_id][0][0] < runs[prev.task_id][0][1] - 1e-3:
                violations += 1
    return violations


@click.command()
@click.option("--regions", "n", default=3, show_default=True, help="Number of regions (>= 3).")
@click.option("--keys", "keys_n", default=36, show_default=True, help="Partition keys driven.")
@click.option(
    "--steady", "steady_s", default=8.0, show_default=True, help="Seconds before the kill."
)
@click.option("--keep-state", is_flag=True, help="Keep logs and topology after the demo.")
@cluster_insecure_option("the demo runs")
def demo(n: int, keys_n: int, steady_s: float, keep_state: bool, insecure: bool) -> None:
    """Start a 3-region cluster, run keyed load, lose a region, fail over, fail back,
    judge the history, and stop everything it started."""
    if n < 3:
        raise click.BadParameter(
            "a quorum that survives a region loss needs 3 regions", param_hint="--regions"
        )
    state = Path(tempfile.mkdtemp(prefix="homeport-demo-"))
    state.chmod(0o755)  # PostgreSQL runs as `postgres`, which must enter this directory
    cluster = DevCluster(state / "cluster")
    spec = dataclasses.replace(
        ClusterSpec.default(n, partitions=8),
        services="homeport.loadtest.apps:app",
        insecure=insecure,
    )
    started = time.monotonic()
    try:
        with console.status("starting the local cluster") as progress:
            topology = cluster.up(spec, progress=progress.update)
    except RegionsError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(
        f"[green]cluster up[/] in {time.monotonic() - started:.1f}s: "
        f"{len(cluster.records())} processes, {len(topology.links)} Toxiproxy links"
    )
    try:
        outcome = asyncio.run(_run(cluster, topology.regions[0].name, keys_n, steady_s))
        with console.status("waiting for the acknowledged tasks to run"):
            status, runs = asyncio.run(_settle(topology, outcome.ops))
    finally:
        records = cluster.records()
        cluster.down()
    left = [r.name for r in records if is_alive(r)]
    table, lost_global = _table(outcome, status, runs)
    Console().print(table)
    missing = [
        o for o in outcome.ops if o.acked is not None and status.get(o.task_id) != "succeeded"
    ]
    for o in missing[:10]:  # name the first few, so a loss can be looked up
        console.print(
            f"  not run: {o.task_id} key {o.key} (home {o.home}, {o.durability}), "
            f"sent {o.sent - outcome.killed_at:+.2f} s from the kill"
        )
    acked = [o for o in outcome.ops if o.acked is not None]
    latencies = sorted((o.acked - o.sent) * 1000 for o in acked if o.acked is not None)
    p99 = latencies[int(len(latencies) * 0.99)]
    violations = _order_violations(outcome.ops, runs)
    rto = f"{outcome.rto:.2f} s" if outcome.rto is not None else "not recovered"
    first_run = _first_run_after_kill(outcome, runs)
    span = max(o.sent for o in outcome.ops) - min(o.sent for o in outcome.ops)
    console.print(
        f"throughput {len(acked) / span:.0f} acknowledged tasks/s over {span:.0f} s; "
        f"submit latency p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms\n"
        f"per-key order violations: {violations}\n"
        f"RTO (kill to first acknowledged task of the lost home): {rto}\n"
        f"kill to first task of the lost home run on its standby: {first_run}\n"
        f"kill to GLOBAL acknowledged again, per home: {_global_again(outcome)}\n"
        f"mirror lag at steady load: {outcome.lag_bytes} B, {outcome.lag_seconds * 1000:.0f} ms\n"
        f"orphans recovered at failback: {outcome.orphans}\n"
        f"left running after stop: {left or 'none'}"
    )
    if keep_state:
        console.print(f"state kept in {state}")
    else:
        shutil.rmtree(state, ignore_errors=True)
    if lost_global or violations or outcome.rto is None or left:
        raise SystemExit(1)
