"""One game day, start to verdict.

1. start a private local cluster of the scenario's shape with the launcher users run,
   services included (per region a gateway and an agent, whose workers run
   `chaos.app:app`), and wait until every home region's workers are up;
2. run the load through the SDK's etcd routing table, apply the planned timeline,
   record the route changes the failover controller makes, and sample mirror lag;
3. when the load ends (or a stop condition fires), revert what is still applied and let
   acknowledged work drain;
4. read every execution back from the databases, write the history, judge it, report.

Everything started is stopped again, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aredis
from homeport.chaos import alerts, collect, drain
from homeport.chaos.checker import Verdict, check
from homeport.chaos.driver import ControlActions, FaultContext, ProcessControl
from homeport.chaos.errors import RunError
from homeport.chaos.faults import Fault
from homeport.chaos.history import Event, FaultRecord, History, LagSample
from homeport.chaos.load import LoadGenerator, SdkRoutes
from homeport.chaos.plan import Planned, plan
from homeport.chaos.report import write_reports
from homeport.chaos.scenario import Scenario
from homeport.core.security import Identity
from homeport.regions import protection, stores
from homeport.regions.control import ControlPlane
from homeport.regions.devcluster import ClusterSpec, DevCluster
from homeport.regions.mirror import measure
from homeport.regions.processes import is_alive
from homeport.regions.security import find_leaks
from homeport.regions.servers import Binaries
from homeport.regions.topology import Topology, split_address
from homeport.regions.toxiproxy import ToxiproxyClient

Say = Callable[[str], None]
SAMPLE_S = 0.5  # route following and mirror-lag sampling interval
APP = "homeport.chaos.app:app"
JOURNAL_ENV = "HOMEPORT_CHAOS_JOURNAL"  # read by chaos.app in every worker
CONCURRENCY_ENV = "HOMEPORT_CONCURRENCY"  # core.settings: slots per worker process
PREFETCH_ENV = "HOMEPORT_PREFETCH"  # core.settings: entries read ahead of the slots
STOP_S = 10.0  # bound on stopping the route follower and lag sampler after the load
COLLECT_S = 60.0  # bound on reading executions back from the databases
WORKERS_READY_S = 120.0  # agents start workers after importing grpc: slow on 2 loaded cores


@dataclass
class RunResult:
    history: Path
    verdict: Verdict
    reports: list[Path]


@dataclass(eq=False)
class GameDay:
    scenario: Scenario
    raw: dict[str, Any]
    seed: int
    out: Path
    say: Say = print
    keep: bool = False
    insecure: bool = False  # run the cluster --insecure (to measure what security costs)

    def __post_init__(self) -> None:
        # Set by `run`: how many secrets were searched for in its logs and reports, and
        # where any of them leaked (regions.security.find_leaks).
        self.secrets_checked = 0
        self.secret_leaks: list[str] = []
        self.run_id = f"{self.scenario.name[:20]}{self.seed}x{uuid.uuid4().hex[:6]}"
        self.history = History()
        self.t0 = 0.0
        self.at_home: dict[str, bool] = {}
        self.prometheus: str | None = None  # the cluster's Prometheus, when it runs one

    def run(self) -> RunResult:
        return asyncio.run(self._run())

    @staticmethod
    def last_faults(history: Path) -> list[FaultRecord]:
        """The fault steps a finished run applied, read back from its history."""
        from homeport.chaos.history import read_history

        return read_history(history).faults

    def _log(self, message: str) -> None:
        at = time.time() - self.t0 if self.t0 else 0.0
        self.say(f"[{at:6.1f}s] {message}")

    async def _run(self) -> RunResult:
        self.out.mkdir(parents=True, exist_ok=True)
        state = Path(tempfile.mkdtemp(prefix=f"homeport-chaos-{self.scenario.name}-"))
        state.chmod(0o755)
        shape = self.scenario.topology
        cluster = DevCluster(state / "cluster")
        planned = plan(self.scenario, self.seed)
        self.say(f"scenario {self.scenario.name}, seed {self.seed}: {len(planned)} fault steps")
        for p, _ in planned:
            self.say(
                f"  t+{p.start:g}s {p.fault} {', '.join(p.targets)}"
                + (f" for {p.end - p.start:g}s" if p.end is not None else "")
            )
        journal = self.out / "journal.jsonl"
        journal.unlink(missing_ok=True)
        spec = dataclasses.replace(
            ClusterSpec.default(shape.regions, shape.partitions, tuple(shape.cluster_regions)),
            services=APP,
            workers=shape.workers_per_region,
            insecure=self.insecure,
            capacity=shape.capacity,
            # Without a built binary the alerts cannot be judged: `chaos.alerts` says so.
            with_prometheus=bool(self.scenario.alerts.fire or self.scenario.alerts.resolve)
            and shutil.which(Binaries().prometheus) is not None,
        )
        # The agents (and the workers they start, and anything a fault restarts) inherit
        # this process's environment: that is how the handlers find the journal.
        env = {JOURNAL_ENV: str(journal.resolve())}
        if shape.worker_concurrency is not None:
            env[CONCURRENCY_ENV] = str(shape.worker_concurrency)
        if shape.worker_prefetch is not None:
            env[PREFETCH_ENV] = str(shape.worker_prefetch)
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            cluster.up(spec, progress=lambda m: self.say(f"cluster: {m}"))
            return await self._with_cluster(cluster, planned)
        finally:
            with contextlib.suppress(Exception):
                cluster.down()
            # Every secret of the cluster, searched in every log and report of the run.
            self.secrets_checked, self.secret_leaks = find_leaks(cluster.state_dir, (self.out,))
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            if not self.keep:
                shutil.rmtree(state, ignore_errors=True)

    async def _with_cluster(
        self, cluster: DevCluster, planned: list[tuple[Planned, Fault]]
    ) -> RunResult:
        topo = self.topo = cluster.topology
        self.prometheus = cluster.prometheus_url()
        if topo.toxiproxy is None:
            raise RuntimeError("the local cluster runs without Toxiproxy")
        tox = ToxiproxyClient(topo.toxiproxy.api)
        processes = ProcessControl(cluster)
        control = ControlActions(topo, self.history.events, self._log)
        ctx = FaultContext(tox, processes, control)
        cp = await ControlPlane.open(topo, "client")
        routes: SdkRoutes | None = None
        try:
            await cp.routing.bootstrap(topo)
            await asyncio.to_thread(self._wait_workers, cluster, processes)
            self.say("services: gateways, agents and workers ready")
            routes = await SdkRoutes.open(topo)
            return await self._game(topo, cp, routes, ctx, planned)
        finally:
            processes.close()
            with contextlib.suppress(Exception):
                tox.reset()
            tox.close()
            if routes is not None:
                with contextlib.suppress(Exception):
                    await routes.close()
            with contextlib.suppress(Exception):
                await cp.close()

    def _wait_workers(self, cluster: DevCluster, processes: ProcessControl) -> None:
        """Bounded wait until every home region has its workers, each past start-up (its
        log, written by the agent's worker, names its worker id)."""
        wanted = {
            f"worker-{r.name}-{i}"
            for r in cluster.topology.regions
            for i in range(self.scenario.topology.workers_per_region)
        }
        deadline = time.monotonic() + WORKERS_READY_S
        while True:
            running = processes.workers()
            logs = {p.name for p in cluster.logs.glob("worker-*.log") if "region=" in p.read_text()}
            ready = {
                name for name in running
                if any(log.endswith(f"-{name.removeprefix('worker-')}.log") for log in logs)
            }  # fmt: skip
            if wanted <= ready:
                return
            dead = [r.name for r in cluster.records() if r.kind in ("agent", "gateway")
                    and not is_alive(r)]  # fmt: skip
            if dead or time.monotonic() > deadline:
                raise RunError(
                    f"workers not ready after {WORKERS_READY_S:g}s: missing "
                    f"{sorted(wanted - ready)}; dead services: {dead or 'none'} "
                    f"(logs in {cluster.logs})"
                )
            time.sleep(0.2)  # polling logs and /proc for readiness, bounded by the deadline

    async def _game(
        self,
        topo: Topology,
        cp: ControlPlane,
        routes: SdkRoutes,
        ctx: FaultContext,
        planned: list[tuple[Planned, Fault]],
    ) -> RunResult:
        load = self.scenario.load
        gen = LoadGenerator(topo, load, self.seed, self.run_id, self.history.ops, routes)
        probes, took = await gen.warm_up()
        self.say(f"warm-up: {probes} probes acknowledged and run in {took:.1f}s")
        self.t0 = time.time()
        self.history.meta = {
            "scenario": self.raw,
            "seed": self.seed,
            "run": self.run_id,
            "t0": self.t0,
            "plan": [p.as_dict() for p, _ in planned],
        }
        background = [
            asyncio.create_task(self._follow(topo, cp)),
            asyncio.create_task(self._sample_lag(topo, cp)),
            asyncio.create_task(self._stop_conditions(gen)),
        ]
        reverts: list[asyncio.Task[None]] = []
        faults = asyncio.create_task(self._timeline(ctx, planned, reverts))

        def progress(sent: int, acked: int, errors: int) -> None:
            self._log(f"load: sent {sent}, acked {acked}, errors {errors}")

        try:
            await asyncio.wait_for(gen.run(progress), self.scenario.stop.max_duration_s)
        except TimeoutError:
            self._log("stop: max_duration_s reached")
        faults.cancel()
        for task in reverts:
            task.cancel()
        await asyncio.gather(faults, *reverts, return_exceptions=True)
        await self._revert_open(ctx, planned)
        # Processes a fault restarted (an agent and its workers) run until the drain is
        # over: they serve tasks acknowledged before the load ended. Ending them first
        # left those tasks unrun, judged lost, whenever the restart was slow. Closing
        # the driver before collecting ends them, which is not part of the scenario
        # (and would fail over again).
        watched = await self._watch_alerts()
        if self.scenario.slos.drain_tolerance is not None:
            with contextlib.suppress(Exception):  # etcd gone: the checker says it is missing
                await asyncio.wait_for(drain.record_failovers(cp, self.history), STOP_S)
        await self._drain()
        ctx.processes.close()
        for task in background:
            task.cancel()
        _, stuck = await asyncio.wait(background, timeout=STOP_S)
        if stuck:
            self._log(f"{len(stuck)} background loops did not stop within {STOP_S:g}s: left")
        self._log("collect: reading executions (journal and attempts)")
        try:
            self.history.execs = await asyncio.wait_for(
                collect.executions(topo, self.run_id, self.out / "journal.jsonl"), COLLECT_S
            )
        except TimeoutError:
            raise RunError(
                f"reading the attempts back took more than {COLLECT_S:g}s; is PostgreSQL up?"
            ) from None
        path = self.out / "history.jsonl"
        self.history.write(path)
        verdict = check(self.history)
        self._add_alerts(verdict, watched)
        reports = write_reports(self.history, verdict, self.out)
        self.say(f"history: {path}")
        return RunResult(path, verdict, reports)

    async def _watch_alerts(self) -> alerts.AlertOutcome:
        """The scenario's alert expectations (`chaos.alerts`), judged at the end of the
        timeline; and the overview dashboard drawn from the run's Prometheus."""
        spec = self.scenario.alerts
        # Fired *because of* the faults: counted from the first fault on.
        start = min((f.start for f in self.history.faults), default=self.t0)
        outcome = await alerts.judge(
            self.prometheus, spec.fire, spec.resolve, start, time.time(), self.t0, spec.resolve_s
        )
        for line in outcome.notes + outcome.violations:
            self._log(line)
        if self.prometheus is not None:
            from homeport.observe.panels import OVERVIEW
            from homeport.observe.render import render

            png = self.out / "dashboard-overview.png"
            drawn = await asyncio.to_thread(render, OVERVIEW, self.prometheus, png, self.t0)
            self._log(f"dashboard: {png} ({drawn} series)")
        return outcome

    def _add_alerts(self, verdict: Verdict, outcome: alerts.AlertOutcome) -> None:
        verdict.notes += outcome.notes
        verdict.violations += outcome.violations
        verdict.ok = verdict.ok and not outcome.violations

    async def _timeline(
        self,
        ctx: FaultContext,
        planned: list[tuple[Planned, Fault]],
        reverts: list[asyncio.Task[None]],
    ) -> None:
        for p, fault in planned:
            delay = self.t0 + p.start - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            record = FaultRecord(
                p.fault,
                p.step,
                time.time(),
                targets=list(p.targets),
                occurrence=p.occurrence,
                disruptive=fault.disruptive,
            )
            self.history.faults.append(record)
            try:
                # The record's own list: a fault that picks its target when it runs
                # (lose_region of the etcd leader) names it there.
                record.detail = await fault.apply(ctx, record.targets)
            except Exception as exc:  # noqa: BLE001 - a failed step is reported, the run goes on
                record.detail = f"FAILED: {type(exc).__name__}: {exc}"
            self._log(f"fault {p.fault}: {record.detail}")
            if p.end is None:
                record.end = record.start if not fault.disruptive else None
                continue
            reverts.append(asyncio.create_task(self._revert_at(ctx, p, fault, record)))

    async def _revert_at(
        self, ctx: FaultContext, p: Planned, fault: Fault, record: FaultRecord
    ) -> None:
        await asyncio.sleep(max(0.0, self.t0 + (p.end or 0) - time.time()))
        await self._revert(ctx, fault, p, record)

    async def _revert(
        self, ctx: FaultContext, fault: Fault, p: Planned, record: FaultRecord
    ) -> None:
        if record.end is not None:
            return
        record.end = time.time()
        try:
            done = await fault.revert(ctx, list(record.targets))
        except Exception as exc:  # noqa: BLE001 - report and carry on reverting the rest
            done = f"revert FAILED: {type(exc).__name__}: {exc}"
        if done:
            self._log(f"fault {p.fault}: {done}")

    async def _revert_open(self, ctx: FaultContext, planned: list[tuple[Planned, Fault]]) -> None:
        """Revert every step still applied, newest first, when the load ends."""
        records = {(r.step, r.occurrence): r for r in self.history.faults}
        for p, fault in reversed(planned):
            record = records.get((p.step, p.occurrence))
            if record is not None and record.end is None:
                await self._revert(ctx, fault, p, record)

    async def _drain(self) -> None:
        acked = {o.id for o in self.history.ops if o.acked is not None}
        deadline = time.monotonic() + self.scenario.stop.drain_s
        self._log(f"drain: waiting up to {self.scenario.stop.drain_s:g}s for {len(acked)} tasks")
        missing = len(acked)
        while time.monotonic() < deadline:
            try:
                done = collect.journaled(self.out / "journal.jsonl")
            except Exception:  # noqa: BLE001 - a database still recovering: look again
                done = set()
            missing = len(acked - done)
            if not missing:
                break
            await asyncio.sleep(0.5)  # polling the record store, bounded by the deadline
        self._log(f"drain: {missing} acknowledged tasks not run yet")

    async def _follow(self, topo: Topology, cp: ControlPlane) -> None:
        """Record every route change (the controller's promotions, the operator's steps)
        as a history event, and know which homes are served at home (for lag sampling)."""
        failures = 0
        seen: dict[str, tuple[str, int]] = {}
        lent: dict[str, tuple[str, str]] = {}
        while True:
            await asyncio.sleep(SAMPLE_S)
            try:
                table = await asyncio.wait_for(cp.routing.load(), 2.0)
            except Exception:  # noqa: BLE001 - etcd member gone: reconnect through another
                failures += 1
                if failures <= 3:
                    self._log("route follower: etcd unreachable, reconnecting")
                with contextlib.suppress(Exception):
                    await cp.etcd.close()
                    cp.etcd = (await ControlPlane.open(topo, "client")).etcd
                    cp.routing.client = cp.etcd
                continue
            with contextlib.suppress(Exception):  # etcd briefly gone: the next sample
                await asyncio.wait_for(self._follow_protections(cp, lent), 2.0)
            for home, route in table.routes.items():
                self.at_home[home] = route.copy == "primary" and route.serving == home
                now = (route.serving, route.epoch)
                if seen.setdefault(home, now) == now:
                    continue
                seen[home] = now
                detail = (
                    f"{home} served by {route.serving} ({route.copy}), epoch {route.epoch}"
                    f"{f': {route.reason}' if route.reason else ''}"
                )
                self.history.events.append(Event(time.time(), "route", home, detail))
                self._log(f"route: {detail}")

    async def _follow_protections(self, cp: ControlPlane, lent: dict[str, tuple[str, str]]) -> None:
        """Record spares lent and taken back by re-protection (`regions.protection`) as
        `protected` / `released` events."""
        now = {h: (p.region, p.state) for h, p in (await protection.load(cp)).items()}
        for home, (region, state) in now.items():
            if lent.get(home) != (region, state):
                detail = f"{home} re-protected by the spare of {region} ({state})"
                self.history.events.append(Event(time.time(), "protected", home, detail))
                self._log(f"protection: {detail}")
        for home, (region, _) in lent.items():
            if home not in now:
                detail = f"{home}: the spare of {region} released"
                self.history.events.append(Event(time.time(), "released", home, detail))
                self._log(f"protection: {detail}")
        lent.clear()
        lent.update(now)

    async def _sample_lag(self, topo: Topology, cp: ControlPlane) -> None:
        clients: dict[str, aredis.Redis] = {}

        def client(address: str) -> aredis.Redis:
            if address not in clients:
                host, port = split_address(address)
                clients[address] = stores.client(
                    host, port, timeout=0.5, identity=Identity.of(topo.security)
                )
            return clients[address]

        try:
            while True:
                for region in topo.regions:
                    r = region.redis
                    if r.primary is None or r.mirror is None or region.standby is None:
                        continue
                    if not self.at_home.get(region.name, True):
                        continue  # failed over: the old pair no longer replicates
                    try:
                        lag = await measure(
                            client(r.primary), client(r.mirror), region.name, region.standby
                        )
                    except Exception:  # noqa: BLE001 - a dead or promoted server: no sample
                        continue
                    if math.isfinite(lag.seconds):
                        self.history.lags.append(
                            LagSample(time.time(), region.name, lag.seconds, lag.bytes, lag.link_up)
                        )
                await asyncio.sleep(SAMPLE_S)
        finally:
            for c in clients.values():
                await c.aclose()

    async def _stop_conditions(self, gen: LoadGenerator) -> None:
        stop = self.scenario.stop
        if stop.abort_error_ratio <= 0:
            return
        while True:
            await asyncio.sleep(1.0)
            if time.time() - self.t0 > stop.window_s and gen.error_ratio(stop.window_s) >= (
                stop.abort_error_ratio
            ):
                self._log(
                    f"stop: error ratio over the last {stop.window_s:g}s reached "
                    f"{stop.abort_error_ratio}; stopping the load"
                )
                gen.stopped = True
                return
